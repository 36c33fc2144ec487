//! `chatvault retention show|set`: tenant default policies and conversation overrides.

use std::io::Write;

use anyhow::bail;
use chatvault::{
    Actor, ConversationId, History, PolicyOverride, Retention, TenantId, TenantPolicy, Vault,
};

use serde_json::{json, Value};

use crate::common::{self, count, fmt_history, fmt_retention, fmt_time, VaultArgs};

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Show a tenant's default policy, or a conversation's override and effective policy.
    Show(ShowArgs),
    /// Change a tenant's default policy, or a conversation's override.
    ///
    /// Without CONVERSATION, sets the tenant's default (--history, --retention,
    /// --members-may-change). With CONVERSATION, sets that conversation's override (--history,
    /// --retention; `default` follows the tenant again; --delete-existing). Options not given
    /// keep their current value. A shorter retention hides older messages at once; `chatvault
    /// purge` then removes them from disk. A longer one never brings back what has expired.
    Set(SetArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Tenant name.
    tenant: String,
    /// Conversation id: show its override and effective policy too.
    conversation: Option<String>,
    /// Also list the most recent policy and hold changes (default 20).
    #[arg(
        long,
        value_name = "N",
        num_args = 0..=1,
        default_missing_value = "20",
        require_equals = true
    )]
    changes: Option<usize>,
    /// Print one JSON object: {"tenant": TENANT, "conversation": CONVERSATION or null,
    /// "changes": [{"at_ms", "by", "by_id", "as_admin", "conversation", "conversation_id",
    /// "change"}] or null (without --changes)}. TENANT is {"tenant", "tenant_id", "default":
    /// {"history": "on"|"off", "retention_ms": N or "forever"}, "members_may_change",
    /// "legal_holds"}; CONVERSATION is {"conversation", "conversation_id", "override":
    /// {"history", "retention_ms"} (null: follows the tenant), "effective": {"history",
    /// "retention_ms"}, "visible_messages", "last_message_id"}.
    #[arg(long)]
    json: bool,
}

/// A value, or (for a conversation) "follow the tenant's default".
#[derive(Clone, Copy, Debug)]
pub enum Setting<T> {
    Value(T),
    TenantDefault,
}

fn parse_history(s: &str) -> Result<Setting<History>, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" => Ok(Setting::Value(History::On)),
        "off" => Ok(Setting::Value(History::Off)),
        "default" => Ok(Setting::TenantDefault),
        _ => Err(format!("{s:?}: expected on, off or default")),
    }
}

fn parse_retention_setting(s: &str) -> Result<Setting<Retention>, String> {
    if s.eq_ignore_ascii_case("default") {
        return Ok(Setting::TenantDefault);
    }
    common::parse_retention(s).map(Setting::Value)
}

#[derive(clap::Args)]
pub struct SetArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Tenant name.
    tenant: String,
    /// Conversation id: set its override instead of the tenant's default.
    conversation: Option<String>,
    /// Store new messages (on) or not (off); `default`: follow the tenant (conversations only).
    #[arg(long, value_name = "on|off|default", value_parser = parse_history)]
    history: Option<Setting<History>>,
    /// How long messages are kept after they were sent: a duration (90d, 12h, 30m, 1w), a
    /// number of milliseconds, `forever`, or `default` (conversations only). At least a minute.
    #[arg(long, value_name = "DURATION|forever|default", value_parser = parse_retention_setting)]
    retention: Option<Setting<Retention>>,
    /// Whether members may change their conversations' policies (tenant only); else only
    /// admins may.
    #[arg(long, value_name = "true|false")]
    members_may_change: Option<bool>,
    /// Make every message already in the conversation expire now (conversations only; refused
    /// under a legal hold). Without it, turning history off deletes nothing.
    #[arg(long)]
    delete_existing: bool,
    /// Print one JSON object: {"updated": "tenant"|"conversation", "tenant": TENANT,
    /// "conversation": CONVERSATION or null, "newly_expired": N} (TENANT and CONVERSATION as
    /// in `retention show --json`).
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: RetentionCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        RetentionCommand::Show(a) => show(&a, out),
        RetentionCommand::Set(a) => set(&a, out),
    }
}

