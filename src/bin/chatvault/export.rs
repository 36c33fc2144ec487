//! `chatvault export user|conversation|tenant`: JSON Lines exports (`Vault::export_user`,
//! `Vault::export_conversation`, `Vault::export_tenant`), with a progress bar on a terminal.

use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::bail;
use chatvault::{Actor, AgeOutput, Error, ExportOptions, ExportSummary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::common::{self, plural, VaultArgs};

const AFTER: &str = "The format (chatvault-export version 1, JSON Lines) is described in \
docs/export-schema-v1.json. Exports hold personal data in clear unless encrypted with \
--age-recipient: keep the file safe. A progress bar shows on a terminal (stderr), none when \
the output is piped. \
Exit codes: 0 written, 1 error (the output then has no `end` record), 2 bad usage.";

#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// Everything held about one user: profile, restriction state, conversations, the messages
    /// they wrote and those they received while a member.
    #[command(after_help = AFTER)]
    User {
        #[command(flatten)]
        opts: ExportOpts,
        /// Tenant name.
        tenant: String,
        /// User id (for IRC imports: the nick as written in the log).
        user: String,
    },
    /// One conversation: its members' profiles, its record and its messages.
    #[command(after_help = AFTER)]
    Conversation {
        #[command(flatten)]
        opts: ExportOpts,
        /// Tenant name.
        tenant: String,
        /// Conversation id.
        conversation: String,
    },
    /// A whole tenant: users, conversations and messages.
    #[command(after_help = AFTER)]
    Tenant {
        #[command(flatten)]
        opts: ExportOpts,
        /// Tenant name.
        tenant: String,
    },
}

#[derive(clap::Args)]
pub struct ExportOpts {
    #[command(flatten)]
    pub(crate) vault: VaultArgs,
    /// Write to this file (created with mode 0600; it must not exist yet) instead of standard
    /// output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// An export for a third party: users whose processing is restricted are left out (a
    /// restricted user's own export is refused).
    #[arg(long)]
    pub(crate) third_party: bool,
    /// Encrypt the export to this age recipient (an X25519 public key, age1..., as
    /// `age-keygen` prints; repeatable: any one of them decrypts). The file is in the age
    /// format (age-encryption.org/v1): `age -d -i KEY FILE` decrypts it.
    #[arg(long = "age-recipient", value_name = "age1...", value_parser = parse_recipient)]
    pub(crate) age_recipients: Vec<String>,
    /// Print a summary as one JSON object on standard output: {"scope" ("user",
    /// "conversation" or "tenant"), "tenant", "tenant_id", "user" and "user_id" (user
    /// exports, else null), "conversation" and "conversation_id" (conversation exports, else
    /// null), "file", "records", "messages", "users", "conversations", "consents",
    /// "restricted_users_left_out", "encrypted", "third_party"}. The export itself goes to
    /// --out FILE, which --json requires (chatvault format only); no progress bar.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_recipient(s: &str) -> Result<String, String> {
    let s = s.trim();
    s.parse::<age::x25519::Recipient>()
        .map(|_| s.to_string())
        .map_err(|e| {
            format!("{s:?} is not an age X25519 recipient (age1..., as `age-keygen` prints): {e}")
        })
}

