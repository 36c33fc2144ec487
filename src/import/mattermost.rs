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

/// The `members` field kept in a direct channel's external reference: the members as written,
/// joined by `,` (read back by the Mattermost writer).
pub(crate) fn direct_members_field(members: &[&str]) -> String {
    members.join(",")
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

/// One line of a Mattermost bulk export, parsed without a vault ([`parse_line`]): what the
/// importer does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MmRecord {
    /// The first line, `{"type":"version","version":1}`.
    Version,
    /// A team (`name`, `display_name`, default the name; `type`, default `O`).
    Team {
        /// Its name.
        name: String,
        /// Its display name.
        display_name: String,
        /// Its type (`O` open, `I` invite only).
        team_type: String,
    },
    /// A channel of a team defined before it.
    Channel {
        /// The team's name.
        team: String,
        /// The channel's name.
        name: String,
        /// Its `display_name`, when not empty: the conversation's title.
        title: Option<String>,
        /// The fields of its external reference as the line gives them: `display_name`,
        /// `channel_type` (the line's `type`), `header`, `purpose`, where present.
        fields: BTreeMap<String, String>,
    },
    /// A user, with the channels it is a member of.
    User {
        /// Its username: the user's external id.
        username: String,
        /// The profile kept.
        profile: UserProfile,
        /// `(team, channel)` names of its memberships (a missing name is `""`).
        channels: Vec<(String, String)>,
    },
    /// A direct or group-direct channel.
    DirectChannel {
        /// Its members' usernames, as written.
        members: Vec<String>,
        /// Its `header`, if any.
        header: Option<String>,
    },
    /// A post (`post` or `direct_post`) with its replies.
    Post(MmPost),
    /// A custom emoji (not stored).
    Emoji,
    /// A record of another type (`scheme`, `role`, ...), counted and skipped.
    Other(String),
}

/// Where a post goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MmPostPlace {
    /// A channel of a team (`post`).
    Channel {
        /// The team it names.
        team: String,
        /// The channel it names.
        channel: String,
    },
    /// A direct or group-direct channel (`direct_post`), by its members' usernames.
    Direct {
        /// `channel_members`, as written.
        members: Vec<String>,
    },
}

/// A post and its replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmPost {
    /// Where it goes.
    pub place: MmPostPlace,
    /// The post.
    pub root: MmPostBody,
    /// Its `replies`, in file order.
    pub replies: Vec<MmPostBody>,
}

/// One post or reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmPostBody {
    /// Its author's username.
    pub user: String,
    /// `create_at`, UTC ms (not negative).
    pub create_at: i64,
    /// Its `message` (`""` if absent).
    pub message: String,
    /// Reactions counted (not stored).
    pub reactions: u64,
    /// The `path` of each attachment that has one.
    pub attachments: Vec<String>,
    /// Its `type`, when not empty (kept in the external reference).
    pub post_type: Option<String>,
    /// `edit_at`, when positive: an edit (a revision with the same text).
    pub edit_at: Option<i64>,
    /// `delete_at`, when positive: a deletion.
    pub delete_at: Option<i64>,
}

/// A username or direct-channel member: not empty, and without `,`, which joins the members in
/// a direct channel's external id ([`direct_channel_id`]; Mattermost's own usernames are
/// lowercase letters, digits, `.`, `-` and `_`).
fn username<'a>(file: &str, entry: &str, what: &str, s: &'a str) -> Result<&'a str, ImportError> {
    if s.contains(',') {
        return Err(malformed(
            file,
            entry,
            format!("{what} {s:?} contains ',', which no Mattermost username does"),
        ));
    }
    Ok(s)
}

fn need<'a>(
    file: &str,
    v: &'a Value,
    k: &str,
    entry: &str,
    what: &str,
) -> Result<&'a str, ImportError> {
    str_of(v, k)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed(file, entry, format!("{what} has no {k:?}")))
}

