//! Slack workspace exports (the standard export zip).
//!
//! Layout: `users.json`, `channels.json`, and where present `groups.json` (private channels),
//! `dms.json` (direct messages) and `mpims.json` (group direct messages), then one folder per
//! conversation (named after the channel, group or group DM; a DM's folder is its id) of daily
//! files `YYYY-MM-DD.json`, each a JSON array of messages in `ts` order.
//!
//! Mapping: the workspace is one tenant; each channel, group, DM and group DM one conversation
//! (external id: Slack's channel id; title: its name; DMs are [`ConversationKind::Direct`]) with
//! its members; each user one user (external id: the Slack user id; the profile sealed under the
//! user key), and each bot that posts one user too (external id: its `bot_id`). Each message is
//! keyed by its `ts`; `thread_ts` becomes reply-to (the thread's parent), `edited` and
//! `message_changed` an edit (a revision), `message_deleted` a deletion, `file_share` files
//! attachment metadata (name, media type, size), `me_message` an action. Other subtypes
//! (`channel_join`, `bot_message`, `bot_add`, `file_comment`, topic changes, ...) are stored as
//! messages with their text, the subtype kept in the message's external reference. What is not
//! stored: reactions, pins, stars, message attachments' formatting (an empty bot message keeps
//! the attachments' `fallback` text as its body), file ids, URLs and contents, user avatars and
//! flags, `message_replied` thread summaries (the replies are stored themselves).
//!
//! The archive is read entry by entry: the user and conversation lists, then each day file,
//! one at a time (memory is bounded by the largest entry and the number of users).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use serde_json::Value;

use super::external::{malformed, nonempty, str_of, Importer, Incoming};
use super::xref::ExternalRef;
use super::{ExternalImportReport, ImportError, ImportOptions};
use crate::{Attachment, ConversationKind, MessageKind, NewMessage, UserId, UserProfile};

/// The source name in external references and the blind index.
pub const SOURCE: &str = "slack";

/// Largest zip entry read, in bytes (uncompressed): 256 MiB.
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;

/// The conversation lists of a Slack export, with the conversation type each holds.
pub const CONVERSATION_LISTS: [(&str, &str); 4] = [
    ("channels.json", "channel"),
    ("groups.json", "group"),
    ("dms.json", "dm"),
    ("mpims.json", "mpim"),
];

/// Slack's `ts` (`"1452837318.000002"`: Unix seconds and a 6-digit sequence) as UTC ms.
pub fn ts_to_ms(ts: &str) -> Option<i64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: i64 = secs.parse().ok()?;
    if secs < 0 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{frac:0<3}");
    let ms: i64 = padded.get(..3)?.parse().ok()?;
    secs.checked_mul(1000)?.checked_add(ms)
}

/// A number or a numeric string (Slack writes `created` both ways).
fn int_of(v: &Value, k: &str) -> Option<i64> {
    match v.get(k)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A field's value as text for an external reference (strings as they are, other JSON as
/// compact JSON).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Slack export zip being read: `name` names it in errors; entries larger than
/// `max_entry_bytes` uncompressed are refused.
pub(crate) struct Zip<R> {
    archive: zip::ZipArchive<R>,
    name: String,
    max_entry_bytes: u64,
}

impl<R: Read + Seek> Zip<R> {
    /// Opens the archive (reads its central directory).
    pub(crate) fn open(reader: R, name: String, max_entry_bytes: u64) -> Result<Self, ImportError> {
        let archive = zip::ZipArchive::new(reader).map_err(|e| {
            malformed(
                &name,
                "the archive",
                format!("not a readable zip archive (truncated or not a Slack export?): {e}"),
            )
        })?;
        Ok(Zip {
            archive,
            name,
            max_entry_bytes,
        })
    }

    fn entry_file(&self, entry: &str) -> String {
        format!("{}: {entry}", self.name)
    }

    /// `users.json` (its name in errors, and its JSON).
    fn users(&mut self) -> Result<(String, Value), ImportError> {
        let users_file = self.entry_file("users.json");
        let users = self.json("users.json")?.ok_or_else(|| {
            malformed(
                &users_file,
                "the archive",
                "no users.json: not a Slack export (export the workspace from Slack's admin pages)",
            )
        })?;
        Ok((users_file, users))
    }

    /// The day files (`FOLDER/NAME.json`, one level deep) by folder, in archive order.
    /// Entries outside any folder (`integration_logs.json`, canvases) are not conversations.
    fn day_files(&self) -> BTreeMap<String, Vec<String>> {
        let mut days: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in self.archive.file_names() {
            if let Some((folder, file)) = n.split_once('/') {
                if file.ends_with(".json") && !file.contains('/') {
                    days.entry(folder.to_string())
                        .or_default()
                        .push(n.to_string());
                }
            }
        }
        days
    }

    /// Reads one entry as JSON, or `None` if the archive has no such entry.
    fn json(&mut self, entry: &str) -> Result<Option<Value>, ImportError> {
        let file = self.entry_file(entry);
        let mut f = match self.archive.by_name(entry) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => {
                return Err(malformed(
                    &file,
                    "the entry",
                    format!("cannot read it: {e}"),
                ))
            }
        };
        let max = self.max_entry_bytes;
        if f.size() > max {
            return Err(malformed(
                &file,
                "the entry",
                format!(
                    "it is {} bytes uncompressed, more than the {max} bytes read",
                    f.size()
                ),
            ));
        }
        let mut bytes = Vec::new();
        (&mut f).take(max).read_to_end(&mut bytes).map_err(|e| {
            malformed(
                &file,
                "the entry",
                format!("cannot decompress it (is the archive truncated?): {e}"),
            )
        })?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            malformed(
                &file,
                format!("line {} column {}", e.line(), e.column()),
                format!("not valid JSON: {e}"),
            )
        })
    }
}

