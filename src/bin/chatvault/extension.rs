//! `chatvault extension register|list|remove|add|detach|read|message|profile`: the extension
//! registry (`Vault::register_extension`, `Vault::extensions`, `Vault::remove_extension`,
//! `Vault::set_extension_conversation`) and reads through an extension's context
//! (`Vault::extension`), which succeed only within a live consent grant (exit 7 otherwise).

use std::collections::BTreeSet;
use std::io::Write;

use chatvault::{Actor, ConsentScope, Error, ExtensionInfo, GrantOptions, UserId};

use crate::common::{self, fmt_time, Failure, VaultArgs};

/// Exit code of an access refused for want of consent (`Error::ConsentRequired`).
pub const EXIT_CONSENT_REQUIRED: u8 = 7;

const SCOPES: &str = "Scopes: read-messages and read-profile are personal (each user grants \
them: `chatvault consent grant`); read-conversations and post-messages are organisation-level \
(granted organisation-wide with --org-scope when registering).";

const ACCESS_EXIT: &str = "Every access, allowed or refused, is in the audit trail. Exit codes: \
0 done, 1 error (also: the user's processing is restricted), 2 bad usage, 7 consent required \
(no grant, revoked, expired, or the scope is not granted; nothing was handed over).";

#[derive(clap::Subcommand)]
pub enum ExtensionCommand {
    /// Register (install) an extension in a tenant, with the scopes it asks for; with
    /// --org-scope, also grant it organisation-wide consent for organisation-level scopes.
    #[command(after_help = SCOPES)]
    Register {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id, unique in the tenant (e.g. com.example.summary).
        extension: String,
        /// Its name, as shown to users asked for consent.
        #[arg(long)]
        name: String,
        /// A scope it asks for (repeatable): read-messages, read-profile,
        /// read-conversations, post-messages.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<ConsentScope>,
        /// Grant organisation-wide consent for this organisation-level scope (repeatable;
        /// personal scopes are refused).
        #[arg(long = "org-scope", value_parser = parse_scope)]
        org_scopes: Vec<ConsentScope>,
        /// How long the organisation-wide consent lasts (90d, 12h, 1w, or ms).
        #[arg(long, value_name = "DURATION", default_value = "60d", value_parser = parse_duration)]
        org_valid_for: u64,
        /// The user it posts as (post-messages).
        #[arg(long, value_name = "USER")]
        bot_user: Option<String>,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "extension_id", "name",
        /// "scopes", "org_scopes", "org_valid_for_ms" (null without --org-scope),
        /// "bot_user_id" (null if none)}.
        #[arg(long)]
        json: bool,
    },
    /// List the extensions of a tenant, with their scopes, conversations and
    /// organisation-wide consent.
    List {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// Print one JSON object: {"tenant", "tenant_id", "extensions": [{"extension",
        /// "extension_id", "name", "scopes", "conversation_ids", "bot_user_id" (or null),
        /// "registered_at_ms", "org_grant": null or {"scopes", "granted_at_ms",
        /// "expires_at_ms", "live"}}]}.
        #[arg(long)]
        json: bool,
    },
    /// Remove an extension, its organisation-wide consent and every user's consent for it.
    Remove {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id.
        extension: String,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "user_consents_removed"}.
        #[arg(long)]
        json: bool,
    },
    /// Add the extension to a conversation (it reads and posts only where it is added).
    Add {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id.
        extension: String,
        /// Conversation id.
        conversation: String,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "conversation",
        /// "conversation_id", "added": true}.
        #[arg(long)]
        json: bool,
    },
    /// Remove the extension from a conversation.
    Detach {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id.
        extension: String,
        /// Conversation id.
        conversation: String,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "conversation",
        /// "conversation_id", "added": false}.
        #[arg(long)]
        json: bool,
    },
    /// Read a conversation's messages as the extension: only those whose authors granted it
    /// read-messages (and are not restricted); the others are withheld and counted.
    #[command(after_help = ACCESS_EXIT)]
    Read {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id.
        extension: String,
        /// Conversation id.
        conversation: String,
        /// First message id.
        #[arg(long)]
        from: Option<u64>,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "conversation",
        /// "conversation_id", "messages": [{"id", "sent_at_ms", "author_id", "body"}],
        /// "withheld", "next" (the next --from, or null)}. Exit codes as without it.
        #[arg(long)]
        json: bool,
    },
    /// Read one message as the extension: refused (exit 7) unless its author granted
    /// read-messages.
    #[command(after_help = ACCESS_EXIT)]
    Message {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id.
        extension: String,
        /// Conversation id.
        conversation: String,
        /// Message id.
        id: u64,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "conversation",
        /// "conversation_id", "message": {"id", "sent_at_ms", "author_id", "body"}}. Exit
        /// codes as without it.
        #[arg(long)]
        json: bool,
    },
    /// Read a user's profile as the extension: refused (exit 7) unless the user granted
    /// read-profile.
    #[command(after_help = ACCESS_EXIT)]
    Profile {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// The extension's id.
        extension: String,
        /// User id.
        user: String,
        /// Print one JSON object: {"tenant", "tenant_id", "extension", "user", "user_id",
        /// "display_name", "email" (or null)}. Exit codes as without it.
        #[arg(long)]
        json: bool,
    },
}

