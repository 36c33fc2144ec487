//! Mattermost bulk exports (JSON Lines, `{"type":"version","version":1}` first).
//!
//! Records: `team`, `channel` (`O` public, `P` private), `user` (with team and channel
//! memberships), `post` (with `replies`), `direct_channel` and `direct_post` (direct and
//! group-direct messages), `emoji`; others (`scheme`, `role`, ...) are counted and skipped.
//!
//! Mapping: the whole export is one tenant (Mattermost users span teams); a channel is a
//! conversation with external id `TEAM/CHANNEL` and its display name as title; a direct
//! channel is a conversation with external id `dm:` and its members' usernames sorted and
//! joined by `,` ([`ConversationKind::Direct`] for two members, group otherwise); a user is a
//! user (external id: the username; name, e-mail, nickname, position, roles and locale sealed
//! in the profile); a post is a message keyed by `create_at:user` (`create_at:user#N` for the
//! N-th post in a row of that author with the same `create_at` in the same channel or thread),
//! each reply a message keyed by `ROOT/create_at:user` that replies to its post, in file order (a reply stamped before its
//! post keeps its time and its link; history is not reordered). `edit_at` is an edit (a
//! revision with the same text) and `delete_at`, which Mattermost's own exports leave out but
//! chatvault writes back, a deletion. Attachments keep their `path` as the attachment name.
//! Not stored: reactions, `flagged_by`, `props`, notification settings and favourites, custom
//! emoji, team descriptions and types beyond what the channels' references keep, join times
//! (memberships from user records are dated 0).
//!
//! The file is read line by line (memory is bounded by the longest line, the users and the
//! channels).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use super::external::{malformed, nonempty, str_of, Importer, Incoming};
use super::xref::ExternalRef;
use super::{ExternalImportReport, ImportError, ImportOptions};
use crate::{
    Attachment, ConversationId, ConversationKind, MessageId, MessageKind, NewMessage, UserProfile,
};

/// The source name in external references and the blind index.
pub const SOURCE: &str = "mattermost";

/// Longest line read, in bytes: 64 MiB.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The external id of a direct channel with these members.
pub fn direct_channel_id(members: &[&str]) -> String {
    let mut m: Vec<&str> = members.to_vec();
    m.sort_unstable();
    m.dedup();
    format!("dm:{}", m.join(","))
}

/// The profile chatvault keeps of a Mattermost user (sealed under the user key).
pub(crate) fn profile_of(u: &Value) -> UserProfile {
    let first = str_of(u, "first_name").unwrap_or_default();
    let last = str_of(u, "last_name").unwrap_or_default();
    let full = format!("{first} {last}").trim().to_string();
    let display = if full.is_empty() {
        str_of(u, "username").unwrap_or_default().to_string()
    } else {
        full
    };
    let mut fields = BTreeMap::new();
    for k in [
        "first_name",
        "last_name",
        "nickname",
        "position",
        "roles",
        "locale",
        "auth_service",
    ] {
        if let Some(v) = nonempty(str_of(u, k)) {
            fields.insert(format!("mattermost.{k}"), v);
        }
    }
    UserProfile {
        display_name: display,
        email: nonempty(str_of(u, "email")),
        phone: None,
        fields,
    }
}

struct Run<'v, 'p> {
    imp: Importer<'v, 'p>,
    file: String,
    /// Team name -> (display name, type).
    teams: HashMap<String, (String, String)>,
    /// `TEAM/CHANNEL` -> conversation.
    channels: HashMap<String, ConversationId>,
    /// Channel name -> its `TEAM/CHANNEL` ids.
    by_name: HashMap<String, Vec<String>>,
    /// (conversation, author, thread) -> the last post's `create_at` and how many posts in a
    /// row had it: the second post of an author with the same `create_at` in the same place is
    /// keyed `create_at:user#2` (logs with second or minute precision have many).
    last: HashMap<(ConversationId, String, String), (i64, u32)>,
}