/// Counts the records (lines) going through, for the progress bar.
struct Counting<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        self.bar.inc(lines);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn run(cmd: ExportCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let opts = match &cmd {
        ExportCommand::User { opts, .. }
        | ExportCommand::Conversation { opts, .. }
        | ExportCommand::Tenant { opts, .. } => opts,
    };
    let call = match &cmd {
        ExportCommand::User { .. } => "Vault::export_user",
        ExportCommand::Conversation { .. } => "Vault::export_conversation",
        ExportCommand::Tenant { .. } => "Vault::export_tenant",
    };
    if opts.json && opts.out.is_none() {
        return Err(common::Failure {
            code: common::EXIT_USAGE,
            message: "--json prints a summary on standard output, so the export needs --out \
                      FILE (nothing was exported)"
                .into(),
        }
        .into());
    }
    check_out(opts)?;
    if !opts.age_recipients.is_empty() && opts.out.is_none() && io::stdout().is_terminal() {
        bail!(
            "an age-encrypted export is binary: pass --out FILE or pipe it (`... | cat > \
             FILE.age`), not to a terminal"
        );
    }
    let v = common::open(&opts.vault, call)?;
    let eo = ExportOptions {
        third_party: opts.third_party,
    };
    // A progress bar on a terminal only: none when the output is piped or stderr is not a TTY.
    let show = !opts.json
        && io::stderr().is_terminal()
        && (opts.out.is_some() || io::stdout().is_terminal());
    let bar = if show {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} exporting: {human_pos} records ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let tenant_name = match &cmd {
        ExportCommand::User { tenant, .. }
        | ExportCommand::Conversation { tenant, .. }
        | ExportCommand::Tenant { tenant, .. } => tenant.as_str(),
    };
    let t = common::tenant(&v, tenant_name)?;
    // Internal ids of the user or conversation exported, for the --json summary.
    let ids = std::cell::Cell::new((None::<u64>, None::<u64>));
    let plain = |w: &mut dyn Write| -> Result<ExportSummary, anyhow::Error> {
        let w = Counting {
            inner: w,
            bar: bar.clone(),
        };
        let r = match &cmd {
            ExportCommand::User { tenant, user, .. } => {
                let u = common::user(&v, t, tenant, user)?;
                ids.set((Some(u.as_u64()), None));
                v.export_user(t, Actor::operator(), u, &eo, w)
            }
            ExportCommand::Conversation {
                tenant,
                conversation,
                ..
            } => {
                let c = common::conversation(&v, t, tenant, conversation)?;
                ids.set((None, Some(c.as_u64())));
                v.export_conversation(t, Actor::operator(), c, &eo, w)
            }
            ExportCommand::Tenant { .. } => v.export_tenant(t, Actor::operator(), &eo, w),
        };
        r.map_err(|e| match e {
            Error::Shredded { .. } => anyhow::anyhow!(
                "{e}; nothing of it can be exported (the failed export is in the audit trail)"
            ),
            Error::Restricted { .. } => anyhow::anyhow!(
                "{e} (the refused export is in the audit trail); without --third-party the \
                 export is the user's own copy"
            ),
            e => e.into(),
        })
    };
    // With --age-recipient the JSON Lines go through an age encryptor; the progress bar
    // counts the records before encryption.
    let export = |w: &mut dyn Write| -> Result<ExportSummary, anyhow::Error> {
        if opts.age_recipients.is_empty() {
            return plain(w);
        }
        let mut enc = AgeOutput::new(&opts.age_recipients, w)?;
        let s = plain(&mut enc)?;
        enc.finish()?;
        Ok(s)
    };
    let summary = match &opts.out {
        None => {
            // Standard output is flushed by the caller's BufWriter; the export writes through
            // it, so it is one stream.
            export(out)
        }
        Some(path) => {
            let mut oo = OpenOptions::new();
            oo.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                oo.mode(0o600);
            }
            let mut f = oo
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            let r = export(&mut f).and_then(|s| {
                f.sync_all()
                    .map_err(|e| anyhow::anyhow!("syncing {}: {e}", path.display()))?;
                Ok(s)
            });
            if r.is_err() {
                // An incomplete export is of no use and holds personal data: removed.
                let _ = std::fs::remove_file(path);
            }
            r
        }
    };
    bar.finish_and_clear();
    let s = summary?;
    tracing::info!(records = s.records, messages = s.messages, "export written");
    if opts.json {
        let (user_id, conversation_id) = ids.get();
        let (scope, user, conversation) = match &cmd {
            ExportCommand::User { user, .. } => ("user", Some(user), None),
            ExportCommand::Conversation { conversation, .. } => {
                ("conversation", None, Some(conversation))
            }
            ExportCommand::Tenant { .. } => ("tenant", None, None),
        };
        return common::print_json(
            out,
            &serde_json::json!({
                "scope": scope,
                "tenant": tenant_name,
                "tenant_id": t.as_u64(),
                "user": user,
                "user_id": user_id,
                "conversation": conversation,
                "conversation_id": conversation_id,
                "file": opts.out.as_ref().map(|p| p.display().to_string()),
                "records": s.records,
                "messages": s.messages,
                "users": s.users,
                "conversations": s.conversations,
                "consents": s.consents,
                "restricted_users_left_out": s.restricted_users_left_out,
                "encrypted": !opts.age_recipients.is_empty(),
                "third_party": opts.third_party,
            }),
        );
    }
    if let Some(path) = &opts.out {
        eprintln!(
            "exported {}, {}, {} and {} to {}{}{}",
            plural(s.records, "record"),
            plural(s.users, "user"),
            plural(s.conversations, "conversation"),
            plural(s.messages, "message"),
            path.display(),
            if opts.age_recipients.is_empty() {
                String::new()
            } else {
                format!(
                    ", encrypted to {}",
                    plural(opts.age_recipients.len() as u64, "age recipient")
                )
            },
            if s.restricted_users_left_out > 0 {
                format!(
                    " ({} left out: processing restricted)",
                    plural(s.restricted_users_left_out, "user")
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Refuses an `--out` file inside the data directory or one that exists (an export never
/// overwrites a file), before anything is opened. Shared with `export --format`.
pub(crate) fn check_out(opts: &ExportOpts) -> anyhow::Result<()> {
    if let Some(f) = &opts.out {
        if common::is_inside(f, &opts.vault.data) {
            bail!(
                "the export file {} is inside the data directory {}: write it elsewhere",
                f.display(),
                opts.vault.data.display()
            );
        }
        if f.exists() {
            bail!(
                "{} already exists: an export never overwrites a file; remove it or choose \
                 another --out",
                f.display()
            );
        }
    }
    Ok(())
}
