//! `chatvault export --format slack|mattermost tenant|conversation`: a tenant or one
//! conversation written back as a Slack export zip or a Mattermost bulk export
//! (`chatvault::import::write_back`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use chatvault::import::write_back::{self, FormatExportSummary};
use chatvault::{ConversationId, TenantId, Vault};

use crate::common::{self, plural};
use crate::export::ExportCommand;

/// The export formats.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// chatvault-export v1, JSON Lines.
    Chatvault,
    /// A Slack export zip (users.json, channels.json, ... and day files).
    Slack,
    /// A Mattermost bulk export (JSON Lines, version 1).
    Mattermost,
}

/// A bad combination of flags: exit 2 (bad usage), nothing exported.
fn usage(message: &str) -> anyhow::Error {
    crate::common::Failure {
        code: crate::common::EXIT_USAGE,
        message: message.into(),
    }
    .into()
}

pub fn run(format: Format, cmd: ExportCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let (opts, tenant, conversation) =
        match &cmd {
            ExportCommand::User { .. } => return Err(usage(
                "--format slack and --format mattermost export a tenant or a conversation, not a \
             user: use `chatvault export user` (chatvault format) for a user's data",
            )),
            ExportCommand::Conversation {
                opts,
                tenant,
                conversation,
            } => (opts, tenant, Some(conversation)),
            ExportCommand::Tenant { opts, tenant } => (opts, tenant, None),
        };
    if opts.json {
        return Err(usage(
            "--json applies to chatvault-format exports only (nothing was exported)",
        ));
    }
    if opts.third_party {
        return Err(usage(
            "--third-party applies to chatvault-format exports only; a Slack or Mattermost \
             export is a full operator export",
        ));
    }
    if !opts.age_recipients.is_empty() {
        // Never write plaintext when encryption was asked for.
        return Err(usage(
            "--age-recipient applies to chatvault-format exports only; encrypt a Slack or \
             Mattermost export afterwards (`age -r age1... -o FILE.age FILE`)",
        ));
    }
    if format == Format::Slack && opts.out.is_none() {
        return Err(usage(
            "--format slack writes a zip archive: give --out FILE.zip",
        ));
    }
    crate::export::check_out(opts)?;
    let call = match format {
        Format::Slack => "chatvault::import::write_back::write_slack_export",
        _ => "chatvault::import::write_back::write_mattermost_export",
    };
    let v = common::open(&opts.vault, call)?;
    let t = common::tenant(&v, tenant)?;
    let c = match conversation {
        Some(name) => Some(common::conversation(&v, t, tenant, name)?),
        None => None,
    };
    let summary = match &opts.out {
        None => write_back::write_mattermost_export(&v, t, c, &mut *out)?,
        Some(path) => {
            let f = create(path)?;
            let r = write(&v, format, t, c, f, path);
            if r.is_err() {
                // An incomplete export is of no use and holds personal data: removed.
                let _ = std::fs::remove_file(path);
            }
            r?
        }
    };
    let target = opts
        .out
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "standard output".into());
    eprintln!(
        "exported {}, {} and {} ({}) as {} to {target}{}",
        plural(summary.conversations, "conversation"),
        plural(summary.users, "user"),
        plural(summary.messages, "message"),
        common::count(summary.changes, "edit or deletion", "edits and deletions"),
        summary.format,
        if summary.unreadable > 0 {
            format!(
                "; {} left out (shredded or expired)",
                plural(summary.unreadable, "message")
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn create(path: &Path) -> anyhow::Result<File> {
    let mut oo = OpenOptions::new();
    oo.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        oo.mode(0o600);
    }
    oo.open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))
}

fn write(
    v: &Vault,
    format: Format,
    t: TenantId,
    c: Option<ConversationId>,
    mut f: File,
    path: &Path,
) -> anyhow::Result<FormatExportSummary> {
    let s = match format {
        Format::Slack => write_back::write_slack_export(v, t, c, &mut f)?,
        _ => write_back::write_mattermost_export(v, t, c, &mut f)?,
    };
    f.sync_all()
        .map_err(|e| anyhow::anyhow!("syncing {}: {e}", path.display()))?;
    Ok(s)
}