fn show(a: &ShowArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(
        &a.vault,
        "Vault::tenant_policy / Vault::conversation_policy / Vault::policy_changes",
    )?;
    let t = common::tenant(&v, &a.tenant)?;
    if a.json {
        let conv = match &a.conversation {
            Some(name) => Some((common::conversation(&v, t, &a.tenant, name)?, name)),
            None => None,
        };
        let conv_json = match conv {
            Some((c, name)) => conversation_json(&v, t, c, name)?,
            None => Value::Null,
        };
        let changes = match a.changes {
            Some(n) => changes_json(&v, t, conv.map(|(c, _)| c), n)?,
            None => Value::Null,
        };
        return common::print_json(
            out,
            &json!({
                "tenant": tenant_json(&v, t, &a.tenant)?,
                "conversation": conv_json,
                "changes": changes,
            }),
        );
    }
    print_tenant(&v, t, &a.tenant, out)?;
    let conv = match &a.conversation {
        Some(name) => {
            let c = common::conversation(&v, t, &a.tenant, name)?;
            print_conversation(&v, t, c, name, out)?;
            Some(c)
        }
        None => None,
    };
    if let Some(n) = a.changes {
        print_changes(&v, t, conv, n, out)?;
    }
    Ok(())
}

fn retention_json(r: Retention) -> Value {
    match r {
        Retention::Forever => json!("forever"),
        Retention::Period { ms } => json!(ms),
    }
}

fn tenant_json(v: &Vault, t: TenantId, name: &str) -> anyhow::Result<Value> {
    let p = v.tenant_policy(t)?;
    Ok(json!({
        "tenant": name,
        "tenant_id": t.as_u64(),
        "default": {
            "history": fmt_history(p.default.history),
            "retention_ms": retention_json(p.default.retention),
        },
        "members_may_change": p.members_may_change,
        "legal_holds": v.holds(t)?.len(),
    }))
}

fn conversation_json(
    v: &Vault,
    t: TenantId,
    c: ConversationId,
    name: &str,
) -> anyhow::Result<Value> {
    let (o, eff) = v.conversation_policy(t, c)?;
    let over = if o.history.is_none() && o.retention.is_none() {
        Value::Null
    } else {
        json!({
            "history": o.history.map(fmt_history),
            "retention_ms": o.retention.map(retention_json),
        })
    };
    Ok(json!({
        "conversation": name,
        "conversation_id": c.as_u64(),
        "override": over,
        "effective": {
            "history": fmt_history(eff.history),
            "retention_ms": retention_json(eff.retention),
        },
        "visible_messages": v.message_count(t, c)?,
        "last_message_id": v.last_message_id(t, c)?,
    }))
}

fn changes_json(
    v: &Vault,
    t: TenantId,
    conv: Option<ConversationId>,
    n: usize,
) -> anyhow::Result<Value> {
    let all: Vec<_> = v
        .policy_changes(t)?
        .into_iter()
        .filter(|ch| conv.is_none() || ch.conversation.is_none() || ch.conversation == conv)
        .collect();
    let skip = all.len().saturating_sub(n);
    let items: Vec<Value> = all[skip..]
        .iter()
        .map(|ch| {
            json!({
                "at_ms": ch.at_ms,
                "by": ch.by.map(|u| v.user(t, u).map(|u| u.external_id).ok()),
                "by_id": ch.by.map(|u| u.as_u64()),
                "as_admin": ch.as_admin,
                "conversation": ch.conversation.map(|c| v.conversation(t, c).map(|i| i.external_id).ok()),
                "conversation_id": ch.conversation.map(|c| c.as_u64()),
                "change": ch.change.clone(),
            })
        })
        .collect();
    Ok(Value::Array(items))
}