/// Refuses a folder of day files that no conversation list names.
fn check_folders<R: Read + Seek>(
    zip: &Zip<R>,
    days: &BTreeMap<String, Vec<String>>,
    known: impl Fn(&str) -> bool,
) -> Result<(), ImportError> {
    for (folder, files) in days {
        if !known(folder) {
            return Err(malformed(
                &zip.entry_file(files.first().map_or(folder.as_str(), String::as_str)),
                "the folder",
                format!(
                    "folder {folder:?} has no conversation in channels.json, groups.json, \
                     dms.json or mpims.json"
                ),
            ));
        }
    }
    Ok(())
}

fn array<'a>(v: &'a Value, file: &str) -> Result<&'a Vec<Value>, ImportError> {
    v.as_array()
        .ok_or_else(|| malformed(file, "the top level", "expected a JSON array"))
}

/// The profile chatvault keeps of a Slack user (sealed under the user key).
pub(crate) fn profile_of(u: &Value) -> UserProfile {
    let p = u.get("profile").cloned().unwrap_or(Value::Null);
    let display = nonempty(str_of(&p, "real_name"))
        .or_else(|| nonempty(str_of(u, "real_name")))
        .or_else(|| nonempty(str_of(&p, "display_name")))
        .or_else(|| nonempty(str_of(u, "name")))
        .or_else(|| nonempty(str_of(u, "id")))
        .unwrap_or_default();
    let mut fields = BTreeMap::new();
    for (name, v) in [
        ("slack.name", str_of(u, "name")),
        ("slack.real_name", str_of(u, "real_name")),
        ("slack.display_name", str_of(&p, "display_name")),
        ("slack.title", str_of(&p, "title")),
        ("slack.tz", str_of(u, "tz")),
    ] {
        if let Some(v) = nonempty(v) {
            fields.insert(name.to_string(), v);
        }
    }
    for flag in ["is_bot", "deleted", "is_admin"] {
        if u.get(flag).and_then(Value::as_bool) == Some(true) {
            fields.insert(format!("slack.{flag}"), "true".into());
        }
    }
    UserProfile {
        display_name: display,
        email: nonempty(str_of(&p, "email")),
        phone: nonempty(str_of(&p, "phone")),
        fields,
    }
}

/// The Slack id of the `n`-th (0-based) entry of `users.json` (`file`, named in errors).
///
/// # Errors
///
/// [`ImportError::Malformed`] if it has no `id` (or an empty one).
pub fn user_id_of<'a>(file: &str, n: usize, u: &'a Value) -> Result<&'a str, ImportError> {
    str_of(u, "id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed(file, format!("entry {}", n + 1), "user has no id"))
}

