//! Retention: history on/off, retention periods, legal holds, the clock, and the compaction
//! filter that drops expired records.
//!
//! ## When is a message expired?
//! A message is expired from the first instant at which it was *both* older than its
//! conversation's retention period (`now >= sent_at + period`) *and* under no legal hold, and it
//! stays expired forever after: lengthening or removing the period, or placing a hold, never
//! brings it back. The second half is kept with a per-conversation **watermark**: before any
//! change that could make a message unexpired again (a longer period, no period, a new hold), the
//! vault records `sent_at < now - old period` as permanently expired for every author not then
//! held. Expiry is then
//!
//! ```text
//! expired(m) = m.sent_at < watermark(conversation, author)
//!           || (period is finite && now >= m.sent_at + period && !held(m))
//! ```
//!
//! Everything here decides from a message's conversation, author and `sent_at`, which are in the
//! record's clear header and key, so reads check expiry before decrypting and the compaction
//! filter never decrypts.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::codec::{self, Iid};
use crate::envelope::RecordHeader;
use crate::model::{ConversationId, UserId};

/// Minimum retention period, in milliseconds (one minute).
pub const MIN_RETENTION_MS: u64 = 60_000;

/// The source of "now" for retention, in UTC milliseconds since the Unix epoch. Injectable so
/// that tests (and backends' tests) can run on a fake clock; time zones and daylight saving never
/// enter into it.
pub trait Clock: Send + Sync + 'static {
    /// Now, UTC ms since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock (default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::vault::now_ms()
    }
}

/// A clock that moves only when told to. For tests.
#[derive(Debug, Default)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    /// A fake clock showing `ms`.
    pub fn new(ms: i64) -> Arc<Self> {
        Arc::new(FakeClock(AtomicI64::new(ms)))
    }
    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether new messages of a conversation are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum History {
    /// Messages are stored (default).
    #[default]
    On,
    /// New messages are not stored: `append` returns [`crate::Appended::NotStored`] and the
    /// backend may still deliver them live. What is already stored stays unless the caller asks
    /// for its deletion explicitly.
    Off,
}

/// How long messages are kept, counted from each message's `sent_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Retention {
    /// Kept until deleted (default).
    #[default]
    Forever,
    /// Kept for this many milliseconds (at least [`MIN_RETENTION_MS`]).
    Period {
        /// Milliseconds.
        ms: u64,
    },
}

impl Retention {
    /// A period of `ms` milliseconds. Errors below one minute.
    pub fn period_ms(ms: u64) -> crate::Result<Self> {
        if ms < MIN_RETENTION_MS {
            return Err(crate::Error::InvalidInput(format!(
                "a retention period must be at least {MIN_RETENTION_MS} ms (one minute), got {ms}"
            )));
        }
        Ok(Retention::Period { ms })
    }

    fn ms(self) -> Option<u64> {
        match self {
            Retention::Forever => None,
            Retention::Period { ms } => Some(ms),
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retention::Forever => f.write_str("forever"),
            Retention::Period { ms } => write!(f, "{ms} ms"),
        }
    }
}

/// A complete policy: the tenant default, or a conversation's effective policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// History on or off.
    pub history: History,
    /// Retention period.
    pub retention: Retention,
}

/// A conversation's overrides of its tenant's default policy; `None` fields follow the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicyOverride {
    /// History, or `None` for the tenant's.
    pub history: Option<History>,
    /// Retention, or `None` for the tenant's.
    pub retention: Option<Retention>,
}

/// A tenant's retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// The default policy of its conversations.
    pub default: Policy,
    /// Whether members may change their own conversations' policy (`true`), or only tenant
    /// admins may (`false`, default).
    pub members_may_change: bool,
}

/// Who is acting. The backend authenticates people; chatvault trusts what it is told here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The acting user, or `None` for an operator or the system (which counts as an admin).
    pub user: Option<UserId>,
    /// Whether the user acts as a tenant admin.
    pub admin: bool,
}

