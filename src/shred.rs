//! Crypto-shredding: destroying the keys that guard a tenant, a conversation, a user or one
//! time window (epoch) of a conversation, so that all data under them becomes unreadable at once,
//! whatever its size.
//!
//! A shred deletes the scope's wrapped keys with RocksDB range deletions (constant time: one
//! range tombstone per key range, whatever the number of keys or records under them), removes the
//! directory entries that link the scope's internal id to its name, writes a tombstone naming
//! the scope by internal ids, and appends its receipt to the receipt chain ([`crate::chain`]);
//! all in one WriteBatch, fsynced before the call returns. Reads of data in scope then give
//! [`Error::Shredded`]; [`Vault::purge`] removes the records from the files and appends a
//! `Removed` receipt for each shred it completed.
//!
//! Under a legal hold, [`Vault::shred`] refuses and destroys nothing; [`Vault::shred_or_queue`]
//! instead queues the request (meta `0x13`, with a `Queued` receipt). A queued erasure is carried
//! out in the same WriteBatch as the release of the last hold over it, and, should one be left
//! whose holds are gone, when the vault opens (or on [`Vault::run_queued_erasures`]). A queued
//! request whose scope is shredded by another call (or whose tenant is) is resolved with a
//! `Resolved` receipt.
//!
//! Not yet here (see the shredding issue): re-versioning the key path so that old copies of the
//! directory cannot be decrypted with the live keys.

use std::collections::BTreeSet;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditOutcome};
use crate::chain::{self, Appender, Chain, ChainHead, ChainReport, MAC_LEN};
use crate::codec::{self, prefix_successor, Iid, KeyBuf};
use crate::error::{Error, Result};
use crate::model::{ConversationId, TenantId, UserId};
use crate::retention::{Actor, HoldScope, ShredState, TenantRetention};
use crate::vault::{cf, KeyId, RawIter, Vault};

/// RocksDB key of a queued erasure: `0x13 | tenant | seq of its Queued receipt`.
fn queue_key(t: Iid, seq: u64) -> Vec<u8> {
    KeyBuf::tag(codec::meta::ERASURE_QUEUE)
        .u64(t)
        .u64(seq)
        .into_vec()
}

/// What to shred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShredScope {
    /// The whole tenant: its KEK and every key under it.
    Tenant,
    /// One conversation: its key and every epoch key under it.
    Conversation(ConversationId),
    /// One user: their key, profile and directory entry. Under the default erasure policy the
    /// messages they wrote become unreadable too; under `AuthorErased` they stay readable,
    /// shown as written by an erased user.
    User(UserId),
    /// The epoch (time window, a UTC day by default) of a conversation that contains `at_ms`.
    Window {
        /// The conversation.
        conversation: ConversationId,
        /// Any time inside the window, UTC ms.
        at_ms: i64,
    },
}

/// What a shred did. Internal ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShredReceipt {
    /// The tenant.
    pub tenant: TenantId,
    /// The scope.
    pub scope: ShredScope,
    /// When, UTC ms.
    pub at_ms: i64,
    /// The key-id ranges destroyed (hex of the `keys` column family's key prefixes).
    pub key_ranges: Vec<String>,
    /// Its entry in the receipt chain ([`Vault::receipts`]).
    pub seq: u64,
    /// When it carried out a queued request: the seq of that request's `Queued` receipt.
    pub queued: Option<u64>,
}

/// An erasure request queued because a legal hold covered (part of) its scope. Internal ids
/// only. It is carried out when the last hold over it is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedErasure {
    /// Its `Queued` entry in the receipt chain (also its id).
    pub seq: u64,
    /// The tenant.
    pub tenant: TenantId,
    /// What is to be shredded.
    pub scope: ShredScope,
    /// When it was requested, UTC ms.
    pub requested_at_ms: i64,
    /// Who asked (`None`: an operator).
    pub by: Option<UserId>,
    /// The legal holds (ids) that covered the scope when it was requested.
    pub held_by: Vec<u64>,
}

