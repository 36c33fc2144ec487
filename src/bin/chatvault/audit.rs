//! `chatvault audit show|verify`: the audit trail (`Vault::audit_entries`,
//! `Vault::verify_audit`), chained and verified like the receipts.

use std::io::Write;

use chatvault::{
    AccessTarget, AuditEntry, AuditEvent, AuditOutcome, ChainHead, ExportScope, HoldScope,
    RotationStep,
};
use serde_json::{json, Value};

use crate::common::{self, count, fmt_time, scope_json, shred_scope_text, VaultArgs};

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// List every audit entry, oldest first (internal ids and field names only, never values),
    /// and the chain head.
    Show(ShowArgs),
    /// Check the audit trail: every MAC, every link, no gap; with --head, also that no entry
    /// was cut off the end since that head was printed.
    ///
    /// Prints the head to keep. Exit codes: 0 intact, 1 error, 2 bad usage, 5 the trail is
    /// broken (the first broken entry is named: edited, dropped, reordered, or cut off the end).
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// One JSON object: {"entries": [...], "head": "SEQ:HEX" or null}.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The head kept from an earlier `audit verify` (SEQ:HEX): detects entries cut off the end
    /// since then.
    #[arg(long, value_name = "SEQ:HEX", value_parser = parse_head)]
    head: Option<ChainHead>,
    /// Print one JSON object: {"intact", "entries" (verified), "head": "SEQ:HEX" or null,
    /// "broken": null or {"seq", "fault", "detail"}}, as `receipts verify --json`. The exit
    /// code is the same as without it (5 when broken).
    #[arg(long)]
    json: bool,
}

fn parse_head(s: &str) -> Result<ChainHead, String> {
    s.parse::<ChainHead>().map_err(|e| e.to_string())
}

pub fn run(cmd: AuditCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Show(a) => show(&a, out),
        AuditCommand::Verify(a) => verify(&a, out),
    }
}

fn show(a: &ShowArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&a.vault, "Vault::audit_entries")?;
    let entries = v.audit_entries()?;
    let head = v.audit_head();
    if a.json {
        let doc = json!({
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
            "head": head.map(|h| h.to_string()),
        });
        writeln!(out, "{doc}")?;
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(out, "the audit trail is empty")?;
        return Ok(());
    }
    writeln!(out, "seq\ttime\tactor\tevent\toutcome")?;
    for e in &entries {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            e.seq,
            fmt_time(e.at_ms),
            actor_text(e),
            event_text(&e.event),
            outcome_text(&e.outcome)
        )?;
    }
    if let Some(h) = head {
        writeln!(out, "head: {h}")?;
    }
    Ok(())
}

fn verify(a: &VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&a.vault, "Vault::verify_audit")?;
    let r = v.verify_audit(a.head.as_ref())?;
    if a.json {
        common::print_json(
            out,
            &json!({
                "intact": r.broken.is_none(),
                "entries": r.entries,
                "head": r.head.map(|h| h.to_string()),
                "broken": r.broken.as_ref().map(|b| json!({
                    "seq": b.seq,
                    "fault": b.fault.to_string(),
                    "detail": b.detail,
                })),
            }),
        )?;
        if let Some(b) = &r.broken {
            out.flush()?;
            return Err(common::Failure {
                code: common::EXIT_CHAIN_BROKEN,
                message: format!(
                    "audit trail broken at {b}. It was altered by someone who could write the \
                     data directory ({} verified); restore it from a backup and investigate",
                    count(r.entries, "entry", "entries")
                ),
            }
            .into());
        }
        return Ok(());
    }
    common::report_chain(
        &r,
        a.head.as_ref(),
        &common::ChainWords {
            name: "audit trail",
            altered: "It was altered by someone who could write the data directory ({} \
                      verified); restore it from a backup and investigate",
            empty: "empty",
            command: "audit",
            items: "entries",
        },
        out,
    )
}