/// One entry of a conversation list (`channels.json`, `groups.json`, `dms.json`,
/// `mpims.json`), parsed without a vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConversation {
    /// Slack's channel id: the conversation's external id.
    pub id: String,
    /// Its `name`, when not empty: the conversation's title.
    pub name: Option<String>,
    /// The folder of its day files: its id for a DM or a conversation without a name, else
    /// its name.
    pub folder: String,
    /// `created` (Unix seconds, a number or a numeric string; 0 if absent, negative, or too
    /// large for UTC ms in an `i64`) in UTC ms: the join time of its members.
    pub created_ms: i64,
    /// Its `members`, as Slack user ids (a member that is not a string is `""`, which no user
    /// has).
    pub members: Vec<String>,
    /// [`ConversationKind::Direct`] for a DM, else group.
    pub kind: ConversationKind,
    /// The fields of its external reference: `type` (the list's: `channel`, `group`, `dm`,
    /// `mpim`), `folder`, and as JSON text where present `name`, `created`, `creator`,
    /// `is_archived`, `is_general`, `topic`, `purpose`.
    pub fields: BTreeMap<String, String>,
}

/// Parses the `n`-th (0-based) entry of conversation list `file`, whose conversations are of
/// type `ctype` (the second column of [`CONVERSATION_LISTS`]).
///
/// # Errors
///
/// [`ImportError::Malformed`] if it has no `id` (or an empty one).
pub fn parse_conversation(
    file: &str,
    ctype: &str,
    n: usize,
    ch: &Value,
) -> Result<SlackConversation, ImportError> {
    let id = str_of(ch, "id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed(file, format!("entry {}", n + 1), "conversation has no id"))?;
    let name = str_of(ch, "name").filter(|s| !s.is_empty());
    let folder = match (ctype, name) {
        ("dm", _) | (_, None) => id.to_string(),
        (_, Some(n)) => n.to_string(),
    };
    let created_ms = int_of(ch, "created")
        .unwrap_or(0)
        .max(0)
        .checked_mul(1000)
        .unwrap_or(0);
    let members = ch
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| m.as_str().unwrap_or_default().to_string())
        .collect();
    let mut fields = BTreeMap::new();
    fields.insert("type".to_string(), ctype.to_string());
    fields.insert("folder".to_string(), folder.clone());
    for k in [
        "name",
        "created",
        "creator",
        "is_archived",
        "is_general",
        "topic",
        "purpose",
    ] {
        if let Some(v) = ch.get(k) {
            fields.insert(k.to_string(), text_of(v));
        }
    }
    Ok(SlackConversation {
        id: id.to_string(),
        name: name.map(str::to_string),
        folder,
        created_ms,
        members,
        kind: if ctype == "dm" {
            ConversationKind::Direct
        } else {
            ConversationKind::Group
        },
        fields,
    })
}