pub fn parse_scope(s: &str) -> Result<ConsentScope, String> {
    s.parse::<ConsentScope>().map_err(|e| e.to_string())
}

/// A duration (90d, 12h, 1w, or milliseconds), in ms.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    match common::parse_retention(s)? {
        chatvault::Retention::Period { ms } if ms > 0 => Ok(ms),
        _ => Err(format!(
            "{s:?}: a consent lasts a finite, positive time (e.g. 60d)"
        )),
    }
}

/// `ConsentRequired` becomes exit 7, with the library's message (it says what to do).
pub fn consent_exit(e: Error) -> anyhow::Error {
    match e {
        e @ Error::ConsentRequired { .. } => Failure {
            code: EXIT_CONSENT_REQUIRED,
            message: format!("{e} (the refusal is in the audit trail)"),
        }
        .into(),
        e => e.into(),
    }
}

pub fn scopes_text<'a>(s: impl IntoIterator<Item = &'a ConsentScope>) -> String {
    let v: Vec<&str> = s.into_iter().map(|c| c.as_str()).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

/// A consent grant as JSON (shared by `user access`, `consent` and `extension list`).
pub fn grant_json(e: &ExtensionInfo, g: &chatvault::ConsentGrant, now: i64) -> serde_json::Value {
    serde_json::json!({
        "extension": e.id,
        "extension_id": e.extension.as_u64(),
        "name": e.name,
        "scopes": scopes_json(&g.scopes),
        "granted_at_ms": g.granted_at_ms,
        "expires_at_ms": g.expires_at_ms,
        "live": g.is_live(now),
    })
}

/// Scope names as a JSON array.
pub fn scopes_json<'a>(s: impl IntoIterator<Item = &'a ConsentScope>) -> serde_json::Value {
    s.into_iter().map(|c| c.as_str()).collect::<Vec<_>>().into()
}

fn info_json(e: &ExtensionInfo, now: i64) -> serde_json::Value {
    serde_json::json!({
        "extension": e.id,
        "extension_id": e.extension.as_u64(),
        "name": e.name,
        "scopes": scopes_json(&e.scopes),
        "conversation_ids": e.conversations.iter().map(|c| c.as_u64()).collect::<Vec<_>>(),
        "bot_user_id": e.bot_user.map(|b| b.as_u64()),
        "registered_at_ms": e.registered_at_ms,
        "org_grant": e.org_grant.as_ref().map(|g| serde_json::json!({
            "scopes": scopes_json(&g.scopes),
            "granted_at_ms": g.granted_at_ms,
            "expires_at_ms": g.expires_at_ms,
            "live": g.is_live(now),
        })),
    })
}

