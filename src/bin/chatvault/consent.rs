//! `chatvault consent grant|revoke|list`: a user's consent for extensions
//! (`Vault::grant_consent`, `Vault::revoke_consent`, `Vault::consents`).

use std::io::Write;

use chatvault::{Actor, ConsentScope, GrantOptions};

use crate::common::{self, fmt_time, VaultArgs};
use crate::extension::{grant_json, now_ms, parse_duration, parse_scope, scopes_json, scopes_text};

#[derive(clap::Subcommand)]
pub enum ConsentCommand {
    /// Record a user's consent for an extension: personal scopes (read-messages,
    /// read-profile) among those it asks for, live for --valid-for (default 60 days). It
    /// replaces the user's earlier grant for that extension.
    Grant {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id (for IRC imports: the nick).
        user: String,
        /// The extension's id.
        extension: String,
        /// A scope granted (repeatable).
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<ConsentScope>,
        /// How long the consent lasts (60d, 12h, 1w, or ms).
        #[arg(long, value_name = "DURATION", default_value = "60d", value_parser = parse_duration)]
        valid_for: u64,
        /// Print one JSON object: {"tenant", "tenant_id", "user", "user_id", "extension",
        /// "extension_id", "scopes", "granted_at_ms", "expires_at_ms"}.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user's consent for an extension, at once (its next access is refused).
    Revoke {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id.
        user: String,
        /// The extension's id.
        extension: String,
        /// Print one JSON object: {"tenant", "tenant_id", "user", "user_id", "extension",
        /// "revoked" (false if there was no consent to revoke)}.
        #[arg(long)]
        json: bool,
    },
    /// List a user's consents (live and expired).
    List {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id.
        user: String,
        /// Print one JSON object: {"tenant", "tenant_id", "user", "user_id", "consents":
        /// [{"extension", "extension_id", "name", "scopes", "granted_at_ms", "expires_at_ms",
        /// "live"}]}.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ConsentCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        ConsentCommand::Grant {
            vault,
            tenant,
            user,
            extension,
            scopes,
            valid_for,
            json,
        } => {
            let (v, t, u) = common::open_user(&vault, "Vault::grant_consent", &tenant, &user)?;
            let g = v.grant_consent(
                t,
                Actor::operator(),
                u,
                &extension,
                &scopes,
                &GrantOptions {
                    valid_for_ms: valid_for,
                },
            )?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "user": user,
                        "user_id": u.as_u64(),
                        "extension": extension,
                        "extension_id": g.extension.as_u64(),
                        "scopes": scopes_json(&g.scopes),
                        "granted_at_ms": g.granted_at_ms,
                        "expires_at_ms": g.expires_at_ms,
                    }),
                );
            }
            writeln!(
                out,
                "user {user} ({u}) consents to {extension} for {} until {}",
                scopes_text(&g.scopes),
                fmt_time(g.expires_at_ms)
            )?;
            Ok(())
        }
        ConsentCommand::Revoke {
            vault,
            tenant,
            user,
            extension,
            json,
        } => {
            let (v, t, u) = common::open_user(&vault, "Vault::revoke_consent", &tenant, &user)?;
            let revoked = v.revoke_consent(t, Actor::operator(), u, &extension)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "user": user,
                        "user_id": u.as_u64(),
                        "extension": extension,
                        "revoked": revoked,
                    }),
                );
            }
            if revoked {
                writeln!(
                    out,
                    "consent of user {user} ({u}) for {extension} revoked: its next access is \
                     refused"
                )?;
            } else {
                writeln!(
                    out,
                    "user {user} ({u}) had no consent for {extension}: nothing to revoke"
                )?;
            }
            Ok(())
        }
        ConsentCommand::List {
            vault,
            tenant,
            user,
            json,
        } => {
            let (v, t, u) = common::open_user(&vault, "Vault::consents", &tenant, &user)?;
            let list = v.consents(t, Actor::operator(), u)?;
            if json {
                let now = now_ms();
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "user": user,
                        "user_id": u.as_u64(),
                        "consents": list
                            .iter()
                            .map(|(e, g)| grant_json(e, g, now))
                            .collect::<Vec<_>>(),
                    }),
                );
            }
            if list.is_empty() {
                writeln!(out, "user {user} ({u}) has given no consent")?;
            }
            let now = now_ms();
            for (e, g) in &list {
                writeln!(
                    out,
                    "{} ({}): {} granted {}, {} {}",
                    e.id,
                    e.name,
                    scopes_text(&g.scopes),
                    fmt_time(g.granted_at_ms),
                    if g.is_live(now) { "expires" } else { "expired" },
                    fmt_time(g.expires_at_ms)
                )?;
            }
            Ok(())
        }
    }
}
