//! `chatvault compact [--tenant T [--conversation C]]`: flush and compact everything, or one
//! tenant's or conversation's key ranges (`Vault::compact`, `Vault::compact_scope`).

use std::io::Write;
use std::time::Instant;

use crate::common::{self, VaultArgs};

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
}

pub fn run(args: &CompactArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let call = if args.tenant.is_some() {
        "Vault::compact_scope"
    } else {
        "Vault::compact"
    };
    let v = common::open(&args.vault, call)?;
    let start = Instant::now();
    match &args.tenant {
        None => {
            v.compact()?;
            tracing::info!(secs = start.elapsed().as_secs_f64(), "compacted");
            writeln!(out, "compacted in {:.1} s", start.elapsed().as_secs_f64())?;
        }
        Some(tn) => {
            let t = common::tenant(&v, tn)?;
            let c = match &args.conversation {
                Some(cn) => Some(common::conversation(&v, t, tn, cn)?),
                None => None,
            };
            let r = v.compact_scope(t, c)?;
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
