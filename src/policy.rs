//! Retention calls of the vault: policies, legal holds, the change log, and purge.
//! The rules themselves are in [`crate::retention`].

use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use rocksdb::WriteBatch;
use serde::{de::DeserializeOwned, Serialize};

use crate::audit::{AuditEvent, AuditOutcome};
use crate::codec::{self, be64, prefix_successor, Iid, KeyBuf};
use crate::envelope::{self, MetaKind, RecordHeader, RecordKind, RECORD_HEADER_LEN};
use crate::error::{Error, Result};
use crate::keys::NONCE_LEN;
use crate::model::{ConversationId, TenantId, UserId};
use crate::retention::{
    Actor, Hold, HoldRecord, HoldScope, Policy, PolicyChange, PolicyOverride, Retention, Snapshot,
    TenantPolicy, TenantRetention, Watermark, MIN_RETENTION_MS,
};
use crate::vault::{cf, KeyId, Vault};

/// Options of [`Vault::purge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Only count what would be removed; change nothing.
    pub dry_run: bool,
    /// How many compaction passes to try before reporting the purge as incomplete. Default 3.
    pub max_attempts: u32,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        PurgeOptions {
            dry_run: false,
            max_attempts: 3,
        }
    }
}

/// What a purge found (and, unless a dry run, removed) in one conversation. "Expired" counts
/// include records of shredded scopes (their keys are destroyed): both go the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPurge {
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation.
    pub conversation: ConversationId,
    /// Expired or shredded message records (current revisions and deletion markers).
    pub expired_messages: u64,
    /// Expired older revisions.
    pub expired_revisions: u64,
    /// Expired time-index entries.
    pub expired_index_entries: u64,
    /// Epoch keys destroyed because every message of their epoch has expired (crypto-retention).
    pub epoch_keys_destroyed: u64,
}

/// What [`Vault::purge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Conversations with something expired, in id order.
    pub conversations: Vec<ConversationPurge>,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// Whether every expired record found is gone from every SST and WAL file in the data
    /// directory. `false` means some are still in a file (for example one pinned by an open
    /// iterator or snapshot): run the purge again once those are released.
    pub complete: bool,
    /// Compaction passes made.
    pub attempts: u32,
    /// Expired records still found in files after the last pass (0 when complete).
    pub remaining_records: u64,
    /// Files scanned by the last verification.
    pub files_scanned: u64,
    /// Key paths marked for re-versioning (by shreds and destroyed epoch keys) when the purge
    /// started; a dry run only counts them.
    pub key_paths_pending: u64,
    /// The key re-versioning pass this purge ran, if any (see [`Vault::rekey`]).
    pub rekey: Option<crate::RekeyReport>,
    /// Why old copies of the directory (backups, checkpoints) can still open destroyed data:
    /// set when the root key provider cannot add versions (a root key from
    /// `CHATVAULT_ROOT_KEY`); `complete` is then `false`. Use a key file and purge again.
    pub old_copies_exposed: Option<String>,
    /// Shreds this purge completed the removal of from disk: the seqs of their `Shredded`
    /// receipts, each now followed by a `Removed` receipt ([`Vault::receipts`]).
    pub removed_shreds: Vec<u64>,
}

impl PurgeReport {
    /// Total expired records found (messages, revisions, index entries).
    pub fn expired_records(&self) -> u64 {
        self.conversations
            .iter()
            .map(|c| c.expired_messages + c.expired_revisions + c.expired_index_entries)
            .sum()
    }
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| Error::InvalidInput(format!("cannot encode record: {e}")))
}

fn dec<T: DeserializeOwned>(b: &[u8], what: &str) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| Error::corrupt(what, format!("payload: {e}")))
}

fn check_retention(r: Option<Retention>) -> Result<()> {
    if let Some(Retention::Period { ms }) = r {
        if ms < MIN_RETENTION_MS {
            return Err(Error::InvalidInput(format!(
                "a retention period must be at least {MIN_RETENTION_MS} ms (one minute), got {ms}"
            )));
        }
    }
    Ok(())
}

impl Vault {
    // ------------------------------------------------------------------ sealed tenant records

    fn seal_tenant_meta<T: Serialize>(
        &self,
        t: Iid,
        kind: MetaKind,
        place: &[u8],
        v: &T,
    ) -> Result<Vec<u8>> {
        let kek = self.inner.key(KeyId::TenantKek { t, v: 0 })?;
        envelope::seal_meta(&kek.cipher, kind, kek.version, place, &enc(v)?)
    }

    fn open_tenant_meta<T: DeserializeOwned>(
        &self,
        t: Iid,
        kind: MetaKind,
        place: &[u8],
        value: &[u8],
    ) -> Result<T> {
        let what = || format!("retention record of tenant #{t}");
        let kv = envelope::meta_key_version(value, kind, what)?;
        let kek = self.inner.key(KeyId::TenantKek { t, v: kv })?;
        let pt = envelope::open_meta(&kek.cipher, value, kind, place, what)?;
        dec(&pt, "retention record")
    }

