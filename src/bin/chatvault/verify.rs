//! `chatvault verify`: open and authenticate every key and record (`Vault::verify`).

use std::collections::BTreeMap;
use std::io::Write;

use crate::common::{self, plural, Failure, VaultArgs, EXIT_VERIFY_FAILED};

pub fn run(args: &VaultArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(args, "Vault::verify")?;
    let r = v.verify()?;
    // Names where they can still be read (a shredded tenant's cannot).
    let names: BTreeMap<_, _> = v.tenants()?.into_iter().map(|t| (t.id, t.name)).collect();
    let mut per_tenant: BTreeMap<_, chatvault::ConversationCheck> = BTreeMap::new();
    for ((t, c), n) in &r.conversations {
        let tenant = names
            .get(t)
            .cloned()
            .unwrap_or_else(|| format!("tenant {t}"));
        let conv = v
            .conversation(*t, *c)
            .map(|i| i.external_id)
            .unwrap_or_else(|_| format!("conversation {c}"));
        writeln!(out, "{tenant}/{conv}: {}", counts(n))?;
        let s = per_tenant.entry(*t).or_default();
        s.ok += n.ok;
        s.expired_awaiting_purge += n.expired_awaiting_purge;
        s.shredded_awaiting_purge += n.shredded_awaiting_purge;
        s.failed += n.failed;
    }
    for (t, n) in &per_tenant {
        let tenant = names
            .get(t)
            .cloned()
            .unwrap_or_else(|| format!("tenant {t}"));
        writeln!(out, "tenant {tenant}: {}", counts(n))?;
    }
    writeln!(
        out,
        "{} authenticated, {} opened ({} of shredded scopes), {} agree with their records",
        plural(r.keys_ok, "wrapped key"),
        plural(r.meta_ok, "metadata record"),
        r.meta_shredded,
        plural(r.index_ok, "time-index entry"),
    )?;
    for f in &r.failures {
        writeln!(out, "FAILED {}: {}", f.what, f.error)?;
    }
    if r.is_ok() {
        writeln!(out, "verify: everything authenticated")?;
        return Ok(());
    }
    out.flush()?;
    Err(Failure {
        code: EXIT_VERIFY_FAILED,
        message: format!(
            "verify failed: {} (listed above, ids only). Restore the affected data from a \
             backup, or shred the scope; nothing was changed",
            plural(r.failures.len() as u64, "failure")
        ),
    }
    .into())
}

fn counts(n: &chatvault::ConversationCheck) -> String {
    format!(
        "{} ok, {} expired awaiting purge, {} shredded awaiting purge, {} failed",
        n.ok, n.expired_awaiting_purge, n.shredded_awaiting_purge, n.failed
    )
}
