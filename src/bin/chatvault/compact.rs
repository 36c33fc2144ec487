//! `chatvault compact`: flush and compact everything.

use std::io::Write;
use std::time::Instant;

use crate::common::{self, VaultArgs};

pub fn run(args: &VaultArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(args, "Vault::compact")?;
    let start = Instant::now();
    v.compact()?;
    tracing::info!(secs = start.elapsed().as_secs_f64(), "compacted");
    writeln!(out, "compacted in {:.1} s", start.elapsed().as_secs_f64())?;
    Ok(())
}