fn member_list(file: &str, v: &Value, k: &str, entry: &str) -> Result<Vec<String>, ImportError> {
    let list = v
        .get(k)
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(file, entry, format!("no {k:?} list")))?;
    let names: Vec<String> = list
        .iter()
        .filter_map(Value::as_str)
        .map(|m| username(file, entry, "member", m).map(str::to_string))
        .collect::<Result<_, _>>()?;
    if names.is_empty() {
        return Err(malformed(file, entry, format!("{k:?} is empty")));
    }
    Ok(names)
}

fn post_body(file: &str, p: &Value, entry: &str, what: &str) -> Result<MmPostBody, ImportError> {
    let user = need(file, p, "user", entry, what)?;
    let create_at = p
        .get("create_at")
        .and_then(Value::as_i64)
        .filter(|t| *t >= 0)
        .ok_or_else(|| {
            malformed(
                file,
                entry,
                format!("{what} has no \"create_at\" (UTC ms, not negative)"),
            )
        })?;
    let positive = |k: &str| p.get(k).and_then(Value::as_i64).filter(|t| *t > 0);
    Ok(MmPostBody {
        user: user.to_string(),
        create_at,
        message: str_of(p, "message").unwrap_or_default().to_string(),
        reactions: p
            .get("reactions")
            .and_then(Value::as_array)
            .map_or(0, |r| r.len() as u64),
        attachments: p
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| str_of(a, "path"))
            .map(str::to_string)
            .collect(),
        post_type: nonempty(str_of(p, "type")),
        edit_at: positive("edit_at"),
        delete_at: positive("delete_at"),
    })
}

