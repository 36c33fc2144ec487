//! `chatvault verify`: open and authenticate every key and record (`Vault::verify`).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use crate::common::{self, count, plural, Failure, ReadVaultArgs, EXIT_VERIFY_FAILED};

/// Shown under `chatvault verify --help`.
pub const EXIT_CODES: &str = "Exit codes: 0 everything authenticated, 1 error (cannot open the \
vault, ...), 2 bad usage, 5 verification failed (the failures are listed; with --json in the \
object's \"failures\").";

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    vault: ReadVaultArgs,
    /// Print one JSON object: {"ok", "keys_ok", "meta_ok", "meta_shredded", "index_ok",
    /// "conversations": [{"tenant", "tenant_id", "conversation", "conversation_id", "ok",
    /// "expired_awaiting_purge", "shredded_awaiting_purge", "failed"}], "tenants": [...same
    /// counts per tenant...], "failures": [{"what", "error"}], "secondary"}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open_read(&args.vault, "Vault::verify")?;
    let r = {
        let progress = common::Progress::new("verify", args.json);
        v.verify_with_progress(&|p| progress.report(p))?
    };
    // Names where they can still be read (a shredded tenant's cannot).
    let names: BTreeMap<_, _> = v.tenants()?.into_iter().map(|t| (t.id, t.name)).collect();
    let mut per_tenant: BTreeMap<_, chatvault::ConversationCheck> = BTreeMap::new();
    let mut convs_json = Vec::new();
    for ((t, c), n) in &r.conversations {
        let conv_name = v.conversation(*t, *c).map(|i| i.external_id).ok();
        if args.json {
            convs_json.push(json!({
                "tenant": names.get(t),
                "tenant_id": t.as_u64(),
                "conversation": conv_name,
                "conversation_id": c.as_u64(),
                "ok": n.ok,
                "expired_awaiting_purge": n.expired_awaiting_purge,
                "shredded_awaiting_purge": n.shredded_awaiting_purge,
                "failed": n.failed,
            }));
        } else {
            let tenant = names
                .get(t)
                .cloned()
                .unwrap_or_else(|| format!("tenant {t}"));
            let conv = conv_name.unwrap_or_else(|| format!("conversation {c}"));
            writeln!(out, "{tenant}/{conv}: {}", counts(n))?;
        }
        let s = per_tenant.entry(*t).or_default();
        s.ok += n.ok;
        s.expired_awaiting_purge += n.expired_awaiting_purge;
        s.shredded_awaiting_purge += n.shredded_awaiting_purge;
        s.failed += n.failed;
    }
    if args.json {
        let tenants: Vec<_> = per_tenant
            .iter()
            .map(|(t, n)| {
                json!({
                    "tenant": names.get(t),
                    "tenant_id": t.as_u64(),
                    "ok": n.ok,
                    "expired_awaiting_purge": n.expired_awaiting_purge,
                    "shredded_awaiting_purge": n.shredded_awaiting_purge,
                    "failed": n.failed,
                })
            })
            .collect();
        let failures: Vec<_> = r
            .failures
            .iter()
            .map(|f| json!({"what": f.what, "error": f.error}))
            .collect();
        common::print_json(
            out,
            &json!({
                "ok": r.is_ok(),
                "keys_ok": r.keys_ok,
                "meta_ok": r.meta_ok,
                "meta_shredded": r.meta_shredded,
                "index_ok": r.index_ok,
                "conversations": convs_json,
                "tenants": tenants,
                "failures": failures,
                "secondary": v.is_secondary(),
            }),
        )?;
    } else {
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
            count(r.index_ok, "time-index entry", "time-index entries"),
        )?;
        for f in &r.failures {
            writeln!(out, "FAILED {}: {}", f.what, f.error)?;
        }
        if r.is_ok() {
            writeln!(out, "verify: everything authenticated")?;
        }
    }
    if r.is_ok() {
        return Ok(());
    }
    out.flush()?;
    Err(Failure {
        code: EXIT_VERIFY_FAILED,
        message: format!(
            "verify failed: {} (listed {}, ids only). Restore the affected data from a \
             backup, or shred the scope; nothing was changed",
            plural(r.failures.len() as u64, "failure"),
            if args.json {
                "in the JSON output"
            } else {
                "above"
            }
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