fn print_tenant(v: &Vault, t: TenantId, name: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let p = v.tenant_policy(t)?;
    let holds = v.holds(t)?.len() as u64;
    writeln!(out, "tenant {name}")?;
    writeln!(
        out,
        "  default policy:      history {}, retention {}",
        fmt_history(p.default.history),
        fmt_retention(p.default.retention)
    )?;
    writeln!(
        out,
        "  members may change:  {}",
        if p.members_may_change {
            "yes (members may change their conversations' policies)"
        } else {
            "no (only admins change conversation policies)"
        }
    )?;
    writeln!(
        out,
        "  legal holds:         {}{}",
        holds,
        if holds > 0 {
            format!(" (`chatvault hold list {name}`)")
        } else {
            String::new()
        }
    )?;
    Ok(())
}

fn print_conversation(
    v: &Vault,
    t: TenantId,
    c: ConversationId,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (o, eff) = v.conversation_policy(t, c)?;
    let or_default = |s: Option<String>| s.unwrap_or_else(|| "(tenant default)".into());
    writeln!(out, "conversation {name}")?;
    writeln!(
        out,
        "  override:            history {}, retention {}",
        or_default(o.history.map(|h| fmt_history(h).to_string())),
        or_default(o.retention.map(fmt_retention))
    )?;
    writeln!(
        out,
        "  effective policy:    history {}, retention {}",
        fmt_history(eff.history),
        fmt_retention(eff.retention)
    )?;
    writeln!(
        out,
        "  messages:            {} visible (last message id {})",
        v.message_count(t, c)?,
        v.last_message_id(t, c)?
    )?;
    Ok(())
}

fn print_changes(
    v: &Vault,
    t: TenantId,
    conv: Option<ConversationId>,
    n: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let all: Vec<_> = v
        .policy_changes(t)?
        .into_iter()
        .filter(|ch| conv.is_none() || ch.conversation.is_none() || ch.conversation == conv)
        .collect();
    let skip = all.len().saturating_sub(n);
    if all.is_empty() {
        writeln!(out, "policy changes: none")?;
        return Ok(());
    }
    writeln!(
        out,
        "policy changes ({} of {}, oldest first):",
        all.len() - skip,
        all.len()
    )?;
    for ch in &all[skip..] {
        let who = match ch.by {
            None => "operator".to_string(),
            Some(u) => {
                let name = v
                    .user(t, u)
                    .map(|u| u.external_id)
                    .unwrap_or_else(|_| format!("user {u}"));
                if ch.as_admin {
                    format!("{name} (admin)")
                } else {
                    name
                }
            }
        };
        let place = match ch.conversation {
            None => String::new(),
            Some(c) => match v.conversation(t, c) {
                Ok(info) => format!("{}: ", info.external_id),
                Err(_) => format!("conversation {c}: "),
            },
        };
        writeln!(out, "  {}  {who}  {place}{}", fmt_time(ch.at_ms), ch.change)?;
    }
    Ok(())
}

