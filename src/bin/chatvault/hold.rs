//! `chatvault hold add|release|list`: legal holds.

use std::io::Write;

use anyhow::bail;
use chatvault::{Actor, Error, Hold, HoldScope, TenantId, Vault};

use serde_json::{json, Value};

use crate::common::{self, fmt_time, VaultArgs};

#[derive(clap::Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold: nothing it covers expires or is deleted until it is released.
    Add(AddArgs),
    /// Release a legal hold: retention applies again at once to what it covered.
    Release(ReleaseArgs),
    /// List a tenant's legal holds.
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Tenant name.
    tenant: String,
    #[command(flatten)]
    scope: ScopeArgs,
    /// Why (matter name, ticket); kept with the hold.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Print one JSON object: the hold, as in `hold list --json`.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// Hold every message of the tenant.
    #[arg(long)]
    tenant_wide: bool,
    /// Hold every message of this conversation.
    #[arg(long, value_name = "CONVERSATION")]
    conversation: Option<String>,
    /// Hold every message this user wrote, in any conversation of the tenant (for IRC imports,
    /// the nick).
    #[arg(long, value_name = "USER")]
    custodian: Option<String>,
}

#[derive(clap::Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Tenant name.
    tenant: String,
    /// The hold's id (`chatvault hold list TENANT`).
    hold_id: u64,
    /// Print one JSON object: {"tenant", "tenant_id", "released" (the hold's id),
    /// "key_paths_pending" (0: the erasures' keys are re-versioned, copies taken before cannot
    /// open them), "carried_out": [{"seq", "scope": {"kind", ...}, "at_ms", "key_ranges"}]: the queued
    /// erasures the release carried out}.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Tenant name.
    tenant: String,
    /// Print one JSON object: {"tenant", "tenant_id", "holds": [{"id", "scope": {"kind":
    /// "tenant"|"conversation"|"custodian", "conversation", "conversation_id", "custodian",
    /// "custodian_id"}, "reason", "placed_by", "placed_by_id", "placed_at_ms"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: HoldCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        HoldCommand::Add(a) => add(&a, out),
        HoldCommand::Release(a) => release(&a, out),
        HoldCommand::List(a) => list(&a, out),
    }
}

fn add(a: &AddArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if a.reason.trim().is_empty() {
        bail!("--reason needs a text (matter name, ticket): it is kept with the hold");
    }
    let v = common::open(&a.vault, "Vault::place_hold")?;
    let t = common::tenant(&v, &a.tenant)?;
    let scope = if a.scope.tenant_wide {
        HoldScope::Tenant
    } else if let Some(c) = &a.scope.conversation {
        HoldScope::Conversation(common::conversation(&v, t, &a.tenant, c)?)
    } else if let Some(u) = &a.scope.custodian {
        HoldScope::Custodian(common::user(&v, t, &a.tenant, u)?)
    } else {
        bail!("give one of --tenant-wide, --conversation or --custodian");
    };
    let h = v.place_hold(t, Actor::operator(), scope, &a.reason)?;
    tracing::info!(tenant = %a.tenant, hold = h.id, ?scope, "legal hold placed");
    if a.json {
        return common::print_json(out, &hold_json(&v, t, &h));
    }
    writeln!(
        out,
        "placed legal hold {} on {} of tenant {}: nothing it covers expires or is deleted until \
         `chatvault hold release {} {}`",
        h.id,
        scope_text(&v, t, &h),
        a.tenant,
        a.tenant,
        h.id
    )?;
    Ok(())
}