impl Actor {
    /// An operator acting outside any user account (CLI, maintenance jobs): an admin.
    pub fn operator() -> Self {
        Actor {
            user: None,
            admin: true,
        }
    }
    /// A user acting as a tenant admin.
    pub fn admin(user: UserId) -> Self {
        Actor {
            user: Some(user),
            admin: true,
        }
    }
    /// A user acting as a member.
    pub fn member(user: UserId) -> Self {
        Actor {
            user: Some(user),
            admin: false,
        }
    }
    pub(crate) fn is_admin(&self) -> bool {
        self.admin || self.user.is_none()
    }
}

/// What a legal hold covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HoldScope {
    /// Every message of the tenant.
    Tenant,
    /// Every message of one conversation.
    Conversation(ConversationId),
    /// Every message one user authored, in any conversation of the tenant (the user is the
    /// custodian).
    Custodian(UserId),
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Id, unique in the vault.
    pub id: u64,
    /// What it covers.
    pub scope: HoldScope,
    /// Why (matter name, ticket); free text.
    pub reason: String,
    /// Who placed it (`None`: an operator).
    pub placed_by: Option<UserId>,
    /// When, UTC ms.
    pub placed_at_ms: i64,
}

/// A recorded policy or hold change (for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChange {
    /// When, UTC ms.
    pub at_ms: i64,
    /// Who (`None`: an operator).
    pub by: Option<UserId>,
    /// Whether they acted as an admin.
    pub as_admin: bool,
    /// The conversation, for a conversation's policy or hold; `None` for the tenant's.
    pub conversation: Option<ConversationId>,
    /// What changed, e.g. `retention=86400000 ms` or `hold 3 placed`.
    pub change: String,
}

// ------------------------------------------------------------------ in-memory state

/// Permanent expiry thresholds of one conversation: a message with `sent_at` below its author's
/// threshold is expired forever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Watermark {
    /// Threshold for every author without an entry in `authors`.
    pub all: i64,
    /// Lower thresholds for authors who were under a custodian hold when `all` was raised.
    pub authors: BTreeMap<u64, i64>,
}

impl Watermark {
    pub(crate) fn none() -> Self {
        Watermark {
            all: i64::MIN,
            authors: BTreeMap::new(),
        }
    }

    /// The threshold for `author`; for an unknown author the lowest (so that nothing is
    /// expired that might not be).
    fn for_author(&self, author: Option<u64>) -> i64 {
        match author {
            Some(a) => self.authors.get(&a).copied().unwrap_or(self.all),
            None => self.authors.values().copied().fold(self.all, i64::min),
        }
    }

    /// Records that every message with `sent_at < x` is expired, for every author except the
    /// `exempt` ones (held custodians).
    pub(crate) fn advance(&mut self, x: i64, exempt: &[u64]) {
        if x == i64::MIN {
            return;
        }
        let old_all = self.all;
        let new_all = old_all.max(x);
        // Exempt authors keep what they had.
        for a in exempt {
            let had = self.authors.get(a).copied().unwrap_or(old_all);
            self.authors.insert(*a, had);
        }
        // Others move up to at least x.
        let mut keep = BTreeMap::new();
        for (a, t) in &self.authors {
            let t2 = if exempt.contains(a) { *t } else { (*t).max(x) };
            if t2 != new_all {
                keep.insert(*a, t2);
            }
        }
        self.all = new_all;
        self.authors = keep;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HoldRecord {
    pub scope: HoldScope,
    pub reason: String,
    pub placed_by: Option<u64>,
    pub placed_at_ms: i64,
}

/// Retention state of one tenant.
#[derive(Debug, Clone, Default)]
pub(crate) struct TenantRetention {
    pub policy: TenantPolicy,
    pub overrides: HashMap<Iid, PolicyOverride>,
    /// Active holds by id.
    pub holds: BTreeMap<u64, HoldRecord>,
    pub marks: HashMap<Iid, Watermark>,
    /// Crypto-shredding tombstones (see [`crate::shred`]).
    pub shred: ShredState,
}

/// What has been shredded in a tenant: internal ids only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShredState {
    /// The whole tenant.
    pub tenant: bool,
    /// Conversations.
    pub conversations: std::collections::BTreeSet<Iid>,
    /// Users (under the default erasure policy their messages are in scope too).
    pub users: std::collections::BTreeSet<Iid>,
    /// Time windows: (conversation, start ms inclusive, end ms exclusive).
    pub windows: Vec<(Iid, i64, i64)>,
}

impl ShredState {
    /// Whether a record of conversation `c` by `author` (`None`: not in the header) sent at
    /// `sent_at_ms` lies in a shredded scope.
    pub(crate) fn covers(&self, c: Iid, author: Option<u64>, sent_at_ms: i64) -> bool {
        self.tenant
            || self.conversations.contains(&c)
            || author.is_some_and(|a| self.users.contains(&a))
            || self
                .windows
                .iter()
                .any(|(wc, s, e)| *wc == c && (*s..*e).contains(&sent_at_ms))
    }

