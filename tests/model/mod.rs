//! The model-based test's model and driver, shared by `tests/model_based.rs` (proptest) and
//! `fuzz/fuzz_targets/model.rs` (cargo-fuzz, which includes this file with `#[path]`).
//!
//! A run creates a vault in a temporary directory with a small universe: two tenants (`t0`
//! under `MessagesUnreadable` with 1-minute epochs, `t1` under `AuthorErased` with 3-minute
//! epochs), three users and three conversations in each, on a [`FakeClock`]. It then applies a
//! sequence of [`Op`]s to the vault and, in step, to a plain in-memory [`Model`] that says what
//! every call must return: the exact messages (ids, authors, times, bodies, revisions, deletion)
//! and order of every listing, and *which* error variant a read or write must fail with. After
//! every op a sweep reads everything the universe holds (tenants, users, conversations, members,
//! policies, holds, queued erasures, every message id by `get`, both listing directions, counts,
//! the receipt chain) and compares it with the model.
//!
//! The model is written from DESIGN.md and the API docs, not from the code: expiry is "the first
//! instant at which a message was both older than its period and not held, forever after"
//! (evaluated at every op boundary, when the clock or a policy can change), shredding is a set
//! of scopes, a legal hold a set of scopes, a queued erasure a list. It never looks at root-key
//! or key versions, receipt seqs (it takes them from the vault) or files.
//!
//! Simplifications, and why:
//! - A record of a shredded window or author that a compaction may have removed (the purge, or a
//!   background compaction after a restart flushed the WAL) reads as `Shredded` or, in a
//!   conversation under retention, as `Expired`: once the record is gone the vault no longer
//!   knows which (DESIGN.md §6, "a message whose record a purge removed reads as Expired").
//!   The model accepts either for such a message once a purge or restart has happened; before
//!   that it wants exactly `Shredded`.
//! - Memberships are fixed at set-up (no add/remove ops); restriction of processing, consent,
//!   rectification and key rotation are not modelled (other tests cover them).
//! - Physical removal (file contents) is not modelled: the purge is only required to report
//!   `complete`, and every read after it to agree with the model.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chatvault::{
    Actor, ConversationId, ConversationKind, Direction, ErasurePolicy, Error, ExportOptions,
    FakeClock, History, HoldScope, Message, MessageKind, MessageRole, NewMessage, Policy,
    PolicyOverride, PurgeOptions, Retention, SecretKey, ShredOutcome, ShredScope,
    StaticKeyProvider, TenantId, TenantOptions, TenantPolicy, UserId, UserProfile, Vault,
    VaultOptions,
};

/// Tenants, conversations per tenant, users per tenant.
pub const TENANTS: usize = 2;
pub const CONVS: usize = 3;
pub const USERS: usize = 3;
/// Longest sequence the fuzz target runs (longer inputs are cut).
pub const MAX_OPS: usize = 64;

/// The fake clock's start: 7 s after a boundary of both tenants' epochs.
pub const T0: i64 = 1_700_000_100_000 + 7_000;
/// Epoch length of each tenant (the minimum the vault accepts, and three times it).
pub const EPOCH_MS: [u64; TENANTS] = [60_000, 180_000];
pub const ERASURE: [ErasurePolicy; TENANTS] = [
    ErasurePolicy::MessagesUnreadable,
    ErasurePolicy::AuthorErased,
];
/// `sent_at` of an append (and `at_ms` of a window shred), relative to the clock.
pub const TIME_OFFSETS: [i64; 8] = [-600_000, -180_000, -90_000, -60_000, -1, 0, 1, 60_000];
/// Clock steps.
pub const ADVANCE_STEPS: [i64; 7] = [1_000, 29_000, 59_999, 60_000, 61_000, 120_000, 400_000];
/// Retention periods: forever, three valid periods, and one under the one-minute minimum.
pub const RETENTIONS: [Retention; 5] = [
    Retention::Forever,
    Retention::Period { ms: 60_000 },
    Retention::Period { ms: 120_000 },
    Retention::Period { ms: 300_000 },
    Retention::Period { ms: 30_000 },
];
/// Lengths of a `messages_between` range.
pub const RANGE_LENS: [i64; 5] = [0, 1, 60_000, 180_000, 10_000_000];

const BODY_TAILS: [&str; 4] = ["", " héllo", " 🙂 \u{2028} \"q\" \\ \t", " שלום"];

// ------------------------------------------------------------------ operations

/// What a legal hold covers (indices into the universe, taken modulo its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldSel {
    Tenant,
    Conversation(u8),
    Custodian(u8),
}

/// What to shred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShredSel {
    Tenant,
    Conversation(u8),
    User(u8),
    /// The window of conversation `c` that holds `now + TIME_OFFSETS[at]`.
    Window {
        c: u8,
        at: u8,
    },
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportSel {
    Conversation(u8),
    User(u8),
    Tenant,
}

/// One step of a run. Every index is taken modulo the size of what it picks, so any value is
/// valid. `m` picks a message id: `1 + m % (next id - 1)` below 224, else 0 or the next id
/// (which do not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `append` by user `u` at `now + TIME_OFFSETS[at]`.
    Append {
        t: u8,
        c: u8,
        u: u8,
        at: u8,
    },
    /// `edit` at `now`.
    Edit {
        t: u8,
        c: u8,
        m: u8,
    },
    /// `delete` at `now`.
    Delete {
        t: u8,
        c: u8,
        m: u8,
    },
    /// `set_tenant_policy` by an operator.
    TenantPolicy {
        t: u8,
        history_off: bool,
        retention: u8,
        members_may_change: bool,
    },
    /// `set_conversation_policy`. `history`: 0 tenant default, 1 on, 2 off; `retention`: 0
    /// tenant default, else `RETENTIONS[retention - 1]`; `actor`: 0 operator, else member
    /// `actor - 1`.
    ConvPolicy {
        t: u8,
        c: u8,
        history: u8,
        retention: u8,
        delete_existing: bool,
        actor: u8,
    },
    PlaceHold {
        t: u8,
        scope: HoldSel,
    },
    /// Releases active hold `h % holds` (by id), or, when `h % 8 == 7` (or none is active),
    /// an id that is no hold.
    ReleaseHold {
        t: u8,
        h: u8,
    },
    Advance {
        step: u8,
    },
    /// `shred` (`queue = false`) or `shred_or_queue` by an operator.
    Shred {
        t: u8,
        scope: ShredSel,
        queue: bool,
    },
    /// `erase_user` of `u`; `by`: 0 operator, else member `by - 1` (themself or someone else).
    Erase {
        t: u8,
        u: u8,
        by: u8,
    },
    Purge,
    Export {
        t: u8,
        what: ExportSel,
    },
    /// Drop the vault, open the same directory with the same key provider and clock.
    Restart,
    Get {
        t: u8,
        c: u8,
        m: u8,
    },
    /// `get`, `append` and `edit` of conversation `c` of the *other* tenant, through tenant `t`.
    Foreign {
        t: u8,
        c: u8,
        m: u8,
    },
    /// `page` from id `from - 1` (0: from the start), `limit % 6`.
    Page {
        t: u8,
        c: u8,
        from: u8,
        backward: bool,
        limit: u8,
    },
    /// `messages_between(now + TIME_OFFSETS[start], + RANGE_LENS[len])`.
    Between {
        t: u8,
        c: u8,
        start: u8,
        len: u8,
    },
    /// `subject_messages` of user `u` in conversation `c`, asked by the user themself.
    Subject {
        t: u8,
        u: u8,
        c: u8,
    },
    Revisions {
        t: u8,
        c: u8,
        m: u8,
    },
}

