//! `chatvault purge [--dry-run]`: remove expired data from disk (`Vault::purge`).

use std::collections::HashMap;
use std::io::Write;

use chatvault::{PurgeOptions, PurgeReport, Vault};
use serde_json::json;

use crate::common::{self, count, plural, Failure, VaultArgs, EXIT_PURGE_INCOMPLETE};

#[derive(clap::Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Only count what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object: {"dry_run", "complete", "attempts", "remaining_records",
    /// "files_scanned", "expired_records", "key_paths_pending", "conversations": [{"tenant",
    /// "tenant_id", "conversation", "conversation_id", "expired_messages",
    /// "expired_revisions", "expired_index_entries", "epoch_keys_destroyed"}], "rekey": null
    /// or {"root_version", "retired_root_versions", "tenant_keks_rewrapped",
    /// "tenant_keks_reversioned", "conversation_keys_reversioned", "keys_rewrapped",
    /// "meta_resealed", "elapsed_ms"}, "old_copies_exposed", "removed_shreds"}. The exit code
    /// is the same as without it.
    #[arg(long)]
    json: bool,
}

/// Shown under `chatvault purge --help`.
pub const EXIT_CODES: &str = "Exit codes: 0 purge complete (or dry run), 1 error, 2 bad usage, \
3 purge incomplete (an expired record is still in a data file, or the root key came from \
CHATVAULT_ROOT_KEY and old copies stay exposed: see the message).";

pub fn run(args: &PurgeArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&args.vault, "Vault::purge")?;
    let r = {
        let progress = common::Progress::new("purge", args.json);
        v.purge_with_progress(
            PurgeOptions {
                dry_run: args.dry_run,
                ..PurgeOptions::default()
            },
            &|p| progress.report(p),
        )?
    };
    tracing::info!(
        dry_run = r.dry_run,
        conversations = r.conversations.len(),
        expired_records = r.expired_records(),
        complete = r.complete,
        attempts = r.attempts,
        remaining_records = r.remaining_records,
        files_scanned = r.files_scanned,
        "purge finished"
    );
    if args.json {
        print_json(&v, &r, out)?;
    } else {
        print_report(&v, &r, out)?;
    }
    if r.dry_run || r.complete {
        return Ok(());
    }
    if let Some(why) = &r.old_copies_exposed {
        return Err(Failure {
            code: EXIT_PURGE_INCOMPLETE,
            message: format!(
                "purge incomplete: the records are gone from the data files, but the keys on \
                 the path to the destroyed keys could not get new versions, so a backup or \
                 copy of the data directory taken before could still be opened with the root \
                 key: {why}. Run the purge again with the key file"
            ),
        }
        .into());
    }
    Err(Failure {
        code: EXIT_PURGE_INCOMPLETE,
        message: format!(
            "purge incomplete: {} still in the vault's data files after {}. Something holds \
             old files open: in a backend, an open iterator or snapshot of the serving process \
             pins them. Run the purge again once those are released (the expired messages are \
             already hidden from every read)",
            count(
                r.remaining_records,
                "expired record is",
                "expired records are"
            ),
            plural(u64::from(r.attempts), "compaction pass")
        ),
    }
    .into())
}

fn print_json(v: &Vault, r: &PurgeReport, out: &mut impl Write) -> anyhow::Result<()> {
    let tenants: HashMap<_, _> = v.tenants()?.into_iter().map(|t| (t.id, t.name)).collect();
    let convs: Vec<_> = r
        .conversations
        .iter()
        .map(|c| {
            json!({
                "tenant": tenants.get(&c.tenant),
                "tenant_id": c.tenant.as_u64(),
                "conversation": v.conversation(c.tenant, c.conversation).map(|i| i.external_id).ok(),
                "conversation_id": c.conversation.as_u64(),
                "expired_messages": c.expired_messages,
                "expired_revisions": c.expired_revisions,
                "expired_index_entries": c.expired_index_entries,
                "epoch_keys_destroyed": c.epoch_keys_destroyed,
            })
        })
        .collect();
    common::print_json(
        out,
        &json!({
            "dry_run": r.dry_run,
            "complete": r.complete,
            "attempts": r.attempts,
            "remaining_records": r.remaining_records,
            "files_scanned": r.files_scanned,
            "expired_records": r.expired_records(),
            "key_paths_pending": r.key_paths_pending,
            "conversations": convs,
            "rekey": r.rekey.as_ref().map(crate::key::rekey_json),
            "old_copies_exposed": r.old_copies_exposed,
            "removed_shreds": r.removed_shreds,
        }),
    )
}

