//! `chatvault read TENANT CONVERSATION`: a conversation's messages, with a note for every run of
//! ids not shown (shredded, expired, or removed from disk).

use std::collections::HashMap;
use std::io::Write;

use chatvault::{ConversationId, Direction, Error, MessageKind, TenantId, Vault};
use serde_json::{json, Value};

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
    /// Print one JSON object: {"tenant", "tenant_id", "conversation", "conversation_id",
    /// "messages": [{"id", "author" (external id, or null for an erased user), "author_id",
    /// "sent_at_ms", "kind": "text"|"action", "body" (null when deleted), "reply_to",
    /// "also_reply_to", "revision", "edited_at_ms", "deleted_at_ms", "attachments": [{"name",
    /// "media_type", "size_bytes"}]}], "not_shown": [{"from", "to", "count", "reason":
    /// "shredded"|"expired"|"removed"}]}.
    #[arg(long)]
    json: bool,
}

/// A run of consecutive ids the read did not show, all for one reason.
struct Gap {
    from: u64,
    to: u64,
    reason: &'static str,
}

/// Why message `id` is not shown: its key was destroyed (`shredded`), its retention ended
/// (`expired`), or it is gone from disk for another reason (`removed`: a purge of a
/// conversation whose history was deleted, ...).
fn why_missing(v: &Vault, t: TenantId, c: ConversationId, id: u64) -> anyhow::Result<&'static str> {
    Ok(match v.get(t, c, id) {
        Err(Error::Shredded { .. }) => "shredded",
        Err(Error::Expired { .. }) => "expired",
        Err(Error::NotFound { .. }) => "removed",
        // Readable after all (written while this command ran): not a gap to explain.
        Ok(_) => "written since",
        Err(e) => return Err(e.into()),
    })
}

/// The ids strictly between `a` and `b` (either order), grouped into runs by reason.
fn gaps_between(
    v: &Vault,
    t: TenantId,
    c: ConversationId,
    a: u64,
    b: u64,
    out: &mut Vec<Gap>,
) -> anyhow::Result<()> {
    let ids: Box<dyn Iterator<Item = u64>> = if a < b {
        Box::new(a + 1..b)
    } else {
        Box::new((b + 1..a).rev())
    };
    for id in ids {
        let reason = why_missing(v, t, c, id)?;
        match out.last_mut() {
            Some(g) if g.reason == reason && g.to.abs_diff(id) == 1 => g.to = id,
            _ => out.push(Gap {
                from: id,
                to: id,
                reason,
            }),
        }
    }
    Ok(())
}

fn gap_text(g: &Gap) -> String {
    let ids = if g.from == g.to {
        format!("#{}", g.from)
    } else {
        format!("#{}-#{}", g.from, g.to)
    };
    let n = g.from.abs_diff(g.to) + 1;
    let what = common::count(n, "message", "messages");
    match g.reason {
        "shredded" => {
            format!("{ids} [{what} shredded: their keys were destroyed, `chatvault receipts show`]")
        }
        "expired" => format!("{ids} [{what} expired: `chatvault retention show`]"),
        "removed" => format!("{ids} [{what} removed]"),
        r => format!("{ids} [{what} {r}]"),
    }
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
    let last = v.last_message_id(t, c)?;
    let limit = args.limit.unwrap_or(usize::MAX);
    // The id before the first one that can be shown, in reading order.
    let mut prev = match (dir, args.from) {
        (Direction::Forward, from) => from.unwrap_or(1).saturating_sub(1),
        (Direction::Backward, Some(from)) => from.saturating_add(1).min(last + 1),
        (Direction::Backward, None) => last + 1,
    };
    let mut names: HashMap<_, Option<String>> = HashMap::new();
    let mut nicks: HashMap<_, String> = HashMap::new();
    let mut shown = 0usize;
    let mut messages = Vec::new();
    let mut all_gaps = Vec::new();
    for m in v.messages(t, c, args.from, dir)?.take(limit) {
        let m = m?;
        shown += 1;
        let mut gaps = Vec::new();
        gaps_between(&v, t, c, prev, m.id, &mut gaps)?;
        prev = m.id;
        if !names.contains_key(&m.author) {
            let (ext, nick) = match v.user(t, m.author) {
                Ok(u) => (Some(u.external_id), u.profile.display_name),
                Err(Error::Shredded { .. } | Error::NotFound { .. }) => {
                    (None, "[erased user]".into())
                }
                Err(e) => return Err(e.into()),
            };
            names.insert(m.author, ext);
            nicks.insert(m.author, nick);
        }
        if args.json {
            messages.push(json!({
                "id": m.id,
                "author": names.get(&m.author).cloned().flatten(),
                "author_id": m.author.as_u64(),
                "sent_at_ms": m.sent_at_ms,
                "kind": match m.kind { MessageKind::Action => "action", _ => "text" },
                "body": if m.deleted_at_ms.is_some() { None } else { Some(&m.body) },
                "reply_to": m.reply_to,
                "also_reply_to": m.also_reply_to,
                "revision": m.revision,
                "edited_at_ms": m.edited_at_ms,
                "deleted_at_ms": m.deleted_at_ms,
                "attachments": m.attachments.iter().map(|a| json!({
                    "name": a.name,
                    "media_type": a.media_type,
                    "size_bytes": a.size_bytes,
                })).collect::<Vec<_>>(),
            }));
            all_gaps.extend(gaps);
            continue;
        }
        for g in &gaps {
            writeln!(out, "{}", gap_text(g))?;
        }
        let nick = nicks.get(&m.author).map(String::as_str).unwrap_or("?");
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
    // Ids after the last message shown, up to the end, when the limit did not stop the read.
    let mut tail = Vec::new();
    if shown < limit {
        let end = match dir {
            Direction::Forward => last + 1,
            Direction::Backward => 0,
        };
        if (dir == Direction::Forward && prev < end) || (dir == Direction::Backward && prev > end) {
            gaps_between(&v, t, c, prev, end, &mut tail)?;
        }
    }
    if args.json {
        all_gaps.extend(tail);
        let not_shown: Vec<Value> = all_gaps
            .iter()
            .map(|g| {
                json!({
                    "from": g.from,
                    "to": g.to,
                    "count": g.from.abs_diff(g.to) + 1,
                    "reason": g.reason,
                })
            })
            .collect();
        return common::print_json(
            out,
            &json!({
                "tenant": args.tenant,
                "tenant_id": t.as_u64(),
                "conversation": args.conversation,
                "conversation_id": c.as_u64(),
                "messages": messages,
                "not_shown": not_shown,
            }),
        );
    }
    for g in &tail {
        writeln!(out, "{}", gap_text(g))?;
    }
    if shown == 0 && args.from.is_none() && last > 0 {
        // Say why the output holds no message (on stderr, so that the output stays the
        // messages and their notes).
        eprintln!(
            "no messages to show: every message of this conversation (ids 1 to {last}) has \
             expired, was shredded or was deleted (the notes above say which; `chatvault \
             retention show {} {}`)",
            args.tenant, args.conversation
        );
    }
    Ok(())
}
