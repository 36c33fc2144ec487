//! The data model: handles, messages, conversations, users and the options that shape them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Handle of a tenant inside one vault (an internal id; it reveals nothing of the tenant's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantId(pub(crate) u64);

/// Handle of a conversation inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationId(pub(crate) u64);

/// Handle of a user inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub(crate) u64);

/// A message id: the per-conversation sequence number, starting at 1, strictly increasing and
/// never reused (the next id is kept with the conversation, not derived from the messages).
pub type MessageId = u64;

macro_rules! iid_accessors {
    ($($t:ty),*) => {$(
        impl $t {
            /// The internal id as a number (stable for the life of the vault).
            pub fn as_u64(self) -> u64 {
                self.0
            }

            /// The handle of internal id `id`, as receipts, audit entries and `--json` output
            /// give it (`#N` in text). Nothing is checked here: every call that takes the
            /// handle answers `NotFound` (or `Shredded`) for an id that is not there.
            pub fn from_u64(id: u64) -> Self {
                Self(id)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "#{}", self.0)
            }
        }
    )*};
}
iid_accessors!(TenantId, ConversationId, UserId);

/// What happens to the messages a user wrote when that user is erased. Chosen when the tenant
/// is created; it cannot change afterwards, because it decides which keys seal each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ErasurePolicy {
    /// The messages become unreadable: each message's DEK is derived from both its epoch key and
    /// its author's user key (default).
    #[default]
    MessagesUnreadable,
    /// The messages stay readable, shown as written by an erased user: the DEK comes from the
    /// epoch key alone, and only the author's identity (their profile) is sealed under the user key.
    AuthorErased,
}

/// Options fixed when a tenant is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOptions {
    /// See [`ErasurePolicy`]. Default: [`ErasurePolicy::MessagesUnreadable`].
    pub erasure_policy: ErasurePolicy,
    /// Length of an epoch (the time window that one epoch key covers), in milliseconds.
    /// Default: 86 400 000 (one UTC day). Must be at least 60 000.
    pub epoch_ms: u64,
}

impl Default for TenantOptions {
    fn default() -> Self {
        TenantOptions {
            erasure_policy: ErasurePolicy::default(),
            epoch_ms: 86_400_000,
        }
    }
}

/// A tenant as listed by [`crate::Vault::tenants`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    /// Handle.
    pub id: TenantId,
    /// The tenant's name, as given to `create_tenant`.
    pub name: String,
    /// Erasure policy.
    pub erasure_policy: ErasurePolicy,
    /// Epoch length in milliseconds.
    pub epoch_ms: u64,
    /// Creation time, UTC milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// One-to-one or group conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConversationKind {
    /// Two members.
    Direct,
    /// Any number of members.
    Group,
}

/// A conversation as listed by [`crate::Vault::conversations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationInfo {
    /// Handle.
    pub id: ConversationId,
    /// The backend's id for it, as given to `create_conversation`.
    pub external_id: String,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Optional title.
    pub title: Option<String>,
    /// Creation time, UTC ms.
    pub created_at_ms: i64,
}

/// A user's profile: personal data, sealed under the user's key (never in clear on disk).
///
/// Build one with [`UserProfile::named`] and struct update syntax, e.g.
/// `UserProfile { email: Some("a@example.org".into()), ..UserProfile::named("Ada") }`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserProfile {
    /// Display name.
    pub display_name: String,
    /// E-mail address, if known.
    pub email: Option<String>,
    /// Telephone number, if known (free text, as the backend gives it).
    pub phone: Option<String>,
    /// Free-form fields, by name. The names (not the values) appear in the audit trail when a
    /// field is rectified, so they must not hold personal data themselves.
    pub fields: BTreeMap<String, String>,
}

impl UserProfile {
    /// A profile with only a display name.
    pub fn named(display_name: impl Into<String>) -> Self {
        UserProfile {
            display_name: display_name.into(),
            ..UserProfile::default()
        }
    }

    /// The names of the fields that differ between `self` and `other`: `display_name`,
    /// `email`, `phone`, and `fields.NAME` for each free-form field added, changed or removed.
    pub fn changed_fields(&self, other: &UserProfile) -> Vec<String> {
        let mut out = Vec::new();
        if self.display_name != other.display_name {
            out.push("display_name".to_string());
        }
        if self.email != other.email {
            out.push("email".to_string());
        }
        if self.phone != other.phone {
            out.push("phone".to_string());
        }
        let names: std::collections::BTreeSet<&String> =
            self.fields.keys().chain(other.fields.keys()).collect();
        for n in names {
            if self.fields.get(n) != other.fields.get(n) {
                out.push(format!("fields.{n}"));
            }
        }
        out
    }
}

/// A user as returned by [`crate::Vault::user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// Handle.
    pub id: UserId,
    /// The backend's id for the user.
    pub external_id: String,
    /// Profile.
    pub profile: UserProfile,
}

/// A member of a conversation and when they were one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The member.
    pub user: UserId,
    /// When they joined, UTC ms.
    pub joined_at_ms: i64,
    /// When they left, UTC ms, if they did.
    pub left_at_ms: Option<i64>,
}

/// Plain text or an action (`/me waves`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MessageKind {
    /// An ordinary message.
    #[default]
    Text,
    /// An action (IRC `/me`), shown as `* nick body`.
    Action,
}

