//! `chatvault read TENANT CONVERSATION`: a conversation's messages.

use std::collections::HashMap;
use std::io::Write;

use chatvault::{Direction, Error, MessageKind};

use crate::common::{self, fmt_time, ReadVaultArgs};

#[derive(clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    vault: ReadVaultArgs,
    /// Tenant name.
    tenant: String,
    /// Conversation id (for IRC imports: the log file's stem, e.g. 2011-11-13_02).
    conversation: String,
    /// First message id to print.
    #[arg(long, value_name = "ID")]
    from: Option<u64>,
    /// Print at most this many messages.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Newest first.
    #[arg(long)]
    backward: bool,
}

pub fn run(args: &ReadArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open_read(&args.vault, "Vault::messages")?;
    let t = common::tenant(&v, &args.tenant)?;
    let c = common::conversation(&v, t, &args.tenant, &args.conversation)?;
    let dir = if args.backward {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let mut names = HashMap::new();
    let mut shown = 0u64;
    for m in v
        .messages(t, c, args.from, dir)?
        .take(args.limit.unwrap_or(usize::MAX))
    {
        let m = m?;
        shown += 1;
        let nick = match names.get(&m.author) {
            Some(n) => n,
            None => {
                let n = match v.user(t, m.author) {
                    Ok(u) => u.profile.display_name,
                    Err(Error::Shredded { .. }) => "[erased user]".into(),
                    Err(e) => return Err(e.into()),
                };
                names.entry(m.author).or_insert(n)
            }
        };
        let when = fmt_time(m.sent_at_ms);
        let reply = m
            .reply_to
            .map(|r| format!(" (re #{r})"))
            .unwrap_or_default();
        if m.deleted_at_ms.is_some() {
            writeln!(out, "#{} {when} [deleted]", m.id)?;
            continue;
        }
        match m.kind {
            MessageKind::Action => writeln!(out, "#{} {when}{reply} * {nick} {}", m.id, m.body)?,
            _ => writeln!(out, "#{} {when}{reply} <{nick}> {}", m.id, m.body)?,
        }
    }
    if shown == 0 && args.from.is_none() {
        // Say why the output is empty (on stderr, so that the output stays the messages).
        let last = v.last_message_id(t, c)?;
        if last > 0 {
            eprintln!(
                "no messages to show: every message of this conversation (ids 1 to {last}) has \
                 expired or was deleted (`chatvault retention show {} {}`)",
                args.tenant, args.conversation
            );
        }
    }
    Ok(())
}