fn actor_text(e: &AuditEntry) -> String {
    if let AuditEvent::ExtensionAccess { extension, .. } = &e.event {
        return format!("extension {extension}");
    }
    match (e.actor, e.as_admin) {
        (None, _) => "operator".into(),
        (Some(u), true) => format!("user {u} (admin)"),
        (Some(u), false) => format!("user {u}"),
    }
}

fn outcome_text(o: &AuditOutcome) -> String {
    match o {
        AuditOutcome::Done => "done".into(),
        AuditOutcome::Queued => "queued".into(),
        AuditOutcome::Failed { error } => format!("failed ({error})"),
    }
}

fn export_scope_text(s: &ExportScope) -> String {
    match s {
        ExportScope::User(u) => format!("user {u}"),
        ExportScope::Conversation(c) => format!("conversation {c}"),
        ExportScope::Tenant => "the tenant".into(),
    }
}

fn hold_scope_text(s: &HoldScope) -> String {
    match s {
        HoldScope::Tenant => "the tenant".into(),
        HoldScope::Conversation(c) => format!("conversation {c}"),
        HoldScope::Custodian(u) => format!("custodian {u}"),
    }
}

fn event_text(e: &AuditEvent) -> String {
    match e {
        AuditEvent::Export {
            tenant,
            scope,
            third_party,
            records,
        } => format!(
            "export of {} of tenant {tenant}{}: {}",
            export_scope_text(scope),
            if *third_party { " (third party)" } else { "" },
            count(*records, "record", "records")
        ),
        AuditEvent::Rectification {
            tenant,
            user,
            fields,
        } => format!(
            "rectified {} of user {user} of tenant {tenant}",
            fields.join(", ")
        ),
        AuditEvent::Restriction { tenant, user, on } => format!(
            "{} processing of user {user} of tenant {tenant}",
            if *on {
                "restricted"
            } else {
                "lifted the restriction of"
            }
        ),
        AuditEvent::Erasure {
            tenant,
            user,
            receipt,
        } => format!("erasure of user {user} of tenant {tenant} (receipt {receipt})"),
        AuditEvent::Shred {
            tenant,
            scope,
            receipt,
        } => format!(
            "shred of {} (receipt {receipt})",
            shred_scope_text(*tenant, scope)
        ),
        AuditEvent::PolicyChange {
            tenant,
            conversation,
        } => match conversation {
            Some(c) => format!("retention policy of conversation {c} of tenant {tenant}"),
            None => format!("default retention policy of tenant {tenant}"),
        },
        AuditEvent::HoldPlaced {
            tenant,
            hold,
            scope,
        } => format!(
            "legal hold {hold} placed on {} of tenant {tenant}",
            hold_scope_text(scope)
        ),
        AuditEvent::HoldReleased {
            tenant,
            hold,
            carried_out,
        } => format!(
            "legal hold {hold} of tenant {tenant} released{}",
            if carried_out.is_empty() {
                String::new()
            } else {
                format!(
                    "; queued erasures carried out: receipts {}",
                    carried_out
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
        AuditEvent::KeyRotation {
            tenant,
            conversation,
            step,
        } => {
            let scope = match conversation {
                Some(c) => format!("conversation {c} of tenant {tenant}"),
                None => format!("tenant {tenant}"),
            };
            match step {
                RotationStep::TenantKek => format!("tenant KEK of tenant {tenant} rotated"),
                RotationStep::DataKeys => format!("data keys of {scope} rotated"),
                RotationStep::OldVersionsRetired => {
                    format!("old data-key versions of {scope} retired")
                }
            }
        }
        AuditEvent::ExtensionRegistered {
            tenant,
            extension,
            scopes,
        } => format!(
            "extension {extension} registered in tenant {tenant}, asking for {}",
            scopes_text(scopes)
        ),
        AuditEvent::ExtensionRemoved {
            tenant,
            extension,
            grants_removed,
        } => format!(
            "extension {extension} removed from tenant {tenant} with {}",
            count(*grants_removed, "user's consent", "users' consents")
        ),
        AuditEvent::ExtensionConversation {
            tenant,
            extension,
            conversation,
            added,
        } => format!(
            "extension {extension} {} conversation {conversation} of tenant {tenant}",
            if *added { "added to" } else { "removed from" }
        ),
        AuditEvent::ConsentGranted {
            tenant,
            extension,
            user,
            scopes,
            expires_at_ms,
        } => format!(
            "consent of {} for extension {extension} of tenant {tenant}: {} until {}",
            consenter(*user),
            scopes_text(scopes),
            fmt_time(*expires_at_ms)
        ),
        AuditEvent::ConsentRevoked {
            tenant,
            extension,
            user,
        } => format!(
            "consent of {} for extension {extension} of tenant {tenant} revoked",
            consenter(*user)
        ),
        AuditEvent::ExtensionAccess {
            tenant,
            extension,
            scope,
            target,
            returned,
            withheld,
        } => format!(
            "extension {extension} of tenant {tenant}: {scope} of {} ({returned} handed \
             over{})",
            target_text(target),
            if *withheld > 0 {
                format!(", {withheld} withheld")
            } else {
                String::new()
            }
        ),
    }
}

fn consenter(user: Option<chatvault::UserId>) -> String {
    match user {
        Some(u) => format!("user {u}"),
        None => "the organisation".into(),
    }
}

fn scopes_text(s: &[chatvault::ConsentScope]) -> String {
    s.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

fn target_text(t: &AccessTarget) -> String {
    match t {
        AccessTarget::Conversations => "its conversations".into(),
        AccessTarget::Conversation(c) => format!("conversation {c}"),
        AccessTarget::Messages(c) => format!("messages of conversation {c}"),
        AccessTarget::Message(c, id) => format!("message {id} of conversation {c}"),
        AccessTarget::Profile(u) => format!("the profile of user {u}"),
        AccessTarget::Post(c) => format!("a post to conversation {c}"),
    }
}

fn target_json(t: &AccessTarget) -> Value {
    match t {
        AccessTarget::Conversations => json!({"kind": "conversations"}),
        AccessTarget::Conversation(c) => {
            json!({"kind": "conversation", "conversation": c.as_u64()})
        }
        AccessTarget::Messages(c) => json!({"kind": "messages", "conversation": c.as_u64()}),
        AccessTarget::Message(c, id) => {
            json!({"kind": "message", "conversation": c.as_u64(), "id": id})
        }
        AccessTarget::Profile(u) => json!({"kind": "profile", "user": u.as_u64()}),
        AccessTarget::Post(c) => json!({"kind": "post", "conversation": c.as_u64()}),
    }
}

fn scope_strs(s: &[chatvault::ConsentScope]) -> Vec<&'static str> {
    s.iter().map(|c| c.as_str()).collect()
}

fn entry_json(e: &AuditEntry) -> Value {
    let event = match &e.event {
        AuditEvent::Export {
            tenant,
            scope,
            third_party,
            records,
        } => {
            let (kind, id) = match scope {
                ExportScope::User(u) => ("user", Some(u.as_u64())),
                ExportScope::Conversation(c) => ("conversation", Some(c.as_u64())),
                ExportScope::Tenant => ("tenant", None),
            };
            json!({"event": "export", "tenant": tenant.as_u64(),
                   "scope": {"kind": kind, "id": id}, "third_party": third_party,
                   "records": records})
        }
        AuditEvent::Rectification {
            tenant,
            user,
            fields,
        } => json!({"event": "rectification", "tenant": tenant.as_u64(),
                    "user": user.as_u64(), "fields": fields}),
        AuditEvent::Restriction { tenant, user, on } => {
            json!({"event": "restriction", "tenant": tenant.as_u64(), "user": user.as_u64(),
                   "on": on})
        }
        AuditEvent::Erasure {
            tenant,
            user,
            receipt,
        } => json!({"event": "erasure", "tenant": tenant.as_u64(), "user": user.as_u64(),
                    "receipt": receipt}),
        AuditEvent::Shred {
            tenant,
            scope,
            receipt,
        } => {
            let scope: Value = serde_json::from_str(&scope_json(scope)).unwrap_or(Value::Null);
            json!({"event": "shred", "tenant": tenant.as_u64(), "scope": scope,
                   "receipt": receipt})
        }
        AuditEvent::PolicyChange {
            tenant,
            conversation,
        } => json!({"event": "policy_change", "tenant": tenant.as_u64(),
                    "conversation": conversation.map(|c| c.as_u64())}),
        AuditEvent::HoldPlaced {
            tenant,
            hold,
            scope,
        } => {
            let scope = match scope {
                HoldScope::Tenant => json!({"kind": "tenant"}),
                HoldScope::Conversation(c) => json!({"kind": "conversation", "id": c.as_u64()}),
                HoldScope::Custodian(u) => json!({"kind": "custodian", "id": u.as_u64()}),
            };
            json!({"event": "hold_placed", "tenant": tenant.as_u64(), "hold": hold,
                   "scope": scope})
        }
        AuditEvent::HoldReleased {
            tenant,
            hold,
            carried_out,
        } => json!({"event": "hold_released", "tenant": tenant.as_u64(), "hold": hold,
                    "carried_out": carried_out}),
        AuditEvent::KeyRotation {
            tenant,
            conversation,
            step,
        } => {
            let step = match step {
                RotationStep::TenantKek => "tenant_kek",
                RotationStep::DataKeys => "data_keys",
                RotationStep::OldVersionsRetired => "old_versions_retired",
            };
            json!({"event": "key_rotation", "tenant": tenant.as_u64(),
                   "conversation": conversation.map(|c| c.as_u64()), "step": step})
        }
        AuditEvent::ExtensionRegistered {
            tenant,
            extension,
            scopes,
        } => json!({"event": "extension_registered", "tenant": tenant.as_u64(),
                    "extension": extension.as_u64(), "scopes": scope_strs(scopes)}),
        AuditEvent::ExtensionRemoved {
            tenant,
            extension,
            grants_removed,
        } => json!({"event": "extension_removed", "tenant": tenant.as_u64(),
                    "extension": extension.as_u64(), "grants_removed": grants_removed}),
        AuditEvent::ExtensionConversation {
            tenant,
            extension,
            conversation,
            added,
        } => json!({"event": "extension_conversation", "tenant": tenant.as_u64(),
                    "extension": extension.as_u64(), "conversation": conversation.as_u64(),
                    "added": added}),
        AuditEvent::ConsentGranted {
            tenant,
            extension,
            user,
            scopes,
            expires_at_ms,
        } => json!({"event": "consent_granted", "tenant": tenant.as_u64(),
                    "extension": extension.as_u64(), "user": user.map(|u| u.as_u64()),
                    "scopes": scope_strs(scopes), "expires_at_ms": expires_at_ms}),
        AuditEvent::ConsentRevoked {
            tenant,
            extension,
            user,
        } => json!({"event": "consent_revoked", "tenant": tenant.as_u64(),
                    "extension": extension.as_u64(), "user": user.map(|u| u.as_u64())}),
        AuditEvent::ExtensionAccess {
            tenant,
            extension,
            scope,
            target,
            returned,
            withheld,
        } => json!({"event": "extension_access", "tenant": tenant.as_u64(),
                    "extension": extension.as_u64(), "scope": scope.as_str(),
                    "target": target_json(target), "returned": returned,
                    "withheld": withheld}),
    };
    let outcome = match &e.outcome {
        AuditOutcome::Done => json!({"status": "done"}),
        AuditOutcome::Queued => json!({"status": "queued"}),
        AuditOutcome::Failed { error } => json!({"status": "failed", "error": error}),
    };
    json!({
        "seq": e.seq,
        "at_ms": e.at_ms,
        "at": fmt_time(e.at_ms),
        "actor": e.actor.map(|u| u.as_u64()),
        "as_admin": e.as_admin,
        "what": event,
        "outcome": outcome,
        "mac": hex::encode(e.mac),
    })
}
