//! `chatvault compact [--tenant T [--conversation C]]`: flush and compact everything, or one
//! tenant's or conversation's key ranges (`Vault::compact`, `Vault::compact_scope`).

use std::io::Write;
use std::time::Instant;

use serde_json::json;

use crate::common::{self, VaultArgs};

/// Shown under `chatvault compact --help`.
pub const EXIT_CODES: &str = "Exit codes: 0 done, 1 error (vault held by another process, no \
such tenant or conversation, ...), 2 bad usage.";

#[derive(clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Compact only this tenant's key ranges (every column family).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// With --tenant: only this conversation's key ranges.
    #[arg(long, value_name = "CONVERSATION", requires = "tenant")]
    conversation: Option<String>,
    /// Print one JSON object: {"scope": "vault" | "tenant" | "conversation", "tenant",
    /// "conversation" (names, or null), "key_ranges" (null for the whole vault),
    /// "elapsed_ms"}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &CompactArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let call = if args.tenant.is_some() {
        "Vault::compact_scope"
    } else {
        "Vault::compact"
    };
    let v = common::open(&args.vault, call)?;
    let start = Instant::now();
    let progress = common::Progress::new("compact", args.json);
    match &args.tenant {
        None => {
            v.compact_with_progress(&|p| progress.report(p))?;
            drop(progress);
            tracing::info!(secs = start.elapsed().as_secs_f64(), "compacted");
            if args.json {
                return common::print_json(
                    out,
                    &json!({
                        "scope": "vault",
                        "tenant": null,
                        "conversation": null,
                        "key_ranges": null,
                        "elapsed_ms": start.elapsed().as_millis() as u64,
                    }),
                );
            }
            writeln!(out, "compacted in {:.1} s", start.elapsed().as_secs_f64())?;
        }
        Some(tn) => {
            let t = common::tenant(&v, tn)?;
            let c = match &args.conversation {
                Some(cn) => Some(common::conversation(&v, t, tn, cn)?),
                None => None,
            };
            progress.step("compacting the scope's key ranges");
            let r = v.compact_scope(t, c)?;
            drop(progress);
            if args.json {
                return common::print_json(
                    out,
                    &json!({
                        "scope": if c.is_some() { "conversation" } else { "tenant" },
                        "tenant": tn,
                        "conversation": args.conversation,
                        "key_ranges": r.ranges,
                        "elapsed_ms": start.elapsed().as_millis() as u64,
                    }),
                );
            }
            let what = match &args.conversation {
                Some(cn) => format!("conversation {cn} of tenant {tn}"),
                None => format!("tenant {tn}"),
            };
            writeln!(
                out,
                "compacted {what} ({} key ranges, down to the bottommost level) in {:.1} s",
                r.ranges,
                start.elapsed().as_secs_f64()
            )?;
        }
    }
    Ok(())
}
