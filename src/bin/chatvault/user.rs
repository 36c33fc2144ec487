//! `chatvault user access|rectify|restrict|erase`: the data-subject rights of one user
//! (`Vault::subject_access`, `Vault::subject_messages`, `Vault::rectify_profile`,
//! `Vault::restrict_processing`, `Vault::erase_user`). Export is `chatvault export user`.

use std::io::Write;

use anyhow::bail;
use chatvault::{Actor, Error, MessageRole, ShredOutcome, UserProfile};

use crate::common::{self, fmt_time, Failure, VaultArgs};
use crate::shred::{print_queued, print_shredded, queued_json, shredded_json};

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Right of access: print the user's profile, restriction state and conversations (with
    /// --messages, also the messages they wrote or received while a member).
    Access {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id (for IRC imports: the nick as written in the log).
        user: String,
        /// Also print the messages, per conversation, oldest first.
        #[arg(long)]
        messages: bool,
        /// Print one JSON object: {"tenant", "tenant_id", "user", "user_id", "display_name",
        /// "email", "phone" (null if none), "fields" (an object), "restricted_since_ms" (null
        /// if not restricted), "consents": [{"extension", "extension_id", "name", "scopes",
        /// "granted_at_ms", "expires_at_ms", "live"}], "conversations": [{"conversation",
        /// "conversation_id", "joined_at_ms", "left_at_ms" (null if not a member or still
        /// one), "messages": null, or with --messages [{"id", "sent_at_ms", "role" ("sent" or
        /// "received"), "author_id", "body"}]}]}. Times in UTC ms.
        #[arg(long)]
        json: bool,
    },
    /// Rectification: correct profile fields (as a tenant admin). The previous values are not
    /// kept; the audit trail records which field names changed, never values.
    ///
    /// Exit codes: 0 changed (or nothing to change), 1 error, 2 bad usage.
    Rectify {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id.
        user: String,
        /// New display name.
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// New e-mail address.
        #[arg(long, value_name = "TEXT", conflicts_with = "clear_email")]
        email: Option<String>,
        /// Remove the e-mail address.
        #[arg(long)]
        clear_email: bool,
        /// New telephone number.
        #[arg(long, value_name = "TEXT", conflicts_with = "clear_phone")]
        phone: Option<String>,
        /// Remove the telephone number.
        #[arg(long)]
        clear_phone: bool,
        /// Set a free-form field (repeatable).
        #[arg(long = "set-field", value_name = "NAME=VALUE", value_parser = parse_field)]
        set_field: Vec<(String, String)>,
        /// Remove a free-form field (repeatable).
        #[arg(long = "remove-field", value_name = "NAME")]
        remove_field: Vec<String>,
        /// Print one JSON object: {"tenant", "tenant_id", "user", "user_id", "changed": [the
        /// names of the fields changed, empty if nothing changed]} (never values).
        #[arg(long)]
        json: bool,
    },
    /// Restriction of processing: --on keeps the data stored and readable by the user and
    /// admins but out of third-party exports; --off lifts it.
    Restrict {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id.
        user: String,
        /// Restrict.
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        /// Lift the restriction.
        #[arg(long)]
        off: bool,
        /// Print one JSON object: {"tenant", "tenant_id", "user", "user_id", "restricted"
        /// (true after --on, false after --off)}.
        #[arg(long)]
        json: bool,
    },
    /// Erasure ("close my account"): shred the user (key, profile, name; under the default
    /// erasure policy every message they wrote) and print the receipt. Under a legal hold the
    /// erasure is queued and carried out when the last hold over it is released. Cannot be
    /// undone; requires --yes.
    ///
    /// Exit codes: 0 erased or queued, 1 error (not found, already erased), 2 bad usage or
    /// --yes missing (nothing changed).
    Erase {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// User id.
        user: String,
        /// Confirm: the account can never be restored.
        #[arg(long)]
        yes: bool,
        /// Print the receipt as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

pub fn run(cmd: UserCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Access {
            vault,
            tenant,
            user,
            messages,
            json,
        } => {
            let (v, t, u) = common::open_user(&vault, "Vault::subject_access", &tenant, &user)?;
            let a = v.subject_access(t, Actor::operator(), u)?;
            let p = &a.user.profile;
            if json {
                let now = crate::extension::now_ms();
                let consents = v.consents(t, Actor::operator(), u)?;
                let mut convs = Vec::new();
                for c in &a.conversations {
                    let msgs = if messages {
                        let mut list = Vec::new();
                        for r in v.subject_messages(t, Actor::operator(), u, c.info.id)? {
                            let (msg, role) = r?;
                            list.push(serde_json::json!({
                                "id": msg.id,
                                "sent_at_ms": msg.sent_at_ms,
                                "role": match role {
                                    MessageRole::Sent => "sent",
                                    MessageRole::Received => "received",
                                },
                                "author_id": msg.author.as_u64(),
                                "body": msg.body,
                            }));
                        }
                        Some(list)
                    } else {
                        None
                    };
                    convs.push(serde_json::json!({
                        "conversation": c.info.external_id,
                        "conversation_id": c.info.id.as_u64(),
                        "joined_at_ms": c.membership.map(|m| m.joined_at_ms),
                        "left_at_ms": c.membership.and_then(|m| m.left_at_ms),
                        "messages": msgs,
                    }));
                }
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "user": a.user.external_id,
                        "user_id": u.as_u64(),
                        "display_name": p.display_name,
                        "email": p.email,
                        "phone": p.phone,
                        "fields": p.fields,
                        "restricted_since_ms": a.restricted_since_ms,
                        "consents": consents
                            .iter()
                            .map(|(e, g)| crate::extension::grant_json(e, g, now))
                            .collect::<Vec<_>>(),
                        "conversations": convs,
                    }),
                );
            }
            writeln!(out, "user {} ({u}) of tenant {tenant}", a.user.external_id)?;
            writeln!(out, "  display name:  {}", p.display_name)?;
            writeln!(
                out,
                "  e-mail:        {}",
                p.email.as_deref().unwrap_or("-")
            )?;
            writeln!(
                out,
                "  phone:         {}",
                p.phone.as_deref().unwrap_or("-")
            )?;
            for (k, val) in &p.fields {
                writeln!(out, "  field {k}: {val}")?;
            }
            match a.restricted_since_ms {
                Some(s) => writeln!(out, "  processing:    restricted since {}", fmt_time(s))?,
                None => writeln!(out, "  processing:    not restricted")?,
            }
            let consents = v.consents(t, Actor::operator(), u)?;
            if consents.is_empty() {
                writeln!(out, "  consents:      none")?;
            }
            let now = crate::extension::now_ms();
            for (e, g) in &consents {
                writeln!(
                    out,
                    "  consent:       {} ({}) for {}, {} {}",
                    e.id,
                    e.name,
                    crate::extension::scopes_text(&g.scopes),
                    if g.is_live(now) { "until" } else { "expired" },
                    fmt_time(g.expires_at_ms)
                )?;
            }
            writeln!(out, "conversations: {}", a.conversations.len())?;
            for c in &a.conversations {
                let m = c
                    .membership
                    .map(|m| {
                        format!(
                            "joined {}{}",
                            fmt_time(m.joined_at_ms),
                            m.left_at_ms
                                .map(|l| format!(", left {}", fmt_time(l)))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "not a member".into());
                writeln!(out, "  {} ({}): {m}", c.info.external_id, c.info.id)?;
                if messages {
                    for r in v.subject_messages(t, Actor::operator(), u, c.info.id)? {
                        let (msg, role) = r?;
                        writeln!(
                            out,
                            "    {}\t{}\t{}\t{}\t{}",
                            msg.id,
                            fmt_time(msg.sent_at_ms),
                            match role {
                                MessageRole::Sent => "sent",
                                MessageRole::Received => "received",
                            },
                            msg.author,
                            msg.body
                        )?;
                    }
                }
            }
            Ok(())
        }
        UserCommand::Rectify {
            vault,
            tenant,
            user,
            display_name,
            email,
            clear_email,
            phone,
            clear_phone,
            set_field,
            remove_field,
            json,
        } => {
            let (v, t, u) = common::open_user(&vault, "Vault::rectify_profile", &tenant, &user)?;
            let mut p: UserProfile = v.user(t, u)?.profile;
            if let Some(d) = display_name {
                p.display_name = d;
            }
            if email.is_some() || clear_email {
                p.email = email;
            }
            if phone.is_some() || clear_phone {
                p.phone = phone;
            }
            for (k, val) in set_field {
                p.fields.insert(k, val);
            }
            for k in remove_field {
                p.fields.remove(&k);
            }
            let changed = v.rectify_profile(t, Actor::operator(), u, p)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "user": user,
                        "user_id": u.as_u64(),
                        "changed": changed,
                    }),
                );
            }
            if changed.is_empty() {
                writeln!(
                    out,
                    "nothing to change: the profile already holds these values"
                )?;
            } else {
                writeln!(
                    out,
                    "rectified {} of user {user} ({u}); the previous values are not kept \
                     (the audit trail records the field names only)",
                    changed.join(", ")
                )?;
            }
            Ok(())
        }
        UserCommand::Restrict {
            vault,
            tenant,
            user,
            on,
            off: _,
            json,
        } => {
            let (v, t, u) =
                common::open_user(&vault, "Vault::restrict_processing", &tenant, &user)?;
            v.restrict_processing(t, Actor::operator(), u, on)?;
            if json {
                return common::print_json(
                    out,
                    &serde_json::json!({
                        "tenant": tenant,
                        "tenant_id": t.as_u64(),
                        "user": user,
                        "user_id": u.as_u64(),
                        "restricted": on,
                    }),
                );
            }
            if on {
                writeln!(
                    out,
                    "processing of user {user} ({u}) restricted: the data stays stored and \
                     readable by the user and admins, and is left out of third-party exports"
                )?;
            } else {
                writeln!(out, "restriction of user {user} ({u}) lifted")?;
            }
            Ok(())
        }
        UserCommand::Erase {
            vault,
            tenant,
            user,
            yes,
            json,
        } => {
            if !yes {
                return Err(Failure {
                    code: 2,
                    message: "erasing a user destroys their key for good: their profile and \
                              (under the default erasure policy) their messages can never be \
                              read again. Add --yes to confirm (nothing was changed)"
                        .into(),
                }
                .into());
            }
            let (v, t, u) = common::open_user(&vault, "Vault::erase_user", &tenant, &user)?;
            let what = format!("user {user} ({u}) of tenant {tenant}");
            let outcome = match v.erase_user(t, Actor::operator(), u) {
                Ok(o) => o,
                Err(Error::Shredded { .. }) => bail!("{what} is already erased: nothing to do"),
                Err(e) => return Err(e.into()),
            };
            let head = v.receipts_head().map(|h| h.to_string()).unwrap_or_default();
            match outcome {
                ShredOutcome::Shredded(r) => {
                    let pending = v.key_paths_pending()?;
                    if json {
                        writeln!(out, "{}", shredded_json(&r, &head, pending))?;
                    } else {
                        print_shredded(out, &what, &r, &head, pending)?;
                    }
                }
                ShredOutcome::Queued(q) => {
                    if json {
                        writeln!(out, "{}", queued_json(&q, &head))?;
                    } else {
                        print_queued(out, &tenant, &what, &q, &head)?;
                    }
                }
            }
            Ok(())
        }
    }
}