/// Imports a Slack export zip into the tenant named by [`ImportOptions::tenant`], or else by
/// the workspace's team id (`team_id` of the first user in `users.json`, or `slack`).
///
/// Idempotent and resumable: each message is keyed by its `ts` (blind index), so messages
/// already stored are skipped (and checked: another author or time is a
/// [`ImportError::Conflict`]), edits and deletions already applied are not applied again, and
/// an import stopped part-way (an error, a crash, or `on_progress` returning `false` after a
/// batch) continues where it stopped. A malformed entry (bad JSON, an unknown user, a folder
/// with no conversation, a message without `ts`) is an [`ImportError::Malformed`] naming the
/// entry; what was imported before it stays.
pub fn import_slack_export(
    vault: &crate::Vault,
    path: &Path,
    options: &ImportOptions,
    on_progress: &mut dyn FnMut(&ExternalImportReport) -> bool,
) -> Result<ExternalImportReport, ImportError> {
    let name = path.display().to_string();
    let f = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = Zip::open(f, name, MAX_ENTRY_BYTES)?;
    let (users_file, users) = zip.users()?;
    let users = array(&users, &users_file)?;
    let tenant = options.tenant.clone().unwrap_or_else(|| {
        users
            .first()
            .and_then(|u| str_of(u, "team_id"))
            .unwrap_or("slack")
            .to_string()
    });
    let mut imp = Importer::new(vault, &tenant, SOURCE, zip.name.clone(), on_progress)?;
    for (n, u) in users.iter().enumerate() {
        let id = user_id_of(&users_file, n, u)?;
        imp.user(id, || profile_of(u))?;
    }

    // The conversations, with the folders their day files are in.
    let mut folders: Vec<(String, crate::ConversationId)> = Vec::new();
    for (list, ctype) in CONVERSATION_LISTS {
        let file = zip.entry_file(list);
        let Some(v) = zip.json(list)? else { continue };
        for (n, ch) in array(&v, &file)?.iter().enumerate() {
            let sc = parse_conversation(&file, ctype, n, ch)?;
            let mut members = Vec::new();
            for uid in &sc.members {
                let u = imp.known_user(uid)?.ok_or_else(|| {
                    malformed(
                        &file,
                        format!("entry {} ({})", n + 1, sc.id),
                        format!("member {uid:?} is not in users.json"),
                    )
                })?;
                members.push((u, sc.created_ms));
            }
            let xref = ExternalRef {
                source: SOURCE.into(),
                id: sc.id.clone(),
                fields: sc.fields,
            };
            let c = imp.conversation(&sc.id, sc.kind, sc.name.as_deref(), &members, &xref)?;
            folders.push((sc.folder, c));
        }
    }

    // Day files, by folder, in date order. Entries outside any folder (integration_logs.json,
    // canvases) are not conversations.
    let mut days = zip.day_files();
    check_folders(&zip, &days, |folder| {
        folders.iter().any(|(f, _)| f == folder)
    })?;
    for (folder, c) in &folders {
        let Some(files) = days.get_mut(folder) else {
            continue;
        };
        files.sort();
        for day in files.iter() {
            let file = zip.entry_file(day);
            let v = match zip.json(day) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => return Err(imp.fail(e)),
            };
            let list = match array(&v, &file) {
                Ok(l) => l,
                Err(e) => return Err(imp.fail(e)),
            };
            for (n, m) in list.iter().enumerate() {
                if let Err(e) = message(&mut imp, *c, &file, n, m) {
                    return Err(imp.fail(e));
                }
                if imp.stopped() {
                    return imp.finish();
                }
            }
        }
    }
    imp.finish()
}

/// One record of a Slack day file, parsed without a vault: what the importer does with it.
/// [`parse_message`] makes it; the importer then resolves users, threads and edits against the
/// vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackRecord {
    /// Read but not stored; the reason as the import summary counts it (`skipped`).
    Skipped(String),
    /// A `message_changed` event: the message with `ts` = `target` now reads `body`
    /// (a revision written at `at_ms`, UTC ms: the `edited.ts`, else the event's `ts`).
    Edit {
        /// The `ts` of the message edited.
        target: String,
        /// Its new text.
        body: String,
        /// When, UTC ms.
        at_ms: i64,
    },
    /// A `message_deleted` event: the message with `ts` = `target` was deleted at `at_ms`.
    Delete {
        /// The `ts` of the message deleted (`deleted_ts`, else `previous_message.ts`).
        target: String,
        /// When, UTC ms (the event's `ts`).
        at_ms: i64,
    },
    /// A message to store.
    Message(SlackMessage),
}

/// Who wrote a Slack message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackAuthor {
    /// A user of `users.json`, by Slack user id (the importer refuses one not listed).
    User(String),
    /// A bot (`bot_id`, with no `user`, or subtype `bot_message`): a user of its own, created
    /// at import, named after `username` (else the bot id).
    Bot {
        /// The bot id (its user's external id).
        bot_id: String,
        /// The `username` it posted as, if any.
        username: Option<String>,
    },
}

/// A Slack message as the importer stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackMessage {
    /// Its `ts`, the message's external id.
    pub ts: String,
    /// `ts` as UTC ms.
    pub sent_at_ms: i64,
    /// Its author.
    pub author: SlackAuthor,
    /// Its text (for an empty one, its attachments' `fallback` texts joined by `\n`).
    pub body: String,
    /// [`MessageKind::Action`] for subtype `me_message`, else text.
    pub kind: MessageKind,
    /// Its `thread_ts`, when not empty: a reply to the message with that `ts` unless it is its
    /// own.
    pub thread_ts: Option<String>,
    /// Subtype `channel_join` or `group_join`: the author becomes a member at `sent_at_ms`.
    pub joins: bool,
    /// Reactions counted (not stored).
    pub reactions: u64,
    /// File metadata (`files`, or the older single `file`).
    pub attachments: Vec<Attachment>,
    /// `edited.ts` as UTC ms: stored as a revision with the same text.
    pub edited_at_ms: Option<i64>,
    /// The fields of its external reference (`subtype`, `thread_ts`, `bot_id`, `username`,
    /// and a bot message's `user`).
    pub fields: BTreeMap<String, String>,
}

