//! Writing a tenant (or one conversation) back as a Slack export zip or a Mattermost bulk
//! export, so that import → export → import gives the same transcript.
//!
//! The external references kept at import (Slack `ts`, subtypes, bot ids, channel lists and
//! topics; Mattermost teams, channel types, post types) are used where present; a message or
//! conversation from another source gets ids made from chatvault's (a Slack `ts` of the send
//! time in ms and the message id mod 1000 as the microseconds; a Mattermost channel in a team
//! named after the tenant).
//!
//! Slack: each message is written with its original text (revision 0, when still kept),
//! followed by one `message_changed` event per later revision and a `message_deleted` event
//! if it was deleted, in the day file of the message (UTC), so a re-import rebuilds the same
//! revisions. Mattermost: posts with their replies nested (a reply's root is the first message
//! of its reply chain), the current text with `edit_at`, deleted posts with an empty message
//! and `delete_at` (a field Mattermost itself neither writes nor reads); earlier revisions are
//! not written (the format has no place for them).
//!
//! Both record the export in the audit trail, as [`Vault::export_tenant`] does. Memory: one
//! day file (Slack), and for Mattermost the ids of the replies of one conversation; the users
//! and conversation lists.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Seek, Write};

use serde_json::{json, Map, Value};

use super::xref::ExternalRef;
use super::{mattermost, slack};
use crate::codec::{self, be64, KeyBuf};
use crate::vault::{cf, RawIter};
use crate::{
    Actor, AuditEvent, AuditOutcome, ConversationId, ConversationInfo, ConversationKind, Direction,
    Error, ExportScope, Message, MessageId, MessageKind, Result, TenantId, UserId, UserProfile,
    Vault,
};

/// What a format export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FormatExportSummary {
    /// The format: `slack` or `mattermost`.
    pub format: String,
    /// Conversations written.
    pub conversations: u64,
    /// Users written.
    pub users: u64,
    /// Messages written (posts and replies).
    pub messages: u64,
    /// Edit and deletion events written (Slack), or posts with `edit_at`/`delete_at`
    /// (Mattermost).
    pub changes: u64,
    /// Messages that could not be read (shredded), left out.
    pub unreadable: u64,
}

const DAY_MS: i64 = 86_400_000;

/// Slack's `ts` for `ms` and a sequence number (0..999) as the microseconds.
pub fn ms_to_ts(ms: i64, seq: u64) -> String {
    format!(
        "{}.{:03}{:03}",
        ms.div_euclid(1000),
        ms.rem_euclid(1000),
        seq % 1000
    )
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (proleptic Gregorian, UTC).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", if m <= 2 { y + 1 } else { y })
}

/// A stored field back as JSON: JSON text parsed, anything else a string.
fn field_json(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ (Value::Object(_) | Value::Bool(_) | Value::Number(_) | Value::Array(_))) => v,
        _ => Value::String(s.to_string()),
    }
}

fn write_err(e: impl std::fmt::Display) -> Error {
    Error::ExportWrite {
        source: std::io::Error::other(e.to_string()),
    }
}

struct UserOut {
    external_id: String,
    profile: UserProfile,
}

/// Shared state of one export: user and conversation-reference caches.
struct Ctx<'v> {
    vault: &'v Vault,
    tenant: TenantId,
    tenant_name: String,
    users: HashMap<UserId, Option<UserOut>>,
    sum: FormatExportSummary,
}

impl<'v> Ctx<'v> {
    fn new(vault: &'v Vault, tenant: TenantId, format: &str) -> Result<Self> {
        let tenant_name = vault
            .tenants()?
            .into_iter()
            .find(|t| t.id == tenant)
            .map(|t| t.name)
            .ok_or_else(|| Error::NotFound {
                what: format!("tenant {tenant}"),
            })?;
        Ok(Ctx {
            vault,
            tenant,
            tenant_name,
            users: HashMap::new(),
            sum: FormatExportSummary {
                format: format.to_string(),
                ..Default::default()
            },
        })
    }

