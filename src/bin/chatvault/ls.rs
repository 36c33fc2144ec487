//! `chatvault ls [TENANT]`: tenants, or a tenant's conversations with their message counts.

use std::io::Write;

use crate::common::{self, plural, ReadVaultArgs};

#[derive(clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    vault: ReadVaultArgs,
    /// Tenant name: list its conversations, each with the number of messages a reader can see
    /// (not expired, not deleted) and its last message id.
    tenant: Option<String>,
}

pub fn run(args: &LsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open_read(&args.vault, "Vault::tenants / Vault::conversations")?;
    match &args.tenant {
        None => {
            for t in v.tenants()? {
                let n = v.conversations(t.id)?.count() as u64;
                writeln!(out, "{}\t{}", t.name, plural(n, "conversation"))?;
            }
        }
        Some(name) => {
            let t = common::tenant(&v, name)?;
            for c in v.conversations(t)? {
                let c = c?;
                let visible = v.message_count(t, c.id)?;
                let last = v.last_message_id(t, c.id)?;
                writeln!(
                    out,
                    "{}\t{}\t(last message id {last})",
                    c.external_id,
                    plural(visible, "message"),
                )?;
            }
        }
    }
    Ok(())
}
