//! `chatvault shred tenant|conversation|user|window`: crypto-shredding (`Vault::shred`,
//! `Vault::shred_or_queue`), printing the receipt.

use std::io::Write;

use anyhow::bail;
use chatvault::{Actor, Error, QueuedErasure, ShredOutcome, ShredReceipt, ShredScope};

use crate::common::{
    self, fmt_time, json_str, json_strs, scope_json, shred_scope_text, Failure, VaultArgs,
    EXIT_LEGAL_HOLD,
};

/// Shown under each `chatvault shred SCOPE --help`.
const EXIT_CODES: &str = "Exit codes: 0 shredded (or, with --queue-if-held, queued), 1 error \
(not found, already shredded, ...), 2 bad usage or --yes missing (nothing changed), 4 under legal \
hold (nothing destroyed, nothing queued).";

#[derive(clap::Subcommand)]
pub enum ShredCommand {
    /// Shred a whole tenant (for IRC imports: a channel): its KEK and every key under it.
    #[command(after_help = EXIT_CODES)]
    Tenant {
        #[command(flatten)]
        opts: ShredOpts,
        /// Tenant name.
        tenant: String,
    },
    /// Shred one conversation: its key and every day key under it (its record, members and
    /// messages).
    #[command(after_help = EXIT_CODES)]
    Conversation {
        #[command(flatten)]
        opts: ShredOpts,
        /// Tenant name.
        tenant: String,
        /// Conversation id (for IRC imports: the log file's stem, e.g. 2011-11-13_02).
        conversation: String,
    },
    /// Shred one user: their key, profile and name; under the tenant's default erasure policy
    /// also every message they wrote.
    #[command(after_help = EXIT_CODES)]
    User {
        #[command(flatten)]
        opts: ShredOpts,
        /// Tenant name.
        tenant: String,
        /// User id (for IRC imports: the nick as written in the log).
        user: String,
    },
    /// Shred one time window (the UTC day, or the tenant's epoch) of a conversation.
    #[command(after_help = EXIT_CODES)]
    Window {
        #[command(flatten)]
        opts: ShredOpts,
        /// Tenant name.
        tenant: String,
        /// Conversation id.
        conversation: String,
        /// Any time inside the window: a UTC date (2011-11-13), an RFC 3339 time
        /// (2011-11-13T02:00:00Z) or milliseconds since 1970.
        #[arg(long, value_name = "TIME", value_parser = common::parse_time)]
        at: i64,
    },
}

