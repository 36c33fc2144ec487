//! `chatvault ls [TENANT]`: tenants, or a tenant's conversations with their message counts.

use std::io::Write;

use serde_json::{json, Value};

use crate::common::{self, plural, ReadVaultArgs};

#[derive(clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    vault: ReadVaultArgs,
    /// Tenant name: list its conversations, each with the number of messages a reader can see
    /// (not expired, not deleted) and its last message id.
    tenant: Option<String>,
    /// Print one JSON object. Without TENANT: {"tenants": [{"tenant", "tenant_id",
    /// "conversations"}]}; with it: {"tenant", "tenant_id", "conversations":
    /// [{"conversation", "conversation_id", "title" (null if none), "visible_messages",
    /// "last_message_id"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &LsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open_read(&args.vault, "Vault::tenants / Vault::conversations")?;
    match &args.tenant {
        None => {
            let mut items = Vec::new();
            for t in v.tenants()? {
                let n = v.conversations(t.id)?.count() as u64;
                if args.json {
                    items.push(json!({
                        "tenant": t.name,
                        "tenant_id": t.id.as_u64(),
                        "conversations": n,
                    }));
                } else {
                    writeln!(out, "{}\t{}", t.name, plural(n, "conversation"))?;
                }
            }
            if args.json {
                common::print_json(out, &json!({ "tenants": items }))?;
            }
        }
        Some(name) => {
            let t = common::tenant(&v, name)?;
            let mut items: Vec<Value> = Vec::new();
            let mut listed = 0u64;
            for c in v.conversations(t)? {
                let c = c?;
                listed += 1;
                let visible = v.message_count(t, c.id)?;
                let last = v.last_message_id(t, c.id)?;
                if args.json {
                    items.push(json!({
                        "conversation": c.external_id,
                        "conversation_id": c.id.as_u64(),
                        "title": c.title,
                        "visible_messages": visible,
                        "last_message_id": last,
                    }));
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t(last message id {last}){}",
                        c.external_id,
                        plural(visible, "message"),
                        c.title
                            .as_deref()
                            .map(|t| format!("\t{t}"))
                            .unwrap_or_default(),
                    )?;
                }
            }
            if listed == 0 && !args.json {
                writeln!(
                    out,
                    "tenant {name} has no conversations (none yet, or all shredded: `chatvault \
                     receipts show`)"
                )?;
            }
            if args.json {
                common::print_json(
                    out,
                    &json!({
                        "tenant": name,
                        "tenant_id": t.as_u64(),
                        "conversations": items,
                    }),
                )?;
            }
        }
    }
    Ok(())
}