/// What [`Vault::shred_or_queue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShredOutcome {
    /// No hold covered the scope: its keys are destroyed.
    Shredded(ShredReceipt),
    /// A hold covered the scope: nothing is destroyed yet; the request is queued.
    Queued(QueuedErasure),
}

/// What a receipt records (the typed body of a receipt-chain entry; internal ids only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptEvent {
    /// A scope was shredded: its keys destroyed.
    Shredded {
        /// The tenant.
        tenant: TenantId,
        /// The scope.
        scope: ShredScope,
        /// The key-id ranges destroyed (hex of `keys` CF key prefixes).
        key_ranges: Vec<String>,
        /// For a window: its bounds, UTC ms (start inclusive, end exclusive).
        window: Option<(i64, i64)>,
        /// The seq of the `Queued` receipt this shred carried out, if any.
        queued: Option<u64>,
    },
    /// A shred was requested under a legal hold and queued.
    Queued {
        /// The tenant.
        tenant: TenantId,
        /// The scope.
        scope: ShredScope,
        /// Ids of the holds that covered it.
        held_by: Vec<u64>,
    },
    /// A purge removed the records and destroyed keys of a shred from every data file.
    Removed {
        /// The seq of the `Shredded` receipt.
        shred_seq: u64,
    },
    /// A queued request was resolved without being carried out itself: its scope was shredded
    /// by another shred (of it, of a larger scope, or of its tenant).
    Resolved {
        /// The seq of the `Queued` receipt.
        queued_seq: u64,
        /// The seq of the `Shredded` receipt that covered it (`None`: found already covered).
        by: Option<u64>,
    },
}

/// One entry of the receipt chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptEntry {
    /// Its sequence number, from 0.
    pub seq: u64,
    /// When it was appended, UTC ms.
    pub at_ms: i64,
    /// What it records.
    pub event: ReceiptEvent,
    /// Its MAC (HMAC-SHA256; see [`crate::chain`]).
    pub mac: [u8; MAC_LEN],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub receipt: ShredReceipt,
    /// For windows: the window's bounds, UTC ms.
    pub window: Option<(i64, i64)>,
}

/// What a shred needs, read before anything is written.
struct Plan {
    /// Directory entries linking the scope's id to its name.
    dir_entries: Vec<Vec<u8>>,
    /// For a window: (epoch, start ms, end ms).
    window: Option<(u32, i64, i64)>,
}

/// The queued erasures of one tenant, and those a batch being built has handled.
struct Pending {
    items: Vec<QueuedErasure>,
    handled: BTreeSet<u64>,
}

/// A shred staged in a batch: what to forget from memory once the batch is written.
pub(crate) struct Staged {
    scope: ShredScope,
    epoch: Option<u32>,
    receipt: ShredReceipt,
}

pub(crate) fn enc<T: Serialize>(v: &T, what: &str) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| Error::InvalidInput(format!("cannot encode {what}: {e}")))
}

/// The ids of the holds that cover (part of) `scope`.
fn blocking_holds(tr: &TenantRetention, scope: ShredScope) -> Vec<u64> {
    tr.holds
        .iter()
        .filter(|(_, h)| match (scope, h.scope) {
            (ShredScope::Tenant, _) => true,
            (
                ShredScope::Conversation(c)
                | ShredScope::Window {
                    conversation: c, ..
                },
                HoldScope::Conversation(x),
            ) => x == c,
            // A tenant hold, or a custodian hold (the custodian may have written in it).
            (ShredScope::Conversation(_) | ShredScope::Window { .. }, _) => true,
            (ShredScope::User(u), HoldScope::Custodian(x)) => x == u,
            (ShredScope::User(_), _) => true,
        })
        .map(|(id, _)| *id)
        .collect()
}

/// Whether `scope` is already shredded (by itself, a larger scope, or its tenant).
fn covered(s: &ShredState, scope: ShredScope) -> bool {
    s.tenant
        || match scope {
            ShredScope::Tenant => false,
            ShredScope::Conversation(c) => s.conversations.contains(&c.0),
            ShredScope::User(u) => s.users.contains(&u.0),
            ShredScope::Window {
                conversation,
                at_ms,
            } => {
                s.conversations.contains(&conversation.0)
                    || s.windows
                        .iter()
                        .any(|(c, a, b)| *c == conversation.0 && (*a..*b).contains(&at_ms))
            }
        }
}