/// Number of op kinds (the opcode of a byte encoding is `byte % OP_KINDS`).
pub const OP_KINDS: u8 = 19;

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// Decodes ops from raw bytes (for the fuzzer): an opcode byte (`% OP_KINDS`), then a fixed
/// number of argument bytes per kind (missing bytes read as 0). Deterministic; at most
/// [`MAX_OPS`] ops. [`ops_to_bytes`] is its inverse.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut b = Bytes { data, pos: 0 };
    let mut ops = Vec::new();
    while !b.done() && ops.len() < MAX_OPS {
        let op = match b.next() % OP_KINDS {
            0 => Op::Append {
                t: b.next(),
                c: b.next(),
                u: b.next(),
                at: b.next(),
            },
            1 => Op::Edit {
                t: b.next(),
                c: b.next(),
                m: b.next(),
            },
            2 => Op::Delete {
                t: b.next(),
                c: b.next(),
                m: b.next(),
            },
            3 => Op::TenantPolicy {
                t: b.next(),
                history_off: b.next() & 1 == 1,
                retention: b.next(),
                members_may_change: b.next() & 1 == 1,
            },
            4 => Op::ConvPolicy {
                t: b.next(),
                c: b.next(),
                history: b.next(),
                retention: b.next(),
                delete_existing: b.next() & 1 == 1,
                actor: b.next(),
            },
            5 => {
                let t = b.next();
                let kind = b.next();
                let x = b.next();
                Op::PlaceHold {
                    t,
                    scope: match kind % 3 {
                        0 => HoldSel::Tenant,
                        1 => HoldSel::Conversation(x),
                        _ => HoldSel::Custodian(x),
                    },
                }
            }
            6 => Op::ReleaseHold {
                t: b.next(),
                h: b.next(),
            },
            7 => Op::Advance { step: b.next() },
            8 => {
                let t = b.next();
                let kind = b.next();
                let x = b.next();
                let at = b.next();
                let queue = b.next() & 1 == 1;
                Op::Shred {
                    t,
                    scope: match kind % 4 {
                        0 => ShredSel::Tenant,
                        1 => ShredSel::Conversation(x),
                        2 => ShredSel::User(x),
                        _ => ShredSel::Window { c: x, at },
                    },
                    queue,
                }
            }
            9 => Op::Erase {
                t: b.next(),
                u: b.next(),
                by: b.next(),
            },
            10 => Op::Purge,
            11 => {
                let t = b.next();
                let kind = b.next();
                let x = b.next();
                Op::Export {
                    t,
                    what: match kind % 3 {
                        0 => ExportSel::Conversation(x),
                        1 => ExportSel::User(x),
                        _ => ExportSel::Tenant,
                    },
                }
            }
            12 => Op::Restart,
            13 => Op::Get {
                t: b.next(),
                c: b.next(),
                m: b.next(),
            },
            14 => Op::Foreign {
                t: b.next(),
                c: b.next(),
                m: b.next(),
            },
            15 => Op::Page {
                t: b.next(),
                c: b.next(),
                from: b.next(),
                backward: b.next() & 1 == 1,
                limit: b.next(),
            },
            16 => Op::Between {
                t: b.next(),
                c: b.next(),
                start: b.next(),
                len: b.next(),
            },
            17 => Op::Subject {
                t: b.next(),
                u: b.next(),
                c: b.next(),
            },
            _ => Op::Revisions {
                t: b.next(),
                c: b.next(),
                m: b.next(),
            },
        };
        ops.push(op);
    }
    ops
}

/// Encodes ops so that [`ops_from_bytes`] gives them back (for seed files).
pub fn ops_to_bytes(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        let bytes: Vec<u8> = match *op {
            Op::Append { t, c, u, at } => vec![0, t, c, u, at],
            Op::Edit { t, c, m } => vec![1, t, c, m],
            Op::Delete { t, c, m } => vec![2, t, c, m],
            Op::TenantPolicy {
                t,
                history_off,
                retention,
                members_may_change,
            } => vec![3, t, history_off as u8, retention, members_may_change as u8],
            Op::ConvPolicy {
                t,
                c,
                history,
                retention,
                delete_existing,
                actor,
            } => vec![4, t, c, history, retention, delete_existing as u8, actor],
            Op::PlaceHold { t, scope } => match scope {
                HoldSel::Tenant => vec![5, t, 0, 0],
                HoldSel::Conversation(x) => vec![5, t, 1, x],
                HoldSel::Custodian(x) => vec![5, t, 2, x],
            },
            Op::ReleaseHold { t, h } => vec![6, t, h],
            Op::Advance { step } => vec![7, step],
            Op::Shred { t, scope, queue } => {
                let (k, x, at) = match scope {
                    ShredSel::Tenant => (0, 0, 0),
                    ShredSel::Conversation(x) => (1, x, 0),
                    ShredSel::User(x) => (2, x, 0),
                    ShredSel::Window { c, at } => (3, c, at),
                };
                vec![8, t, k, x, at, queue as u8]
            }
            Op::Erase { t, u, by } => vec![9, t, u, by],
            Op::Purge => vec![10],
            Op::Export { t, what } => match what {
                ExportSel::Conversation(x) => vec![11, t, 0, x],
                ExportSel::User(x) => vec![11, t, 1, x],
                ExportSel::Tenant => vec![11, t, 2, 0],
            },
            Op::Restart => vec![12],
            Op::Get { t, c, m } => vec![13, t, c, m],
            Op::Foreign { t, c, m } => vec![14, t, c, m],
            Op::Page {
                t,
                c,
                from,
                backward,
                limit,
            } => vec![15, t, c, from, backward as u8, limit],
            Op::Between { t, c, start, len } => vec![16, t, c, start, len],
            Op::Subject { t, u, c } => vec![17, t, u, c],
            Op::Revisions { t, c, m } => vec![18, t, c, m],
        };
        out.extend(bytes);
    }
    out
}

// ------------------------------------------------------------------ the model

/// Error variants the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EK {
    Shredded,
    NotFound,
    Expired,
    LegalHold,
    PermissionDenied,
    InvalidInput,
}

fn kind_of(e: &Error) -> Option<EK> {
    Some(match e {
        Error::Shredded { .. } => EK::Shredded,
        Error::NotFound { .. } => EK::NotFound,
        Error::Expired { .. } => EK::Expired,
        Error::LegalHold { .. } => EK::LegalHold,
        Error::PermissionDenied(_) => EK::PermissionDenied,
        Error::InvalidInput(_) => EK::InvalidInput,
        _ => return None,
    })
}

/// What a call must return: a value, or one of these error variants.
type Want<T> = Result<T, Vec<EK>>;

fn err<T>(k: EK) -> Want<T> {
    Err(vec![k])
}