    /// The user's external id and profile; `None` once erased (shredded).
    fn user(&mut self, u: UserId) -> Result<Option<&UserOut>> {
        if !self.users.contains_key(&u) {
            let v = match self.vault.user(self.tenant, u) {
                Ok(info) => Some(UserOut {
                    external_id: info.external_id,
                    profile: info.profile,
                }),
                Err(Error::Shredded { .. } | Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            self.users.insert(u, v);
        }
        Ok(self.users.get(&u).and_then(Option::as_ref))
    }

    fn user_ext(&mut self, u: UserId) -> Result<String> {
        Ok(match self.user(u)? {
            Some(o) => o.external_id.clone(),
            None => format!("erased-user-{}", u.as_u64()),
        })
    }

    /// The conversations to write, with their external references.
    fn conversations(
        &self,
        only: Option<ConversationId>,
    ) -> Result<Vec<(ConversationInfo, Option<ExternalRef>)>> {
        let mut out = Vec::new();
        match only {
            Some(c) => {
                let info = self.vault.conversation(self.tenant, c)?;
                let r = self.vault.external_ref(self.tenant, c, 0)?;
                out.push((info, r));
            }
            None => {
                for info in self.vault.conversations(self.tenant)? {
                    let info = match info {
                        Ok(i) => i,
                        Err(Error::Shredded { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    let r = match self.vault.external_ref(self.tenant, info.id, 0) {
                        Ok(r) => r,
                        Err(Error::Shredded { .. }) => continue,
                        Err(e) => return Err(e),
                    };
                    out.push((info, r));
                }
            }
        }
        Ok(out)
    }

    /// Every user of the tenant, or the members and authors of one conversation.
    fn user_ids(&self, only: Option<ConversationId>) -> Result<BTreeSet<UserId>> {
        let mut out = BTreeSet::new();
        match only {
            Some(c) => {
                for m in self.vault.members(self.tenant, c)? {
                    out.insert(m.user);
                }
                for m in self
                    .vault
                    .messages(self.tenant, c, None, Direction::Forward)?
                {
                    match m {
                        Ok(m) => {
                            out.insert(m.author);
                        }
                        Err(Error::Shredded { .. } | Error::Expired { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            None => {
                let i = &self.vault.inner;
                let prefix = KeyBuf::tag(codec::meta::USER)
                    .u64(self.tenant.as_u64())
                    .into_vec();
                let it = i.prefix_iter(cf::META, &prefix)?;
                for kv in RawIter::new(it, "listing users") {
                    let (k, _) = kv?;
                    let u = k
                        .get(9..17)
                        .and_then(be64)
                        .ok_or_else(|| Error::corrupt("user record key", "bad length"))?;
                    out.insert(UserId(u));
                }
            }
        }
        Ok(out)
    }

    fn audit(&self, only: Option<ConversationId>, r: &Result<()>) -> Result<()> {
        let event = AuditEvent::Export {
            tenant: self.tenant,
            scope: match only {
                Some(c) => ExportScope::Conversation(c),
                None => ExportScope::Tenant,
            },
            third_party: false,
            records: self.sum.messages,
        };
        let outcome = match r {
            Ok(()) => AuditOutcome::Done,
            Err(e) => AuditOutcome::Failed {
                error: crate::audit::error_kind(e).to_string(),
            },
        };
        self.vault.audit_now(&Actor::operator(), event, outcome)
    }
}

/// A message with what the writers need of it.
struct Item {
    msg: Message,
    xref: Option<ExternalRef>,
    /// Earlier revisions (oldest first), empty for a deleted message.
    older: Vec<crate::Revision>,
}

fn item(vault: &Vault, t: TenantId, c: ConversationId, msg: Message) -> Result<Item> {
    let xref = vault.external_ref(t, c, msg.id)?;
    let older = if msg.deleted_at_ms.is_none() && msg.revision > 0 {
        vault.revisions(t, c, msg.id)?
    } else {
        Vec::new()
    };
    Ok(Item { msg, xref, older })
}

fn xref_of(x: &Option<ExternalRef>, source: &str) -> Option<ExternalRef> {
    x.as_ref().filter(|r| r.source == source).cloned()
}

// ------------------------------------------------------------------ Slack

/// Writes a tenant (or one conversation) as a Slack export zip: `users.json`, the conversation
/// lists (`channels.json`, `groups.json`, `dms.json`, `mpims.json`, as needed) and one folder
/// of day files per conversation. Errors: [`Error::NotFound`], [`Error::ExportWrite`] (the
/// destination failed; the zip is incomplete), and the read errors of [`Vault::get`].
pub fn write_slack_export<W: Write + Seek>(
    vault: &Vault,
    tenant: TenantId,
    conversation: Option<ConversationId>,
    out: W,
) -> Result<FormatExportSummary> {
    let mut ctx = Ctx::new(vault, tenant, slack::SOURCE)?;
    let r = slack_body(&mut ctx, conversation, out);
    ctx.audit(conversation, &r)?;
    r.map(|()| ctx.sum)
}

fn zip_entry<W: Write + Seek>(z: &mut zip::ZipWriter<W>, name: &str, v: &Value) -> Result<()> {
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file(name, opts).map_err(write_err)?;
    let bytes = serde_json::to_vec_pretty(v).map_err(write_err)?;
    z.write_all(&bytes)
        .map_err(|source| Error::ExportWrite { source })
}

fn slack_ts(it: &Item) -> String {
    match xref_of(&it.xref, slack::SOURCE) {
        Some(r) => r.id,
        None => ms_to_ts(it.msg.sent_at_ms, it.msg.id),
    }
}

fn slack_body<W: Write + Seek>(
    ctx: &mut Ctx<'_>,
    only: Option<ConversationId>,
    out: W,
) -> Result<()> {
    let (vault, t) = (ctx.vault, ctx.tenant);
    let mut z = zip::ZipWriter::new(out);
    let mut lists: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    let mut folders_used = HashSet::new();
    for (info, cref) in ctx.conversations(only)? {
        let sref = xref_of(&cref, slack::SOURCE);
        let field = |k: &str| sref.as_ref().and_then(|r| r.field(k)).map(str::to_string);
        let ctype = match field("type").as_deref() {
            Some("group") => "group",
            Some("dm") => "dm",
            Some("mpim") => "mpim",
            Some(_) => "channel",
            None if info.kind == ConversationKind::Direct => "dm",
            None => match cref.as_ref().and_then(|r| r.field("type")) {
                Some("direct_channel") => "mpim",
                _ => "channel",
            },
        };
        let name = field("name")
            .or_else(|| info.title.clone())
            .unwrap_or_else(|| info.external_id.clone());
        let mut folder = field("folder").unwrap_or_else(|| {
            if ctype == "dm" {
                info.external_id.clone()
            } else {
                name.clone()
            }
        });
        folder = folder.replace(['/', '\\'], "_");
        if !folders_used.insert(folder.clone()) {
            folder = format!("{folder}-{}", info.id.as_u64());
            folders_used.insert(folder.clone());
        }
        let mut members = Vec::new();
        for m in vault.members(t, info.id)? {
            members.push(Value::String(ctx.user_ext(m.user)?));
        }
        let mut entry = Map::new();
        entry.insert("id".into(), Value::String(info.external_id.clone()));
        if ctype != "dm" {
            entry.insert("name".into(), Value::String(name.clone()));
        }
        let created = field("created")
            .map(|s| field_json(&s))
            .unwrap_or_else(|| json!(info.created_at_ms.div_euclid(1000)));
        entry.insert("created".into(), created);
        for k in ["creator", "is_archived", "is_general", "topic", "purpose"] {
            if let Some(v) = field(k) {
                entry.insert(k.into(), field_json(&v));
            }
        }
        entry.insert("members".into(), Value::Array(members));
        if folder != name && ctype != "dm" {
            // Our own key, so that a re-import finds the folder of a renamed conversation.
            entry.insert("name".into(), Value::String(folder.clone()));
        }
        lists.entry(ctype).or_default().push(Value::Object(entry));
        ctx.sum.conversations += 1;
        slack_days(ctx, &mut z, info.id, &folder)?;
    }
    // Users last (the messages named them): bots are written with their messages, not here.
    let mut users = Vec::new();
    let team_id = ctx.tenant_name.clone();
    for u in ctx.user_ids(only)? {
        let Some(o) = ctx.user(u)? else { continue };
        let f = |k: &str| o.profile.fields.get(k).cloned();
        if f("slack.bot").is_some() {
            continue;
        }
        let mut p = Map::new();
        p.insert("real_name".into(), json!(o.profile.display_name));
        if let Some(v) = f("slack.display_name") {
            p.insert("display_name".into(), json!(v));
        }
        if let Some(v) = f("slack.title") {
            p.insert("title".into(), json!(v));
        }
        if let Some(v) = &o.profile.email {
            p.insert("email".into(), json!(v));
        }
        if let Some(v) = &o.profile.phone {
            p.insert("phone".into(), json!(v));
        }
        let mut e = Map::new();
        e.insert("id".into(), json!(o.external_id));
        e.insert("team_id".into(), json!(team_id));
        for (k, name) in [
            ("name", "slack.name"),
            ("real_name", "slack.real_name"),
            ("tz", "slack.tz"),
        ] {
            if let Some(v) = f(name) {
                e.insert(k.into(), json!(v));
            }
        }
        for flag in ["is_bot", "deleted", "is_admin"] {
            if f(&format!("slack.{flag}")).is_some() {
                e.insert(flag.into(), json!(true));
            }
        }
        e.insert("profile".into(), Value::Object(p));
        users.push(Value::Object(e));
    }
    // The user ids of erased users stay as members and authors; list them so a re-import
    // finds them.
    for (u, o) in &ctx.users {
        if o.is_none() {
            users.push(json!({"id": format!("erased-user-{}", u.as_u64()),
                              "team_id": ctx.tenant_name,
                              "profile": {"real_name": "(erased user)"}}));
        }
    }
    ctx.sum.users = users.len() as u64;
    zip_entry(&mut z, "users.json", &Value::Array(users))?;
    if !lists.contains_key("channel") {
        lists.insert("channel", Vec::new());
    }
    for (ctype, file) in [
        ("channel", "channels.json"),
        ("group", "groups.json"),
        ("dm", "dms.json"),
        ("mpim", "mpims.json"),
    ] {
        if let Some(v) = lists.remove(ctype) {
            zip_entry(&mut z, file, &Value::Array(v))?;
        }
    }
    z.finish().map_err(write_err)?;
    Ok(())
}

fn slack_days<W: Write + Seek>(
    ctx: &mut Ctx<'_>,
    z: &mut zip::ZipWriter<W>,
    c: ConversationId,
    folder: &str,
) -> Result<()> {
    let (vault, t) = (ctx.vault, ctx.tenant);
    let mut days = BTreeSet::new();
    for m in vault.messages(t, c, None, Direction::Forward)? {
        match m {
            Ok(m) => {
                days.insert(m.sent_at_ms.div_euclid(DAY_MS));
            }
            Err(Error::Shredded { .. } | Error::Expired { .. }) => ctx.sum.unreadable += 1,
            Err(e) => return Err(e),
        }
    }
    for day in days {
        let mut records = Vec::new();
        for m in vault.messages_between(t, c, day * DAY_MS, (day + 1) * DAY_MS)? {
            let m = match m {
                Ok(m) => m,
                Err(Error::Shredded { .. } | Error::Expired { .. }) => continue,
                Err(e) => return Err(e),
            };
            let it = item(vault, t, c, m)?;
            slack_records(ctx, c, &it, &mut records)?;
        }
        if !records.is_empty() {
            zip_entry(
                z,
                &format!("{folder}/{}.json", civil(day)),
                &Value::Array(records),
            )?;
        }
    }
    Ok(())
}

fn slack_records(
    ctx: &mut Ctx<'_>,
    c: ConversationId,
    it: &Item,
    out: &mut Vec<Value>,
) -> Result<()> {
    let m = &it.msg;
    let sref = xref_of(&it.xref, slack::SOURCE);
    let field = |k: &str| sref.as_ref().and_then(|r| r.field(k)).map(str::to_string);
    let ts = slack_ts(it);
    let author = ctx.user_ext(m.author)?;
    let original = it
        .older
        .first()
        .filter(|r| r.revision == 0)
        .map_or(m.body.as_str(), |r| r.body.as_str());
    let thread_ts = match (field("thread_ts"), m.reply_to) {
        (Some(tt), _) => Some(tt),
        (None, Some(p)) => match ctx.vault.get(ctx.tenant, c, p) {
            Ok(pm) => Some(slack_ts(&item(ctx.vault, ctx.tenant, c, pm)?)),
            Err(Error::Shredded { .. } | Error::Expired { .. } | Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        (None, None) => None,
    };
    let o = slack_message_json(
        &ts,
        &author,
        sref.as_ref(),
        original,
        m.kind,
        thread_ts.as_deref(),
        &m.attachments,
    );
    out.push(o);
    ctx.sum.messages += 1;
    // Later revisions, then the deletion.
    let mut later: Vec<(String, i64)> = it
        .older
        .iter()
        .filter(|r| r.revision > 0)
        .map(|r| (r.body.clone(), r.written_at_ms))
        .collect();
    if m.deleted_at_ms.is_none() && m.revision > 0 {
        later.push((m.body.clone(), m.edited_at_ms.unwrap_or(m.sent_at_ms)));
    }
    for (body, at) in later {
        out.push(slack_change_json(&author, &ts, &body, at));
        ctx.sum.changes += 1;
    }
    if let Some(d) = m.deleted_at_ms {
        out.push(slack_deletion_json(&ts, d));
        ctx.sum.changes += 1;
    }
    Ok(())
}

/// A message as the Slack writer writes it (pure: what [`super::slack::parse_message`] reads
/// back): `ts`, its author's external id, its Slack external reference if any (`bot_id`,
/// `username` and `user` of a bot, `subtype`), the text of its first revision, its kind (an
/// action without a subtype becomes `me_message`), the `thread_ts` to write, its attachments
/// as `files`.
pub(crate) fn slack_message_json(
    ts: &str,
    author: &str,
    sref: Option<&ExternalRef>,
    original: &str,
    kind: MessageKind,
    thread_ts: Option<&str>,
    attachments: &[crate::Attachment],
) -> Value {
    let field = |k: &str| sref.and_then(|r| r.field(k)).map(str::to_string);
    let mut o = Map::new();
    o.insert("type".into(), json!("message"));
    match field("bot_id") {
        Some(b) => {
            o.insert("bot_id".into(), json!(b));
            if let Some(u) = field("username") {
                o.insert("username".into(), json!(u));
            }
            if let Some(u) = field("user") {
                o.insert("user".into(), json!(u));
            }
        }
        None => {
            o.insert("user".into(), json!(author));
        }
    }
    o.insert("text".into(), json!(original));
    o.insert("ts".into(), json!(ts));
    let subtype = field("subtype")
        .or_else(|| (kind == MessageKind::Action).then(|| "me_message".to_string()));
    if let Some(st) = subtype {
        o.insert("subtype".into(), json!(st));
    }
    if let Some(tt) = thread_ts {
        o.insert("thread_ts".into(), json!(tt));
    }
    if !attachments.is_empty() {
        let files: Vec<Value> = attachments
            .iter()
            .map(|a| json!({"name": a.name, "mimetype": a.media_type, "size": a.size_bytes}))
            .collect();
        o.insert("files".into(), Value::Array(files));
    }
    Value::Object(o)
}

/// The `message_changed` event of a later revision (`body`, written at `at_ms`, UTC ms) of the
/// message `ts` by `author`.
pub(crate) fn slack_change_json(author: &str, ts: &str, body: &str, at_ms: i64) -> Value {
    let ets = ms_to_ts(at_ms, 0);
    json!({
        "type": "message", "subtype": "message_changed", "hidden": true, "ts": ets,
        "message": {"type": "message", "user": author, "text": body, "ts": ts,
                    "edited": {"user": author, "ts": ets}}
    })
}

/// The `message_deleted` event of the message `ts`, deleted at `at_ms` (UTC ms).
pub(crate) fn slack_deletion_json(ts: &str, at_ms: i64) -> Value {
    json!({
        "type": "message", "subtype": "message_deleted", "hidden": true,
        "ts": ms_to_ts(at_ms, 0), "deleted_ts": ts
    })
}

// ------------------------------------------------------------------ Mattermost

/// Writes a tenant (or one conversation) as a Mattermost bulk export (JSON Lines, version 1):
/// teams, channels, users with their memberships, then each conversation's posts with their
/// replies (direct channels as `direct_channel` and `direct_post`). Errors as
/// [`write_slack_export`].
pub fn write_mattermost_export<W: Write>(
    vault: &Vault,
    tenant: TenantId,
    conversation: Option<ConversationId>,
    out: W,
) -> Result<FormatExportSummary> {
    let mut ctx = Ctx::new(vault, tenant, mattermost::SOURCE)?;
    let mut w = std::io::BufWriter::new(out);
    let r = mm_body(&mut ctx, conversation, &mut w)
        .and_then(|()| w.flush().map_err(|source| Error::ExportWrite { source }));
    ctx.audit(conversation, &r)?;
    r.map(|()| ctx.sum)
}

fn line(w: &mut impl Write, v: &Value) -> Result<()> {
    let mut s = serde_json::to_vec(v).map_err(write_err)?;
    s.push(b'\n');
    w.write_all(&s)
        .map_err(|source| Error::ExportWrite { source })
}

/// The members of a direct channel as written, from the `members` field its import kept
/// (usernames joined by `,`).
pub(crate) fn mm_direct_members(field: &str) -> Vec<String> {
    field.split(',').map(str::to_string).collect()
}

/// Where a conversation goes in Mattermost.
pub(crate) enum MmPlace {
    Channel {
        team: String,
        name: String,
    },
    Direct {
        members: Vec<String>,
        header: Option<String>,
    },
}

fn mm_body(ctx: &mut Ctx<'_>, only: Option<ConversationId>, w: &mut impl Write) -> Result<()> {
    let (vault, t) = (ctx.vault, ctx.tenant);
    line(w, &json!({"type": "version", "version": 1}))?;
    let convs = ctx.conversations(only)?;
    let default_team = ctx.tenant_name.clone();
    // Teams, channels, and who is in which.
    let mut teams: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut places = Vec::new();
    let mut channel_lines = Vec::new();
    let mut memberships: BTreeMap<UserId, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut names_used = HashSet::new();
    for (info, cref) in &convs {
        let mref = xref_of(cref, mattermost::SOURCE);
        let field = |k: &str| mref.as_ref().and_then(|r| r.field(k)).map(str::to_string);
        let any_field = |k: &str| cref.as_ref().and_then(|r| r.field(k)).map(str::to_string);
        let direct = info.kind == ConversationKind::Direct
            || matches!(
                any_field("type").as_deref(),
                Some("direct_channel" | "dm" | "mpim")
            );
        let members = vault.members(t, info.id)?;
        if direct {
            let mut names = Vec::new();
            match field("members") {
                Some(m) => names.extend(mm_direct_members(&m)),
                None => {
                    for m in &members {
                        names.push(ctx.user_ext(m.user)?);
                    }
                }
            }
            places.push(MmPlace::Direct {
                members: names,
                header: field("header"),
            });
            continue;
        }
        let team = field("team").unwrap_or_else(|| default_team.clone());
        teams.entry(team.clone()).or_insert_with(|| {
            (
                field("team_display_name").unwrap_or_else(|| team.clone()),
                field("team_type").unwrap_or_else(|| "O".to_string()),
            )
        });
        let mut name = field("name")
            .or_else(|| any_field("name"))
            .unwrap_or_else(|| info.external_id.clone());
        if !names_used.insert((team.clone(), name.clone())) {
            name = format!("{name}-{}", info.id.as_u64());
            names_used.insert((team.clone(), name.clone()));
        }
        let ctype = field("channel_type").unwrap_or_else(|| {
            if any_field("type").as_deref() == Some("group") {
                "P".into()
            } else {
                "O".into()
            }
        });
        let mut ch = Map::new();
        ch.insert("team".into(), json!(team));
        ch.insert("name".into(), json!(name));
        ch.insert(
            "display_name".into(),
            json!(field("display_name")
                .or_else(|| info.title.clone())
                .unwrap_or_else(|| name.clone())),
        );
        ch.insert("type".into(), json!(ctype));
        for k in ["header", "purpose"] {
            if let Some(v) = field(k) {
                ch.insert(k.into(), json!(v));
            }
        }
        channel_lines.push(json!({"type": "channel", "channel": Value::Object(ch)}));
        for m in &members {
            memberships
                .entry(m.user)
                .or_default()
                .entry(team.clone())
                .or_default()
                .push(name.clone());
        }
        places.push(MmPlace::Channel { team, name });
    }
    for (name, (display, ttype)) in &teams {
        line(
            w,
            &json!({"type": "team", "team": {"name": name, "display_name": display, "type": ttype}}),
        )?;
    }
    for l in &channel_lines {
        line(w, l)?;
    }
    let mut erased = Vec::new();
    for u in ctx.user_ids(only)? {
        let Some(o) = ctx.user(u)? else {
            erased.push(u);
            continue;
        };
        let mut e = Map::new();
        e.insert("username".into(), json!(o.external_id));
        if let Some(v) = &o.profile.email {
            e.insert("email".into(), json!(v));
        }
        let mut has_name = false;
        for (k, v) in &o.profile.fields {
            if let Some(k) = k.strip_prefix("mattermost.") {
                has_name |= k == "first_name" || k == "last_name";
                e.insert(k.into(), json!(v));
            }
        }
        if !has_name && o.profile.display_name != o.external_id {
            // From another source: the display name as the first name.
            e.insert("first_name".into(), json!(o.profile.display_name));
        }
        let teams_v: Vec<Value> = memberships
            .get(&u)
            .map(|ts| {
                ts.iter()
                    .map(|(team, chans)| {
                        json!({"name": team, "roles": "team_user",
                               "channels": chans.iter()
                                   .map(|c| json!({"name": c, "roles": "channel_user"}))
                                   .collect::<Vec<_>>()})
                    })
                    .collect()
            })
            .unwrap_or_default();
        e.insert("teams".into(), Value::Array(teams_v));
        line(w, &json!({"type": "user", "user": Value::Object(e)}))?;
        ctx.sum.users += 1;
    }
    for u in erased {
        line(
            w,
            &json!({"type": "user", "user": {"username": format!("erased-user-{}", u.as_u64()),
                                               "first_name": "(erased user)", "teams": []}}),
        )?;
        ctx.sum.users += 1;
    }
    for ((info, _), place) in convs.iter().zip(places) {
        if let MmPlace::Direct { members, header } = &place {
            let mut d = Map::new();
            d.insert("members".into(), json!(members));
            if let Some(h) = header {
                d.insert("header".into(), json!(h));
            }
            line(
                w,
                &json!({"type": "direct_channel", "direct_channel": Value::Object(d)}),
            )?;
        }
        mm_posts(ctx, info.id, &place, w)?;
        ctx.sum.conversations += 1;
    }
    Ok(())
}

/// A post or reply as the Mattermost writer writes it (pure: what
/// [`super::mattermost::parse_line`] reads back): its author's username, its current text,
/// time, edit time (written only when it is not deleted), deletion time, Mattermost `type`
/// and attachment names (as `path`).
pub(crate) fn mm_post_json(
    user: &str,
    body: &str,
    sent_at_ms: i64,
    edited_at_ms: Option<i64>,
    deleted_at_ms: Option<i64>,
    post_type: Option<&str>,
    attachments: &[crate::Attachment],
) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("user".into(), json!(user));
    p.insert("message".into(), json!(body));
    p.insert("create_at".into(), json!(sent_at_ms));
    if let (None, Some(e)) = (deleted_at_ms, edited_at_ms) {
        p.insert("edit_at".into(), json!(e));
    }
    if let Some(d) = deleted_at_ms {
        p.insert("delete_at".into(), json!(d));
    }
    if let Some(ty) = post_type {
        p.insert("type".into(), json!(ty));
    }
    if !attachments.is_empty() {
        let a: Vec<Value> = attachments
            .iter()
            .map(|a| json!({"path": a.name}))
            .collect();
        p.insert("attachments".into(), Value::Array(a));
    }
    p
}

/// The line of a post (with its replies already in it) in `place`.
pub(crate) fn mm_post_line(mut post: Map<String, Value>, place: &MmPlace) -> Value {
    match place {
        MmPlace::Channel { team, name } => {
            post.insert("team".into(), json!(team));
            post.insert("channel".into(), json!(name));
            json!({"type": "post", "post": Value::Object(post)})
        }
        MmPlace::Direct { members, .. } => {
            post.insert("channel_members".into(), json!(members));
            json!({"type": "direct_post", "direct_post": Value::Object(post)})
        }
    }
}

fn mm_post(ctx: &mut Ctx<'_>, it: &Item) -> Result<Map<String, Value>> {
    let m = &it.msg;
    let user = ctx.user_ext(m.author)?;
    if m.deleted_at_ms.is_none() && m.edited_at_ms.is_some() {
        ctx.sum.changes += 1;
    }
    if m.deleted_at_ms.is_some() {
        ctx.sum.changes += 1;
    }
    let xref = xref_of(&it.xref, mattermost::SOURCE);
    let post_type = xref.as_ref().and_then(|r| r.field("type"));
    ctx.sum.messages += 1;
    Ok(mm_post_json(
        &user,
        &m.body,
        m.sent_at_ms,
        m.edited_at_ms,
        m.deleted_at_ms,
        post_type,
        &m.attachments,
    ))
}

fn mm_posts(
    ctx: &mut Ctx<'_>,
    c: ConversationId,
    place: &MmPlace,
    w: &mut impl Write,
) -> Result<()> {
    let (vault, t) = (ctx.vault, ctx.tenant);
    // Pass 1: the reply chains (ids only).
    let mut present: HashSet<MessageId> = HashSet::new();
    let mut root_of: HashMap<MessageId, MessageId> = HashMap::new();
    let mut replies: HashMap<MessageId, Vec<MessageId>> = HashMap::new();
    for m in vault.messages(t, c, None, Direction::Forward)? {
        let m = match m {
            Ok(m) => m,
            Err(Error::Shredded { .. } | Error::Expired { .. }) => {
                ctx.sum.unreadable += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        present.insert(m.id);
        if let Some(p) = m.reply_to.filter(|p| present.contains(p)) {
            let root = root_of.get(&p).copied().unwrap_or(p);
            root_of.insert(m.id, root);
            replies.entry(root).or_default().push(m.id);
        }
    }
    // Pass 2: each post with its replies.
    for m in vault.messages(t, c, None, Direction::Forward)? {
        let m = match m {
            Ok(m) => m,
            Err(Error::Shredded { .. } | Error::Expired { .. }) => continue,
            Err(e) => return Err(e),
        };
        if root_of.contains_key(&m.id) {
            continue;
        }
        let id = m.id;
        let it = item(vault, t, c, m)?;
        let mut post = mm_post(ctx, &it)?;
        let mut rs = Vec::new();
        for r in replies.get(&id).into_iter().flatten() {
            let rm = match vault.get(t, c, *r) {
                Ok(rm) => rm,
                Err(Error::Shredded { .. } | Error::Expired { .. }) => continue,
                Err(e) => return Err(e),
            };
            let ri = item(vault, t, c, rm)?;
            rs.push(Value::Object(mm_post(ctx, &ri)?));
        }
        if !rs.is_empty() {
            post.insert("replies".into(), Value::Array(rs));
        }
        // A post that named another team than its channel's is written with the team it named.
        let named_team = match place {
            MmPlace::Channel { name, .. } => xref_of(&it.xref, mattermost::SOURCE)
                .and_then(|r| r.field("team").map(str::to_string))
                .map(|team| MmPlace::Channel {
                    team,
                    name: name.clone(),
                }),
            MmPlace::Direct { .. } => None,
        };
        line(w, &mm_post_line(post, named_team.as_ref().unwrap_or(place)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_are_utc_dates() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(-1), "1969-12-31");
        assert_eq!(civil(16_815), "2016-01-15");
        assert_eq!(civil(19_782), "2024-02-29");
        assert_eq!(civil(19_783), "2024-03-01");
        assert_eq!(civil(11_016), "2000-02-29");
    }

    #[test]
    fn stored_fields_come_back_as_the_json_they_were() {
        assert_eq!(field_json("{\"value\":\"\"}"), json!({"value": ""}));
        assert_eq!(field_json("true"), json!(true));
        assert_eq!(field_json("1452837318"), json!(1452837318));
        assert_eq!(field_json("general"), json!("general"));
        assert_eq!(field_json("\"quoted\""), json!("\"quoted\""));
    }
}