/// `entry N` or `entry N (ts TS)`: where in a day file a message is (`n` 0-based).
fn entry_name(n: usize, ts: &str) -> String {
    if ts.is_empty() {
        format!("entry {}", n + 1)
    } else {
        format!("entry {} (ts {ts})", n + 1)
    }
}

/// Parses the `n`-th (0-based) record of day file `file` (named in errors) without touching a
/// vault.
///
/// # Errors
///
/// [`ImportError::Malformed`] naming `file` and the entry: not a JSON object, no valid `ts`, a
/// `message_changed` without `message.ts`, a `message_deleted` without `deleted_ts`, a message
/// with neither `user` nor `bot_id`.
pub fn parse_message(file: &str, n: usize, m: &Value) -> Result<SlackRecord, ImportError> {
    let ts = str_of(m, "ts").unwrap_or_default();
    let entry = entry_name(n, ts);
    if !m.is_object() {
        return Err(malformed(file, &entry, "expected a JSON object"));
    }
    if let Some(t) = str_of(m, "type").filter(|t| *t != "message") {
        return Ok(SlackRecord::Skipped(format!(
            "not a message (type {t:?}): not stored"
        )));
    }
    let sent_at_ms = ts_to_ms(ts).ok_or_else(|| {
        malformed(
            file,
            &entry,
            format!("\"ts\" is missing or not Unix seconds like \"1452837318.000002\": {ts:?}"),
        )
    })?;
    let subtype = str_of(m, "subtype");
    match subtype {
        Some("message_changed") => {
            let inner = m.get("message").cloned().unwrap_or(Value::Null);
            let target = str_of(&inner, "ts")
                .ok_or_else(|| malformed(file, &entry, "message_changed without message.ts"))?;
            let at_ms = inner
                .get("edited")
                .and_then(|e| str_of(e, "ts"))
                .and_then(ts_to_ms)
                .unwrap_or(sent_at_ms);
            return Ok(SlackRecord::Edit {
                target: target.to_string(),
                body: body_of(&inner),
                at_ms,
            });
        }
        Some("message_deleted") => {
            let target = str_of(m, "deleted_ts")
                .or_else(|| m.get("previous_message").and_then(|p| str_of(p, "ts")))
                .ok_or_else(|| malformed(file, &entry, "message_deleted without deleted_ts"))?;
            return Ok(SlackRecord::Delete {
                target: target.to_string(),
                at_ms: sent_at_ms,
            });
        }
        Some("message_replied") => {
            return Ok(SlackRecord::Skipped(
                "thread summaries (message_replied; the replies are stored themselves)".into(),
            ));
        }
        _ => {}
    }
    if m.get("hidden").and_then(Value::as_bool) == Some(true) {
        return Ok(SlackRecord::Skipped("hidden events: not stored".into()));
    }
    let bot_id = str_of(m, "bot_id").filter(|s| !s.is_empty());
    // A file comment's author is the comment's.
    let user = str_of(m, "user")
        .or_else(|| m.get("comment").and_then(|c| str_of(c, "user")))
        .filter(|s| !s.is_empty());
    let mut fields = BTreeMap::new();
    let author = match (user, bot_id) {
        (u, Some(b)) if u.is_none() || subtype == Some("bot_message") => {
            let username = str_of(m, "username").filter(|s| !s.is_empty());
            fields.insert("bot_id".to_string(), b.to_string());
            if let Some(un) = username {
                fields.insert("username".to_string(), un.to_string());
            }
            if let Some(u) = u {
                fields.insert("user".to_string(), u.to_string());
            }
            SlackAuthor::Bot {
                bot_id: b.to_string(),
                username: username.map(str::to_string),
            }
        }
        (Some(u), _) => SlackAuthor::User(u.to_string()),
        (None, _) => {
            return Err(malformed(
                file,
                &entry,
                "message has neither user nor bot_id",
            ));
        }
    };
    if let Some(st) = subtype {
        fields.insert("subtype".to_string(), st.to_string());
    }
    let thread_ts = str_of(m, "thread_ts")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(tt) = &thread_ts {
        fields.insert("thread_ts".to_string(), tt.clone());
    }
    let reactions = m
        .get("reactions")
        .and_then(Value::as_array)
        .map_or(0, |r| r.len() as u64);
    let files: Vec<&Value> = match (m.get("files"), m.get("file")) {
        (Some(Value::Array(fs)), _) => fs.iter().collect(),
        (_, Some(f)) if f.is_object() => vec![f],
        _ => Vec::new(),
    };
    let attachments = files
        .into_iter()
        .map(|f| Attachment {
            name: str_of(f, "name")
                .or_else(|| str_of(f, "title"))
                .unwrap_or_default()
                .to_string(),
            media_type: str_of(f, "mimetype").unwrap_or_default().to_string(),
            size_bytes: int_of(f, "size").unwrap_or(0).max(0) as u64,
        })
        .collect();
    Ok(SlackRecord::Message(SlackMessage {
        ts: ts.to_string(),
        sent_at_ms,
        author,
        body: body_of(m),
        kind: if subtype == Some("me_message") {
            MessageKind::Action
        } else {
            MessageKind::Text
        },
        thread_ts,
        joins: matches!(subtype, Some("channel_join" | "group_join")),
        reactions,
        attachments,
        edited_at_ms: m
            .get("edited")
            .and_then(|e| str_of(e, "ts"))
            .and_then(ts_to_ms),
        fields,
    }))
}