    /// Loads every tenant's policies, holds and watermarks into memory (at open).
    pub(crate) fn load_retention(&self) -> Result<()> {
        let i = &self.inner;
        let mut snap = Snapshot::default();
        let mut tenants: BTreeMap<Iid, TenantRetention> = BTreeMap::new();
        // Tombstones first: the policies and holds of a shredded tenant are sealed under its
        // destroyed KEK, so they can no longer be opened (nor do they matter: every read of
        // the tenant is `Shredded`). They stay on disk like its other metadata (§7, "Limits").
        for prefix in [
            codec::meta::SHRED,
            codec::meta::TENANT_POLICY,
            codec::meta::CONV_POLICY,
            codec::meta::HOLD,
            codec::meta::WATERMARK,
        ] {
            let mut it = i.prefix_iter(cf::META, &[prefix])?;
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                let t = k
                    .get(1..9)
                    .and_then(be64)
                    .ok_or_else(|| Error::corrupt("retention record key", "too short"))?;
                let tr = tenants.entry(t).or_default();
                let id8 = k.get(9..17).and_then(be64);
                let sealed = matches!(
                    prefix,
                    codec::meta::TENANT_POLICY | codec::meta::CONV_POLICY | codec::meta::HOLD
                );
                if sealed && tr.shred.tenant {
                    it.next();
                    continue;
                }
                match prefix {
                    codec::meta::TENANT_POLICY => {
                        tr.policy = self.open_tenant_meta(t, MetaKind::TenantPolicy, k, v)?;
                    }
                    codec::meta::CONV_POLICY => {
                        let c = id8.ok_or_else(|| Error::corrupt("policy key", "bad"))?;
                        let o: PolicyOverride =
                            self.open_tenant_meta(t, MetaKind::ConvPolicy, k, v)?;
                        tr.overrides.insert(c, o);
                    }
                    codec::meta::HOLD => {
                        let h = id8.ok_or_else(|| Error::corrupt("hold key", "bad"))?;
                        let rec: HoldRecord = self.open_tenant_meta(t, MetaKind::Hold, k, v)?;
                        tr.holds.insert(h, rec);
                    }
                    codec::meta::SHRED => {
                        let tomb: crate::shred::Tombstone = dec(v, "shred tombstone")?;
                        crate::shred::apply_tombstone(&mut tr.shred, &tomb);
                    }
                    _ => {
                        let c = id8.ok_or_else(|| Error::corrupt("watermark key", "bad"))?;
                        tr.marks.insert(c, dec(v, "watermark")?);
                    }
                }
                it.next();
            }
            it.status().map_err(Error::storage("loading retention"))?;
        }
        for (t, tr) in tenants {
            snap.tenants.insert(t, Arc::new(tr));
        }
        *i.retention.snapshot.write() = Arc::new(snap);
        Ok(())
    }

    pub(crate) fn publish_retention(&self, t: Iid, tr: TenantRetention) {
        self.publish(t, tr)
    }

    /// Publishes tenant `t`'s new retention state (copy on write).
    fn publish(&self, t: Iid, tr: TenantRetention) {
        let mut w = self.inner.retention.snapshot.write();
        let mut snap = Snapshot::clone(&w);
        snap.tenants.insert(t, Arc::new(tr));
        *w = Arc::new(snap);
    }

    fn tenant_retention(&self, t: Iid) -> TenantRetention {
        self.inner
            .retention
            .current()
            .tenant(t)
            .cloned()
            .unwrap_or_default()
    }

    fn conversation_iids(&self, t: Iid) -> Result<Vec<Iid>> {
        let prefix = KeyBuf::tag(codec::meta::CONVERSATION).u64(t).into_vec();
        let mut it = self.inner.prefix_iter(cf::META, &prefix)?;
        let mut out = Vec::new();
        while it.valid() {
            if let Some(c) = it.key().and_then(|k| k.get(9..17)).and_then(be64) {
                out.push(c);
            }
            it.next();
        }
        it.status()
            .map_err(Error::storage("listing conversations"))?;
        Ok(out)
    }

    /// Records, for conversations `convs`, that what is expired now stays expired (see the
    /// module docs of [`crate::retention`]). Called before any change that could otherwise
    /// bring a message back.
    fn freeze_expiry(
        &self,
        tr: &mut TenantRetention,
        t: Iid,
        convs: &[Iid],
        now: i64,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let exempt = tr.held_custodians();
        for &c in convs {
            if tr.whole_conversation_held(c) {
                continue;
            }
            let Retention::Period { ms } = tr.effective(c).retention else {
                continue;
            };
            let x = now.saturating_sub(ms as i64).saturating_add(1);
            let w = tr.marks.entry(c).or_insert_with(Watermark::none);
            let before = w.clone();
            w.advance(x, &exempt);
            if *w != before {
                let place = KeyBuf::tag(codec::meta::WATERMARK).u64(t).u64(c).into_vec();
                batch.put_cf(&self.inner.cf(cf::META)?, place, enc(w)?);
            }
        }
        Ok(())
    }

    fn log_change(
        &self,
        t: Iid,
        actor: &Actor,
        conv: Option<ConversationId>,
        change: String,
        now: i64,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let seq = self.inner.alloc_iid(batch)?;
        let place = KeyBuf::tag(codec::meta::POLICY_LOG)
            .u64(t)
            .u64(seq)
            .into_vec();
        let rec = PolicyChange {
            at_ms: now,
            by: actor.user,
            as_admin: actor.is_admin(),
            conversation: conv,
            change,
        };
        let sealed = self.seal_tenant_meta(t, MetaKind::PolicyLog, &place, &rec)?;
        batch.put_cf(&self.inner.cf(cf::META)?, place, sealed);
        Ok(())
    }

    // ------------------------------------------------------------------ policies

    /// The tenant's retention settings (defaults if never set).
    pub fn tenant_policy(&self, tenant: TenantId) -> Result<TenantPolicy> {
        self.inner.tenant_state(tenant.0)?;
        Ok(self.tenant_retention(tenant.0).policy)
    }

    /// Sets the tenant's default policy and who may change conversations' policies. Only an
    /// admin may. Shortening the period applies to existing messages at once; lengthening or
    /// removing it never brings back a message that has already expired.
    pub fn set_tenant_policy(
        &self,
        tenant: TenantId,
        actor: Actor,
        policy: TenantPolicy,
    ) -> Result<()> {
        let t = tenant.0;
        self.inner.tenant_state(t)?;
        if !actor.is_admin() {
            return Err(Error::PermissionDenied(
                "only a tenant admin may change the tenant's policy".into(),
            ));
        }
        check_retention(Some(policy.default.retention))?;
        let _g = self.inner.policy_lock.lock();
        let now = self.inner.opts.clock.now_ms();
        let mut tr = self.tenant_retention(t);
        let mut batch = WriteBatch::default();
        let convs = self.conversation_iids(t)?;
        self.freeze_expiry(&mut tr, t, &convs, now, &mut batch)?;
        let place = KeyBuf::tag(codec::meta::TENANT_POLICY).u64(t).into_vec();
        let sealed = self.seal_tenant_meta(t, MetaKind::TenantPolicy, &place, &policy)?;
        batch.put_cf(&self.inner.cf(cf::META)?, place, sealed);
        let change = format!(
            "tenant default: history={:?} retention={} members_may_change={}",
            policy.default.history, policy.default.retention, policy.members_may_change
        );
        let _c = self.inner.create_lock.lock();
        self.log_change(t, &actor, None, change, now, &mut batch)?;
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::PolicyChange {
                tenant,
                conversation: None,
            },
            AuditOutcome::Done,
        )?;
        self.inner.write_sync(batch, "setting a tenant policy")?;
        aud.commit();
        tracing::info!(tenant = t, ?policy, "tenant retention policy set");
        tr.policy = policy;
        self.publish(t, tr);
        Ok(())
    }

    /// A conversation's override and its effective policy.
    pub fn conversation_policy(
        &self,
        tenant: TenantId,
        conv: ConversationId,
    ) -> Result<(PolicyOverride, Policy)> {
        self.conversation(tenant, conv)?;
        let tr = self.tenant_retention(tenant.0);
        Ok((
            tr.overrides.get(&conv.0).copied().unwrap_or_default(),
            tr.effective(conv.0),
        ))
    }

    /// Sets a conversation's policy override. Admins may always; members of the conversation
    /// may when the tenant's policy allows it ([`TenantPolicy::members_may_change`]).
    ///
    /// `delete_existing`: also make every message already stored in the conversation expire
    /// now (hidden at once, removed by the next purge). Turning history off does not delete
    /// anything without it. Fails with [`Error::LegalHold`] (changing nothing) if any legal hold
    /// could cover a message of the conversation.
    pub fn set_conversation_policy(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        actor: Actor,
        policy: PolicyOverride,
        delete_existing: bool,
    ) -> Result<()> {
        let t = tenant.0;
        self.conversation(tenant, conv)?;
        check_retention(policy.retention)?;
        let mut tr = self.tenant_retention(t);
        if !actor.is_admin() {
            let member = actor.user.is_some_and(|u| {
                self.members(tenant, conv)
                    .map(|ms| ms.iter().any(|m| m.user == u && m.left_at_ms.is_none()))
                    .unwrap_or(false)
            });
            if !(tr.policy.members_may_change && member) {
                return Err(Error::PermissionDenied(if tr.policy.members_may_change {
                    "only members of the conversation and tenant admins may change its policy"
                        .into()
                } else {
                    "this tenant lets only admins change conversation policies".into()
                }));
            }
        }
        let _g = self.inner.policy_lock.lock();
        tr = self.tenant_retention(t);
        if delete_existing && tr.held(conv.0, None) {
            return Err(Error::LegalHold {
                what: format!("conversation {conv}"),
            });
        }
        let now = self.inner.opts.clock.now_ms();
        let mut batch = WriteBatch::default();
        self.freeze_expiry(&mut tr, t, &[conv.0], now, &mut batch)?;
        if delete_existing {
            let w = tr.marks.entry(conv.0).or_insert_with(Watermark::none);
            w.advance(now.saturating_add(1), &[]);
            let place = KeyBuf::tag(codec::meta::WATERMARK)
                .u64(t)
                .u64(conv.0)
                .into_vec();
            batch.put_cf(&self.inner.cf(cf::META)?, place, enc(w)?);
        }
        let place = KeyBuf::tag(codec::meta::CONV_POLICY)
            .u64(t)
            .u64(conv.0)
            .into_vec();
        let sealed = self.seal_tenant_meta(t, MetaKind::ConvPolicy, &place, &policy)?;
        batch.put_cf(&self.inner.cf(cf::META)?, place, sealed);
        let change = format!(
            "conversation policy: history={} retention={}{}",
            policy
                .history
                .map(|h| format!("{h:?}"))
                .unwrap_or_else(|| "tenant default".into()),
            policy
                .retention
                .map(|r| r.to_string())
                .unwrap_or_else(|| "tenant default".into()),
            if delete_existing {
                ", existing messages deleted"
            } else {
                ""
            }
        );
        let _c = self.inner.create_lock.lock();
        self.log_change(t, &actor, Some(conv), change, now, &mut batch)?;
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::PolicyChange {
                tenant,
                conversation: Some(conv),
            },
            AuditOutcome::Done,
        )?;
        self.inner
            .write_sync(batch, "setting a conversation policy")?;
        aud.commit();
        tracing::info!(
            tenant = t,
            conversation = conv.0,
            ?policy,
            delete_existing,
            "conversation policy set"
        );
        tr.overrides.insert(conv.0, policy);
        self.publish(t, tr);
        Ok(())
    }

    /// Every recorded policy and hold change of a tenant, oldest first.
    pub fn policy_changes(&self, tenant: TenantId) -> Result<Vec<PolicyChange>> {
        self.inner.rekey_retry(|| self.policy_changes_once(tenant))
    }

    fn policy_changes_once(&self, tenant: TenantId) -> Result<Vec<PolicyChange>> {
        let prefix = KeyBuf::tag(codec::meta::POLICY_LOG)
            .u64(tenant.0)
            .into_vec();
        let mut it = self.inner.prefix_iter(cf::META, &prefix)?;
        let mut out = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            out.push(self.open_tenant_meta(tenant.0, MetaKind::PolicyLog, k, v)?);
            it.next();
        }
        it.status()
            .map_err(Error::storage("reading policy changes"))?;
        Ok(out)
    }

    // ------------------------------------------------------------------ legal holds

    /// Places a legal hold (admins only). From now on nothing in its scope expires or is
    /// deleted by any path; what has already expired stays expired.
    pub fn place_hold(
        &self,
        tenant: TenantId,
        actor: Actor,
        scope: HoldScope,
        reason: &str,
    ) -> Result<Hold> {
        let t = tenant.0;
        self.inner.tenant_state(t)?;
        if !actor.is_admin() {
            return Err(Error::PermissionDenied(
                "only a tenant admin may place a legal hold".into(),
            ));
        }
        match scope {
            HoldScope::Conversation(c) => {
                self.conversation(tenant, c)?;
            }
            HoldScope::Custodian(u) => {
                self.user(tenant, u)?;
            }
            HoldScope::Tenant => {}
        }
        let _g = self.inner.policy_lock.lock();
        let now = self.inner.opts.clock.now_ms();
        let mut tr = self.tenant_retention(t);
        let mut batch = WriteBatch::default();
        let convs = match scope {
            HoldScope::Conversation(c) => vec![c.0],
            _ => self.conversation_iids(t)?,
        };
        self.freeze_expiry(&mut tr, t, &convs, now, &mut batch)?;
        let _c = self.inner.create_lock.lock();
        let id = self.inner.alloc_iid(&mut batch)?;
        let rec = HoldRecord {
            scope,
            reason: reason.to_string(),
            placed_by: actor.user.map(|u| u.0),
            placed_at_ms: now,
        };
        let place = KeyBuf::tag(codec::meta::HOLD).u64(t).u64(id).into_vec();
        let sealed = self.seal_tenant_meta(t, MetaKind::Hold, &place, &rec)?;
        batch.put_cf(&self.inner.cf(cf::META)?, place, sealed);
        let conv = match scope {
            HoldScope::Conversation(c) => Some(c),
            _ => None,
        };
        self.log_change(
            t,
            &actor,
            conv,
            format!("hold {id} placed on {scope:?}"),
            now,
            &mut batch,
        )?;
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::HoldPlaced {
                tenant,
                hold: id,
                scope,
            },
            AuditOutcome::Done,
        )?;
        self.inner.write_sync(batch, "placing a legal hold")?;
        aud.commit();
        tracing::info!(tenant = t, hold = id, ?scope, "legal hold placed");
        tr.holds.insert(id, rec.clone());
        self.publish(t, tr);
        Ok(hold_of(id, rec))
    }

    /// Releases a legal hold (admins only). Retention resumes at once for what it covered, and
    /// the originals and revisions of messages deleted while it applied are removed (unless
    /// another hold still covers them). Erasures queued ([`Vault::shred_or_queue`]) that no
    /// other hold covers are carried out in the same WriteBatch as the release
    /// ([`Vault::release_hold_with_receipts`] returns their receipts).
    pub fn release_hold(&self, tenant: TenantId, actor: Actor, hold: u64) -> Result<()> {
        self.release_hold_with_receipts(tenant, actor, hold)
            .map(|_| ())
    }

    /// [`Vault::release_hold`], returning the receipts of the queued erasures the release
    /// carried out (empty if none was due), in the order they were carried out.
    ///
    /// Errors: [`Error::NotFound`] (no such hold), [`Error::PermissionDenied`] (not an
    /// admin), [`Error::Storage`].
    pub fn release_hold_with_receipts(
        &self,
        tenant: TenantId,
        actor: Actor,
        hold: u64,
    ) -> Result<Vec<crate::shred::ShredReceipt>> {
        let t = tenant.0;
        self.inner.tenant_state(t)?;
        if !actor.is_admin() {
            return Err(Error::PermissionDenied(
                "only a tenant admin may release a legal hold".into(),
            ));
        }
        let _g = self.inner.policy_lock.lock();
        let now = self.inner.opts.clock.now_ms();
        let mut tr = self.tenant_retention(t);
        let Some(rec) = tr.holds.remove(&hold) else {
            return Err(Error::NotFound {
                what: format!("legal hold {hold} of tenant {tenant}"),
            });
        };
        let mut batch = WriteBatch::default();
        let place = KeyBuf::tag(codec::meta::HOLD).u64(t).u64(hold).into_vec();
        batch.delete_cf(&self.inner.cf(cf::META)?, place);
        {
            let _c = self.inner.create_lock.lock();
            self.log_change(
                t,
                &actor,
                None,
                format!("hold {hold} released"),
                now,
                &mut batch,
            )?;
        }
        // Erasures queued under this hold and no other are carried out in the same batch.
        let mut app = self.inner.receipts.appender();
        let staged = self.stage_due_erasures(tenant, &mut tr, now, &mut batch, &mut app)?;
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::HoldReleased {
                tenant,
                hold,
                carried_out: staged.iter().map(|s| s.receipt_seq()).collect(),
            },
            AuditOutcome::Done,
        )?;
        self.inner.write_sync(batch, "releasing a legal hold")?;
        app.commit();
        aud.commit();
        tracing::info!(tenant = t, hold, "legal hold released");
        self.publish(t, tr.clone());
        self.forget_staged(t, &staged);
        if !staged.is_empty() {
            // Copies taken before the erasures it carried out must not open them.
            self.rekey_after_destruction();
        }
        // Remove what was kept only because of this hold: revisions of deleted messages.
        let convs = match rec.scope {
            HoldScope::Conversation(c) => vec![c.0],
            _ => self.conversation_iids(t)?,
        };
        for c in convs {
            self.drop_kept_revisions(&tr, t, c)?;
        }
        Ok(staged.iter().map(|s| s.receipt().clone()).collect())
    }

    /// The markers of rectified profiles whose old version awaits a purge: (key, masked bytes).
    fn rewritten_markers(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let it = self
            .inner
            .prefix_iter(cf::META, &[codec::meta::REWRITTEN])?;
        crate::vault::RawIter::new(it, "reading rectification markers").collect()
    }

    fn drop_kept_revisions(&self, tr: &TenantRetention, t: Iid, c: Iid) -> Result<()> {
        let i = &self.inner;
        let prefix = KeyBuf::new().u64(t).u64(c).into_vec();
        let mut it = i.prefix_iter(cf::MESSAGES, &prefix)?;
        let mut batch = WriteBatch::default();
        let rcf = i.cf(cf::REVISIONS)?;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if let Ok(h) = RecordHeader::decode(v, String::new) {
                if h.kind == RecordKind::Deleted {
                    let author = if h.author != 0 {
                        Some(h.author)
                    } else {
                        codec::decode_message_key(k).and_then(|(_, _, id)| {
                            self.get(TenantId(t), ConversationId(c), id)
                                .ok()
                                .map(|m| m.author.0)
                        })
                    };
                    if !tr.held(c, author) {
                        let end = prefix_successor(k).unwrap_or_default();
                        batch.delete_range_cf(&rcf, k, &end);
                    }
                }
            }
            it.next();
        }
        it.status()
            .map_err(Error::storage("scanning deleted messages"))?;
        drop(it);
        i.write(batch, "removing revisions kept under a hold")
    }

    /// Active legal holds of a tenant.
    pub fn holds(&self, tenant: TenantId) -> Result<Vec<Hold>> {
        self.inner.tenant_state(tenant.0)?;
        Ok(self
            .tenant_retention(tenant.0)
            .holds
            .into_iter()
            .map(|(id, r)| hold_of(id, r))
            .collect())
    }

    // ------------------------------------------------------------------ counting and purge

    /// Messages a reader can see in a conversation: not expired, not deleted. Reads only the
    /// clear headers (no decryption) except where the author is sealed and a custodian hold
    /// makes the answer depend on it.
    ///
    /// Errors: [`Error::Shredded`] (the conversation or its tenant is shredded), as for
    /// [`Vault::messages`].
    pub fn message_count(&self, tenant: TenantId, conv: ConversationId) -> Result<u64> {
        let i = &self.inner;
        i.check_conversation_alive(tenant.0, conv.0)?;
        let snap = i.retention.current();
        let now = i.opts.clock.now_ms();
        let prefix = KeyBuf::new().u64(tenant.0).u64(conv.0).into_vec();
        let mut it = i.prefix_iter(cf::MESSAGES, &prefix)?;
        let mut n = 0;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let h = RecordHeader::decode(v, || "message record".into())?;
            let author = (h.author != 0).then_some(h.author);
            // Shredded records (a window, an author) are not visible either, purged or not.
            if h.kind != RecordKind::Deleted
                && !snap.is_shredded(tenant.0, conv.0, author, h.sent_at_ms)
                && !snap.is_expired(tenant.0, conv.0, author, h.sent_at_ms, now)
            {
                if author.is_none()
                    && snap
                        .tenant(tenant.0)
                        .is_some_and(|tr| !tr.held_custodians().is_empty())
                {
                    // Exact answer needs the sealed author.
                    if let Some((_, _, id)) = codec::decode_message_key(k) {
                        match self.get(tenant, conv, id) {
                            Ok(_) => n += 1,
                            Err(Error::Expired { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                } else {
                    n += 1;
                }
            }
            it.next();
        }
        it.status().map_err(Error::storage("counting messages"))?;
        Ok(n)
    }

    /// Removes expired data from disk: destroys the keys of epochs whose every message has
    /// expired (crypto-retention), flushes the memtables, compacts the affected key ranges down
    /// to the bottommost level (the compaction filter drops expired records), then verifies by
    /// a raw scan of every SST and WAL file in the data directory that no expired record found
    /// is left, retrying up to `max_attempts` times. A library call first: a backend runs it in
    /// its own process while it serves.
    pub fn purge(&self, opts: PurgeOptions) -> Result<PurgeReport> {
        self.purge_with_progress(opts, &|_| {})
    }

    /// [`Vault::purge`], reporting its progress to `progress`: stages `scan` (one item per
    /// conversation scanned), `re-version keys`, `compact` and `check files` (again for each
    /// retry).
    ///
    /// Errors: as [`Vault::purge`].
    pub fn purge_with_progress(
        &self,
        opts: PurgeOptions,
        progress: &dyn Fn(crate::progress::Progress<'_>),
    ) -> Result<PurgeReport> {
        let mut tick = crate::progress::Ticker::new(progress, 4);
        let i = &self.inner;
        i.writable("purging")?;
        let _g = i.policy_lock.lock();
        let snap = i.retention.current();
        let now = i.opts.clock.now_ms();
        let mut report = PurgeReport {
            conversations: Vec::new(),
            dry_run: opts.dry_run,
            complete: true,
            attempts: 0,
            remaining_records: 0,
            files_scanned: 0,
            key_paths_pending: 0,
            rekey: None,
            old_copies_exposed: None,
            removed_shreds: Vec::new(),
        };
        report.key_paths_pending = self.rekey_pending()?.len() as u64;
        let mut needles: Vec<Vec<u8>> = Vec::new();
        let mut ranges: Vec<Vec<u8>> = Vec::new();
        // Epoch keys to destroy: (tenant, conversation, first epoch kept).
        let mut destroy: Vec<(Iid, Iid, u32)> = Vec::new();
        let mut tenants: Vec<(&Iid, &Arc<TenantRetention>)> = snap.tenants.iter().collect();
        tenants.sort_by_key(|(t, _)| **t);
        tick.stage("scan", None);
        for (&t, tr) in tenants {
            // A shredded tenant has no readable tenant record: no epoch arithmetic needed.
            let epoch_ms = if tr.shred.tenant {
                None
            } else {
                Some(i.tenant_state(t)?.epoch_ms)
            };
            for c in self.conversation_iids(t)? {
                tick.tick();
                let mut cp = ConversationPurge {
                    tenant: TenantId(t),
                    conversation: ConversationId(c),
                    expired_messages: 0,
                    expired_revisions: 0,
                    expired_index_entries: 0,
                    epoch_keys_destroyed: 0,
                };
                let prefix = KeyBuf::new().u64(t).u64(c).into_vec();
                for (cf_name, count) in [
                    (cf::MESSAGES, &mut cp.expired_messages),
                    (cf::REVISIONS, &mut cp.expired_revisions),
                ] {
                    let mut it = i.prefix_iter(cf_name, &prefix)?;
                    while it.valid() {
                        if let Some(v) = it.value() {
                            if let Ok(h) = RecordHeader::decode(v, String::new) {
                                let author = (h.author != 0).then_some(h.author);
                                if snap.is_shredded(t, c, author, h.sent_at_ms)
                                    || snap.is_expired(t, c, author, h.sent_at_ms, now)
                                {
                                    *count += 1;
                                    let s = RECORD_HEADER_LEN;
                                    if let Some(n) = v.get(s..s + NONCE_LEN + 4) {
                                        needles.push(n.to_vec());
                                    }
                                }
                            }
                        }
                        it.next();
                    }
                    it.status()
                        .map_err(Error::storage("scanning for expired records"))?;
                }
                let mut it = i.prefix_iter(cf::TIME_INDEX, &prefix)?;
                while it.valid() {
                    if let (Some(k), Some(v)) = (it.key(), it.value()) {
                        if let Some((_, _, at, _)) = codec::decode_time_key(k) {
                            let a = v.get(0..8).and_then(be64).filter(|a| *a != 0);
                            if snap.is_shredded(t, c, a, at) || snap.is_expired(t, c, a, at, now) {
                                cp.expired_index_entries += 1;
                                needles.push(k.to_vec());
                            }
                        }
                    }
                    it.next();
                }
                it.status()
                    .map_err(Error::storage("scanning the time index"))?;
                drop(it);

                // Crypto-retention: epochs that lie wholly before what has expired for every
                // author, with no hold that could reach into them.
                let mut threshold = tr
                    .watermark(c)
                    .map(|w| w.authors.values().copied().fold(w.all, i64::min))
                    .unwrap_or(i64::MIN);
                if !tr.held(c, None) {
                    if let Retention::Period { ms } = tr.effective(c).retention {
                        threshold = threshold.max(now.saturating_sub(ms as i64).saturating_add(1));
                    }
                }
                if let (true, Some(epoch_ms)) = (threshold > 0, epoch_ms) {
                    let first_kept = u32::try_from(threshold as u64 / epoch_ms).unwrap_or(u32::MAX);
                    let kprefix = KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c).into_vec();
                    let mut it = i.prefix_iter(cf::KEYS, &kprefix)?;
                    let mut epochs = std::collections::BTreeSet::new();
                    while it.valid() {
                        if let Some(e) = it.key().and_then(|k| k.get(17..21)).and_then(codec::be32)
                        {
                            if e >= first_kept {
                                break;
                            }
                            epochs.insert(e);
                        }
                        it.next();
                    }
                    it.status().map_err(Error::storage("scanning epoch keys"))?;
                    cp.epoch_keys_destroyed = epochs.len() as u64;
                    if !epochs.is_empty() {
                        destroy.push((t, c, first_kept));
                    }
                }
                if cp.expired_messages + cp.expired_revisions + cp.expired_index_entries > 0
                    || cp.epoch_keys_destroyed > 0
                {
                    ranges.push(prefix);
                    report.conversations.push(cp);
                }
            }
        }
        let any_shred = snap
            .tenants
            .values()
            .any(|tr| tr.shred != crate::retention::ShredState::default());
        // Old versions of rectified profiles (`rights.rs`): verified gone like expired records.
        let rewritten = self.rewritten_markers()?;
        for (_, masked) in &rewritten {
            needles.push(masked.iter().map(|b| b ^ 0xFF).collect());
        }
        let replaced_waiting = !self.replaced_markers()?.is_empty();
        if opts.dry_run
            || (report.conversations.is_empty()
                && !any_shred
                && report.key_paths_pending == 0
                && rewritten.is_empty()
                && !replaced_waiting)
        {
            return Ok(report);
        }

        // Destroy fully expired epoch keys, durably, and record that those epochs are expired
        // for good (so a later hold or longer period cannot ask for keys that are gone).
        if !destroy.is_empty() {
            let mut batch = WriteBatch::default();
            let kcf = i.cf(cf::KEYS)?;
            let mut changed: BTreeMap<Iid, TenantRetention> = BTreeMap::new();
            for &(t, c, first_kept) in &destroy {
                let ts = i.tenant_state(t)?;
                let from = KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c).into_vec();
                let to = KeyBuf::tag(codec::keys::EPOCH)
                    .u64(t)
                    .u64(c)
                    .u32(first_kept)
                    .into_vec();
                batch.delete_range_cf(&kcf, &from, &to);
                let tr = changed.entry(t).or_insert_with(|| self.tenant_retention(t));
                let w = tr.marks.entry(c).or_insert_with(Watermark::none);
                let end = (first_kept as i64).saturating_mul(ts.epoch_ms as i64);
                w.advance(end, &[]);
                let place = KeyBuf::tag(codec::meta::WATERMARK).u64(t).u64(c).into_vec();
                batch.put_cf(&i.cf(cf::META)?, place, enc(w)?);
                // Old copies of the directory must not open these epochs either.
                crate::rekey::mark(i, &mut batch, t, c)?;
            }
            i.write_sync(batch, "destroying expired epoch keys")?;
            tracing::info!(
                conversations = destroy.len(),
                "expired epoch keys destroyed"
            );
            for (t, tr) in changed {
                self.publish(t, tr);
            }
            i.cache.remove_where(|k| match k {
                KeyId::Epoch { t, c, e, .. } | KeyId::Dek { t, c, e, .. } => destroy
                    .iter()
                    .any(|(dt, dc, first)| dt == t && dc == c && e < first),
                _ => false,
            });
        }

        // New versions for every key on the path to a destroyed key (old copies of the
        // directory), one pass for every destruction since the last purge.
        tick.end_stage();
        tick.stage("re-version keys", None);
        let mut exposed = None;
        match self.rekey_locked(false) {
            Ok(Some(o)) => report.rekey = Some(o.report),
            // The pass the open ran for paths left marked (a purge after a failed shred pass
            // reports it: the operator asked for it by running the purge again).
            Ok(None) => report.rekey = i.open_rekey.lock().take(),
            Err(Error::KeyProvider(crate::keys::ProviderError::CannotRotate(m))) => {
                tracing::warn!("key paths not re-versioned: {m}");
                exposed = Some(m);
            }
            Err(e) => return Err(e),
        }
        // What this pass and earlier ones (at each shred) replaced: old versions of wrapped
        // keys and sealed metadata, verified gone like expired records.
        let replaced = self.replaced_markers()?;
        for (_, n) in &replaced {
            needles.extend(n.iter().cloned());
        }

        let ac = AhoCorasick::new(&needles)
            .map_err(|e| Error::InvalidInput(format!("purge verification: {e}")))?;
        let max = opts.max_attempts.max(1);
        tick.end_stage();
        loop {
            report.attempts += 1;
            if report.attempts > 1 {
                tick.more_stages(2);
            }
            tick.stage("compact", None);
            self.flush()?;
            let mut co = rocksdb::CompactOptions::default();
            co.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
            for name in [cf::MESSAGES, cf::REVISIONS, cf::TIME_INDEX] {
                let h = i.cf(name)?;
                if ranges.len() > 16 || report.attempts > 1 {
                    i.db.compact_range_cf_opt(&h, None::<&[u8]>, None::<&[u8]>, &co);
                } else {
                    for r in &ranges {
                        let end = prefix_successor(r);
                        i.db.compact_range_cf_opt(&h, Some(r.as_slice()), end.as_deref(), &co);
                    }
                }
            }
            // Destroyed wrapped keys (range deletions) and removed directory entries leave the
            // files too; both column families are small.
            for name in [cf::KEYS, cf::META] {
                i.db.compact_range_cf_opt(&i.cf(name)?, None::<&[u8]>, None::<&[u8]>, &co);
            }
            // Two more version edits (tiny flushes of the purge time): the first rolls the
            // MANIFEST onto a snapshot of the live files only (see `db_options`), the second's
            // clean-up deletes the MANIFEST that still named the removed files.
            for _ in 0..2 {
                let mut b = WriteBatch::default();
                b.put_cf(
                    &i.cf(cf::META)?,
                    [codec::meta::LAST_PURGE],
                    now.to_be_bytes(),
                );
                i.write_sync(b, "recording the purge")?;
                i.db.flush_cf(&i.cf(cf::META)?)
                    .map_err(Error::storage("flushing"))?;
            }
            tick.end_stage();
            tick.stage("check files", None);
            let (files, found) = self.scan_files(&ac)?;
            tick.end_stage();
            report.files_scanned = files;
            report.remaining_records = found;
            tracing::debug!(
                attempt = report.attempts,
                files,
                found,
                "purge verification"
            );
            if found == 0 {
                report.complete = true;
                break;
            }
            if report.attempts >= max {
                report.complete = false;
                break;
            }
        }
        if report.complete && !(rewritten.is_empty() && replaced.is_empty()) {
            let mut b = WriteBatch::default();
            for k in rewritten
                .iter()
                .map(|r| &r.0)
                .chain(replaced.iter().map(|r| &r.0))
            {
                b.delete_cf(&i.cf(cf::META)?, k);
            }
            i.write_sync(b, "recording removed old versions")?;
        }
        // Shreds whose records and keys are now gone from every file get a `Removed` receipt.
        if report.complete {
            report.removed_shreds = self.record_removed_shreds()?;
        }
        if let Some(m) = exposed {
            report.complete = false;
            report.old_copies_exposed = Some(m);
        }
        tracing::info!(
            expired = report.expired_records(),
            complete = report.complete,
            attempts = report.attempts,
            "purge finished"
        );
        Ok(report)
    }

    /// Number of live records in a column family, below every read rule (no expiry, no
    /// decryption). For tests and diagnostics.
    #[doc(hidden)]
    pub fn debug_count_records(&self, cf_name: &'static str) -> Result<usize> {
        let i = &self.inner;
        let mut it = i.db.raw_iterator_cf(&i.cf(cf_name)?);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status().map_err(Error::storage("counting records"))?;
        Ok(n)
    }

    /// Counts needle occurrences in every SST, WAL and MANIFEST file of the data directory.
    fn scan_files(&self, ac: &AhoCorasick) -> Result<(u64, u64)> {
        let dir = &self.inner.path;
        let mut files = 0;
        let mut found = 0;
        for entry in std::fs::read_dir(dir).map_err(Error::io("listing", dir))? {
            let p = entry.map_err(Error::io("listing", dir))?.path();
            let is_data = p
                .extension()
                .is_some_and(|e| e == "sst" || e == "log" || e == "blob")
                || p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("MANIFEST-"));
            if !is_data {
                continue;
            }
            // A file may vanish between listing and reading (obsolete files are deleted).
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            files += 1;
            found += ac.find_iter(&bytes).count() as u64;
        }
        Ok((files, found))
    }
}

fn hold_of(id: u64, r: HoldRecord) -> Hold {
    Hold {
        id,
        scope: r.scope,
        reason: r.reason,
        placed_by: r.placed_by.map(UserId),
        placed_at_ms: r.placed_at_ms,
    }
}
