//! Helpers of the Slack and Mattermost import/export tests: a tenant's transcript in a form
//! that two vaults (or two tenants) can be compared by, and a builder of Slack export zips.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chatvault::import::ExternalRef;
use chatvault::{Attachment, ConversationKind, Direction, MessageKind, TenantId, Vault};

/// One message as a reader (and an exporter) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub id: u64,
    pub author: String,
    pub sent_at_ms: i64,
    pub body: String,
    pub kind: MessageKind,
    pub reply_to: Option<u64>,
    pub attachments: Vec<Attachment>,
    pub edited_at_ms: Option<i64>,
    pub deleted_at_ms: Option<i64>,
    /// Bodies and times of the earlier revisions (oldest first); compared when asked.
    pub revisions: Vec<(String, i64)>,
    pub xref: Option<ExternalRef>,
}

/// One conversation: its record, members and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv {
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub members: Vec<String>,
    pub messages: Vec<Msg>,
}

/// A tenant's conversations by external id, and its users (external id → display name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub conversations: BTreeMap<String, Conv>,
    pub users: BTreeMap<String, chatvault::UserProfile>,
}

impl Transcript {
    pub fn messages(&self) -> usize {
        self.conversations.values().map(|c| c.messages.len()).sum()
    }
}

/// Reads a whole tenant back.
pub fn transcript(v: &Vault, t: TenantId) -> Transcript {
    let mut conversations = BTreeMap::new();
    let mut users = BTreeMap::new();
    let name = |u: chatvault::UserId, users: &mut BTreeMap<String, chatvault::UserProfile>| {
        let info = v.user(t, u).expect("user");
        users.insert(info.external_id.clone(), info.profile);
        info.external_id
    };
    for info in v.conversations(t).expect("conversations") {
        let info = info.expect("conversation");
        let mut members: Vec<String> = v
            .members(t, info.id)
            .expect("members")
            .into_iter()
            .map(|m| name(m.user, &mut users))
            .collect();
        members.sort();
        let mut messages = Vec::new();
        for m in v
            .messages(t, info.id, None, Direction::Forward)
            .expect("messages")
        {
            let m = m.expect("message");
            let revisions = v
                .revisions(t, info.id, m.id)
                .expect("revisions")
                .into_iter()
                .map(|r| (r.body, r.written_at_ms))
                .collect();
            messages.push(Msg {
                id: m.id,
                author: name(m.author, &mut users),
                sent_at_ms: m.sent_at_ms,
                body: m.body,
                kind: m.kind,
                reply_to: m.reply_to,
                attachments: m.attachments,
                edited_at_ms: m.edited_at_ms,
                deleted_at_ms: m.deleted_at_ms,
                revisions,
                xref: v.external_ref(t, info.id, m.id).expect("external ref"),
            });
        }
        conversations.insert(
            info.external_id,
            Conv {
                kind: info.kind,
                title: info.title,
                members,
                messages,
            },
        );
    }
    Transcript {
        conversations,
        users,
    }
}

/// Asserts that two transcripts are the same message by message (naming the first
/// difference), revisions included when `revisions`.
pub fn assert_same(a: &Transcript, b: &Transcript, revisions: bool) {
    assert_eq!(
        a.conversations.keys().collect::<Vec<_>>(),
        b.conversations.keys().collect::<Vec<_>>(),
        "conversations"
    );
    for (id, ca) in &a.conversations {
        let cb = &b.conversations[id];
        assert_eq!(ca.kind, cb.kind, "{id}: kind");
        assert_eq!(ca.title, cb.title, "{id}: title");
        assert_eq!(ca.members, cb.members, "{id}: members");
        assert_eq!(ca.messages.len(), cb.messages.len(), "{id}: message count");
        for (ma, mb) in ca.messages.iter().zip(&cb.messages) {
            let (mut ma, mut mb) = (ma.clone(), mb.clone());
            if !revisions {
                ma.revisions.clear();
                mb.revisions.clear();
            }
            assert_eq!(ma, mb, "{id}: message {}", ma.id);
        }
    }
    assert_eq!(a.users, b.users, "users");
}

/// Writes a zip with these entries (name, JSON).
pub fn write_zip(path: &Path, entries: &[(&str, serde_json::Value)]) {
    let f = std::fs::File::create(path).expect("create zip");
    let mut z = zip::ZipWriter::new(f);
    for (name, v) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("start entry");
        z.write_all(&serde_json::to_vec_pretty(v).expect("json"))
            .expect("write entry");
    }
    z.finish().expect("finish zip");
}

/// Writes a zip with these entries (name, raw bytes).
pub fn write_zip_raw(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let f = std::fs::File::create(path).expect("create zip");
    let mut z = zip::ZipWriter::new(f);
    for (name, v) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("start entry");
        z.write_all(v).expect("write entry");
    }
    z.finish().expect("finish zip");
}

/// Non-ASCII texts: emoji (with a ZWJ sequence and a flag), right-to-left scripts, combining
/// marks (not normalised), CJK.
pub const NON_ASCII: [&str; 6] = [
    "déjà vu 👩‍💻🇫🇷 ok",
    "שלום עולם — مرحبا بالعالم",
    "e\u{301}le\u{300}ve Z\u{0335}\u{0321}a\u{0334}l\u{0337}g\u{0336}o\u{0338}",
    "日本語のテキストと한국어",
    "tab\tand\nnew line, \"quotes\" and \\backslash",
    "",
];