/// A message as the model keeps it (and as a read shows it; `author` is a user index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MMsg {
    pub id: u64,
    pub author: usize,
    pub sent_at: i64,
    pub body: String,
    pub revision: u32,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// Earlier revisions: (revision, body, written at).
    pub revisions: Vec<(u32, String, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MHold {
    Tenant,
    Conv(usize),
    Custodian(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MScope {
    Tenant,
    Conv(usize),
    User(usize),
    Window { c: usize, at: i64 },
}

#[derive(Debug, Clone, Default)]
pub struct MShred {
    pub tenant: bool,
    pub convs: BTreeSet<usize>,
    pub users: BTreeSet<usize>,
    /// (conversation, start inclusive, end exclusive).
    pub windows: Vec<(usize, i64, i64)>,
}

#[derive(Debug, Clone)]
pub struct MConv {
    pub kind: ConversationKind,
    pub msgs: BTreeMap<u64, MMsg>,
    pub next_id: u64,
    pub ov: PolicyOverride,
    /// Per author: every message sent before this is expired for good.
    pub frozen: [i64; USERS],
    /// (user, joined, left), by user.
    pub members: Vec<(usize, i64, Option<i64>)>,
}

#[derive(Debug, Clone)]
pub struct MTenant {
    pub erasure: ErasurePolicy,
    pub epoch_ms: u64,
    pub policy: TenantPolicy,
    pub convs: Vec<MConv>,
    /// Active holds by the id the vault gave them.
    pub holds: BTreeMap<u64, MHold>,
    pub shred: MShred,
    /// Queued erasures: (seq of the `Queued` receipt, scope), oldest first.
    pub queue: Vec<(u64, MScope)>,
}

/// What a message looks like to a reader now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Visible,
    Shredded,
    Expired,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub now: i64,
    pub tenants: Vec<MTenant>,
    /// A purge or a restart happened: records of shredded or expired messages may be gone.
    pub may_be_compacted: bool,
    /// Counter for unique bodies.
    pub bodies: u64,
}

fn members_at_setup() -> Vec<Vec<(usize, i64, Option<i64>)>> {
    vec![
        vec![(0, 0), (1, 0)],
        vec![(0, 0), (1, 0), (2, 0)],
        vec![(1, T0 + 120_000), (2, 0)],
    ]
    .into_iter()
    .enumerate()
    .map(|(c, ms)| {
        ms.into_iter()
            .map(|(u, j)| (u, j, (c == 1 && u == 2).then_some(T0 + 60_000)))
            .collect()
    })
    .collect()
}

pub fn user_ext(u: usize) -> String {
    format!("u{u}@example.org")
}
pub fn user_name(u: usize) -> String {
    format!("User {u}")
}
pub fn conv_ext(c: usize) -> String {
    format!("c{c}")
}
pub fn tenant_name(t: usize) -> String {
    format!("t{t}")
}

impl Model {
    fn new() -> Model {
        let members = members_at_setup();
        let tenants = (0..TENANTS)
            .map(|t| MTenant {
                erasure: ERASURE[t],
                epoch_ms: EPOCH_MS[t],
                policy: TenantPolicy::default(),
                convs: (0..CONVS)
                    .map(|c| MConv {
                        kind: if c == 0 {
                            ConversationKind::Direct
                        } else {
                            ConversationKind::Group
                        },
                        msgs: BTreeMap::new(),
                        next_id: 1,
                        ov: PolicyOverride::default(),
                        frozen: [i64::MIN; USERS],
                        members: members[c].clone(),
                    })
                    .collect(),
                holds: BTreeMap::new(),
                shred: MShred::default(),
                queue: Vec::new(),
            })
            .collect();
        Model {
            now: T0,
            tenants,
            may_be_compacted: false,
            bodies: 0,
        }
    }

    fn effective(&self, t: usize, c: usize) -> Policy {
        let tn = &self.tenants[t];
        let o = tn.convs[c].ov;
        Policy {
            history: o.history.unwrap_or(tn.policy.default.history),
            retention: o.retention.unwrap_or(tn.policy.default.retention),
        }
    }

    fn period(&self, t: usize, c: usize) -> Option<i64> {
        match self.effective(t, c).retention {
            Retention::Forever => None,
            Retention::Period { ms } => Some(ms as i64),
        }
    }

    /// Whether a message of `c` by `a` is held (`None`: by anyone a custodian hold names).
    fn held(&self, t: usize, c: usize, a: Option<usize>) -> bool {
        self.tenants[t].holds.values().any(|h| match *h {
            MHold::Tenant => true,
            MHold::Conv(x) => x == c,
            MHold::Custodian(u) => a.is_none_or(|a| a == u),
        })
    }

    /// Records that what is expired now stays expired (called at every op boundary: the
    /// clock and the policies only change inside ops).
    fn freeze(&mut self) {
        for t in 0..TENANTS {
            for c in 0..CONVS {
                let Some(p) = self.period(t, c) else { continue };
                for a in 0..USERS {
                    if !self.held(t, c, Some(a)) {
                        let f = &mut self.tenants[t].convs[c].frozen[a];
                        *f = (*f).max(self.now - p + 1);
                    }
                }
            }
        }
    }

    fn expired(&self, t: usize, c: usize, a: usize, sent_at: i64) -> bool {
        sent_at < self.tenants[t].convs[c].frozen[a]
            || (self.period(t, c).is_some_and(|p| self.now >= sent_at + p)
                && !self.held(t, c, Some(a)))
    }

    fn whole_shredded(&self, t: usize, c: usize) -> bool {
        let s = &self.tenants[t].shred;
        s.tenant || s.convs.contains(&c)
    }

    /// Whether a record of `c` by `a` at `sent_at` lies in a shredded window or (when the
    /// author decides the key) a shredded author's scope. `any_policy`: the author counts
    /// under either erasure policy (appends: a shredded user cannot write).
    fn partly_shredded(
        &self,
        t: usize,
        c: usize,
        a: usize,
        sent_at: i64,
        any_policy: bool,
    ) -> bool {
        let tn = &self.tenants[t];
        tn.shred
            .windows
            .iter()
            .any(|&(wc, s, e)| wc == c && (s..e).contains(&sent_at))
            || ((any_policy || tn.erasure == ErasurePolicy::MessagesUnreadable)
                && tn.shred.users.contains(&a))
    }

    fn state(&self, t: usize, c: usize, m: &MMsg) -> St {
        if self.whole_shredded(t, c) || self.partly_shredded(t, c, m.author, m.sent_at, false) {
            St::Shredded
        } else if self.expired(t, c, m.author, m.sent_at) {
            St::Expired
        } else {
            St::Visible
        }
    }

    fn visible(&self, t: usize, c: usize) -> Vec<MMsg> {
        self.tenants[t].convs[c]
            .msgs
            .values()
            .filter(|m| self.state(t, c, m) == St::Visible)
            .cloned()
            .collect()
    }

    /// Mostly an id handed out; `m >= 224`: 0 or the next id (never handed out).
    fn id_of(&self, t: usize, c: usize, m: u8) -> u64 {
        let next = self.tenants[t].convs[c].next_id;
        match m {
            224.. if m & 1 == 0 => 0,
            224.. => next,
            _ => 1 + m as u64 % (next - 1).max(1),
        }
    }

    fn want_get(&self, t: usize, c: usize, id: u64) -> Want<MMsg> {
        if self.whole_shredded(t, c) {
            return err(EK::Shredded);
        }
        let Some(m) = self.tenants[t].convs[c].msgs.get(&id) else {
            return err(EK::NotFound);
        };
        match self.state(t, c, m) {
            St::Visible => Ok(m.clone()),
            St::Expired => err(EK::Expired),
            St::Shredded if self.may_be_compacted => Err(vec![EK::Shredded, EK::Expired]),
            St::Shredded => err(EK::Shredded),
        }
    }

    fn user_shredded(&self, t: usize, u: usize) -> bool {
        let s = &self.tenants[t].shred;
        s.tenant || s.users.contains(&u)
    }

    fn covered(&self, t: usize, scope: MScope) -> bool {
        let s = &self.tenants[t].shred;
        s.tenant
            || match scope {
                MScope::Tenant => false,
                MScope::Conv(c) => s.convs.contains(&c),
                MScope::User(u) => s.users.contains(&u),
                MScope::Window { c, at } => {
                    s.convs.contains(&c)
                        || s.windows
                            .iter()
                            .any(|&(wc, a, b)| wc == c && (a..b).contains(&at))
                }
            }
    }

    /// Whether any active hold could cover part of `scope` (DESIGN.md §7).
    fn blocked(&self, t: usize, scope: MScope) -> bool {
        self.tenants[t].holds.values().any(|h| match (scope, *h) {
            (MScope::Tenant, _) => true,
            (MScope::Conv(c) | MScope::Window { c, .. }, MHold::Conv(x)) => x == c,
            (MScope::Conv(_) | MScope::Window { .. }, _) => true,
            (MScope::User(u), MHold::Custodian(x)) => x == u,
            (MScope::User(_), _) => true,
        })
    }

    /// Applies a shred of `scope` and drops every queued erasure it covers.
    fn apply_shred(&mut self, t: usize, scope: MScope) {
        let epoch = self.tenants[t].epoch_ms as i64;
        let s = &mut self.tenants[t].shred;
        match scope {
            MScope::Tenant => s.tenant = true,
            MScope::Conv(c) => {
                s.convs.insert(c);
            }
            MScope::User(u) => {
                s.users.insert(u);
            }
            MScope::Window { c, at } => {
                let start = at - at.rem_euclid(epoch);
                s.windows.push((c, start, start + epoch));
            }
        }
        let queue = std::mem::take(&mut self.tenants[t].queue);
        self.tenants[t].queue = queue
            .into_iter()
            .filter(|(_, q)| !self.covered(t, *q))
            .collect();
    }

    /// After a hold was released: carries out the queued erasures no hold covers any longer,
    /// oldest first. Returns their scopes.
    fn run_due_erasures(&mut self, t: usize) -> Vec<MScope> {
        let mut done = Vec::new();
        let items = self.tenants[t].queue.clone();
        for (seq, scope) in items {
            if !self.tenants[t].queue.iter().any(|(s, _)| *s == seq) || self.blocked(t, scope) {
                continue;
            }
            if self.covered(t, scope) {
                self.tenants[t].queue.retain(|(s, _)| *s != seq);
                continue;
            }
            self.tenants[t].queue.retain(|(s, _)| *s != seq);
            self.apply_shred(t, scope);
            done.push(scope);
        }
        done
    }

    fn next_body(&mut self, prefix: &str) -> String {
        self.bodies += 1;
        let n = self.bodies;
        format!("{prefix}{n}{}", BODY_TAILS[n as usize % BODY_TAILS.len()])
    }
}

// ------------------------------------------------------------------ the driver

/// The vault under test, the ids of its universe, and the model.
pub struct Harness {
    _dir: tempfile::TempDir,
    data: PathBuf,
    provider: Arc<StaticKeyProvider>,
    clock: Arc<FakeClock>,
    vault: Option<Vault>,
    tenants: Vec<TenantId>,
    users: Vec<Vec<UserId>>,
    convs: Vec<Vec<ConversationId>>,
    pub model: Model,
}

type R = Result<(), String>;

fn opts(clock: &Arc<FakeClock>) -> VaultOptions {
    VaultOptions {
        clock: clock.clone(),
        // Small: many vaults per process (proptest cases, fuzz inputs).
        block_cache_bytes: 1 << 20,
        ..VaultOptions::default()
    }
}

/// Outcomes seen, by call (`what` up to its first parenthesis): for coverage reports
/// ([`coverage`]).
static OUTCOMES: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

/// How often each call gave each outcome so far in this process, one line each.
pub fn coverage() -> String {
    let m = OUTCOMES.lock().unwrap_or_else(|e| e.into_inner());
    m.iter().map(|(k, n)| format!("{n:>8}  {k}\n")).collect()
}

fn record(key: String) {
    *OUTCOMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default() += 1;
}

fn check<T: std::fmt::Debug + PartialEq>(
    what: &str,
    got: chatvault::Result<T>,
    want: &Want<T>,
) -> R {
    let call = what.split(['(', ' ']).next().unwrap_or(what);
    record(format!(
        "{call}: {}",
        match &got {
            Ok(_) => "Ok".to_string(),
            Err(e) => kind_of(e).map_or_else(|| format!("{e}"), |k| format!("{k:?}")),
        }
    ));
    match (&got, want) {
        (Ok(g), Ok(w)) if g == w => Ok(()),
        (Err(e), Err(ks)) if kind_of(e).is_some_and(|k| ks.contains(&k)) => Ok(()),
        _ => Err(format!("{what}: got {got:?}, the model wants {want:?}")),
    }
}

/// A read's result in the model's terms: messages with author indices.
fn view(users: &[UserId], m: &Message) -> Result<MMsg, String> {
    let author = users
        .iter()
        .position(|u| *u == m.author)
        .ok_or_else(|| format!("message {} has an unknown author {:?}", m.id, m.author))?;
    if m.kind != MessageKind::Text
        || m.reply_to.is_some()
        || !m.also_reply_to.is_empty()
        || !m.attachments.is_empty()
    {
        return Err(format!("message {} has fields never written: {m:?}", m.id));
    }
    Ok(MMsg {
        id: m.id,
        author,
        sent_at: m.sent_at_ms,
        body: m.body.clone(),
        revision: m.revision,
        edited_at: m.edited_at_ms,
        deleted_at: m.deleted_at_ms,
        revisions: Vec::new(),
    })
}

/// A model message as a read shows it (without its earlier revisions).
fn shown(m: &MMsg) -> MMsg {
    MMsg {
        revisions: Vec::new(),
        ..m.clone()
    }
}

/// `Shredded` if `gone`, else `ok`.
fn gone_or<T>(gone: bool, ok: T) -> Want<T> {
    if gone {
        err(EK::Shredded)
    } else {
        Ok(ok)
    }
}

fn ms_of(r: Retention) -> Option<u64> {
    match r {
        Retention::Forever => None,
        Retention::Period { ms } => Some(ms),
    }
}

/// One JSON Lines record of an export, reduced to what the model decides.
#[derive(Debug, Clone, PartialEq, Eq)]
enum XLine {
    Header {
        scope: String,
        tenant: u64,
        user: Option<u64>,
        conversation: Option<u64>,
    },
    Tenant {
        tenant: u64,
        name: String,
        epoch_ms: u64,
    },
    User {
        user: u64,
        external_id: String,
        display_name: String,
    },
    Conversation {
        conversation: u64,
        external_id: String,
        members: Vec<(u64, i64, Option<i64>)>,
    },
    Message {
        conversation: u64,
        id: u64,
        author: u64,
        role: Option<String>,
        sent_at: i64,
        body: String,
        revision: u64,
        edited_at: Option<i64>,
        deleted_at: Option<i64>,
        revisions: Vec<(u64, String, i64)>,
    },
    End {
        records: u64,
        messages: u64,
    },
}

fn parse_export(bytes: &[u8]) -> Result<Vec<XLine>, String> {
    use serde_json::Value;
    let text = std::str::from_utf8(bytes).map_err(|e| format!("export is not UTF-8: {e}"))?;
    if !text.ends_with('\n') {
        return Err("export does not end with a newline".into());
    }
    let s = |v: &Value, k: &str| -> Result<String, String> {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("field {k} of {v} is not a string"))
    };
    let u = |v: &Value, k: &str| -> Result<u64, String> {
        v[k].as_u64()
            .ok_or_else(|| format!("field {k} of {v} is not a u64"))
    };
    let i = |v: &Value, k: &str| -> Result<i64, String> {
        v[k].as_i64()
            .ok_or_else(|| format!("field {k} of {v} is not an i64"))
    };
    let oi = |v: &Value, k: &str| -> Result<Option<i64>, String> {
        match &v[k] {
            Value::Null => Ok(None),
            x => x
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("field {k} of {v}")),
        }
    };
    let ou = |v: &Value, k: &str| -> Result<Option<u64>, String> {
        match &v[k] {
            Value::Null => Ok(None),
            x => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("field {k} of {v}")),
        }
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("export line {line:?}: {e}"))?;
        out.push(match v["type"].as_str() {
            Some("header") => {
                if v["format"] != "chatvault-export" || v["version"] != 1 {
                    return Err(format!("bad header {v}"));
                }
                XLine::Header {
                    scope: s(&v, "scope")?,
                    tenant: u(&v, "tenant")?,
                    user: ou(&v, "user")?,
                    conversation: ou(&v, "conversation")?,
                }
            }
            Some("tenant") => XLine::Tenant {
                tenant: u(&v, "tenant")?,
                name: s(&v, "name")?,
                epoch_ms: u(&v, "epoch_ms")?,
            },
            Some("user") => XLine::User {
                user: u(&v, "user")?,
                external_id: s(&v, "external_id")?,
                display_name: s(&v, "display_name")?,
            },
            Some("conversation") => XLine::Conversation {
                conversation: u(&v, "conversation")?,
                external_id: s(&v, "external_id")?,
                members: v["members"]
                    .as_array()
                    .ok_or("members is not an array")?
                    .iter()
                    .map(|m| Ok((u(m, "user")?, i(m, "joined_at_ms")?, oi(m, "left_at_ms")?)))
                    .collect::<Result<_, String>>()?,
            },
            Some("message") => XLine::Message {
                conversation: u(&v, "conversation")?,
                id: u(&v, "id")?,
                author: u(&v, "author")?,
                role: match &v["role"] {
                    Value::Null => None,
                    r => Some(r.as_str().ok_or("role")?.to_string()),
                },
                sent_at: i(&v, "sent_at_ms")?,
                body: s(&v, "body")?,
                revision: u(&v, "revision")?,
                edited_at: oi(&v, "edited_at_ms")?,
                deleted_at: oi(&v, "deleted_at_ms")?,
                revisions: v["revisions"]
                    .as_array()
                    .ok_or("revisions is not an array")?
                    .iter()
                    .map(|r| Ok((u(r, "revision")?, s(r, "body")?, i(r, "written_at_ms")?)))
                    .collect::<Result<_, String>>()?,
            },
            Some("end") => XLine::End {
                records: u(&v, "records")?,
                messages: u(&v, "messages")?,
            },
            _ => return Err(format!("unexpected export line {v}")),
        });
    }
    Ok(out)
}