#[derive(clap::Args)]
pub struct ShredOpts {
    #[command(flatten)]
    vault: VaultArgs,
    /// Confirm: shredding destroys keys for good (required; nothing is asked interactively).
    #[arg(long)]
    yes: bool,
    /// If a legal hold covers the scope, queue the erasure (it is carried out when the last
    /// hold over it is released) instead of failing with exit code 4.
    #[arg(long)]
    queue_if_held: bool,
    /// Print the receipt as one JSON object: {"outcome": "shredded", "seq", "tenant", "scope",
    /// "at_ms", "at", "key_ranges", "queued", "head", "key_paths_pending",
    /// "old_copies_reversioned"} or {"outcome": "queued", "seq", "tenant", "scope", "at_ms",
    /// "at", "held_by", "head"}.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: ShredCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let (opts, tenant_name) = match &cmd {
        ShredCommand::Tenant { opts, tenant }
        | ShredCommand::Conversation { opts, tenant, .. }
        | ShredCommand::User { opts, tenant, .. }
        | ShredCommand::Window { opts, tenant, .. } => (opts, tenant.as_str()),
    };
    if !opts.yes {
        return Err(Failure {
            code: 2,
            message: "shredding destroys keys for good: what they guard can never be read \
                      again, from this vault or any copy of it. Add --yes to confirm (nothing \
                      was changed)"
                .into(),
        }
        .into());
    }
    let call = if opts.queue_if_held {
        "Vault::shred_or_queue"
    } else {
        "Vault::shred"
    };
    let v = common::open(&opts.vault, call)?;
    let t = common::tenant(&v, tenant_name)?;
    let (scope, what) = match &cmd {
        ShredCommand::Tenant { tenant, .. } => {
            (ShredScope::Tenant, format!("tenant {tenant} ({t})"))
        }
        ShredCommand::Conversation {
            tenant,
            conversation,
            ..
        } => {
            let c = common::conversation(&v, t, tenant, conversation)?;
            (
                ShredScope::Conversation(c),
                format!("conversation {conversation} ({c}) of tenant {tenant}"),
            )
        }
        ShredCommand::User { tenant, user, .. } => {
            let u = common::user(&v, t, tenant, user)?;
            (
                ShredScope::User(u),
                format!("user {user} ({u}) of tenant {tenant}"),
            )
        }
        ShredCommand::Window {
            tenant,
            conversation,
            at,
            ..
        } => {
            let c = common::conversation(&v, t, tenant, conversation)?;
            (
                ShredScope::Window {
                    conversation: c,
                    at_ms: *at,
                },
                format!(
                    "the window containing {} of conversation {conversation} ({c}) of tenant \
                     {tenant}",
                    fmt_time(*at)
                ),
            )
        }
    };
    let outcome = if opts.queue_if_held {
        v.shred_or_queue(t, Actor::operator(), scope)
    } else {
        v.shred(t, Actor::operator(), scope)
            .map(ShredOutcome::Shredded)
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(Error::LegalHold { .. }) => {
            let ids: Vec<String> = v.holds(t)?.iter().map(|h| h.id.to_string()).collect();
            return Err(Failure {
                code: EXIT_LEGAL_HOLD,
                message: format!(
                    "{what} is under legal hold (tenant {tenant_name} has holds {}: `chatvault \
                     hold list {tenant_name}`): nothing was destroyed. Release the hold first, \
                     or add --queue-if-held to have the erasure carried out when the last hold \
                     over it is released",
                    ids.join(", ")
                ),
            }
            .into());
        }
        Err(Error::Shredded { .. }) => bail!("{what} is already shredded: nothing to do"),
        Err(e) => return Err(e.into()),
    };
    let head = v.receipts_head().map(|h| h.to_string()).unwrap_or_default();
    match outcome {
        ShredOutcome::Shredded(r) => {
            tracing::info!(tenant = %tenant_name, ?scope, seq = r.seq, "shredded");
            let pending = v.key_paths_pending()?;
            if opts.json {
                writeln!(out, "{}", shredded_json(&r, &head, pending))?;
            } else {
                print_shredded(out, &what, &r, &head, pending)?;
            }
        }
        ShredOutcome::Queued(q) => {
            tracing::info!(tenant = %tenant_name, ?scope, seq = q.seq, "erasure queued");
            if opts.json {
                writeln!(out, "{}", queued_json(&q, &head))?;
            } else {
                print_queued(out, tenant_name, &what, &q, &head)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn print_shredded(
    out: &mut impl Write,
    what: &str,
    r: &ShredReceipt,
    head: &str,
    key_paths_pending: u64,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "shredded {what}: its keys are destroyed; what they guarded can never be read again"
    )?;
    writeln!(out, "  receipt:     seq {}, {}", r.seq, fmt_time(r.at_ms))?;
    writeln!(
        out,
        "  scope:       {}",
        shred_scope_text(r.tenant, &r.scope)
    )?;
    writeln!(out, "  key ranges:  {}", r.key_ranges.join(", "))?;
    writeln!(out, "  chain head:  {head}")?;
    writeln!(out, "  old copies:  {}", old_copies_text(key_paths_pending))?;
    writeln!(
        out,
        "keep the chain head: `chatvault receipts verify --head {head}` detects receipts removed \
         later. `chatvault purge` removes the shredded records from disk and records it"
    )?;
    Ok(())
}

/// What a shred's key re-versioning pass means for checkpoints and backups taken before it.
pub(crate) fn old_copies_text(key_paths_pending: u64) -> String {
    if key_paths_pending == 0 {
        "keys re-versioned: checkpoints and backups taken before this shred no longer open \
         with the key file (its old root key version is retired; back up the key file again)"
            .into()
    } else {
        format!(
            "NOT re-versioned yet ({key_paths_pending} key path(s) pending): a checkpoint or \
             backup taken before this shred still opens what it destroyed. Run `chatvault \
             purge` with the key file (a root key from CHATVAULT_ROOT_KEY cannot get new \
             versions; CHATVAULT_LOG=warn shows why the pass did not run)"
        )
    }
}

pub(crate) fn print_queued(
    out: &mut impl Write,
    tenant: &str,
    what: &str,
    q: &QueuedErasure,
    head: &str,
) -> anyhow::Result<()> {
    let ids: Vec<String> = q.held_by.iter().map(|h| h.to_string()).collect();
    let release: Vec<String> = ids
        .iter()
        .map(|id| format!("`chatvault hold release {tenant} {id}`"))
        .collect();
    let (holds, when) = if ids.len() == 1 {
        (
            format!("legal hold {} covers", ids[0]),
            "that hold is".to_string(),
        )
    } else {
        (
            format!("legal holds {} cover", ids.join(", ")),
            "the last of them is".to_string(),
        )
    };
    writeln!(
        out,
        "queued the erasure of {what}: {holds} it, so nothing is destroyed yet; it is carried \
         out when {when} released ({})",
        release.join(", ")
    )?;
    writeln!(
        out,
        "  receipt:     seq {} (queued), {}",
        q.seq,
        fmt_time(q.requested_at_ms)
    )?;
    writeln!(
        out,
        "  scope:       {}",
        shred_scope_text(q.tenant, &q.scope)
    )?;
    writeln!(out, "  chain head:  {head}")?;
    Ok(())
}

pub(crate) fn shredded_json(r: &ShredReceipt, head: &str, key_paths_pending: u64) -> String {
    format!(
        r#"{{"outcome":"shredded","seq":{},"tenant":{},"scope":{},"at_ms":{},"at":{},"key_ranges":{},"queued":{},"head":{},"key_paths_pending":{},"old_copies_reversioned":{}}}"#,
        r.seq,
        r.tenant.as_u64(),
        scope_json(&r.scope),
        r.at_ms,
        json_str(&fmt_time(r.at_ms)),
        json_strs(&r.key_ranges),
        r.queued
            .map(|q| q.to_string())
            .unwrap_or_else(|| "null".into()),
        json_str(head),
        key_paths_pending,
        key_paths_pending == 0
    )
}

pub(crate) fn queued_json(q: &QueuedErasure, head: &str) -> String {
    let held: Vec<String> = q.held_by.iter().map(|h| h.to_string()).collect();
    format!(
        r#"{{"outcome":"queued","seq":{},"tenant":{},"scope":{},"at_ms":{},"at":{},"held_by":[{}],"head":{}}}"#,
        q.seq,
        q.tenant.as_u64(),
        scope_json(&q.scope),
        q.requested_at_ms,
        json_str(&fmt_time(q.requested_at_ms)),
        held.join(","),
        json_str(head)
    )
}