fn print_report(v: &Vault, r: &PurgeReport, out: &mut impl Write) -> anyhow::Result<()> {
    let tenants: HashMap<_, _> = v.tenants()?.into_iter().map(|t| (t.id, t.name)).collect();
    let (remove, destroy) = if r.dry_run {
        ("would remove", "would destroy")
    } else {
        ("removed", "destroyed")
    };
    if r.conversations.is_empty() {
        if r.rekey.is_some() || r.key_paths_pending > 0 {
            writeln!(out, "no expired or shredded record left to remove")?;
        } else {
            writeln!(out, "nothing has expired: nothing to purge")?;
        }
    }
    for c in &r.conversations {
        let tenant = tenants
            .get(&c.tenant)
            .cloned()
            .unwrap_or_else(|| format!("tenant {}", c.tenant));
        let conv = v
            .conversation(c.tenant, c.conversation)
            .map(|i| i.external_id)
            .unwrap_or_else(|_| format!("conversation {}", c.conversation));
        writeln!(
            out,
            "{tenant}/{conv}: {remove} {}, {}, {}; {destroy} {}",
            plural(c.expired_messages, "expired or shredded message"),
            plural(c.expired_revisions, "revision"),
            count(c.expired_index_entries, "index entry", "index entries"),
            plural(c.epoch_keys_destroyed, "epoch key")
        )?;
    }
    if let Some(k) = &r.rekey {
        writeln!(
            out,
            "key paths re-versioned in {} ms: root key now version {} (retired: {}); {} and {} \
             given new versions, {} re-wrapped; backups taken before cannot open destroyed data",
            k.elapsed_ms,
            k.root_version,
            if k.retired_root_versions.is_empty() {
                "none".to_string()
            } else {
                k.retired_root_versions
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            plural(k.tenant_keks_reversioned, "tenant KEK"),
            plural(k.conversation_keys_reversioned, "conversation key"),
            plural(k.keys_rewrapped + k.tenant_keks_rewrapped, "other key"),
        )?;
    } else if r.dry_run && r.key_paths_pending > 0 {
        writeln!(
            out,
            "would give new versions to the keys on {} (so that backups taken before cannot \
             open destroyed data)",
            plural(r.key_paths_pending, "key path")
        )?;
    }
    if r.dry_run {
        writeln!(
            out,
            "dry run: nothing was changed ({} found; run without --dry-run to purge)",
            plural(r.expired_records(), "expired or shredded record")
        )?;
    } else if r.complete {
        if !r.conversations.is_empty() {
            writeln!(
                out,
                "purge complete: {} removed; none is left in the {} of the vault (checked after \
                 {})",
                plural(r.expired_records(), "expired or shredded record"),
                plural(r.files_scanned, "data file"),
                plural(u64::from(r.attempts), "compaction pass")
            )?;
        }
    } else {
        writeln!(out, "purge incomplete (see the error below)")?;
    }
    if !r.removed_shreds.is_empty() {
        let seqs: Vec<String> = r.removed_shreds.iter().map(|s| s.to_string()).collect();
        writeln!(
            out,
            "shredded data gone from every data file: removal receipts appended for shred {} \
             (`chatvault receipts show`)",
            seqs.join(", ")
        )?;
    }
    Ok(())
}