/// Parses and stores the `n`-th record of day file `file` into conversation `c`.
fn message(
    imp: &mut Importer<'_, '_>,
    c: crate::ConversationId,
    file: &str,
    n: usize,
    m: &Value,
) -> Result<(), ImportError> {
    let sm = match parse_message(file, n, m)? {
        SlackRecord::Skipped(reason) => {
            imp.report.skip(&reason, 1);
            return Ok(());
        }
        SlackRecord::Edit {
            target,
            body,
            at_ms,
        } => return imp.edit(c, &target, &body, at_ms),
        SlackRecord::Delete { target, at_ms } => return imp.delete(c, &target, at_ms),
        SlackRecord::Message(sm) => sm,
    };
    let author: UserId = match &sm.author {
        SlackAuthor::Bot { bot_id, username } => imp.user(bot_id, || UserProfile {
            fields: BTreeMap::from([("slack.bot".to_string(), "true".to_string())]),
            ..UserProfile::named(username.as_deref().unwrap_or(bot_id))
        })?,
        SlackAuthor::User(u) => imp.known_user(u)?.ok_or_else(|| {
            malformed(
                file,
                entry_name(n, &sm.ts),
                format!("user {u:?} is not in users.json (and the message has no bot_id)"),
            )
        })?,
    };
    let mut reply_to = None;
    if let Some(tt) = sm.thread_ts.as_deref().filter(|tt| *tt != sm.ts) {
        reply_to = imp.resolve(c, tt)?;
        if reply_to.is_none() {
            imp.report
                .note("thread replies whose parent is not in the export (stored without the link)");
        }
    }
    if sm.joins {
        imp.member(c, author, sm.sent_at_ms)?;
    }
    imp.report.skip("reactions (not stored)", sm.reactions);
    let msg = NewMessage {
        author,
        sent_at_ms: sm.sent_at_ms,
        body: sm.body.clone(),
        kind: sm.kind,
        reply_to,
        also_reply_to: Vec::new(),
        attachments: sm.attachments,
    };
    let xref = ExternalRef {
        source: SOURCE.into(),
        id: sm.ts.clone(),
        fields: sm.fields,
    };
    imp.message(c, Incoming { msg, xref })?;
    if let Some(at) = sm.edited_at_ms {
        // The standard export keeps only the current text: the edit is a revision with it.
        imp.edit(c, &sm.ts, &sm.body, at)?;
    }
    Ok(())
}