impl Staged {
    /// The seq of the staged shred's receipt.
    pub(crate) fn receipt_seq(&self) -> u64 {
        self.receipt.seq
    }

    /// The staged shred's receipt.
    pub(crate) fn receipt(&self) -> &ShredReceipt {
        &self.receipt
    }
}

impl Vault {
    /// Shreds `scope` of `tenant` (admins only): destroys exactly the keys that guard it, durably
    /// (fsync) before returning, whatever the vault's durability, and appends its receipt to
    /// the receipt chain in the same WriteBatch (the returned receipt's `seq`). Errors:
    /// [`Error::LegalHold`] (nothing destroyed, nothing queued) when a legal hold could cover
    /// any part of the scope (see [`Vault::shred_or_queue`]); [`Error::Shredded`] if the scope
    /// (or its tenant) is already shredded; [`Error::PermissionDenied`]; [`Error::NotFound`].
    pub fn shred(&self, tenant: TenantId, actor: Actor, scope: ShredScope) -> Result<ShredReceipt> {
        match self.shred_inner(tenant, actor, scope, false, false)? {
            ShredOutcome::Shredded(r) => Ok(r),
            ShredOutcome::Queued(_) => Err(Error::LegalHold {
                what: format!("{scope:?} of tenant {tenant}"),
            }),
        }
    }

    /// Like [`Vault::shred`], but when a legal hold covers (part of) the scope, queues the
    /// request instead of failing: it is stored (internal ids only) with a `Queued` receipt,
    /// nothing is destroyed, and it is carried out in the same WriteBatch as the release of the
    /// last hold over it ([`Vault::release_hold`]); its `Shredded` receipt then names the
    /// queued one. Asking again for a scope already queued returns the queued request. Errors as
    /// [`Vault::shred`], except [`Error::LegalHold`].
    pub fn shred_or_queue(
        &self,
        tenant: TenantId,
        actor: Actor,
        scope: ShredScope,
    ) -> Result<ShredOutcome> {
        self.shred_inner(tenant, actor, scope, true, false)
    }