fn release(a: &ReleaseArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&a.vault, "Vault::release_hold")?;
    let t = common::tenant(&v, &a.tenant)?;
    let carried_out = match v.release_hold_with_receipts(t, Actor::operator(), a.hold_id) {
        Ok(r) => r,
        Err(Error::NotFound { .. }) => bail!(
            "tenant {:?} has no legal hold {} (`chatvault hold list {}` lists them)",
            a.tenant,
            a.hold_id,
            a.tenant
        ),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(tenant = %a.tenant, hold = a.hold_id, carried_out = carried_out.len(), "legal hold released");
    if a.json {
        let items: Vec<Value> = carried_out
            .iter()
            .map(|r| {
                json!({
                    "seq": r.seq,
                    "queued_seq": r.queued,
                    "scope": serde_json::from_str::<Value>(&common::scope_json(&r.scope))
                        .unwrap_or(Value::Null),
                    "at_ms": r.at_ms,
                    "key_ranges": r.key_ranges,
                })
            })
            .collect();
        return common::print_json(
            out,
            &json!({
                "tenant": a.tenant,
                "tenant_id": t.as_u64(),
                "released": a.hold_id,
                "carried_out": items,
                "key_paths_pending": v.key_paths_pending()?,
            }),
        );
    }
    writeln!(
        out,
        "released legal hold {} of tenant {}: retention applies again to what it covered \
         (expired messages are hidden now; `chatvault purge` removes them from disk)",
        a.hold_id, a.tenant
    )?;
    if !carried_out.is_empty() {
        writeln!(
            out,
            "carried out {} queued under it (no other hold covers them; it cannot be undone):",
            common::count(carried_out.len() as u64, "erasure", "erasures")
        )?;
        for r in &carried_out {
            writeln!(
                out,
                "  shredded {} (receipt {}{}, key ranges {})",
                common::shred_scope_text(t, &r.scope),
                r.seq,
                r.queued
                    .map(|q| format!(", queued as receipt {q}"))
                    .unwrap_or_default(),
                r.key_ranges.join(" ")
            )?;
        }
        writeln!(
            out,
            "old copies: {}",
            crate::shred::old_copies_text(v.key_paths_pending()?)
        )?;
        writeln!(
            out,
            "run `chatvault purge` to remove the shredded records from every data file"
        )?;
    }
    Ok(())
}

fn list(a: &ListArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&a.vault, "Vault::holds")?;
    let t = common::tenant(&v, &a.tenant)?;
    let holds = v.holds(t)?;
    if a.json {
        let items: Vec<Value> = holds.iter().map(|h| hold_json(&v, t, h)).collect();
        return common::print_json(
            out,
            &json!({"tenant": a.tenant, "tenant_id": t.as_u64(), "holds": items}),
        );
    }
    if holds.is_empty() {
        writeln!(out, "no legal holds on tenant {}", a.tenant)?;
        return Ok(());
    }
    writeln!(out, "id\tplaced at\tby\tcovers\treason")?;
    for h in &holds {
        let by = match h.placed_by {
            None => "operator".to_string(),
            Some(u) => v
                .user(t, u)
                .map(|u| u.external_id)
                .unwrap_or_else(|_| format!("user {u}")),
        };
        writeln!(
            out,
            "{}\t{}\t{by}\t{}\t{}",
            h.id,
            fmt_time(h.placed_at_ms),
            scope_text(&v, t, h),
            h.reason
        )?;
    }
    Ok(())
}

fn hold_json(v: &Vault, t: TenantId, h: &Hold) -> Value {
    let scope = match h.scope {
        HoldScope::Tenant => json!({"kind": "tenant"}),
        HoldScope::Conversation(c) => json!({
            "kind": "conversation",
            "conversation": v.conversation(t, c).map(|i| i.external_id).ok(),
            "conversation_id": c.as_u64(),
        }),
        HoldScope::Custodian(u) => json!({
            "kind": "custodian",
            "custodian": v.user(t, u).map(|i| i.external_id).ok(),
            "custodian_id": u.as_u64(),
        }),
    };
    json!({
        "id": h.id,
        "scope": scope,
        "reason": h.reason,
        "placed_by": h.placed_by.map(|u| v.user(t, u).map(|i| i.external_id).ok()),
        "placed_by_id": h.placed_by.map(|u| u.as_u64()),
        "placed_at_ms": h.placed_at_ms,
    })
}

fn scope_text(v: &Vault, t: TenantId, h: &Hold) -> String {
    match h.scope {
        HoldScope::Tenant => "every message".into(),
        HoldScope::Conversation(c) => match v.conversation(t, c) {
            Ok(info) => format!("conversation {}", info.external_id),
            Err(_) => format!("conversation {c}"),
        },
        HoldScope::Custodian(u) => match v.user(t, u) {
            Ok(info) => format!("the messages of {}", info.external_id),
            Err(_) => format!("the messages of user {u}"),
        },
    }
}