/// Parses line `line_no` (1-based) of export `file` (named in errors), `bytes` with or without
/// its `\n`, without touching a vault. A blank line after line 1 is `Ok(None)`.
///
/// # Errors
///
/// [`ImportError::Malformed`] naming `file` and `line N`: longer than [`MAX_LINE_BYTES`], not
/// UTF-8, not JSON; line 1 not the version line (also when blank), or a later one; a team,
/// channel, user or post without its required fields (`name`; `team` and `name`; `username`;
/// `team` and `channel`, `user`, `create_at` not negative), a direct channel or post without
/// members; a username or member with a `,`.
pub fn parse_line(
    file: &str,
    line_no: usize,
    bytes: &[u8],
) -> Result<Option<MmRecord>, ImportError> {
    let entry = format!("line {line_no}");
    let entry = entry.as_str();
    if bytes.len() > MAX_LINE_BYTES {
        return Err(malformed(
            file,
            entry,
            format!("longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        malformed(
            file,
            entry,
            format!("not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    let version_line = || {
        malformed(
            file,
            entry,
            "expected {\"type\":\"version\",\"version\":1} (a Mattermost bulk export \
             starts with it)",
        )
    };
    if text.trim().is_empty() {
        if line_no == 1 {
            return Err(version_line());
        }
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        malformed(
            file,
            entry,
            format!("not valid JSON (column {}): {e}", e.column()),
        )
    })?;
    let kind = str_of(&v, "type").unwrap_or_default();
    if line_no == 1 {
        if kind != "version" || v.get("version").and_then(Value::as_i64) != Some(1) {
            return Err(version_line());
        }
        return Ok(Some(MmRecord::Version));
    }
    let null = Value::Null;
    let b = v.get(kind).unwrap_or(&null);
    Ok(Some(match kind {
        "team" => {
            let name = need(file, b, "name", entry, "team")?;
            MmRecord::Team {
                name: name.to_string(),
                display_name: str_of(b, "display_name").unwrap_or(name).to_string(),
                team_type: str_of(b, "type").unwrap_or("O").to_string(),
            }
        }
        "channel" => {
            let team = need(file, b, "team", entry, "channel")?;
            let name = need(file, b, "name", entry, "channel")?;
            let mut fields = BTreeMap::new();
            for k in ["display_name", "type", "header", "purpose"] {
                if let Some(v) = str_of(b, k) {
                    let key = if k == "type" { "channel_type" } else { k };
                    fields.insert(key.to_string(), v.to_string());
                }
            }
            MmRecord::Channel {
                team: team.to_string(),
                name: name.to_string(),
                title: nonempty(str_of(b, "display_name")),
                fields,
            }
        }
        "user" => {
            let name = need(file, b, "username", entry, "user")?;
            let name = username(file, entry, "username", name)?;
            let mut channels = Vec::new();
            for t in b
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
                    channels.push((team.to_string(), cname.to_string()));
                }
            }
            MmRecord::User {
                username: name.to_string(),
                profile: profile_of(b),
                channels,
            }
        }
        "direct_channel" => MmRecord::DirectChannel {
            members: member_list(file, b, "members", entry)?,
            header: str_of(b, "header").map(str::to_string),
        },
        "post" | "direct_post" => {
            let place = if kind == "direct_post" {
                MmPostPlace::Direct {
                    members: member_list(file, b, "channel_members", entry)?,
                }
            } else {
                MmPostPlace::Channel {
                    team: need(file, b, "team", entry, "post")?.to_string(),
                    channel: need(file, b, "channel", entry, "post")?.to_string(),
                }
            };
            let root = post_body(file, b, entry, "post")?;
            let replies = b
                .get("replies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| post_body(file, r, entry, "reply"))
                .collect::<Result<_, _>>()?;
            MmRecord::Post(MmPost {
                place,
                root,
                replies,
            })
        }
        "emoji" => MmRecord::Emoji,
        "version" => return Err(malformed(file, entry, "a second version line")),
        other => MmRecord::Other(other.to_string()),
    }))
}

/// Splits an export into its lines as the importer reads them (each with its `\n`, the last
/// one possibly without; a line longer than [`MAX_LINE_BYTES`] is cut after
/// `MAX_LINE_BYTES + 1` bytes, which [`parse_line`] refuses), and yields `(line number from 1,
/// bytes)`. For readers of an export held in memory.
pub fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut rest = text;
    let mut n = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cap = rest.len().min(MAX_LINE_BYTES + 1);
        let end = rest[..cap]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(cap, |p| p + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        n += 1;
        Some((n, line))
    })
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
/// JSON, no version line, an unknown team, channel or user; see [`parse_line`]) is an
/// [`ImportError::Malformed`] naming the line; nothing of that line is written, and what was
/// imported before it stays.
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
        let n = match (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(n) => n,
            Err(e) => return Err(run.imp.fail(io(e))),
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        let entry = format!("line {line_no}");
        // Every error goes through `fail`, which writes the messages read before it.
        let rec = match parse_line(&file, line_no, &buf) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => return Err(run.imp.fail(e)),
        };
        if let Err(e) = run.record(rec, &entry) {
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
    fn record(&mut self, rec: MmRecord, entry: &str) -> Result<(), ImportError> {
        match rec {
            MmRecord::Version => {}
            MmRecord::Team {
                name,
                display_name,
                team_type,
            } => {
                self.teams.insert(name, (display_name, team_type));
            }
            MmRecord::Channel {
                team,
                name,
                title,
                fields,
            } => self.channel(&team, &name, title.as_deref(), fields, entry)?,
            MmRecord::User {
                username,
                profile,
                channels,
            } => self.user(&username, profile, &channels, entry)?,
            MmRecord::DirectChannel { members, header } => {
                self.direct(&members, header.as_deref(), entry)?;
            }
            MmRecord::Post(p) => self.post(p, entry)?,
            MmRecord::Emoji => self.imp.report.skip("custom emoji (not stored)", 1),
            MmRecord::Other(other) => self
                .imp
                .report
                .skip(&format!("{other:?} records (not stored)"), 1),
        }
        Ok(())
    }

    fn channel(
        &mut self,
        team: &str,
        name: &str,
        title: Option<&str>,
        line_fields: BTreeMap<String, String>,
        entry: &str,
    ) -> Result<(), ImportError> {
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
        fields.extend(line_fields);
        let xref = ExternalRef {
            source: SOURCE.into(),
            id: id.clone(),
            fields,
        };
        let c = self
            .imp
            .conversation(&id, ConversationKind::Group, title, &[], &xref)?;
        self.channels.insert(id.clone(), c);
        self.by_name.entry(name.to_string()).or_default().push(id);
        Ok(())
    }

    fn user(
        &mut self,
        username: &str,
        profile: UserProfile,
        channels: &[(String, String)],
        entry: &str,
    ) -> Result<(), ImportError> {
        let uid = self.imp.user(username, || profile)?;
        for (team, cname) in channels {
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
        Ok(())
    }

    fn direct(
        &mut self,
        members: &[String],
        header: Option<&str>,
        entry: &str,
    ) -> Result<ConversationId, ImportError> {
        let names: Vec<&str> = members.iter().map(String::as_str).collect();
        let id = direct_channel_id(&names);
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
            ("members".to_string(), direct_members_field(&names)),
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

    fn post(&mut self, p: MmPost, entry: &str) -> Result<(), ImportError> {
        let mut team_field = None;
        let c = match &p.place {
            MmPostPlace::Direct { members } => {
                let names: Vec<&str> = members.iter().map(String::as_str).collect();
                if !self.channels.contains_key(&direct_channel_id(&names)) {
                    self.imp.report.note(
                        "direct channels with no direct_channel line (created from their posts' \
                         channel_members)",
                    );
                }
                self.direct(members, None, entry)?
            }
            MmPostPlace::Channel { team, channel } => {
                let id = format!("{team}/{channel}");
                let by_name = match self.by_name.get(channel).map(Vec::as_slice) {
                    Some([only]) => self.channels.get(only).copied(),
                    _ => None,
                };
                match (self.channels.get(&id), by_name) {
                    (Some(c), _) => *c,
                    // The post names the wrong team (seen in real exports): the channel name is
                    // unambiguous, so it goes there, and the team it names is kept for the
                    // export.
                    (None, Some(c)) => {
                        team_field = Some(team.clone());
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
            }
        };
        let root_key = self.one(c, &p.root, entry, None, team_field)?;
        for r in &p.replies {
            self.one(c, r, entry, Some(&root_key), None)?;
        }
        Ok(())
    }

    /// Stores one post or reply; returns its external id.
    fn one(
        &mut self,
        c: ConversationId,
        p: &MmPostBody,
        entry: &str,
        root: Option<&(String, Option<MessageId>)>,
        team_field: Option<String>,
    ) -> Result<(String, Option<MessageId>), ImportError> {
        let what = if root.is_some() { "reply" } else { "post" };
        let user = p.user.as_str();
        let author = self.imp.known_user(user)?.ok_or_else(|| {
            malformed(
                &self.file,
                entry,
                format!(
                    "{what} by {user:?}, who is not a user of the export (no earlier user line)"
                ),
            )
        })?;
        let create_at = p.create_at;
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
        self.imp.report.skip("reactions (not stored)", p.reactions);
        let attachments = p
            .attachments
            .iter()
            .map(|path| Attachment {
                name: path.clone(),
                media_type: String::new(),
                size_bytes: 0,
            })
            .collect();
        let mut fields = BTreeMap::new();
        if let Some(t) = team_field {
            fields.insert("team".to_string(), t);
        }
        if let Some(t) = &p.post_type {
            fields.insert("type".to_string(), t.clone());
        }
        let msg = NewMessage {
            author,
            sent_at_ms: create_at,
            body: p.message.clone(),
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
        if let Some(at) = p.edit_at {
            self.imp.edit(c, &key, &p.message, at)?;
        }
        if let Some(at) = p.delete_at {
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