fn message_json(m: &chatvault::Message) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "sent_at_ms": m.sent_at_ms,
        "author_id": m.author.as_u64(),
        "body": m.body,
    })
}

fn print_info(out: &mut impl Write, e: &ExtensionInfo, now: i64) -> anyhow::Result<()> {
    writeln!(out, "{} ({}): {}", e.id, e.extension, e.name)?;
    writeln!(out, "  scopes asked:   {}", scopes_text(&e.scopes))?;
    match &e.org_grant {
        Some(g) => writeln!(
            out,
            "  organisation:   {} until {}{}",
            scopes_text(&g.scopes),
            fmt_time(g.expires_at_ms),
            if g.is_live(now) { "" } else { " (expired)" }
        )?,
        None => writeln!(out, "  organisation:   no organisation-wide consent")?,
    }
    writeln!(
        out,
        "  conversations:  {}",
        if e.conversations.is_empty() {
            "-".to_string()
        } else {
            e.conversations
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;
    if let Some(b) = e.bot_user {
        writeln!(out, "  bot user:       {b}")?;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn run(cmd: ExtensionCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        ExtensionCommand::Register {
            vault,
            tenant,
            extension,
            name,
            scopes,
            org_scopes,
            org_valid_for,
            bot_user,
            json,
        } => {
            let v = common::open(&vault, "Vault::register_extension")?;
            let t = common::tenant(&v, &tenant)?;
            let bot: Option<UserId> = match &bot_user {
                Some(b) => Some(common::user(&v, t, &tenant, b)?),
                None => None,
            };
            let spec = chatvault::ExtensionSpec {
                id: extension.clone(),
                name,
                scopes: scopes.into_iter().collect::<BTreeSet<_>>(),
                bot_user: bot,
            };
            let id = v.register_extension(
                t,
                Actor::operator(),
                &spec,
                &org_scopes,
                &GrantOptions {
                    valid_for_ms: org_valid_for,
                },
            )?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "extension": extension,
                        "extension_id": id.as_u64(),
                        "name": spec.name,
                        "scopes": scopes_json(&spec.scopes),
                        "org_scopes": scopes_json(&org_scopes),
                        "org_valid_for_ms": (!org_scopes.is_empty()).then_some(org_valid_for),
                        "bot_user_id": bot.map(|b| b.as_u64()),
                    }),
                );
            }
            writeln!(
                out,
                "registered extension {extension} ({id}) in tenant {tenant}, asking for {}",
                scopes_text(&spec.scopes)
            )?;
            if !org_scopes.is_empty() {
                writeln!(
                    out,
                    "organisation-wide consent: {} for {}",
                    scopes_text(&org_scopes),
                    common::fmt_retention(chatvault::Retention::Period { ms: org_valid_for })
                )?;
            }
            Ok(())
        }
        ExtensionCommand::List {
            vault,
            tenant,
            json,
        } => {
            let v = common::open(&vault, "Vault::extensions")?;
            let t = common::tenant(&v, &tenant)?;
            let exts = v.extensions(t)?;
            if json {
                let now = now_ms();
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "extensions": exts.iter().map(|e| info_json(e, now)).collect::<Vec<_>>(),
                    }),
                );
            }
            if exts.is_empty() {
                writeln!(out, "no extension is registered in tenant {tenant}")?;
            }
            let now = now_ms();
            for e in &exts {
                print_info(out, e, now)?;
            }
            Ok(())
        }
        ExtensionCommand::Remove {
            vault,
            tenant,
            extension,
            json,
        } => {
            let v = common::open(&vault, "Vault::remove_extension")?;
            let t = common::tenant(&v, &tenant)?;
            let n = v.remove_extension(t, Actor::operator(), &extension)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "extension": extension,
                        "user_consents_removed": n,
                    }),
                );
            }
            writeln!(
                out,
                "removed extension {extension} from tenant {tenant}, with its \
                 organisation-wide consent and {}",
                common::count(n, "user's consent", "users' consents")
            )?;
            Ok(())
        }
        ExtensionCommand::Add {
            vault,
            tenant,
            extension,
            conversation,
            json,
        } => attach(&vault, &tenant, &extension, &conversation, true, json, out),
        ExtensionCommand::Detach {
            vault,
            tenant,
            extension,
            conversation,
            json,
        } => attach(&vault, &tenant, &extension, &conversation, false, json, out),
        ExtensionCommand::Read {
            vault,
            tenant,
            extension,
            conversation,
            from,
            limit,
            json,
        } => {
            let v = common::open(&vault, "ExtensionContext::messages")?;
            let t = common::tenant(&v, &tenant)?;
            let c = common::conversation(&v, t, &tenant, &conversation)?;
            let x = v.extension(t, &extension)?;
            let page = x.messages(c, from, limit).map_err(consent_exit)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "extension": extension,
                        "conversation": conversation,
                        "conversation_id": c.as_u64(),
                        "messages": page.messages.iter().map(message_json).collect::<Vec<_>>(),
                        "withheld": page.withheld,
                        "next": page.next,
                    }),
                );
            }
            for m in &page.messages {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    m.id,
                    fmt_time(m.sent_at_ms),
                    m.author,
                    m.body
                )?;
            }
            writeln!(
                out,
                "{} handed to {extension}, {} withheld (no live consent of their authors, or \
                 restricted){}",
                common::plural(page.messages.len() as u64, "message"),
                page.withheld,
                page.next
                    .map(|n| format!("; next: --from {n}"))
                    .unwrap_or_default()
            )?;
            Ok(())
        }
        ExtensionCommand::Message {
            vault,
            tenant,
            extension,
            conversation,
            id,
            json,
        } => {
            let v = common::open(&vault, "ExtensionContext::message")?;
            let t = common::tenant(&v, &tenant)?;
            let c = common::conversation(&v, t, &tenant, &conversation)?;
            let x = v.extension(t, &extension)?;
            let m = x.message(c, id).map_err(consent_exit)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "extension": extension,
                        "conversation": conversation,
                        "conversation_id": c.as_u64(),
                        "message": message_json(&m),
                    }),
                );
            }
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                m.id,
                fmt_time(m.sent_at_ms),
                m.author,
                m.body
            )?;
            Ok(())
        }
        ExtensionCommand::Profile {
            vault,
            tenant,
            extension,
            user,
            json,
        } => {
            let (v, t, u) = common::open_user(&vault, "ExtensionContext::profile", &tenant, &user)?;
            let x = v.extension(t, &extension)?;
            let p = x.profile(u).map_err(consent_exit)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "extension": extension,
                        "user": p.external_id,
                        "user_id": u.as_u64(),
                        "display_name": p.profile.display_name,
                        "email": p.profile.email,
                    }),
                );
            }
            writeln!(out, "user {} ({u})", p.external_id)?;
            writeln!(out, "  display name:  {}", p.profile.display_name)?;
            writeln!(
                out,
                "  e-mail:        {}",
                p.profile.email.as_deref().unwrap_or("-")
            )?;
            Ok(())
        }
    }
}

fn attach(
    vault: &VaultArgs,
    tenant: &str,
    extension: &str,
    conversation: &str,
    added: bool,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let v = common::open(vault, "Vault::set_extension_conversation")?;
    let t = common::tenant(&v, tenant)?;
    let c = common::conversation(&v, t, tenant, conversation)?;
    v.set_extension_conversation(t, Actor::operator(), extension, c, added)?;
    if json {
        return common::print_json(
            out,
            &serde_json::json!({
                "tenant": tenant,
                "tenant_id": t.as_u64(),
                "extension": extension,
                "conversation": conversation,
                "conversation_id": c.as_u64(),
                "added": added,
            }),
        );
    }
    if added {
        writeln!(
            out,
            "extension {extension} added to conversation {conversation} ({c})"
        )?;
    } else {
        writeln!(
            out,
            "extension {extension} removed from conversation {conversation} ({c})"
        )?;
    }
    Ok(())
}
