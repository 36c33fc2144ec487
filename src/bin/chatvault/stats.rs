//! `chatvault stats`: visible messages per tenant, and storage figures.

use std::io::Write;
use std::path::Path;

use crate::common::{self, plural, VaultArgs};

pub fn run(args: &VaultArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(args, "Vault::stats / Vault::message_count")?;
    let tenants = v.tenants()?;
    let (mut total_convs, mut total_msgs) = (0u64, 0u64);
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
        writeln!(
            out,
            "tenant {:<16} {:>18} {:>16}   ({ids} message ids issued)",
            t.name,
            plural(convs, "conversation"),
            plural(msgs, "message"),
        )?;
    }
    writeln!(
        out,
        "total: {}, {}, {} (messages: visible to readers, not expired or deleted)",
        plural(tenants.len() as u64, "tenant"),
        plural(total_convs, "conversation"),
        plural(total_msgs, "message"),
    )?;
    let s = v.stats()?;
    writeln!(
        out,
        "column family      keys(est)   SST bytes   memtable bytes"
    )?;
    for c in &s.column_families {
        writeln!(
            out,
            "{:<16} {:>11} {:>11} {:>16}",
            c.name, c.estimated_keys, c.sst_bytes, c.memtable_bytes
        )?;
    }
    writeln!(out, "data directory: {} bytes", dir_size(v.path()))?;
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