    /// Whether the whole conversation is gone (tenant or conversation shredded).
    pub(crate) fn whole_conversation(&self, c: Iid) -> bool {
        self.tenant || self.conversations.contains(&c)
    }
}

impl TenantRetention {
    pub(crate) fn effective(&self, c: Iid) -> Policy {
        let o = self.overrides.get(&c).copied().unwrap_or_default();
        Policy {
            history: o.history.unwrap_or(self.policy.default.history),
            retention: o.retention.unwrap_or(self.policy.default.retention),
        }
    }

    /// Whether a tenant or conversation hold covers all of `c`.
    pub(crate) fn whole_conversation_held(&self, c: Iid) -> bool {
        self.holds.values().any(|h| match h.scope {
            HoldScope::Tenant => true,
            HoldScope::Conversation(x) => x.0 == c,
            HoldScope::Custodian(_) => false,
        })
    }

    /// Custodians under hold.
    pub(crate) fn held_custodians(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .holds
            .values()
            .filter_map(|h| match h.scope {
                HoldScope::Custodian(u) => Some(u.0),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether a message of `c` by `author` is held. An unknown author (`None`) counts as held
    /// if any custodian hold exists.
    pub(crate) fn held(&self, c: Iid, author: Option<u64>) -> bool {
        self.holds.values().any(|h| match h.scope {
            HoldScope::Tenant => true,
            HoldScope::Conversation(x) => x.0 == c,
            HoldScope::Custodian(u) => author.is_none_or(|a| a == u.0),
        })
    }

    pub(crate) fn watermark(&self, c: Iid) -> Option<&Watermark> {
        self.marks.get(&c)
    }
}

/// An immutable view of every tenant's retention state, replaced as a whole on each change
/// (copy on write), so that reads and compaction filters see one consistent state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub tenants: HashMap<Iid, Arc<TenantRetention>>,
}

impl Snapshot {
    pub(crate) fn tenant(&self, t: Iid) -> Option<&TenantRetention> {
        self.tenants.get(&t).map(|a| a.as_ref())
    }

    /// Whether a record lies in a shredded scope.
    pub(crate) fn is_shredded(&self, t: Iid, c: Iid, author: Option<u64>, sent_at_ms: i64) -> bool {
        self.tenant(t)
            .is_some_and(|tr| tr.shred.covers(c, author, sent_at_ms))
    }

    pub(crate) fn effective(&self, t: Iid, c: Iid) -> Policy {
        self.tenant(t).map(|tr| tr.effective(c)).unwrap_or_default()
    }

    /// See the module docs. `author = None` means unknown (the tenant keeps authors only inside
    /// the ciphertext): then the answer is conservative (expired only if it is for every author).
    pub(crate) fn is_expired(
        &self,
        t: Iid,
        c: Iid,
        author: Option<u64>,
        sent_at_ms: i64,
        now_ms: i64,
    ) -> bool {
        let Some(tr) = self.tenant(t) else {
            return false;
        };
        if let Some(w) = tr.watermark(c) {
            if sent_at_ms < w.for_author(author) {
                return true;
            }
        }
        let Some(period) = tr.effective(c).retention.ms() else {
            return false;
        };
        let expires_at = (sent_at_ms as i128) + (period as i128);
        if (now_ms as i128) < expires_at {
            return false;
        }
        !tr.held(c, author)
    }
}

/// The vault's current retention state and clock, shared with the compaction filters.
pub(crate) struct Shared {
    pub clock: Arc<dyn Clock>,
    pub snapshot: RwLock<Arc<Snapshot>>,
}

impl Shared {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Shared {
            clock,
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
        })
    }
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }
}