    /// `erasure`: a user's erasure ([`Vault::erase_user`]): the user may ask for their own, and
    /// the audit entry says `Erasure`.
    pub(crate) fn shred_inner(
        &self,
        tenant: TenantId,
        actor: Actor,
        scope: ShredScope,
        queue: bool,
        erasure: bool,
    ) -> Result<ShredOutcome> {
        let i = &self.inner;
        let t = tenant.0;
        let own = erasure && matches!(scope, ShredScope::User(u) if actor.user == Some(u));
        let audit_event = |receipt: u64| match scope {
            ShredScope::User(user) if erasure => AuditEvent::Erasure {
                tenant,
                user,
                receipt,
            },
            _ => AuditEvent::Shred {
                tenant,
                scope,
                receipt,
            },
        };
        if !actor.is_admin() && !own {
            return Err(Error::PermissionDenied(
                "only a tenant admin may shred".into(),
            ));
        }
        let _g = i.policy_lock.lock();
        let plan = self.plan(tenant, scope)?;
        let now = i.opts.clock.now_ms();
        let mut tr = i.retention.current().tenant(t).cloned().unwrap_or_default();
        let held_by = blocking_holds(&tr, scope);
        let mut pending = self.pending_erasures(t)?;
        let meta = i.cf(cf::META)?;
        let mut batch = WriteBatch::default();
        let mut app = i.receipts.appender();
        if !held_by.is_empty() {
            if !queue {
                return Err(Error::LegalHold {
                    what: format!("{scope:?} of tenant {tenant}"),
                });
            }
            if let Some(q) = pending.items.into_iter().find(|q| q.scope == scope) {
                return Ok(ShredOutcome::Queued(q));
            }
            let event = ReceiptEvent::Queued {
                tenant,
                scope,
                held_by: held_by.clone(),
            };
            let head = app.append(&mut batch, &meta, now, &enc(&event, "a receipt")?);
            let q = QueuedErasure {
                seq: head.seq,
                tenant,
                scope,
                requested_at_ms: now,
                by: actor.user,
                held_by,
            };
            batch.put_cf(&meta, queue_key(t, q.seq), enc(&q, "a queued erasure")?);
            let aud =
                self.stage_audit(&mut batch, &actor, audit_event(q.seq), AuditOutcome::Queued)?;
            i.write_sync(batch, "queueing an erasure")?;
            app.commit();
            aud.commit();
            tracing::info!(
                tenant = t,
                ?scope,
                seq = q.seq,
                "erasure queued under legal hold"
            );
            return Ok(ShredOutcome::Queued(q));
        }
        let staged = self.stage_shred(
            tenant,
            scope,
            plan,
            None,
            now,
            &mut tr,
            &mut pending,
            &mut batch,
            &mut app,
        )?;
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            audit_event(staged.receipt.seq),
            AuditOutcome::Done,
        )?;
        // Durable before the call returns, whatever the vault's default durability.
        i.write_sync(batch, "shredding")?;
        app.commit();
        aud.commit();
        self.publish_retention(t, tr);
        let receipt = staged.receipt.clone();
        self.forget_staged(t, &[staged]);
        // Copies taken before this shred (checkpoints, backups) must not open what it
        // destroyed: new versions for the keys on its path, the old ones retired.
        self.rekey_after_destruction();
        Ok(ShredOutcome::Shredded(receipt))
    }

    /// Reads what shredding `scope` needs (the names behind its directory entries, a window's
    /// bounds) and checks that it exists and is not shredded yet. Writes nothing.
    fn plan(&self, tenant: TenantId, scope: ShredScope) -> Result<Plan> {
        let i = &self.inner;
        let t = tenant.0;
        let ts = i.tenant_state(t)?;
        let shredded = |what: String| Error::Shredded { what };
        if let Some(tr) = i.retention.current().tenant(t) {
            if covered(&tr.shred, scope) {
                return Err(shredded(format!("{scope:?} of tenant {tenant}")));
            }
        }
        Ok(match scope {
            ShredScope::Tenant => {
                let place = KeyBuf::tag(codec::meta::TENANT).u64(t).into_vec();
                let v = i.get(cf::META, &place)?.ok_or_else(|| Error::NotFound {
                    what: format!("tenant {tenant}"),
                })?;
                let name = i.tenant_info(t, &place, &v)?.name;
                Plan {
                    dir_entries: vec![i.tenant_dir_entry(&name)],
                    window: None,
                }
            }
            ShredScope::Conversation(c) => {
                let info = self.conversation(tenant, c)?;
                Plan {
                    dir_entries: vec![i.dir_entry(&ts, codec::meta::DIR_CONV, &info.external_id)],
                    window: None,
                }
            }
            ShredScope::User(u) => {
                let info = self.user(tenant, u)?;
                Plan {
                    dir_entries: vec![i.dir_entry(&ts, codec::meta::DIR_USER, &info.external_id)],
                    window: None,
                }
            }
            ShredScope::Window {
                conversation,
                at_ms,
            } => {
                self.conversation(tenant, conversation)?;
                if at_ms < 0 {
                    return Err(Error::InvalidInput(
                        "a window starts in 1970 or later".into(),
                    ));
                }
                let e = at_ms as u64 / ts.epoch_ms;
                let epoch = u32::try_from(e).map_err(|_| {
                    Error::InvalidInput(format!("{at_ms} ms is too far in the future"))
                })?;
                let start = (e * ts.epoch_ms) as i64;
                Plan {
                    dir_entries: Vec::new(),
                    window: Some((epoch, start, start + ts.epoch_ms as i64)),
                }
            }
        })
    }

    /// Stages a shred of `scope` in `batch` (keys, directory entries, tombstone, its receipt,
    /// and the resolution of every queued request it covers), and applies its tombstone to
    /// `tr`. `queued`: the queued request it carries out.
    #[allow(clippy::too_many_arguments)]
    fn stage_shred(
        &self,
        tenant: TenantId,
        scope: ShredScope,
        plan: Plan,
        queued: Option<u64>,
        now: i64,
        tr: &mut TenantRetention,
        pending: &mut Pending,
        batch: &mut WriteBatch,
        app: &mut Appender<'_>,
    ) -> Result<Staged> {
        let i = &self.inner;
        let t = tenant.0;
        let kcf = i.cf(cf::KEYS)?;
        let meta = i.cf(cf::META)?;
        let window = plan.window;
        let mut ranges: Vec<Vec<u8>> = Vec::new();
        match scope {
            ShredScope::Tenant => {
                for kind in [
                    codec::keys::TENANT_KEK,
                    codec::keys::CONVERSATION,
                    codec::keys::EPOCH,
                    codec::keys::USER,
                    codec::keys::INDEX,
                ] {
                    ranges.push(KeyBuf::tag(kind).u64(t).into_vec());
                }
            }
            ShredScope::Conversation(c) => {
                ranges.push(
                    KeyBuf::tag(codec::keys::CONVERSATION)
                        .u64(t)
                        .u64(c.0)
                        .into_vec(),
                );
                ranges.push(KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c.0).into_vec());
            }
            ShredScope::User(u) => {
                ranges.push(KeyBuf::tag(codec::keys::USER).u64(t).u64(u.0).into_vec());
                // The profile, and the index of the user's conversations.
                batch.delete_cf(
                    &meta,
                    KeyBuf::tag(codec::meta::USER).u64(t).u64(u.0).into_vec(),
                );
                batch.delete_cf(
                    &meta,
                    KeyBuf::tag(codec::meta::RESTRICTION)
                        .u64(t)
                        .u64(u.0)
                        .into_vec(),
                );
                let p = KeyBuf::tag(codec::meta::USER_CONV)
                    .u64(t)
                    .u64(u.0)
                    .into_vec();
                batch.delete_range_cf(&meta, &p, &prefix_successor(&p).unwrap_or_default());
                // Their consent grants (sealed under the destroyed user key).
                let p = KeyBuf::tag(codec::meta::USER_CONSENT)
                    .u64(t)
                    .u64(u.0)
                    .into_vec();
                batch.delete_range_cf(&meta, &p, &prefix_successor(&p).unwrap_or_default());
            }
            ShredScope::Window { conversation, .. } => {
                let e = window.map(|w| w.0).unwrap_or_default();
                ranges.push(
                    KeyBuf::tag(codec::keys::EPOCH)
                        .u64(t)
                        .u64(conversation.0)
                        .u32(e)
                        .into_vec(),
                );
            }
        }
        for r in &ranges {
            batch.delete_range_cf(&kcf, r, &prefix_successor(r).unwrap_or_default());
        }
        for d in &plan.dir_entries {
            batch.delete_cf(&meta, d);
        }
        let key_ranges: Vec<String> = ranges.iter().map(hex::encode).collect();
        let event = ReceiptEvent::Shredded {
            tenant,
            scope,
            key_ranges: key_ranges.clone(),
            window: window.map(|w| (w.1, w.2)),
            queued,
        };
        let head = app.append(batch, &meta, now, &enc(&event, "a receipt")?);
        let receipt = ShredReceipt {
            tenant,
            scope,
            at_ms: now,
            key_ranges,
            seq: head.seq,
            queued,
        };
        let (kind, id, start) = match scope {
            ShredScope::Tenant => (1u8, 0, 0),
            ShredScope::Conversation(c) => (2, c.0, 0),
            ShredScope::User(u) => (3, u.0, 0),
            ShredScope::Window { conversation, .. } => {
                (4, conversation.0, window.map(|w| w.1).unwrap_or_default())
            }
        };
        let tomb_key = KeyBuf::tag(codec::meta::SHRED)
            .u64(t)
            .u8(kind)
            .u64(id)
            .time(start)
            .into_vec();
        let tomb = Tombstone {
            receipt: receipt.clone(),
            window: window.map(|w| (w.1, w.2)),
        };
        batch.put_cf(&meta, tomb_key, enc(&tomb, "a tombstone")?);
        // The path to the destroyed keys gets new key versions by the pass the shred runs once
        // this batch is durable (or the next open, purge or rekey), so that old copies of the
        // directory cannot be opened with the live keys (`rekey.rs`).
        let mark_conv = match scope {
            ShredScope::Window { conversation, .. } => conversation.0,
            _ => 0,
        };
        crate::rekey::mark(i, batch, t, mark_conv)?;
        apply_tombstone(&mut tr.shred, &tomb);
        // The queued request carried out, and every other one this shred covers, leave the
        // queue in the same batch.
        for q in &pending.items {
            if pending.handled.contains(&q.seq) {
                continue;
            }
            let carried_out = queued == Some(q.seq);
            if !carried_out && !covered(&tr.shred, q.scope) {
                continue;
            }
            if !carried_out {
                let ev = ReceiptEvent::Resolved {
                    queued_seq: q.seq,
                    by: Some(head.seq),
                };
                app.append(batch, &meta, now, &enc(&ev, "a receipt")?);
            }
            batch.delete_cf(&meta, queue_key(t, q.seq));
            pending.handled.insert(q.seq);
        }
        tracing::info!(tenant = t, ?scope, seq = head.seq, ?queued, "shredded");
        Ok(Staged {
            scope,
            epoch: window.map(|w| w.0),
            receipt,
        })
    }

    /// After the batch of staged shreds was written: drops their keys from memory.
    pub(crate) fn forget_staged(&self, t: Iid, staged: &[Staged]) {
        for s in staged {
            self.forget_keys(t, s.scope, s.epoch);
        }
    }

    /// The queued erasures of tenant `t`, oldest first.
    fn pending_erasures(&self, t: Iid) -> Result<Pending> {
        let prefix = KeyBuf::tag(codec::meta::ERASURE_QUEUE).u64(t).into_vec();
        let mut it = self.inner.prefix_iter(cf::META, &prefix)?;
        let mut items = Vec::new();
        while it.valid() {
            if let Some(v) = it.value() {
                items.push(
                    postcard::from_bytes::<QueuedErasure>(v)
                        .map_err(|e| Error::corrupt("queued erasure", e.to_string()))?,
                );
            }
            it.next();
        }
        it.status()
            .map_err(Error::storage("reading queued erasures"))?;
        Ok(Pending {
            items,
            handled: BTreeSet::new(),
        })
    }

    /// The erasures queued under legal holds in `tenant`, oldest first. Errors:
    /// [`Error::Corrupt`] for an undecodable queue record; [`Error::Storage`].
    pub fn queued_erasures(&self, tenant: TenantId) -> Result<Vec<QueuedErasure>> {
        Ok(self.pending_erasures(tenant.0)?.items)
    }

    /// Stages, in `batch`, the queued erasures of `tenant` that no hold in `tr` covers any
    /// longer (and resolves those already covered), applying their tombstones to `tr`. The
    /// caller holds the policy lock, writes the batch, commits `app`, publishes `tr` and calls
    /// [`Vault::forget_staged`]. A request that cannot be planned (for example its
    /// conversation's record cannot be read) is left queued and logged, so that a hold release
    /// is never refused because of it.
    pub(crate) fn stage_due_erasures(
        &self,
        tenant: TenantId,
        tr: &mut TenantRetention,
        now: i64,
        batch: &mut WriteBatch,
        app: &mut Appender<'_>,
    ) -> Result<Vec<Staged>> {
        let mut pending = self.pending_erasures(tenant.0)?;
        let mut staged = Vec::new();
        let items = pending.items.clone();
        for q in items {
            if pending.handled.contains(&q.seq) || !blocking_holds(tr, q.scope).is_empty() {
                continue;
            }
            if covered(&tr.shred, q.scope) {
                let ev = ReceiptEvent::Resolved {
                    queued_seq: q.seq,
                    by: None,
                };
                let meta = self.inner.cf(cf::META)?;
                app.append(batch, &meta, now, &enc(&ev, "a receipt")?);
                batch.delete_cf(&meta, queue_key(tenant.0, q.seq));
                pending.handled.insert(q.seq);
                continue;
            }
            let plan = match self.plan(tenant, q.scope) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(
                        tenant = tenant.0,
                        seq = q.seq,
                        error = %e,
                        "cannot carry out a queued erasure; it stays queued"
                    );
                    continue;
                }
            };
            staged.push(self.stage_shred(
                tenant,
                q.scope,
                plan,
                Some(q.seq),
                now,
                tr,
                &mut pending,
                batch,
                app,
            )?);
        }
        Ok(staged)
    }

    /// Carries out every queued erasure whose legal holds are all released (and resolves those
    /// whose scope is already shredded). The vault runs this when it opens, so that a request
    /// is never lost, whatever stopped the process; [`Vault::release_hold`] carries them out
    /// itself, atomically with the release. Returns the receipts of the shreds carried out.
    /// Errors: [`Error::Storage`], [`Error::Corrupt`] (an undecodable queue record).
    pub fn run_queued_erasures(&self) -> Result<Vec<ShredReceipt>> {
        let i = &self.inner;
        let mut tenants = BTreeSet::new();
        {
            let mut it = i.prefix_iter(cf::META, &[codec::meta::ERASURE_QUEUE])?;
            while it.valid() {
                if let Some(t) = it.key().and_then(|k| k.get(1..9)).and_then(codec::be64) {
                    tenants.insert(t);
                }
                it.next();
            }
            it.status()
                .map_err(Error::storage("reading queued erasures"))?;
        }
        let mut out = Vec::new();
        for t in tenants {
            let _g = i.policy_lock.lock();
            let now = i.opts.clock.now_ms();
            let mut tr = i.retention.current().tenant(t).cloned().unwrap_or_default();
            let mut batch = WriteBatch::default();
            let mut app = i.receipts.appender();
            let staged =
                self.stage_due_erasures(TenantId(t), &mut tr, now, &mut batch, &mut app)?;
            if batch.is_empty() {
                continue;
            }
            i.write_sync(batch, "carrying out queued erasures")?;
            app.commit();
            self.publish_retention(t, tr);
            out.extend(staged.iter().map(|s| s.receipt.clone()));
            self.forget_staged(t, &staged);
            self.rekey_after_destruction();
        }
        Ok(out)
    }

    // ------------------------------------------------------------------ receipts

    /// Every entry of the receipt chain, oldest first. Errors: [`Error::Corrupt`] for an entry
    /// that cannot be decoded (run [`Vault::verify_receipts`] to find out what happened);
    /// [`Error::Storage`].
    pub fn receipts(&self) -> Result<Vec<ReceiptEntry>> {
        self.read_receipts(true)
    }

    /// The receipt entries; `strict = false` skips (and logs) entries that cannot be decoded.
    fn read_receipts(&self, strict: bool) -> Result<Vec<ReceiptEntry>> {
        let i = &self.inner;
        let mut it = i.prefix_iter(cf::META, &chain::prefix(i.receipts.id()))?;
        let mut out = Vec::new();
        while it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                let what = || {
                    format!(
                        "receipt {}",
                        k.get(2..10).and_then(codec::be64).unwrap_or(0)
                    )
                };
                let decoded = Chain::decode(v)
                    .ok_or_else(|| Error::corrupt(what(), "undecodable"))
                    .and_then(|e| {
                        let event = postcard::from_bytes(&e.body)
                            .map_err(|err| Error::corrupt(what(), format!("body: {err}")))?;
                        Ok(ReceiptEntry {
                            seq: e.seq,
                            at_ms: e.at_ms,
                            event,
                            mac: e.mac,
                        })
                    });
                match decoded {
                    Ok(e) => out.push(e),
                    Err(e) if strict => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "skipping an undecodable receipt"),
                }
            }
            it.next();
        }
        it.status().map_err(Error::storage("reading receipts"))?;
        Ok(out)
    }

    /// Verifies the receipt chain: walks it from entry 0, recomputes every MAC, checks that
    /// seqs are contiguous and each entry links to the one before; the report names the first
    /// broken entry (edited, dropped, reordered) and what is wrong. Given the head an operator
    /// kept from an earlier verification, also detects entries cut off the end. The report's
    /// `head` is the one to keep. A broken chain is a report, not an error; errors:
    /// [`Error::Storage`].
    pub fn verify_receipts(&self, kept_head: Option<&ChainHead>) -> Result<ChainReport> {
        let i = &self.inner;
        let it = i.prefix_iter(cf::META, &chain::prefix(i.receipts.id()))?;
        i.receipts
            .verify(RawIter::new(it, "verifying receipts"), kept_head)
    }

    /// The head of the receipt chain (its last entry), from memory; `None` if it is empty.
    pub fn receipts_head(&self) -> Option<ChainHead> {
        self.inner.receipts.head()
    }

    /// Appends a `Removed` receipt for every `Shredded` receipt not yet followed by one. Called
    /// by a purge that completed (every shredded record verified gone from every file), under
    /// the policy lock. Returns the seqs of the `Shredded` receipts recorded.
    pub(crate) fn record_removed_shreds(&self) -> Result<Vec<u64>> {
        let i = &self.inner;
        let mut shreds = BTreeSet::new();
        // A damaged entry is for `verify_receipts` to report; it must not stop a purge.
        for e in self.read_receipts(false)? {
            match e.event {
                ReceiptEvent::Shredded { .. } => {
                    shreds.insert(e.seq);
                }
                ReceiptEvent::Removed { shred_seq } => {
                    shreds.remove(&shred_seq);
                }
                _ => {}
            }
        }
        if shreds.is_empty() {
            return Ok(Vec::new());
        }
        let now = i.opts.clock.now_ms();
        let meta = i.cf(cf::META)?;
        let mut batch = WriteBatch::default();
        let mut app = i.receipts.appender();
        for &s in &shreds {
            let ev = ReceiptEvent::Removed { shred_seq: s };
            app.append(&mut batch, &meta, now, &enc(&ev, "a receipt")?);
        }
        i.write_sync(batch, "recording removed shreds")?;
        app.commit();
        Ok(shreds.into_iter().collect())
    }

    fn forget_keys(&self, t: Iid, scope: ShredScope, epoch: Option<u32>) {
        let i = &self.inner;
        i.cache.remove_where(|k| match (scope, k) {
            (ShredScope::Tenant, k) => key_tenant(k) == t,
            (ShredScope::Conversation(c), KeyId::Conv { t: kt, c: kc, .. })
            | (ShredScope::Conversation(c), KeyId::Epoch { t: kt, c: kc, .. })
            | (ShredScope::Conversation(c), KeyId::Dek { t: kt, c: kc, .. }) => {
                *kt == t && *kc == c.0
            }
            (ShredScope::User(u), KeyId::User { t: kt, u: ku, .. }) => *kt == t && *ku == u.0,
            (ShredScope::User(u), KeyId::Dek { t: kt, a, .. }) => *kt == t && *a == u.0,
            (ShredScope::Window { conversation, .. }, KeyId::Epoch { t: kt, c, e, .. })
            | (ShredScope::Window { conversation, .. }, KeyId::Dek { t: kt, c, e, .. }) => {
                *kt == t && *c == conversation.0 && Some(*e) == epoch
            }
            _ => false,
        });
        if scope == ShredScope::Tenant {
            i.tenants.write().remove(&t);
        }
    }
}

fn key_tenant(k: &KeyId) -> Iid {
    match k {
        KeyId::TenantKek { t, .. }
        | KeyId::Conv { t, .. }
        | KeyId::Epoch { t, .. }
        | KeyId::User { t, .. }
        | KeyId::Index { t, .. }
        | KeyId::Dek { t, .. } => *t,
    }
}

/// Adds a tombstone to the in-memory shred state.
pub(crate) fn apply_tombstone(s: &mut crate::retention::ShredState, tomb: &Tombstone) {
    match tomb.receipt.scope {
        ShredScope::Tenant => s.tenant = true,
        ShredScope::Conversation(c) => {
            s.conversations.insert(c.0);
        }
        ShredScope::User(u) => {
            s.users.insert(u.0);
        }
        ShredScope::Window { conversation, .. } => {
            if let Some((a, b)) = tomb.window {
                s.windows.push((conversation.0, a, b));
            }
        }
    }
}