/// A message's text; for an empty one with message attachments (bots), their fallback texts.
fn body_of(m: &Value) -> String {
    let text = str_of(m, "text").unwrap_or_default();
    if !text.is_empty() {
        return text.to_string();
    }
    m.get("attachments")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| str_of(x, "fallback"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// What [`dry_run`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DryRun {
    pub users: u64,
    pub conversations: u64,
    pub day_files: u64,
    /// Every record of every day file, parsed, in import order.
    pub records: Vec<SlackRecord>,
}

/// Reads a Slack export as [`import_slack_export`] does, in the same order and with the same
/// errors for malformed input, but without a vault: users are known when `users.json` lists
/// them (or, for bots, once they posted). For fuzzing; memory is bounded by `max_entry_bytes`
/// per entry and by the records kept.
pub(crate) fn dry_run<R: Read + Seek>(
    reader: R,
    name: &str,
    max_entry_bytes: u64,
) -> Result<DryRun, ImportError> {
    let mut zip = Zip::open(reader, name.to_string(), max_entry_bytes)?;
    let mut out = DryRun::default();
    let (users_file, users) = zip.users()?;
    let users = array(&users, &users_file)?;
    let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (n, u) in users.iter().enumerate() {
        known.insert(user_id_of(&users_file, n, u)?.to_string());
        let _ = profile_of(u);
        out.users += 1;
    }
    let mut folders: Vec<String> = Vec::new();
    for (list, ctype) in CONVERSATION_LISTS {
        let file = zip.entry_file(list);
        let Some(v) = zip.json(list)? else { continue };
        for (n, ch) in array(&v, &file)?.iter().enumerate() {
            let sc = parse_conversation(&file, ctype, n, ch)?;
            if let Some(uid) = sc.members.iter().find(|u| !known.contains(*u)) {
                return Err(malformed(
                    &file,
                    format!("entry {} ({})", n + 1, sc.id),
                    format!("member {uid:?} is not in users.json"),
                ));
            }
            folders.push(sc.folder);
            out.conversations += 1;
        }
    }
    let mut days = zip.day_files();
    check_folders(&zip, &days, |folder| folders.iter().any(|f| f == folder))?;
    for folder in &folders {
        let Some(files) = days.get_mut(folder) else {
            continue;
        };
        files.sort();
        for day in files.iter() {
            let file = zip.entry_file(day);
            let Some(v) = zip.json(day)? else { continue };
            out.day_files += 1;
            for (n, m) in array(&v, &file)?.iter().enumerate() {
                let r = parse_message(&file, n, m)?;
                if let SlackRecord::Message(sm) = &r {
                    match &sm.author {
                        SlackAuthor::Bot { bot_id, .. } => {
                            known.insert(bot_id.clone());
                        }
                        SlackAuthor::User(u) if !known.contains(u) => {
                            return Err(malformed(
                                &file,
                                entry_name(n, &sm.ts),
                                format!(
                                    "user {u:?} is not in users.json (and the message has no \
                                     bot_id)"
                                ),
                            ));
                        }
                        SlackAuthor::User(_) => {}
                    }
                }
                out.records.push(r);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::write_back::ms_to_ts;

    /// Regression (fuzz target `slack_export`): a `created` beyond what i64 milliseconds hold
    /// (here a numeric string, 3.3e18 seconds) overflowed `* 1000`: a panic in debug builds, a
    /// wrapped (possibly negative) join time in release builds.
    #[test]
    fn a_created_time_out_of_range_is_no_overflow() {
        for created in [
            serde_json::json!("3330662124416565900"),
            serde_json::json!(9.3e18),
            serde_json::json!(i64::MAX),
        ] {
            let ch = serde_json::json!({"id": "C1", "name": "general", "created": created});
            let c = parse_conversation("channels.json", "channel", 0, &ch).unwrap();
            assert_eq!(c.created_ms, 0, "{created}");
            assert_eq!(c.fields["created"], text_of(&created), "kept as written");
        }
        let ch = serde_json::json!({"id": "C1", "created": "1452988822"});
        let c = parse_conversation("channels.json", "channel", 0, &ch).unwrap();
        assert_eq!(c.created_ms, 1_452_988_822_000);
    }

    #[test]
    fn ts_parses_to_ms_and_back() {
        assert_eq!(ts_to_ms("1452837318.000002"), Some(1_452_837_318_000));
        assert_eq!(ts_to_ms("1452837318.123456"), Some(1_452_837_318_123));
        assert_eq!(ts_to_ms("1452837318.5"), Some(1_452_837_318_500));
        assert_eq!(ts_to_ms("1452837318"), Some(1_452_837_318_000));
        for bad in ["", "x.1", "-5.000001", "12.3a", "1.2.3"] {
            assert_eq!(ts_to_ms(bad), None, "{bad:?}");
        }
        for ms in [0, 999, 1_452_837_318_123, 4_102_444_800_001] {
            for seq in [0, 7, 999, 1000] {
                assert_eq!(ts_to_ms(&ms_to_ts(ms, seq)), Some(ms), "{ms} {seq}");
            }
        }
        assert_eq!(ms_to_ts(1_452_837_318_123, 2), "1452837318.123002");
    }
}