fn set(a: &SetArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if a.history.is_none()
        && a.retention.is_none()
        && a.members_may_change.is_none()
        && !a.delete_existing
    {
        bail!(
            "nothing to change: give --history, --retention{} (`chatvault retention set --help`)",
            if a.conversation.is_some() {
                " or --delete-existing"
            } else {
                " or --members-may-change"
            }
        );
    }
    match &a.conversation {
        None => {
            if a.delete_existing {
                bail!(
                    "--delete-existing applies to one conversation: `chatvault retention set \
                     {} CONVERSATION --delete-existing`",
                    a.tenant
                );
            }
            let v = common::open(&a.vault, "Vault::set_tenant_policy")?;
            let t = common::tenant(&v, &a.tenant)?;
            let mut p: TenantPolicy = v.tenant_policy(t)?;
            match a.history {
                Some(Setting::Value(h)) => p.default.history = h,
                Some(Setting::TenantDefault) => bail!(
                    "--history default applies to a conversation (it follows the tenant's); \
                     for the tenant, give on or off"
                ),
                None => {}
            }
            match a.retention {
                Some(Setting::Value(r)) => p.default.retention = r,
                Some(Setting::TenantDefault) => bail!(
                    "--retention default applies to a conversation (it follows the tenant's); \
                     for the tenant, give a duration or forever"
                ),
                None => {}
            }
            if let Some(m) = a.members_may_change {
                p.members_may_change = m;
            }
            let before = visible(&v, t)?;
            v.set_tenant_policy(t, Actor::operator(), p)?;
            tracing::info!(tenant = %a.tenant, ?p, "tenant policy set");
            let after = visible(&v, t)?;
            if a.json {
                return common::print_json(
                    out,
                    &json!({
                        "updated": "tenant",
                        "tenant": tenant_json(&v, t, &a.tenant)?,
                        "conversation": null,
                        "newly_expired": before.saturating_sub(after),
                    }),
                );
            }
            writeln!(out, "updated the default policy of tenant {}", a.tenant)?;
            print_tenant(&v, t, &a.tenant, out)?;
            hidden_note(before, after, out)?;
        }
        Some(name) => {
            if a.members_may_change.is_some() {
                bail!(
                    "--members-may-change is a tenant setting: `chatvault retention set {} \
                     --members-may-change true|false`",
                    a.tenant
                );
            }
            let v = common::open(&a.vault, "Vault::set_conversation_policy")?;
            let t = common::tenant(&v, &a.tenant)?;
            let c = common::conversation(&v, t, &a.tenant, name)?;
            let (mut o, _): (PolicyOverride, _) = v.conversation_policy(t, c)?;
            match a.history {
                Some(Setting::Value(h)) => o.history = Some(h),
                Some(Setting::TenantDefault) => o.history = None,
                None => {}
            }
            match a.retention {
                Some(Setting::Value(r)) => o.retention = Some(r),
                Some(Setting::TenantDefault) => o.retention = None,
                None => {}
            }
            let before = v.message_count(t, c)?;
            v.set_conversation_policy(t, c, Actor::operator(), o, a.delete_existing)
                .map_err(|e| match e {
                    chatvault::Error::LegalHold { .. } => anyhow::anyhow!(
                        "a legal hold covers conversation {name:?} of tenant {:?}, so its \
                         messages cannot be deleted; nothing was changed. Release the hold \
                         first (`chatvault hold list {}`)",
                        a.tenant,
                        a.tenant
                    ),
                    e => e.into(),
                })?;
            tracing::info!(tenant = %a.tenant, conversation = %name, ?o, delete_existing = a.delete_existing, "conversation policy set");
            let after = v.message_count(t, c)?;
            if a.json {
                return common::print_json(
                    out,
                    &json!({
                        "updated": "conversation",
                        "tenant": tenant_json(&v, t, &a.tenant)?,
                        "conversation": conversation_json(&v, t, c, name)?,
                        "newly_expired": before.saturating_sub(after),
                    }),
                );
            }
            writeln!(
                out,
                "updated the policy of conversation {name} of tenant {}",
                a.tenant
            )?;
            print_conversation(&v, t, c, name, out)?;
            hidden_note(before, after, out)?;
        }
    }
    Ok(())
}

/// Visible messages in all of a tenant's conversations.
fn visible(v: &Vault, t: TenantId) -> anyhow::Result<u64> {
    let mut n = 0;
    for c in v.conversations(t)? {
        n += v.message_count(t, c?.id)?;
    }
    Ok(n)
}

fn hidden_note(before: u64, after: u64, out: &mut impl Write) -> anyhow::Result<()> {
    if after < before {
        writeln!(
            out,
            "{} now expired: hidden from every read at once, removed from disk by `chatvault \
             purge`",
            count(before - after, "message is", "messages are")
        )?;
    }
    Ok(())
}