/// Metadata of an attached file (the file's bytes are not stored by chatvault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name.
    pub name: String,
    /// Media type, e.g. `image/png`.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Author (must exist in the conversation's tenant).
    pub author: UserId,
    /// When it was sent, UTC milliseconds since the Unix epoch (not before 1970).
    pub sent_at_ms: i64,
    /// UTF-8 body, at most `VaultOptions::max_body_bytes` bytes.
    pub body: String,
    /// Text or action.
    pub kind: MessageKind,
    /// The message this one replies to, in the same conversation.
    pub reply_to: Option<MessageId>,
    /// Further messages this one responds to, besides `reply_to` (for example an IRC line that
    /// the disentanglement annotations link to several earlier lines). Usually empty.
    pub also_reply_to: Vec<MessageId>,
    /// Attachment metadata.
    pub attachments: Vec<Attachment>,
}

impl NewMessage {
    /// A plain text message with no reply and no attachments.
    pub fn text(author: UserId, sent_at_ms: i64, body: impl Into<String>) -> Self {
        NewMessage {
            author,
            sent_at_ms,
            body: body.into(),
            kind: MessageKind::Text,
            reply_to: None,
            also_reply_to: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

/// What an append did.
#[must_use = "a message may not have been stored (history off)"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended<T = MessageId> {
    /// Stored, with this id (or these ids, for a batch).
    Stored(T),
    /// Not stored; the backend may still deliver it live.
    NotStored(NotStoredReason),
}

/// Why an append stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotStoredReason {
    /// The conversation's history is off.
    HistoryOff,
}

impl<T> Appended<T> {
    /// The id(s), if stored.
    pub fn stored(self) -> Option<T> {
        match self {
            Appended::Stored(t) => Some(t),
            Appended::NotStored(_) => None,
        }
    }
    /// Whether it was stored.
    pub fn is_stored(&self) -> bool {
        matches!(self, Appended::Stored(_))
    }
}

/// A stored message, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Per-conversation id.
    pub id: MessageId,
    /// Author.
    pub author: UserId,
    /// When it was sent, UTC ms.
    pub sent_at_ms: i64,
    /// Body of the current revision; empty once deleted.
    pub body: String,
    /// Text or action.
    pub kind: MessageKind,
    /// Reply-to.
    pub reply_to: Option<MessageId>,
    /// Further messages this one responds to (see [`NewMessage::also_reply_to`]).
    pub also_reply_to: Vec<MessageId>,
    /// Attachment metadata; empty once deleted.
    pub attachments: Vec<Attachment>,
    /// Revision number: 0 for the original, +1 for each edit.
    pub revision: u32,
    /// When the current revision was written (the last edit), UTC ms.
    pub edited_at_ms: Option<i64>,
    /// When it was deleted, UTC ms. A deleted message has no body, attachments or revisions.
    pub deleted_at_ms: Option<i64>,
}

/// An earlier revision of an edited message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Revision number (0 = original).
    pub revision: u32,
    /// The body at that revision.
    pub body: String,
    /// When that revision was written, UTC ms (the original's `sent_at_ms` for revision 0).
    pub written_at_ms: i64,
}

/// Which way a page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// A page of messages, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// At most `limit` messages, in the page's direction.
    pub messages: Vec<Message>,
    /// Pass as `from` to get the next page; `None` when there is no more.
    pub next: Option<MessageId>,
}

// ---- sealed payloads (postcard); their layout is part of format version 1 ----

#[derive(Serialize, Deserialize)]
pub(crate) struct TenantRecord {
    pub name: String,
    pub erasure_policy: ErasurePolicy,
    pub epoch_ms: u64,
    pub created_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ConversationRecord {
    pub external_id: String,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MemberRecord {
    pub joined_at_ms: i64,
    pub left_at_ms: Option<i64>,
}

/// The user record of format version 1 (meta kind `User`): a display name only. Still read;
/// no longer written.
#[derive(Serialize, Deserialize)]
pub(crate) struct UserRecordV1 {
    pub external_id: String,
    pub profile: UserProfileV1,
}

/// The profile inside [`UserRecordV1`].
#[derive(Serialize, Deserialize)]
pub(crate) struct UserProfileV1 {
    pub display_name: String,
}

/// The user record written since profiles have e-mail, phone and free-form fields (meta kind
/// `UserV2`, same place `0x05 | tenant | user`, same key: the user key).
#[derive(Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub external_id: String,
    pub profile: UserProfile,
}

/// A restriction of processing (meta `0x15 | tenant | user`, kind `Restriction`, under the
/// user key). Present while the restriction is on.
#[derive(Serialize, Deserialize)]
pub(crate) struct RestrictionRecord {
    /// Since when, UTC ms.
    pub since_ms: i64,
    /// Who set it (internal user id; `None`: an operator).
    pub by: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MessagePayload {
    pub author: u64,
    pub sent_at_ms: i64,
    pub kind: MessageKind,
    pub body: String,
    pub reply_to: Option<u64>,
    pub also_reply_to: Vec<u64>,
    pub attachments: Vec<Attachment>,
    pub edited_at_ms: Option<i64>,
    pub deleted_at_ms: Option<i64>,
}