fn role_of(
    m: &MMsg,
    u: usize,
    membership: Option<&(usize, i64, Option<i64>)>,
) -> Option<MessageRole> {
    if m.author == u {
        return Some(MessageRole::Sent);
    }
    let &(_, joined, left) = membership?;
    (m.sent_at >= joined && left.is_none_or(|l| m.sent_at < l)).then_some(MessageRole::Received)
}

impl Harness {
    /// A fresh vault with the universe created (as the model's set-up says).
    pub fn new() -> Result<Harness, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        let provider = Arc::new(StaticKeyProvider::ephemeral(
            SecretKey::generate().map_err(|e| e.to_string())?,
        ));
        let clock = FakeClock::new(T0);
        let v = Vault::create(&data, provider.clone(), opts(&clock)).map_err(|e| e.to_string())?;
        let members = members_at_setup();
        let mut tenants = Vec::new();
        let mut users = Vec::new();
        let mut convs = Vec::new();
        let e = |e: Error| e.to_string();
        for t in 0..TENANTS {
            let tid = v
                .create_tenant(
                    &tenant_name(t),
                    TenantOptions {
                        erasure_policy: ERASURE[t],
                        epoch_ms: EPOCH_MS[t],
                    },
                )
                .map_err(e)?;
            let us: Vec<UserId> = (0..USERS)
                .map(|u| v.create_user(tid, &user_ext(u), UserProfile::named(user_name(u))))
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let mut cs = Vec::new();
            for (c, ms) in members.iter().enumerate() {
                let kind = if c == 0 {
                    ConversationKind::Direct
                } else {
                    ConversationKind::Group
                };
                let initial: Vec<(UserId, i64)> = ms.iter().map(|&(u, j, _)| (us[u], j)).collect();
                let cid = v
                    .create_conversation(tid, &conv_ext(c), kind, None, &initial)
                    .map_err(e)?;
                for &(u, _, left) in ms {
                    if let Some(l) = left {
                        v.remove_member(tid, cid, us[u], l).map_err(e)?;
                    }
                }
                cs.push(cid);
            }
            tenants.push(tid);
            users.push(us);
            convs.push(cs);
        }
        Ok(Harness {
            _dir: dir,
            data,
            provider,
            clock,
            vault: Some(v),
            tenants,
            users,
            convs,
            model: Model::new(),
        })
    }

    fn v(&self) -> &Vault {
        self.vault.as_ref().expect("the vault is open between ops")
    }

    /// The vault (for regression tests that call it directly).
    pub fn vault(&self) -> &Vault {
        self.v()
    }
    /// Tenant `t` (0: `MessagesUnreadable`, 1: `AuthorErased`).
    pub fn tenant(&self, t: usize) -> TenantId {
        self.tenants[t]
    }
    /// Conversation `c` of tenant `t`.
    pub fn conv(&self, t: usize, c: usize) -> ConversationId {
        self.convs[t][c]
    }
    /// User `u` of tenant `t`.
    pub fn user(&self, t: usize, u: usize) -> UserId {
        self.users[t][u]
    }

    fn actor(&self, t: usize, sel: u8) -> Actor {
        match sel as usize % (USERS + 1) {
            0 => Actor::operator(),
            n => Actor::member(self.users[t][n - 1]),
        }
    }

    fn uidx(&self, t: usize, u: UserId) -> Option<usize> {
        self.users[t].iter().position(|x| *x == u)
    }

    fn msgs_view(
        &self,
        t: usize,
        got: chatvault::Result<Vec<Message>>,
    ) -> chatvault::Result<Vec<MMsg>> {
        got.map(|ms| {
            ms.iter()
                .map(|m| {
                    view(&self.users[t], m).unwrap_or_else(|e| MMsg {
                        id: m.id,
                        author: usize::MAX,
                        sent_at: m.sent_at_ms,
                        body: e,
                        revision: m.revision,
                        edited_at: None,
                        deleted_at: None,
                        revisions: Vec::new(),
                    })
                })
                .collect()
        })
    }

    /// Runs `ops`, comparing the vault with the model after each; the first disagreement is
    /// returned with the op and its position.
    pub fn run(ops: &[Op]) -> R {
        let mut h = Harness::new()?;
        h.sweep().map_err(|e| format!("after set-up: {e}"))?;
        for (n, op) in ops.iter().enumerate() {
            h.apply(op)
                .and_then(|()| {
                    h.model.freeze();
                    h.sweep()
                })
                .map_err(|e| format!("op {n} {op:?}: {e}\n  ops: {ops:?}"))?;
        }
        Ok(())
    }

    /// Applies one op to the vault and the model, checking what the call returns.
    pub fn apply(&mut self, op: &Op) -> R {
        let now = self.model.now;
        match *op {
            Op::Append { t, c, u, at } => {
                let (t, c, u) = (t as usize % TENANTS, c as usize % CONVS, u as usize % USERS);
                let sent_at = now + TIME_OFFSETS[at as usize % TIME_OFFSETS.len()];
                let m = &self.model;
                let want: Want<Option<u64>> = if m.whole_shredded(t, c) {
                    err(EK::Shredded)
                } else if m.effective(t, c).history == History::Off {
                    Ok(None)
                } else if m.partly_shredded(t, c, u, sent_at, true) {
                    err(EK::Shredded)
                } else if m.expired(t, c, u, sent_at) {
                    err(EK::Expired)
                } else {
                    Ok(Some(m.tenants[t].convs[c].next_id))
                };
                let body = self.model.next_body("m");
                let got = self
                    .v()
                    .append(
                        self.tenants[t],
                        self.convs[t][c],
                        NewMessage::text(self.users[t][u], sent_at, body.clone()),
                    )
                    .map(|a| a.stored());
                check("append", got, &want)?;
                if let Ok(Some(id)) = want {
                    let mc = &mut self.model.tenants[t].convs[c];
                    mc.next_id += 1;
                    mc.msgs.insert(
                        id,
                        MMsg {
                            id,
                            author: u,
                            sent_at,
                            body,
                            revision: 0,
                            edited_at: None,
                            deleted_at: None,
                            revisions: Vec::new(),
                        },
                    );
                }
            }
            Op::Edit { t, c, m } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let id = self.model.id_of(t, c, m);
                let want: Want<u32> = match self.model.want_get(t, c, id) {
                    Err(e) => Err(e),
                    Ok(m) if m.deleted_at.is_some() => err(EK::InvalidInput),
                    // Writing as an erased author (AuthorErased: the message stays readable).
                    Ok(m) if self.model.user_shredded(t, m.author) => err(EK::Shredded),
                    Ok(m) => Ok(m.revision + 1),
                };
                let body = self.model.next_body("e");
                let got = self
                    .v()
                    .edit(self.tenants[t], self.convs[t][c], id, &body, now);
                check("edit", got, &want)?;
                if want.is_ok() {
                    let mm = self.model.tenants[t].convs[c]
                        .msgs
                        .get_mut(&id)
                        .expect("edited");
                    let written = mm.edited_at.unwrap_or(mm.sent_at);
                    mm.revisions.push((mm.revision, mm.body.clone(), written));
                    mm.revision += 1;
                    mm.body = body;
                    mm.edited_at = Some(now);
                }
            }
            Op::Delete { t, c, m } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let id = self.model.id_of(t, c, m);
                let want: Want<()> = match self.model.want_get(t, c, id) {
                    Err(e) => Err(e),
                    Ok(m) if m.deleted_at.is_some() => Ok(()),
                    Ok(m) if self.model.user_shredded(t, m.author) => err(EK::Shredded),
                    Ok(_) => Ok(()),
                };
                let already = self.model.tenants[t].convs[c]
                    .msgs
                    .get(&id)
                    .is_some_and(|m| m.deleted_at.is_some());
                let got = self.v().delete(self.tenants[t], self.convs[t][c], id, now);
                check("delete", got, &want)?;
                if want.is_ok() && !already {
                    let mm = self.model.tenants[t].convs[c]
                        .msgs
                        .get_mut(&id)
                        .expect("deleted");
                    mm.revision += 1;
                    mm.body.clear();
                    mm.edited_at = None;
                    mm.deleted_at = Some(now);
                    mm.revisions.clear();
                }
            }
            Op::TenantPolicy {
                t,
                history_off,
                retention,
                members_may_change,
            } => {
                let t = t as usize % TENANTS;
                let policy = TenantPolicy {
                    default: Policy {
                        history: if history_off {
                            History::Off
                        } else {
                            History::On
                        },
                        retention: RETENTIONS[retention as usize % RETENTIONS.len()],
                    },
                    members_may_change,
                };
                let want: Want<()> = if self.model.tenants[t].shred.tenant {
                    err(EK::Shredded)
                } else if ms_of(policy.default.retention).is_some_and(|ms| ms < 60_000) {
                    err(EK::InvalidInput)
                } else {
                    Ok(())
                };
                let got = self
                    .v()
                    .set_tenant_policy(self.tenants[t], Actor::operator(), policy);
                check("set_tenant_policy", got, &want)?;
                if want.is_ok() {
                    self.model.tenants[t].policy = policy;
                }
            }
            Op::ConvPolicy {
                t,
                c,
                history,
                retention,
                delete_existing,
                actor,
            } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let ov = PolicyOverride {
                    history: match history % 3 {
                        0 => None,
                        1 => Some(History::On),
                        _ => Some(History::Off),
                    },
                    retention: match retention as usize % (RETENTIONS.len() + 1) {
                        0 => None,
                        n => Some(RETENTIONS[n - 1]),
                    },
                };
                let who = actor as usize % (USERS + 1);
                let m = &self.model;
                let member_ok = who == 0
                    || (m.tenants[t].policy.members_may_change
                        && m.tenants[t].convs[c]
                            .members
                            .iter()
                            .any(|&(u, _, left)| u == who - 1 && left.is_none()));
                let want: Want<()> = if m.whole_shredded(t, c) {
                    err(EK::Shredded)
                } else if ov.retention.and_then(ms_of).is_some_and(|ms| ms < 60_000) {
                    err(EK::InvalidInput)
                } else if !member_ok {
                    err(EK::PermissionDenied)
                } else if delete_existing && m.held(t, c, None) {
                    err(EK::LegalHold)
                } else {
                    Ok(())
                };
                let got = self.v().set_conversation_policy(
                    self.tenants[t],
                    self.convs[t][c],
                    self.actor(t, actor),
                    ov,
                    delete_existing,
                );
                check("set_conversation_policy", got, &want)?;
                if want.is_ok() {
                    let mc = &mut self.model.tenants[t].convs[c];
                    mc.ov = ov;
                    if delete_existing {
                        for f in &mut mc.frozen {
                            *f = (*f).max(now + 1);
                        }
                    }
                }
            }
            Op::PlaceHold { t, scope } => {
                let t = t as usize % TENANTS;
                let mh = match scope {
                    HoldSel::Tenant => MHold::Tenant,
                    HoldSel::Conversation(c) => MHold::Conv(c as usize % CONVS),
                    HoldSel::Custodian(u) => MHold::Custodian(u as usize % USERS),
                };
                let hs = match mh {
                    MHold::Tenant => HoldScope::Tenant,
                    MHold::Conv(c) => HoldScope::Conversation(self.convs[t][c]),
                    MHold::Custodian(u) => HoldScope::Custodian(self.users[t][u]),
                };
                let m = &self.model;
                let want: Want<HoldScope> = if m.tenants[t].shred.tenant {
                    err(EK::Shredded)
                } else {
                    match mh {
                        MHold::Conv(c) if m.whole_shredded(t, c) => err(EK::Shredded),
                        MHold::Custodian(u) if m.user_shredded(t, u) => err(EK::Shredded),
                        _ => Ok(hs),
                    }
                };
                let got = self
                    .v()
                    .place_hold(self.tenants[t], Actor::operator(), hs, "matter");
                let id = got.as_ref().ok().map(|h| h.id);
                check("place_hold", got.map(|h| h.scope), &want)?;
                if let Some(id) = id {
                    if self.model.tenants[t].holds.insert(id, mh).is_some() {
                        return Err(format!("place_hold gave an id already in use: {id}"));
                    }
                }
            }
            Op::ReleaseHold { t, h } => {
                let t = t as usize % TENANTS;
                let ids: Vec<u64> = self.model.tenants[t].holds.keys().copied().collect();
                // One in eight: an id that is no active hold.
                let id = match h % 8 {
                    7 => None,
                    _ => ids.get(h as usize % ids.len().max(1)).copied(),
                }
                .unwrap_or(u64::MAX);
                let want_err = if self.model.tenants[t].shred.tenant {
                    Some(EK::Shredded)
                } else if !ids.contains(&id) {
                    Some(EK::NotFound)
                } else {
                    None
                };
                let mut after = self.model.clone();
                let carried = match want_err {
                    Some(_) => Vec::new(),
                    None => {
                        after.tenants[t].holds.remove(&id);
                        after.run_due_erasures(t)
                    }
                };
                let want: Want<Vec<ShredScope>> = match want_err {
                    Some(k) => err(k),
                    None => Ok(carried.iter().map(|s| self.scope(t, *s)).collect()),
                };
                let got = self
                    .v()
                    .release_hold_with_receipts(self.tenants[t], Actor::operator(), id)
                    .map(|rs| rs.into_iter().map(|r| r.scope).collect::<Vec<_>>());
                check("release_hold (the erasures it carried out)", got, &want)?;
                if want.is_ok() {
                    self.model = after;
                }
            }
            Op::Advance { step } => {
                let ms = ADVANCE_STEPS[step as usize % ADVANCE_STEPS.len()];
                self.clock.advance(ms);
                self.model.now += ms;
            }
            Op::Shred { t, scope, queue } => {
                let t = t as usize % TENANTS;
                let ms = match scope {
                    ShredSel::Tenant => MScope::Tenant,
                    ShredSel::Conversation(c) => MScope::Conv(c as usize % CONVS),
                    ShredSel::User(u) => MScope::User(u as usize % USERS),
                    ShredSel::Window { c, at } => MScope::Window {
                        c: c as usize % CONVS,
                        at: now + TIME_OFFSETS[at as usize % TIME_OFFSETS.len()],
                    },
                };
                self.shred(t, ms, Actor::operator(), if queue { 1 } else { 0 })?;
            }
            Op::Erase { t, u, by } => {
                let t = t as usize % TENANTS;
                let u = u as usize % USERS;
                let actor = self.actor(t, by);
                let who = by as usize % (USERS + 1);
                if who != 0 && who - 1 != u {
                    let got = self
                        .v()
                        .erase_user(self.tenants[t], actor, self.users[t][u]);
                    check(
                        "erase_user by another member",
                        got.map(|_| ()),
                        &err(EK::PermissionDenied),
                    )?;
                } else {
                    self.shred(t, MScope::User(u), actor, 2)?;
                }
            }
            Op::Purge => {
                let r = self
                    .v()
                    .purge(PurgeOptions::default())
                    .map_err(|e| format!("purge: {e}"))?;
                if !r.complete || r.old_copies_exposed.is_some() {
                    return Err(format!("purge incomplete: {r:?}"));
                }
                self.model.may_be_compacted = true;
            }
            Op::Export { t, what } => self.export(t as usize % TENANTS, what)?,
            Op::Restart => {
                drop(self.vault.take());
                let v = Vault::open(&self.data, self.provider.clone(), opts(&self.clock))
                    .map_err(|e| format!("reopening the vault: {e}"))?;
                self.vault = Some(v);
                self.model.may_be_compacted = true;
            }
            Op::Get { t, c, m } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let id = self.model.id_of(t, c, m);
                self.check_get(t, c, id)?;
            }
            Op::Foreign { t, c, m } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let other = (t + 1) % TENANTS;
                let id = m as u64 % 4;
                let (tid, cid) = (self.tenants[t], self.convs[other][c]);
                let shredded = self.model.tenants[t].shred.tenant;
                let want: Want<()> = err(if shredded { EK::Shredded } else { EK::NotFound });
                check(
                    "get of another tenant's conversation",
                    self.v().get(tid, cid, id).map(|_| ()),
                    &want,
                )?;
                check(
                    "edit of another tenant's conversation",
                    self.v().edit(tid, cid, id.max(1), "x", now).map(|_| ()),
                    &want,
                )?;
                let got = self
                    .v()
                    .append(tid, cid, NewMessage::text(self.users[t][0], now, "x"))
                    .map(|_| ());
                check("append to another tenant's conversation", got, &want)?;
            }
            Op::Page {
                t,
                c,
                from,
                backward,
                limit,
            } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let limit = limit as usize % 6;
                let from = match from {
                    0 => None,
                    f => Some((f as u64 - 1) % (self.model.tenants[t].convs[c].next_id + 1)),
                };
                let dir = if backward {
                    Direction::Backward
                } else {
                    Direction::Forward
                };
                let want: Want<(Vec<MMsg>, Option<u64>)> = if self.model.whole_shredded(t, c) {
                    err(EK::Shredded)
                } else {
                    let mut vis = self.model.visible(t, c);
                    if backward {
                        vis.reverse();
                    }
                    let rest: Vec<MMsg> = vis
                        .into_iter()
                        .filter(|m| match (from, backward) {
                            (None, _) => true,
                            (Some(f), false) => m.id >= f,
                            (Some(f), true) => m.id <= f,
                        })
                        .map(|m| shown(&m))
                        .collect();
                    let next = rest.get(limit).map(|m| m.id);
                    Ok((rest.into_iter().take(limit).collect(), next))
                };
                let got = self
                    .v()
                    .page(self.tenants[t], self.convs[t][c], from, dir, limit)
                    .map(|p| (p.messages, p.next));
                let got = match got {
                    Ok((ms, next)) => self.msgs_view(t, Ok(ms)).map(|ms| (ms, next)),
                    Err(e) => Err(e),
                };
                check(
                    &format!("page(from {from:?}, {dir:?}, limit {limit})"),
                    got,
                    &want,
                )?;
            }
            Op::Between { t, c, start, len } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let start = now + TIME_OFFSETS[start as usize % TIME_OFFSETS.len()];
                let end = start + RANGE_LENS[len as usize % RANGE_LENS.len()];
                let want: Want<Vec<MMsg>> = if self.model.whole_shredded(t, c) {
                    err(EK::Shredded)
                } else {
                    let mut vis: Vec<MMsg> = self
                        .model
                        .visible(t, c)
                        .into_iter()
                        .filter(|m| (start..end).contains(&m.sent_at))
                        .map(|m| shown(&m))
                        .collect();
                    vis.sort_by_key(|m| (m.sent_at, m.id));
                    Ok(vis)
                };
                let got = self
                    .v()
                    .messages_between(self.tenants[t], self.convs[t][c], start, end)
                    .and_then(|it| it.collect::<chatvault::Result<Vec<_>>>());
                let got = self.msgs_view(t, got);
                check(&format!("messages_between({start}, {end})"), got, &want)?;
            }
            Op::Subject { t, u, c } => {
                let (t, u, c) = (t as usize % TENANTS, u as usize % USERS, c as usize % CONVS);
                let m = &self.model;
                let want: Want<Vec<(MMsg, MessageRole)>> = if m.whole_shredded(t, c) {
                    err(EK::Shredded)
                } else {
                    let own = m.tenants[t].convs[c].members.iter().find(|x| x.0 == u);
                    Ok(m.visible(t, c)
                        .into_iter()
                        .filter_map(|msg| role_of(&msg, u, own).map(|r| (shown(&msg), r)))
                        .collect())
                };
                let got = self
                    .v()
                    .subject_messages(
                        self.tenants[t],
                        Actor::member(self.users[t][u]),
                        self.users[t][u],
                        self.convs[t][c],
                    )
                    .and_then(|it| it.collect::<chatvault::Result<Vec<_>>>());
                let got = got.map(|xs| {
                    xs.into_iter()
                        .map(|(msg, r)| {
                            (
                                self.msgs_view(t, Ok(vec![msg])).unwrap_or_default()[0].clone(),
                                r,
                            )
                        })
                        .collect::<Vec<_>>()
                });
                check("subject_messages", got, &want)?;
            }
            Op::Revisions { t, c, m } => {
                let (t, c) = (t as usize % TENANTS, c as usize % CONVS);
                let id = self.model.id_of(t, c, m);
                let want: Want<Vec<(u32, String, i64)>> =
                    self.model.want_get(t, c, id).map(|m| m.revisions);
                let got = self
                    .v()
                    .revisions(self.tenants[t], self.convs[t][c], id)
                    .map(|rs| {
                        rs.into_iter()
                            .map(|r| (r.revision, r.body, r.written_at_ms))
                            .collect()
                    });
                check(&format!("revisions of {id}"), got, &want)?;
            }
        }
        Ok(())
    }

    fn scope(&self, t: usize, s: MScope) -> ShredScope {
        match s {
            MScope::Tenant => ShredScope::Tenant,
            MScope::Conv(c) => ShredScope::Conversation(self.convs[t][c]),
            MScope::User(u) => ShredScope::User(self.users[t][u]),
            MScope::Window { c, at } => ShredScope::Window {
                conversation: self.convs[t][c],
                at_ms: at,
            },
        }
    }

    /// `how`: 0 `shred`, 1 `shred_or_queue`, 2 `erase_user` (a user scope).
    fn shred(&mut self, t: usize, ms: MScope, actor: Actor, how: u8) -> R {
        let scope = self.scope(t, ms);
        let m = &self.model;
        // Ok(None): shredded now; Ok(Some(seq)): queued (seq known when asked again).
        let want: Want<Option<Option<u64>>> = if m.tenants[t].shred.tenant || m.covered(t, ms) {
            err(EK::Shredded)
        } else if m.blocked(t, ms) {
            if how == 0 {
                err(EK::LegalHold)
            } else {
                Ok(Some(
                    m.tenants[t]
                        .queue
                        .iter()
                        .find(|(_, q)| *q == ms)
                        .map(|(s, _)| *s),
                ))
            }
        } else {
            Ok(None)
        };
        let tid = self.tenants[t];
        let got = match how {
            0 => self
                .v()
                .shred(tid, actor, scope)
                .map(ShredOutcome::Shredded),
            1 => self.v().shred_or_queue(tid, actor, scope),
            _ => match scope {
                ShredScope::User(u) => self.v().erase_user(tid, actor, u),
                _ => unreachable!("erasure of a user"),
            },
        };
        let what = ["shred", "shred_or_queue", "erase_user"][how as usize];
        let (seq, got) = match got {
            Ok(ShredOutcome::Shredded(r)) if r.scope == scope => (None, Ok(None)),
            Ok(ShredOutcome::Queued(q)) if q.scope == scope => {
                record(format!("{what}: Queued"));
                let known = self.model.tenants[t].queue.iter().any(|(s, _)| *s == q.seq);
                (Some(q.seq), Ok(Some(known.then_some(q.seq))))
            }
            Ok(o) => return Err(format!("{what} of {scope:?}: wrong scope in {o:?}")),
            Err(e) => (None, Err(e)),
        };
        check(&format!("{what} of {scope:?}"), got, &want)?;
        match want {
            Ok(None) => self.model.apply_shred(t, ms),
            Ok(Some(None)) => self.model.tenants[t].queue.push((seq.expect("queued"), ms)),
            _ => {}
        }
        Ok(())
    }

    fn check_get(&self, t: usize, c: usize, id: u64) -> R {
        let want = self.model.want_get(t, c, id).map(|m| shown(&m));
        let got = self
            .v()
            .get(self.tenants[t], self.convs[t][c], id)
            .map(|m| view(&self.users[t], &m));
        let got = match got {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => return Err(format!("get {id}: {e}")),
            Err(e) => Err(e),
        };
        check(&format!("get(t{t}, c{c}, {id})"), got, &want)
    }

    fn export(&self, t: usize, what: ExportSel) -> R {
        let m = &self.model;
        let tid = self.tenants[t];
        let mut out = Vec::new();
        let op = Actor::operator();
        let o = ExportOptions::default();
        let uid = |u: usize| self.users[t][u].as_u64();
        let cid = |c: usize| self.convs[t][c].as_u64();
        let user_line = |u: usize| XLine::User {
            user: uid(u),
            external_id: user_ext(u),
            display_name: user_name(u),
        };
        let conv_lines = |c: usize, subject: Option<usize>, lines: &mut Vec<XLine>| {
            let mc = &m.tenants[t].convs[c];
            let own = subject.and_then(|u| mc.members.iter().find(|x| x.0 == u));
            lines.push(XLine::Conversation {
                conversation: cid(c),
                external_id: conv_ext(c),
                members: mc
                    .members
                    .iter()
                    .filter(|x| subject.is_none_or(|u| x.0 == u))
                    .map(|&(u, j, l)| (uid(u), j, l))
                    .collect(),
            });
            for msg in m.visible(t, c) {
                let role = match subject {
                    None => None,
                    Some(u) => match role_of(&msg, u, own) {
                        None => continue,
                        Some(MessageRole::Sent) => Some("sent".to_string()),
                        Some(MessageRole::Received) => Some("received".to_string()),
                    },
                };
                lines.push(XLine::Message {
                    conversation: cid(c),
                    id: msg.id,
                    author: uid(msg.author),
                    role,
                    sent_at: msg.sent_at,
                    body: msg.body.clone(),
                    revision: msg.revision as u64,
                    edited_at: msg.edited_at,
                    deleted_at: msg.deleted_at,
                    revisions: msg
                        .revisions
                        .iter()
                        .map(|(r, b, w)| (*r as u64, b.clone(), *w))
                        .collect(),
                });
            }
        };
        let header = |scope: &str, user: Option<u64>, conversation: Option<u64>| XLine::Header {
            scope: scope.into(),
            tenant: tid.as_u64(),
            user,
            conversation,
        };
        let (label, got, want): (String, _, Want<Vec<XLine>>) = match what {
            ExportSel::Conversation(c) => {
                let c = c as usize % CONVS;
                let got = self
                    .v()
                    .export_conversation(tid, op, self.convs[t][c], &o, &mut out);
                let want = if m.whole_shredded(t, c) {
                    err(EK::Shredded)
                } else {
                    let mut lines = vec![header("conversation", None, Some(cid(c)))];
                    for &(u, _, _) in &m.tenants[t].convs[c].members {
                        if !m.user_shredded(t, u) {
                            lines.push(user_line(u));
                        }
                    }
                    conv_lines(c, None, &mut lines);
                    Ok(lines)
                };
                (format!("export_conversation(t{t}, c{c})"), got, want)
            }
            ExportSel::User(u) => {
                let u = u as usize % USERS;
                let got = self
                    .v()
                    .export_user(tid, op, self.users[t][u], &o, &mut out);
                let want = if m.user_shredded(t, u) {
                    err(EK::Shredded)
                } else {
                    let mut lines = vec![header("user", Some(uid(u)), None), user_line(u)];
                    for c in 0..CONVS {
                        let member = m.tenants[t].convs[c].members.iter().any(|x| x.0 == u);
                        // A conversation they wrote in without a membership counts while a
                        // message of theirs is readable there, found by the author iid in the
                        // time index: only where records name their author in clear.
                        let wrote = ERASURE[t] == ErasurePolicy::MessagesUnreadable
                            && m.visible(t, c).iter().any(|msg| msg.author == u);
                        if (member || wrote) && !m.whole_shredded(t, c) {
                            conv_lines(c, Some(u), &mut lines);
                        }
                    }
                    Ok(lines)
                };
                (format!("export_user(t{t}, u{u})"), got, want)
            }
            ExportSel::Tenant => {
                let got = self.v().export_tenant(tid, op, &o, &mut out);
                let want = if m.tenants[t].shred.tenant {
                    err(EK::Shredded)
                } else {
                    let mut lines = vec![
                        header("tenant", None, None),
                        XLine::Tenant {
                            tenant: tid.as_u64(),
                            name: tenant_name(t),
                            epoch_ms: EPOCH_MS[t],
                        },
                    ];
                    for u in 0..USERS {
                        if !m.user_shredded(t, u) {
                            lines.push(user_line(u));
                        }
                    }
                    for c in 0..CONVS {
                        if !m.whole_shredded(t, c) {
                            conv_lines(c, None, &mut lines);
                        }
                    }
                    Ok(lines)
                };
                (format!("export_tenant(t{t})"), got, want)
            }
        };
        let want = want.map(|mut lines| {
            let messages = lines
                .iter()
                .filter(|l| matches!(l, XLine::Message { .. }))
                .count() as u64;
            lines.push(XLine::End {
                records: lines.len() as u64,
                messages,
            });
            lines
        });
        let got = match got {
            Ok(sum) => {
                let lines = parse_export(&out).map_err(|e| format!("{label}: {e}"))?;
                if sum.records + 1 != lines.len() as u64 {
                    return Err(format!(
                        "{label}: summary says {} records, {} lines",
                        sum.records,
                        lines.len()
                    ));
                }
                Ok(lines)
            }
            Err(e) => Err(e),
        };
        check(&label, got, &want)
    }

    /// Reads everything in the universe and compares it with the model.
    pub fn sweep(&self) -> R {
        let v = self.v();
        let m = &self.model;
        let live: Vec<TenantId> = (0..TENANTS)
            .filter(|&t| !m.tenants[t].shred.tenant)
            .map(|t| self.tenants[t])
            .collect();
        check(
            "tenants()",
            v.tenants().map(|ts| ts.into_iter().map(|i| i.id).collect()),
            &Ok(live),
        )?;
        if !v
            .verify_receipts(None)
            .map_err(|e| e.to_string())?
            .is_intact()
        {
            return Err("the receipt chain does not verify".into());
        }
        for t in 0..TENANTS {
            let tn = &m.tenants[t];
            let tid = self.tenants[t];
            let tg = tn.shred.tenant;
            check(
                &format!("tenant_policy(t{t})"),
                v.tenant_policy(tid),
                &gone_or(tg, tn.policy),
            )?;
            let want_holds: Vec<(u64, HoldScope)> = tn
                .holds
                .iter()
                .map(|(id, h)| {
                    (
                        *id,
                        match *h {
                            MHold::Tenant => HoldScope::Tenant,
                            MHold::Conv(c) => HoldScope::Conversation(self.convs[t][c]),
                            MHold::Custodian(u) => HoldScope::Custodian(self.users[t][u]),
                        },
                    )
                })
                .collect();
            check(
                &format!("holds(t{t})"),
                v.holds(tid)
                    .map(|hs| hs.into_iter().map(|h| (h.id, h.scope)).collect()),
                &gone_or(tg, want_holds),
            )?;
            let want_q: Vec<(u64, ShredScope)> = tn
                .queue
                .iter()
                .map(|(s, q)| (*s, self.scope(t, *q)))
                .collect();
            check(
                &format!("queued_erasures(t{t})"),
                v.queued_erasures(tid)
                    .map(|qs| qs.into_iter().map(|q| (q.seq, q.scope)).collect()),
                &Ok(want_q),
            )?;
            let live_convs: Vec<ConversationId> = (0..CONVS)
                .filter(|&c| !m.whole_shredded(t, c))
                .map(|c| self.convs[t][c])
                .collect();
            check(
                &format!("conversations(t{t})"),
                v.conversations(tid).and_then(|it| {
                    it.map(|c| c.map(|c| c.id))
                        .collect::<chatvault::Result<Vec<_>>>()
                }),
                &gone_or(tg, live_convs),
            )?;
            for u in 0..USERS {
                let uid = self.users[t][u];
                check(
                    &format!("user(t{t}, u{u})"),
                    v.user(tid, uid)
                        .map(|i| (i.external_id, i.profile.display_name)),
                    &gone_or(m.user_shredded(t, u), (user_ext(u), user_name(u))),
                )?;
                let convs: Vec<ConversationId> = if tn.shred.users.contains(&u) {
                    Vec::new()
                } else {
                    (0..CONVS)
                        .filter(|&c| {
                            !m.whole_shredded(t, c) && tn.convs[c].members.iter().any(|x| x.0 == u)
                        })
                        .map(|c| self.convs[t][c])
                        .collect()
                };
                check(
                    &format!("user_conversations(t{t}, u{u})"),
                    v.user_conversations(tid, uid)
                        .and_then(|it| it.collect::<chatvault::Result<Vec<_>>>()),
                    &gone_or(tg, convs),
                )?;
            }
            for c in 0..CONVS {
                let cid = self.convs[t][c];
                let mc = &tn.convs[c];
                let cg = m.whole_shredded(t, c);
                check(
                    &format!("conversation(t{t}, c{c})"),
                    v.conversation(tid, cid).map(|i| (i.external_id, i.kind)),
                    &gone_or(cg, (conv_ext(c), mc.kind)),
                )?;
                check(
                    &format!("conversation_policy(t{t}, c{c})"),
                    v.conversation_policy(tid, cid),
                    &gone_or(cg, (mc.ov, m.effective(t, c))),
                )?;
                let members: Vec<(UserId, i64, Option<i64>)> = mc
                    .members
                    .iter()
                    .map(|&(u, j, l)| (self.users[t][u], j, l))
                    .collect();
                check(
                    &format!("members(t{t}, c{c})"),
                    v.members(tid, cid).map(|ms| {
                        ms.into_iter()
                            .map(|x| (x.user, x.joined_at_ms, x.left_at_ms))
                            .collect()
                    }),
                    &gone_or(cg, members),
                )?;
                check(
                    &format!("last_message_id(t{t}, c{c})"),
                    v.last_message_id(tid, cid),
                    &gone_or(cg, mc.next_id - 1),
                )?;
                let vis: Vec<MMsg> = m.visible(t, c).iter().map(shown).collect();
                let count = vis.iter().filter(|x| x.deleted_at.is_none()).count() as u64;
                check(
                    &format!("message_count(t{t}, c{c})"),
                    v.message_count(tid, cid),
                    &gone_or(cg, count),
                )?;
                for (dir, want) in [
                    (Direction::Forward, vis.clone()),
                    (Direction::Backward, vis.iter().rev().cloned().collect()),
                ] {
                    let got = v
                        .messages(tid, cid, None, dir)
                        .and_then(|it| it.collect::<chatvault::Result<Vec<_>>>());
                    check(
                        &format!("messages(t{t}, c{c}, {dir:?})"),
                        self.msgs_view(t, got),
                        &gone_or(cg, want),
                    )?;
                }
                for id in 0..=mc.next_id {
                    self.check_get(t, c, id)?;
                }
            }
        }
        Ok(())
    }
}