// ------------------------------------------------------------------ compaction filter

/// Which column family a filter works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKind {
    /// `messages` and `revisions`: decide from the key prefix and the clear record header.
    Records,
    /// `time_index`: decide from the key (time) and the value (author).
    TimeIndex,
}

/// Creates one [`ExpiryFilter`] per compaction, with a snapshot of the policies and the clock
/// taken at that moment.
pub(crate) struct ExpiryFilterFactory {
    pub shared: Arc<Shared>,
    pub kind: FilterKind,
    pub name: CString,
}

/// Drops expired records, and records in shredded scopes, during compaction. It only reclaims space: every read enforces expiry
/// itself (RocksDB does not run compaction filters on flush). It keeps whatever it cannot parse,
/// never writes to the database, and never panics (a panic is caught and the record kept).
pub(crate) struct ExpiryFilter {
    snapshot: Arc<Snapshot>,
    now_ms: i64,
    kind: FilterKind,
    name: CString,
}

impl rocksdb::compaction_filter_factory::CompactionFilterFactory for ExpiryFilterFactory {
    type Filter = ExpiryFilter;

    fn create(
        &mut self,
        _context: rocksdb::compaction_filter_factory::CompactionFilterContext,
    ) -> ExpiryFilter {
        ExpiryFilter {
            snapshot: self.shared.current(),
            now_ms: self.shared.clock.now_ms(),
            kind: self.kind,
            name: self.name.clone(),
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

impl ExpiryFilter {
    fn decide(&self, key: &[u8], value: &[u8]) -> bool {
        let (Some(t), Some(c)) = (
            key.get(0..8).and_then(codec::be64),
            key.get(8..16).and_then(codec::be64),
        ) else {
            return false;
        };
        if !self.snapshot.tenants.contains_key(&t) {
            return false;
        }
        let (author, sent_at) = match self.kind {
            FilterKind::Records => match RecordHeader::decode(value, String::new) {
                Ok(h) => (h.author, h.sent_at_ms),
                Err(_) => return false,
            },
            FilterKind::TimeIndex => match codec::decode_time_key(key) {
                Some((_, _, at, _)) => (value.get(0..8).and_then(codec::be64).unwrap_or(0), at),
                None => return false,
            },
        };
        let author = (author != 0).then_some(author);
        self.snapshot.is_shredded(t, c, author, sent_at)
            || self.snapshot.is_expired(t, c, author, sent_at, self.now_ms)
    }
}

impl rocksdb::compaction_filter::CompactionFilter for ExpiryFilter {
    fn filter(
        &mut self,
        _level: u32,
        key: &[u8],
        value: &[u8],
    ) -> rocksdb::compaction_filter::Decision {
        let remove =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decide(key, value)))
                .unwrap_or(false);
        if remove {
            rocksdb::compaction_filter::Decision::Remove
        } else {
            rocksdb::compaction_filter::Decision::Keep
        }
    }

    fn name(&self) -> &CStr {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_advance_exempts_held_custodians_and_is_monotonic() {
        let mut w = Watermark::none();
        w.advance(100, &[7]);
        assert_eq!(w.for_author(Some(1)), 100);
        assert_eq!(w.for_author(Some(7)), i64::MIN);
        assert_eq!(w.for_author(None), i64::MIN);
        w.advance(50, &[]);
        assert_eq!(w.for_author(Some(1)), 100, "never goes back");
        assert_eq!(w.for_author(Some(7)), 50);
        w.advance(200, &[]);
        assert!(w.authors.is_empty());
        assert_eq!(w.for_author(Some(7)), 200);
    }

    fn filter_with(snapshot: Snapshot, now_ms: i64, kind: FilterKind) -> ExpiryFilter {
        ExpiryFilter {
            snapshot: Arc::new(snapshot),
            now_ms,
            kind,
            name: CString::from(c"test"),
        }
    }

    #[test]
    fn the_filter_keeps_what_it_cannot_parse_and_removes_only_expired_records() {
        use rocksdb::compaction_filter::{CompactionFilter, Decision};
        let mut tr = TenantRetention::default();
        tr.policy.default.retention = Retention::Period { ms: 60_000 };
        let mut s = Snapshot::default();
        s.tenants.insert(1, Arc::new(tr));
        let mut f = filter_with(s.clone(), 1_000_000, FilterKind::Records);
        let key = codec::message_key(1, 2, 3);
        for junk in [&b""[..], &b"\x01"[..], &[0xFF; 80][..], &[1u8; 30][..]] {
            assert!(matches!(f.filter(0, &key, junk), Decision::Keep));
            assert!(matches!(f.filter(0, junk, junk), Decision::Keep));
        }
        // A well-formed header: old enough is removed, recent is kept, other tenants kept.
        let header = |sent: i64| {
            let h = RecordHeader {
                kind: crate::envelope::RecordKind::Message,
                revision: 0,
                epoch: 0,
                epoch_version: 1,
                author: 5,
                author_version: 1,
                sent_at_ms: sent,
            };
            let k = crate::keys::SecretKey::from_bytes([7; 32]);
            crate::envelope::seal_record(&k.cipher(), &h, &key, b"x").unwrap()
        };
        assert!(matches!(f.filter(0, &key, &header(0)), Decision::Remove));
        assert!(matches!(
            f.filter(0, &key, &header(999_000)),
            Decision::Keep
        ));
        let other = codec::message_key(9, 2, 3);
        assert!(matches!(f.filter(0, &other, &header(0)), Decision::Keep));
        // The time index: decided from the key's time and the value's author.
        let mut ti = filter_with(s, 1_000_000, FilterKind::TimeIndex);
        let tk = codec::time_key(1, 2, 0, 3);
        assert!(matches!(
            ti.filter(0, &tk, &5u64.to_be_bytes()),
            Decision::Remove
        ));
        assert!(matches!(
            ti.filter(0, &codec::time_key(1, 2, 999_000, 3), &[]),
            Decision::Keep
        ));
        assert!(matches!(ti.filter(0, &tk[..31], &[]), Decision::Keep));
    }

    #[test]
    fn expiry_counts_from_sent_at_and_holds_stop_it() {
        let mut tr = TenantRetention::default();
        tr.policy.default.retention = Retention::Period { ms: 60_000 };
        let mut s = Snapshot::default();
        s.tenants.insert(1, Arc::new(tr.clone()));
        assert!(!s.is_expired(1, 2, Some(3), 0, 59_999));
        assert!(s.is_expired(1, 2, Some(3), 0, 60_000));
        assert!(
            !s.is_expired(9, 2, Some(3), 0, 1 << 40),
            "unknown tenant: keep"
        );
        tr.holds.insert(
            1,
            HoldRecord {
                scope: HoldScope::Custodian(UserId(3)),
                reason: String::new(),
                placed_by: None,
                placed_at_ms: 0,
            },
        );
        s.tenants.insert(1, Arc::new(tr));
        assert!(!s.is_expired(1, 2, Some(3), 0, 60_000));
        assert!(s.is_expired(1, 2, Some(4), 0, 60_000));
        assert!(
            !s.is_expired(1, 2, None, 0, 60_000),
            "unknown author: conservative"
        );
        assert!(
            !s.is_expired(1, 2, Some(4), i64::MAX - 5, i64::MAX),
            "no overflow"
        );
    }
}
