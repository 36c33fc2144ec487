//! `chatvault stats`: visible messages per tenant, keys per state, records sealed under the
//! current key versions, and storage figures per column family (`Vault::stats`,
//! `Vault::key_stats`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::common::{self, plural, ReadVaultArgs};

/// Shown under `chatvault stats --help`.
pub const EXIT_CODES: &str = "Exit codes: 0 done, 1 error, 2 bad usage.";

#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    vault: ReadVaultArgs,
    /// Print one JSON object: {"tenants": [{"tenant", "tenant_id", "conversations",
    /// "messages", "message_ids_issued", "records", "records_current",
    /// "records_older_versions", "records_key_destroyed", "current_fraction"}], "total":
    /// {"tenants", "conversations", "messages"}, "keys": {"tenant_keks", "conversation_keys",
    /// "epoch_keys", "user_keys", "directory_keys", "shred_tombstones",
    /// "key_paths_pending_reversioning", "queued_erasures", "data_key_rotations_pending",
    /// "root_key_version", "tenant_keks_under_old_root"}, "column_families": [{"name", "estimated_keys",
    /// "sst_bytes", "live_data_bytes", "dead_bytes", "memtable_bytes"}], "data_dir_bytes",
    /// "cached_keys", "secondary", "format_version"}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &StatsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open_read(&args.vault, "Vault::stats / Vault::key_stats")?;
    let tenants = v.tenants()?;
    let ks = v.key_stats()?;
    let names: BTreeMap<_, _> = tenants.iter().map(|t| (t.id, t.name.clone())).collect();
    let (mut total_convs, mut total_msgs) = (0u64, 0u64);
    let mut tenants_json = Vec::new();
    for t in &tenants {
        let (mut convs, mut msgs, mut ids) = (0u64, 0u64, 0u64);
        for c in v.conversations(t.id)? {
            let c = c?;
            convs += 1;
            msgs += v.message_count(t.id, c.id)?;
            ids += v.last_message_id(t.id, c.id)?;
        }
        total_convs += convs;
        total_msgs += msgs;
        let k = ks.tenants.get(&t.id).cloned().unwrap_or_default();
        if args.json {
            tenants_json.push(json!({
                "tenant": t.name,
                "tenant_id": t.id.as_u64(),
                "conversations": convs,
                "messages": msgs,
                "message_ids_issued": ids,
                "records": k.records,
                "records_current": k.current,
                "records_older_versions": k.older_versions,
                "records_key_destroyed": k.key_destroyed,
                "current_fraction": k.current_fraction(),
            }));
        } else {
            writeln!(
                out,
                "tenant {:<16} {:>18} {:>16}   ({ids} message ids issued in them)",
                t.name,
                plural(convs, "conversation"),
                plural(msgs, "message"),
            )?;
        }
    }
    // Tenants without a name to show (shredded), with records still on disk.
    for (t, k) in &ks.tenants {
        if names.contains_key(t) || k.records == 0 {
            continue;
        }
        if args.json {
            tenants_json.push(json!({
                "tenant": null,
                "tenant_id": t.as_u64(),
                "conversations": 0,
                "messages": 0,
                "message_ids_issued": 0,
                "records": k.records,
                "records_current": k.current,
                "records_older_versions": k.older_versions,
                "records_key_destroyed": k.key_destroyed,
                "current_fraction": k.current_fraction(),
            }));
        }
    }
    let s = v.stats()?;
    let data_bytes = dir_size(v.path());
    if args.json {
        let cfs: Vec<_> = s
            .column_families
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "estimated_keys": c.estimated_keys,
                    "sst_bytes": c.sst_bytes,
                    "live_data_bytes": c.live_data_bytes,
                    "dead_bytes": c.dead_bytes(),
                    "memtable_bytes": c.memtable_bytes,
                })
            })
            .collect();
        return common::print_json(
            out,
            &json!({
                "tenants": tenants_json,
                "total": {
                    "tenants": tenants.len(),
                    "conversations": total_convs,
                    "messages": total_msgs,
                },
                "keys": {
                    "tenant_keks": ks.tenant_keks,
                    "conversation_keys": ks.conversation_keys,
                    "epoch_keys": ks.epoch_keys,
                    "user_keys": ks.user_keys,
                    "directory_keys": ks.directory_keys,
                    "shred_tombstones": ks.shred_tombstones,
                    "key_paths_pending_reversioning": ks.key_paths_pending_reversioning,
                    "queued_erasures": ks.queued_erasures,
                    "data_key_rotations_pending": ks.data_key_rotations_pending,
                    "root_key_version": ks.root_key_version,
                    "tenant_keks_under_old_root": ks.tenant_keks_under_old_root,
                },
                "column_families": cfs,
                "data_dir_bytes": data_bytes,
                "cached_keys": s.cached_keys,
                "secondary": v.is_secondary(),
                "format_version": v.format_version()?,
            }),
        );
    }
    writeln!(
        out,
        "total: {}, {}, {} (messages: visible to readers, not expired or deleted)",
        plural(tenants.len() as u64, "tenant"),
        plural(total_convs, "conversation"),
        plural(total_msgs, "message"),
    )?;
    writeln!(
        out,
        "keys: {}, {}, {}, {}, {} (live wrapped keys, every version); root key version {} \
         ({} under an older one)",
        plural(ks.tenant_keks, "tenant KEK"),
        plural(ks.conversation_keys, "conversation key"),
        plural(ks.epoch_keys, "epoch key"),
        plural(ks.user_keys, "user key"),
        plural(ks.directory_keys, "directory key"),
        ks.root_key_version,
        plural(ks.tenant_keks_under_old_root, "tenant KEK"),
    )?;
    writeln!(
        out,
        "shreds: {}, {} pending re-versioning{}, {}",
        plural(ks.shred_tombstones, "tombstone"),
        plural(ks.key_paths_pending_reversioning, "key path"),
        if ks.key_paths_pending_reversioning > 0 {
            " (copies taken before those shreds still open them: `chatvault purge` with the \
             key file)"
        } else {
            ""
        },
        plural(ks.queued_erasures, "queued erasure"),
    )?;
    if ks.data_key_rotations_pending > 0 {
        writeln!(
            out,
            "data-key rotations awaiting re-seal and retirement: {} (`chatvault key reseal`)",
            ks.data_key_rotations_pending
        )?;
    }
    for (t, k) in &ks.tenants {
        let name = names
            .get(t)
            .cloned()
            .unwrap_or_else(|| format!("{t} (shredded)"));
        writeln!(
            out,
            "key versions {name}: {} of {} readable records sealed under the current key \
             versions ({:.1}%), {} under older versions; {} more with destroyed keys, awaiting \
             purge",
            k.current,
            k.current + k.older_versions,
            100.0 * k.current_fraction(),
            k.older_versions,
            k.key_destroyed,
        )?;
    }
    writeln!(
        out,
        "column family      keys(est)    SST bytes   live(est)   dead(est)  memtable bytes"
    )?;
    for c in &s.column_families {
        writeln!(
            out,
            "{:<16} {:>11} {:>12} {:>11} {:>11} {:>15}",
            c.name,
            c.estimated_keys,
            c.sst_bytes,
            c.live_data_bytes,
            c.dead_bytes(),
            c.memtable_bytes
        )?;
    }
    writeln!(out, "data directory: {data_bytes} bytes")?;
    writeln!(out, "vault format version: {}", v.format_version()?)?;
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}