/// Imports a Mattermost bulk export (JSON Lines) into the tenant named by
/// [`ImportOptions::tenant`], or else after the first team (or `mattermost` if it has none).
/// Idempotent and resumable like [`super::slack::import_slack_export`]; a malformed line (bad
/// JSON, no version line, an unknown team, channel or user) is an [`ImportError::Malformed`]
/// naming the line; what was imported before it stays.
pub fn import_mattermost_export(
    vault: &crate::Vault,
    path: &Path,
    options: &ImportOptions,
    on_progress: &mut dyn FnMut(&ExternalImportReport) -> bool,
) -> Result<ExternalImportReport, ImportError> {
    let file = path.display().to_string();
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The tenant's default name needs the first team: read up to it (a short prefix).
    let tenant = match &options.tenant {
        Some(t) => t.clone(),
        None => first_team(path)?.unwrap_or_else(|| SOURCE.to_string()),
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let imp = Importer::new(vault, &tenant, SOURCE, file.clone(), on_progress)?;
    let mut run = Run {
        imp,
        file: file.clone(),
        teams: HashMap::new(),
        channels: HashMap::new(),
        by_name: HashMap::new(),
        last: HashMap::new(),
    };
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let entry = format!("line {line_no}");
        if buf.len() > MAX_LINE_BYTES {
            return Err(malformed(
                &file,
                &entry,
                format!("longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(&buf).map_err(|e| {
            malformed(
                &file,
                &entry,
                format!("not valid UTF-8 (byte {})", e.valid_up_to()),
            )
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text).map_err(|e| {
            malformed(
                &file,
                &entry,
                format!("not valid JSON (column {}): {e}", e.column()),
            )
        })?;
        let kind = str_of(&v, "type").unwrap_or_default();
        if line_no == 1 {
            if kind != "version" || v.get("version").and_then(Value::as_i64) != Some(1) {
                return Err(malformed(
                    &file,
                    &entry,
                    "expected {\"type\":\"version\",\"version\":1} (a Mattermost bulk export \
                     starts with it)",
                ));
            }
            continue;
        }
        let body = v.get(kind).cloned().unwrap_or(Value::Null);
        if let Err(e) = run.record(kind, &body, &entry) {
            return Err(run.imp.fail(e));
        }
        if run.imp.stopped() {
            break;
        }
    }
    if line_no == 0 {
        return Err(malformed(&file, "line 1", "the file is empty"));
    }
    run.imp.finish()
}

impl Run<'_, '_> {
    fn record(&mut self, kind: &str, body: &Value, entry: &str) -> Result<(), ImportError> {
        let run = self;
        let (body, entry) = (body, entry);
        match kind {
            "team" => run.team(body, entry)?,
            "channel" => run.channel(body, entry)?,
            "user" => run.user(body, entry)?,
            "post" => run.post(body, entry, false)?,
            "direct_channel" => {
                run.direct_channel(body, entry)?;
            }
            "direct_post" => run.post(body, entry, true)?,
            "emoji" => run.imp.report.skip("custom emoji (not stored)", 1),
            "version" => {
                return Err(malformed(&run.file, entry, "a second version line"));
            }
            other => run
                .imp
                .report
                .skip(&format!("{other:?} records (not stored)"), 1),
        }
        Ok(())
    }
}

fn first_team(path: &Path) -> Result<Option<String>, ImportError> {
    let f = File::open(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for line in BufReader::new(f).lines().take(1000) {
        let Ok(line) = line else { return Ok(None) };
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if str_of(&v, "type") == Some("team") {
                return Ok(v
                    .get("team")
                    .and_then(|t| str_of(t, "name"))
                    .map(str::to_string));
            }
        }
    }
    Ok(None)
}

impl Run<'_, '_> {
    fn need<'a>(
        &self,
        v: &'a Value,
        k: &str,
        entry: &str,
        what: &str,
    ) -> Result<&'a str, ImportError> {
        str_of(v, k)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| malformed(&self.file, entry, format!("{what} has no {k:?}")))
    }

    fn team(&mut self, t: &Value, entry: &str) -> Result<(), ImportError> {
        let name = self.need(t, "name", entry, "team")?;
        self.teams.insert(
            name.to_string(),
            (
                str_of(t, "display_name").unwrap_or(name).to_string(),
                str_of(t, "type").unwrap_or("O").to_string(),
            ),
        );
        Ok(())
    }

    fn channel(&mut self, ch: &Value, entry: &str) -> Result<(), ImportError> {
        let team = self.need(ch, "team", entry, "channel")?;
        let name = self.need(ch, "name", entry, "channel")?;
        let Some((team_display, team_type)) = self.teams.get(team).cloned() else {
            return Err(malformed(
                &self.file,
                entry,
                format!("channel {name:?} names team {team:?}, which no earlier team line defines"),
            ));
        };
        let id = format!("{team}/{name}");
        let mut fields = BTreeMap::from([
            ("type".to_string(), "channel".to_string()),
            ("team".to_string(), team.to_string()),
            ("team_display_name".to_string(), team_display),
            ("team_type".to_string(), team_type),
            ("name".to_string(), name.to_string()),
        ]);
        for k in ["display_name", "type", "header", "purpose"] {
            if let Some(v) = str_of(ch, k) {
                let key = if k == "type" { "channel_type" } else { k };
                fields.insert(key.to_string(), v.to_string());
            }
        }
        let xref = ExternalRef {
            source: SOURCE.into(),
            id: id.clone(),
            fields,
        };
        let title = str_of(ch, "display_name").filter(|s| !s.is_empty());
        let c = self
            .imp
            .conversation(&id, ConversationKind::Group, title, &[], &xref)?;
        self.channels.insert(id.clone(), c);
        self.by_name.entry(name.to_string()).or_default().push(id);
        Ok(())
    }

    fn user(&mut self, u: &Value, entry: &str) -> Result<(), ImportError> {
        let username = self.need(u, "username", entry, "user")?;
        let uid = self.imp.user(username, || profile_of(u))?;
        for t in u
            .get("teams")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let team = str_of(t, "name").unwrap_or_default();
            for ch in t
                .get("channels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let cname = str_of(ch, "name").unwrap_or_default();
                let id = format!("{team}/{cname}");
                let Some(c) = self.channels.get(&id).copied() else {
                    return Err(malformed(
                        &self.file,
                        entry,
                        format!(
                            "user {username:?} is a member of channel {cname:?} of team \
                             {team:?}, which no earlier channel line defines"
                        ),
                    ));
                };
                self.imp.member(c, uid, 0)?;
            }
        }
        Ok(())
    }

    fn members<'a>(&self, v: &'a Value, k: &str, entry: &str) -> Result<Vec<&'a str>, ImportError> {
        let list = v
            .get(k)
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(&self.file, entry, format!("no {k:?} list")))?;
        let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        if names.is_empty() {
            return Err(malformed(&self.file, entry, format!("{k:?} is empty")));
        }
        Ok(names)
    }

    fn direct_channel(&mut self, d: &Value, entry: &str) -> Result<ConversationId, ImportError> {
        let members = self.members(d, "members", entry)?;
        self.direct(&members, str_of(d, "header"), entry)
    }

    fn direct(
        &mut self,
        members: &[&str],
        header: Option<&str>,
        entry: &str,
    ) -> Result<ConversationId, ImportError> {
        let id = direct_channel_id(members);
        if let Some(c) = self.channels.get(&id) {
            return Ok(*c);
        }
        let mut ms = Vec::new();
        for m in members {
            let u = self.imp.known_user(m)?.ok_or_else(|| {
                malformed(
                    &self.file,
                    entry,
                    format!("direct channel member {m:?} is not a user of the export (no earlier user line)"),
                )
            })?;
            if !ms.iter().any(|(x, _)| *x == u) {
                ms.push((u, 0));
            }
        }
        let mut fields = BTreeMap::from([
            ("type".to_string(), "direct_channel".to_string()),
            ("members".to_string(), members.join(",")),
        ]);
        if let Some(h) = header {
            fields.insert("header".to_string(), h.to_string());
        }
        let kind = if ms.len() == 2 {
            ConversationKind::Direct
        } else {
            ConversationKind::Group
        };
        let xref = ExternalRef {
            source: SOURCE.into(),
            id: id.clone(),
            fields,
        };
        let c = self.imp.conversation(&id, kind, None, &ms, &xref)?;
        self.channels.insert(id, c);
        Ok(c)
    }

    fn post(&mut self, p: &Value, entry: &str, direct: bool) -> Result<(), ImportError> {
        let mut team_field = None;
        let c = if direct {
            let members = self.members(p, "channel_members", entry)?;
            let id = direct_channel_id(&members);
            if !self.channels.contains_key(&id) {
                self.imp.report.note(
                    "direct channels with no direct_channel line (created from their posts' \
                     channel_members)",
                );
            }
            self.direct(&members, None, entry)?
        } else {
            let team = self.need(p, "team", entry, "post")?;
            let channel = self.need(p, "channel", entry, "post")?;
            let id = format!("{team}/{channel}");
            let by_name = match self.by_name.get(channel).map(Vec::as_slice) {
                Some([only]) => self.channels.get(only).copied(),
                _ => None,
            };
            match (self.channels.get(&id), by_name) {
                (Some(c), _) => *c,
                // The post names the wrong team (seen in real exports): the channel name is
                // unambiguous, so it goes there, and the team it names is kept for the export.
                (None, Some(c)) => {
                    team_field = Some(team.to_string());
                    self.imp.report.note(
                        "posts naming a team their channel is not in (stored in the channel \
                         of that name; the team they name is kept)",
                    );
                    c
                }
                (None, None) => {
                    return Err(malformed(
                        &self.file,
                        entry,
                        format!(
                            "post in channel {channel:?} of team {team:?}, which no earlier \
                                 channel line defines"
                        ),
                    ))
                }
            }
        };
        let root_key = self.one(c, p, entry, None, team_field)?;
        for r in p
            .get("replies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.one(c, r, entry, Some(&root_key), None)?;
        }
        Ok(())
    }

    /// Stores one post or reply; returns its external id.
    fn one(
        &mut self,
        c: ConversationId,
        p: &Value,
        entry: &str,
        root: Option<&(String, Option<MessageId>)>,
        team_field: Option<String>,
    ) -> Result<(String, Option<MessageId>), ImportError> {
        let what = if root.is_some() { "reply" } else { "post" };
        let user = self.need(p, "user", entry, what)?;
        let author = self.imp.known_user(user)?.ok_or_else(|| {
            malformed(
                &self.file,
                entry,
                format!(
                    "{what} by {user:?}, who is not a user of the export (no earlier user line)"
                ),
            )
        })?;
        let create_at = p
            .get("create_at")
            .and_then(Value::as_i64)
            .filter(|t| *t >= 0)
            .ok_or_else(|| {
                malformed(
                    &self.file,
                    entry,
                    format!("{what} has no \"create_at\" (UTC ms, not negative)"),
                )
            })?;
        let thread = root.map(|(r, _)| r.clone()).unwrap_or_default();
        let seen = self
            .last
            .entry((c, user.to_string(), thread.clone()))
            .or_insert((create_at, 0));
        if seen.0 == create_at {
            seen.1 += 1;
        } else {
            *seen = (create_at, 1);
        }
        let nth = match seen.1 {
            1 => String::new(),
            n => format!("#{n}"),
        };
        let key = match root {
            None => format!("{create_at}:{user}{nth}"),
            Some(_) => format!("{thread}/{create_at}:{user}{nth}"),
        };
        let body = str_of(p, "message").unwrap_or_default().to_string();
        let reactions = p
            .get("reactions")
            .and_then(Value::as_array)
            .map_or(0, |r| r.len() as u64);
        self.imp.report.skip("reactions (not stored)", reactions);
        let attachments = p
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| str_of(a, "path"))
            .map(|path| Attachment {
                name: path.to_string(),
                media_type: String::new(),
                size_bytes: 0,
            })
            .collect();
        let mut fields = BTreeMap::new();
        if let Some(t) = team_field {
            fields.insert("team".to_string(), t);
        }
        if let Some(t) = nonempty(str_of(p, "type")) {
            fields.insert("type".to_string(), t);
        }
        let msg = NewMessage {
            author,
            sent_at_ms: create_at,
            body: body.clone(),
            kind: MessageKind::Text,
            reply_to: root.and_then(|(_, id)| *id),
            also_reply_to: Vec::new(),
            attachments,
        };
        let xref = ExternalRef {
            source: SOURCE.into(),
            id: key.clone(),
            fields,
        };
        let id = self.imp.message(c, Incoming { msg, xref })?;
        let positive = |k: &str| p.get(k).and_then(Value::as_i64).filter(|t| *t > 0);
        if let Some(at) = positive("edit_at") {
            self.imp.edit(c, &key, &body, at)?;
        }
        if let Some(at) = positive("delete_at") {
            self.imp.delete(c, &key, at)?;
        }
        Ok((key, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_channel_ids_ignore_member_order_and_repeats() {
        assert_eq!(direct_channel_id(&["ron", "harry"]), "dm:harry,ron");
        assert_eq!(
            direct_channel_id(&["harry", "ron", "harry"]),
            "dm:harry,ron"
        );
        assert_eq!(
            direct_channel_id(&["ron", "harry", "ginny"]),
            direct_channel_id(&["ginny", "ron", "harry"])
        );
    }
}
