//! Online rotation of the keys below the root key, while the vault serves (DESIGN.md §4, §5):
//!
//! - [`Vault::rotate_tenant_kek`]: the tenant KEK gets a new version with a **new random
//!   value**; every live child key (conversation, user, directory) is re-wrapped under it, the
//!   metadata sealed under the KEK is sealed again, and the old version is deleted, in one
//!   fsynced WriteBatch (the per-tenant step of the purge's re-versioning pass, `rekey.rs`, with
//!   the root key version unchanged).
//! - [`Vault::rotate_data_keys`]: every live conversation key of the tenant (or of one
//!   conversation) gets a new version with a new random value (its epoch keys re-wrapped, its
//!   record and memberships sealed again, the old version deleted), every live epoch key gets a
//!   new version with a new random value, and with the tenant scope every user key too (the
//!   profile and the restriction record sealed again under it). New writes use the new versions
//!   from the call on; the old epoch and user key versions stay for the records sealed under
//!   them. A tenant is done in bounded batches, one conversation at a time (or up to
//!   [`USER_BATCH`] users), each with the rotation's cursor (`meta 0x1A t c`), so an interrupted
//!   rotation resumes where it stopped.
//! - [`Vault::reseal`]: re-seals the records (messages, revisions, deletion markers) still
//!   sealed under old versions, in bounded batches, resumable (it re-seals what is not current,
//!   so running it again continues), reporting progress through a callback; then, by default,
//!   [`Vault::retire_data_keys`].
//! - [`Vault::retire_data_keys`]: deletes the old epoch and user key versions once a scan of the
//!   scope's records shows that no readable record is sealed under them
//!   ([`Error::KeyVersionsInUse`] otherwise, deleting nothing).
//!
//! Locks: every step holds `policy_lock` (no shred, purge, re-versioning pass, policy or hold
//! change meanwhile) and every batch of new keys also `create_lock` (no key is created under a
//! version being replaced), as the purge's pass does; the re-seal holds `edit_lock` per batch
//! (no edit or deletion rewrites a record it is re-sealing). After its new versions are in
//! place a rotation takes `seal_lock` for writing once: every append, edit or deletion that
//! picked the old versions before has then been written, so a re-seal that starts afterwards
//! sees every record it must re-seal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, AuditOutcome, RotationStep};
use crate::codec::{self, be32, be64, Iid, KeyBuf};
use crate::envelope::{self, MetaKind, RecordHeader, WrapHeader};
use crate::error::{Error, Result};
use crate::keys::{Cipher, SecretKey};
use crate::model::{ConversationId, TenantId};
use crate::rekey::{self, Entry, Pass};
use crate::retention::Actor;
use crate::vault::{cf, Inner, KeyId, Vault};

/// Users rotated per WriteBatch by [`Vault::rotate_data_keys`].
pub const USER_BATCH: usize = 256;
/// New keys (new versions plus re-wrapped ones) after which a tenant rotation writes its batch
/// (it always finishes the conversation it is on).
const KEYS_PER_BATCH: u64 = 4096;

/// What [`Vault::rotate_tenant_kek`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRotationReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The new (now only) version of the tenant KEK.
    pub kek_version: u32,
    /// Child keys (conversation, user, directory; every version) re-wrapped under it.
    pub keys_rewrapped: u64,
    /// Metadata records sealed again under it (tenant record, policies, change log, holds).
    pub meta_resealed: u64,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
}

/// What [`Vault::rotate_data_keys`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRotationReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation, for a rotation of one conversation.
    pub conversation: Option<ConversationId>,
    /// Conversation keys given a new version with a new value (old version deleted).
    pub conversation_keys: u64,
    /// Epoch keys given a new version with a new value (old versions kept until retired).
    pub epoch_keys: u64,
    /// User keys given a new version with a new value (tenant scope; old versions kept until
    /// retired).
    pub user_keys: u64,
    /// Epoch keys re-wrapped under their conversation's new key (every version).
    pub keys_rewrapped: u64,
    /// Metadata sealed again (conversation records, memberships, profiles, restrictions).
    pub meta_resealed: u64,
    /// Whether this call finished a rotation that an earlier call started and did not finish
    /// (a crash, an error).
    pub resumed: bool,
    /// WriteBatches written.
    pub batches: u64,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
}

/// Options of [`Vault::reseal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealOptions {
    /// Records re-sealed per WriteBatch (and per hold of the locks). Default 256. At most 16
    /// times as many records are scanned per batch.
    pub batch_records: usize,
    /// Retire the old key versions once every record is re-sealed
    /// ([`Vault::retire_data_keys`]). Default `true`.
    pub retire: bool,
}

impl Default for ResealOptions {
    fn default() -> Self {
        ResealOptions {
            batch_records: 256,
            retire: true,
        }
    }
}

/// Progress of [`Vault::reseal`], given to its callback after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResealProgress {
    /// Records (messages and revisions) in the scope when the re-seal began.
    pub total: u64,
    /// Records looked at so far.
    pub scanned: u64,
    /// Records re-sealed so far.
    pub resealed: u64,
}

/// What [`Vault::reseal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealReport {
    /// Records looked at (messages, deletion markers and older revisions).
    pub scanned: u64,
    /// Records sealed again under the current key versions.
    pub resealed: u64,
    /// Records already under the current versions.
    pub already_current: u64,
    /// Expired records, left as they are (invisible; the next purge removes them).
    pub expired: u64,
    /// Records of shredded scopes or with a destroyed key, left as they are (they cannot be
    /// opened, and are never brought back).
    pub shredded: u64,
    /// Records that failed to open (altered or corrupt), left as they are: `verify` names
    /// them; they keep their old key versions from being retired.
    pub failed: u64,
    /// WriteBatches written.
    pub batches: u64,
    /// Wall time of the re-seal, milliseconds (without the retirement).
    pub elapsed_ms: u64,
    /// The retirement that followed ([`ResealOptions::retire`]).
    pub retired: Option<RetireReport>,
}

/// What [`Vault::retire_data_keys`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetireReport {
    /// Old epoch key versions deleted.
    pub epoch_key_versions: u64,
    /// Old user key versions deleted (tenant scope).
    pub user_key_versions: u64,
    /// Records scanned to check that nothing readable uses them.
    pub records_scanned: u64,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
}

/// `meta 0x1A t c`: a data-key rotation of a scope whose old versions are not retired yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RotationState {
    /// When it started, UTC ms.
    started_at_ms: i64,
    /// Key phase cursor: conversations with a lower internal id have their new versions.
    next_conversation: u64,
    /// Key phase cursor: users with a lower internal id have their new versions.
    next_user: u64,
    /// Every key of the scope has its new version: new writes use them.
    keys_done: bool,
}

fn state_place(t: Iid, c: Iid) -> Vec<u8> {
    KeyBuf::tag(codec::meta::DATA_ROTATION)
        .u64(t)
        .u64(c)
        .into_vec()
}

fn encode_state(s: &RotationState) -> Result<Vec<u8>> {
    postcard::to_stdvec(s)
        .map_err(|e| Error::InvalidInput(format!("cannot encode a rotation state: {e}")))
}

fn decode_state(v: &[u8]) -> Result<RotationState> {
    postcard::from_bytes(v).map_err(|e| Error::corrupt("data-key rotation state", e.to_string()))
}

fn check_admin(actor: &Actor, what: &str) -> Result<()> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "only a tenant admin or an operator may {what}"
        )))
    }
}

fn scope_text(t: Iid, c: Option<Iid>) -> String {
    match c {
        Some(c) => format!("conversation #{c} of tenant #{t}"),
        None => format!("tenant #{t}"),
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

/// Writes a batch that replaces key versions of tenant `t` (fsynced), and makes every reader
/// that raced with it read again (as the re-versioning pass does): bumps the generation and
/// forgets the tenant's cached keys, under `rekey_lock`'s write side.
fn swap(i: &Inner, batch: WriteBatch, t: Iid, op: crate::error::Op) -> Result<()> {
    let _w = i.rekey_lock.write();
    i.write_sync(batch, op)?;
    i.rekey_generation.fetch_add(1, Ordering::AcqRel);
    i.cache.remove_where(|k| key_tenant(k) == t);
    i.tenants.write().remove(&t);
    Ok(())
}

/// Every tenant KEK version of `t`, unwrapped, and the current (highest) one.
fn tenant_keks(p: &Pass<'_>, t: Iid) -> Result<(BTreeMap<u32, SecretKey>, u32, Cipher)> {
    let entries = rekey::scan(
        p.i,
        cf::KEYS,
        &KeyBuf::tag(codec::keys::TENANT_KEK).u64(t).into_vec(),
    )?;
    let mut old = BTreeMap::new();
    for (place, value) in &entries {
        let (h, key) = p.unwrap_kek(place, value)?;
        old.insert(h.version, key);
    }
    let Some((&v, k)) = old.iter().next_back() else {
        return Err(Error::Shredded {
            what: format!("tenant #{t}"),
        });
    };
    let c = k.cipher();
    Ok((old, v, c))
}

/// Entries of `cf` under `prefix` from `start` on, grouped by the internal id at bytes
/// `at..at + 8` of the key, for at most `groups` ids.
fn groups_from(
    i: &Inner,
    cf_name: &'static str,
    prefix: &[u8],
    start: &[u8],
    at: usize,
    groups: usize,
) -> Result<Vec<(Iid, Vec<Entry>)>> {
    let mut out: Vec<(Iid, Vec<Entry>)> = Vec::new();
    let mut it = i.prefix_iter(cf_name, prefix)?;
    it.seek(start);
    while it.valid() {
        let (Some(k), Some(v)) = (it.key(), it.value()) else {
            break;
        };
        let Some(id) = k.get(at..at + 8).and_then(be64) else {
            return Err(Error::corrupt(
                format!("wrapped key {}", hex::encode(k)),
                "bad key length",
            ));
        };
        match out.last_mut() {
            Some((last, entries)) if *last == id => entries.push((k.to_vec(), v.to_vec())),
            _ => {
                if out.len() == groups {
                    break;
                }
                out.push((id, vec![(k.to_vec(), v.to_vec())]));
            }
        }
        it.next();
    }
    it.status()
        .map_err(Error::storage("reading keys to rotate"))?;
    Ok(out)
}

impl Vault {
    /// Rotates tenant `tenant`'s KEK: a new version with a new random value, wrapped by the
    /// root key provider under its current version; every live child key (conversation and
    /// user keys, every version, and the directory key) re-wrapped under it (their values do
    /// not change), the tenant's KEK-sealed metadata (tenant record, policies, change log,
    /// holds) sealed again, and the old version deleted, all in one fsynced WriteBatch: a crash
    /// leaves the old KEK or the new one, never a mix. Safe while the vault serves: key
    /// creation, membership and policy changes wait (a few ms per thousand keys), and a read
    /// that raced with the swap reads again. Records are not touched (their DEKs derive from
    /// epoch and user keys): see [`Vault::rotate_data_keys`] for those.
    ///
    /// A copy of the data directory taken before still holds the old KEK version, wrapped under
    /// the root key: rotate (and retire) the root key too if the root key may have leaked.
    ///
    /// Errors: [`Error::PermissionDenied`] for a member; [`Error::NotFound`],
    /// [`Error::Shredded`] (tenant); [`Error::ReadOnlySecondary`]; [`Error::KeyProvider`];
    /// [`Error::Storage`].
    pub fn rotate_tenant_kek(&self, tenant: TenantId, actor: Actor) -> Result<KekRotationReport> {
        let i = &self.inner;
        i.writable("rotating a tenant KEK")?;
        check_admin(&actor, "rotate a tenant KEK")?;
        let t = tenant.0;
        i.tenant_state(t)?;
        let started = Instant::now();
        let _g = i.policy_lock.lock();
        let _c = i.create_lock.lock();
        let entries = rekey::scan(
            i,
            cf::KEYS,
            &KeyBuf::tag(codec::keys::TENANT_KEK).u64(t).into_vec(),
        )?;
        if entries.is_empty() {
            return Err(Error::Shredded {
                what: format!("tenant {tenant}"),
            });
        }
        let mut p = Pass::new(i, i.provider.current_version());
        let kek_version = p.reversion_tenant(t, &entries, &BTreeSet::new())?;
        let app = self.stage_audit(
            &mut p.batch,
            &actor,
            AuditEvent::KeyRotation {
                tenant,
                conversation: None,
                step: RotationStep::TenantKek,
            },
            AuditOutcome::Done,
        )?;
        let Pass { batch, report, .. } = p;
        swap(i, batch, t, "rotating a tenant KEK")?;
        app.commit();
        let r = KekRotationReport {
            tenant,
            kek_version,
            keys_rewrapped: report.keys_rewrapped,
            meta_resealed: report.meta_resealed,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            tenant = t,
            kek_version,
            keys_rewrapped = r.keys_rewrapped,
            "tenant KEK rotated"
        );
        Ok(r)
    }

    /// Rotates the data keys of a tenant, or with `conversation` of one conversation: each
    /// live conversation key gets a new version with a new random value (its epoch keys, every
    /// version, re-wrapped under it, its record and memberships sealed again, the old version
    /// deleted); each live epoch key gets a new version with a new random value; with the
    /// tenant scope each live user key too (profile and restriction record sealed again under
    /// it). Appends, edits and deletions use the new versions from the call's return on; the
    /// old epoch and user key versions stay, so every record still opens, until
    /// [`Vault::reseal`] has sealed the records again and [`Vault::retire_data_keys`] deletes
    /// them. [`Vault::key_stats`] shows the fraction of records under the current versions.
    ///
    /// One conversation is one fsynced WriteBatch. A tenant is done in batches (a conversation
    /// at a time, or [`USER_BATCH`] users), each recording how far it got (`meta 0x1A t 0`): after
    /// a crash the vault opens and reads everything (each key is under its old or its new
    /// version), and calling this again, or [`Vault::reseal`], finishes the rotation instead of
    /// starting another. Shredded scopes have no key left and are skipped (nothing comes back).
    /// Safe while the vault serves; shreds, purges and policy changes wait until it returns.
    ///
    /// Errors: [`Error::PermissionDenied`] for a member; [`Error::NotFound`],
    /// [`Error::Shredded`] (tenant, conversation); [`Error::ReadOnlySecondary`];
    /// [`Error::Storage`].
    pub fn rotate_data_keys(
        &self,
        tenant: TenantId,
        conversation: Option<ConversationId>,
        actor: Actor,
    ) -> Result<DataKeyRotationReport> {
        let i = &self.inner;
        i.writable("rotating data keys")?;
        check_admin(&actor, "rotate data keys")?;
        let t = tenant.0;
        i.tenant_state(t)?;
        let started = Instant::now();
        let _g = i.policy_lock.lock();
        let c0 = conversation.map_or(0, |c| c.0);
        if let Some(c) = conversation {
            i.check_conversation_alive(t, c.0)?;
            let prefix = KeyBuf::tag(codec::keys::CONVERSATION)
                .u64(t)
                .u64(c.0)
                .into_vec();
            if rekey::scan(i, cf::KEYS, &prefix)?.is_empty() {
                return Err(Error::NotFound {
                    what: format!("conversation {c} of tenant {tenant}"),
                });
            }
        }
        let place = state_place(t, c0);
        let (mut state, resumed) = match i.get(cf::META, &place)? {
            Some(v) => match decode_state(&v)? {
                s if !s.keys_done => (s, true),
                _ => (RotationState::new(i), false),
            },
            None => (RotationState::new(i), false),
        };
        let mut r = DataKeyRotationReport {
            tenant,
            conversation,
            conversation_keys: 0,
            epoch_keys: 0,
            user_keys: 0,
            keys_rewrapped: 0,
            meta_resealed: 0,
            resumed,
            batches: 0,
            elapsed_ms: 0,
        };
        let audit = AuditEvent::KeyRotation {
            tenant,
            conversation,
            step: RotationStep::DataKeys,
        };
        if let Some(c) = conversation {
            let _c = i.create_lock.lock();
            let mut p = Pass::new(i, i.provider.current_version());
            let (keks, kv, kek) = tenant_keks(&p, t)?;
            p.reversion_conversation(t, c.0, &keks, &kek, kv, true)?;
            state.keys_done = true;
            p.batch
                .put_cf(&i.cf(cf::META)?, &place, encode_state(&state)?);
            let app = self.stage_audit(&mut p.batch, &actor, audit, AuditOutcome::Done)?;
            r.add(&p);
            swap(i, p.batch, t, "rotating a conversation's data keys")?;
            app.commit();
            r.batches += 1;
        } else {
            // Conversations, a batch at a time.
            let conv_prefix = KeyBuf::tag(codec::keys::CONVERSATION).u64(t).into_vec();
            loop {
                let _c = i.create_lock.lock();
                let mut p = Pass::new(i, i.provider.current_version());
                let (keks, kv, kek) = tenant_keks(&p, t)?;
                let mut any = false;
                loop {
                    let start = KeyBuf::tag(codec::keys::CONVERSATION)
                        .u64(t)
                        .u64(state.next_conversation)
                        .into_vec();
                    let next = groups_from(i, cf::KEYS, &conv_prefix, &start, 9, 1)?;
                    let Some((c, _)) = next.first() else {
                        break;
                    };
                    p.reversion_conversation(t, *c, &keks, &kek, kv, true)?;
                    state.next_conversation = c + 1;
                    any = true;
                    if p.report.keys_rewrapped + p.epoch_keys_rotated >= KEYS_PER_BATCH {
                        break;
                    }
                }
                if !any {
                    break;
                }
                p.batch
                    .put_cf(&i.cf(cf::META)?, &place, encode_state(&state)?);
                r.add(&p);
                swap(i, p.batch, t, "rotating conversation and epoch keys")?;
                r.batches += 1;
            }
            // Users, a batch at a time.
            let user_prefix = KeyBuf::tag(codec::keys::USER).u64(t).into_vec();
            loop {
                let _c = i.create_lock.lock();
                let p = Pass::new(i, i.provider.current_version());
                let (keks, kv, kek) = tenant_keks(&p, t)?;
                let start = KeyBuf::tag(codec::keys::USER)
                    .u64(t)
                    .u64(state.next_user)
                    .into_vec();
                let users = groups_from(i, cf::KEYS, &user_prefix, &start, 9, USER_BATCH)?;
                let Some((last, _)) = users.last() else {
                    break;
                };
                state.next_user = last + 1;
                let mut batch = WriteBatch::default();
                for (u, entries) in &users {
                    r.meta_resealed += rotate_user(i, &mut batch, t, *u, entries, &keks, &kek, kv)?;
                    r.user_keys += 1;
                }
                batch.put_cf(&i.cf(cf::META)?, &place, encode_state(&state)?);
                swap(i, batch, t, "rotating user keys")?;
                r.batches += 1;
            }
            state.keys_done = true;
            let mut batch = WriteBatch::default();
            batch.put_cf(&i.cf(cf::META)?, &place, encode_state(&state)?);
            let app = self.stage_audit(&mut batch, &actor, audit, AuditOutcome::Done)?;
            i.write_sync(batch, "finishing a data-key rotation")?;
            app.commit();
            r.batches += 1;
        }
        // Every write that picked an old version before the swaps has been written when this
        // returns (see `Inner::seal_lock`).
        drop(i.seal_lock.write());
        r.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            tenant = t,
            conversation = c0,
            epoch_keys = r.epoch_keys,
            user_keys = r.user_keys,
            resumed,
            "data keys rotated"
        );
        Ok(r)
    }

    /// Seals again, under the current key versions, every record of the tenant (or of one
    /// conversation) that is still sealed under an older epoch or user key version: current
    /// revisions, deletion markers and older revisions (also those kept under a legal hold).
    /// Expired records and records of shredded scopes are left as they are (invisible; the
    /// purge removes them); nothing is brought back. Works in batches of
    /// [`ResealOptions::batch_records`] records, each one fsynced WriteBatch written under the
    /// locks that shreds, purges and edits take, so it is safe while the vault serves (appends
    /// and reads go on; an edit or a shred waits at most one batch). `progress` is called after
    /// every batch. It keeps no cursor: after a crash, call it again, and it continues (records
    /// already re-sealed are skipped by their header). If a data-key rotation of the scope was
    /// interrupted, it is finished first. With [`ResealOptions::retire`] (default) the old
    /// versions are then retired ([`Vault::retire_data_keys`]). It changes no one's access to
    /// anything, so it takes no actor: the rotation it finishes and the retirement are recorded
    /// in the audit trail as done by an operator.
    ///
    /// Errors: [`Error::KeyVersionsInUse`] from the retirement when some records could not be
    /// re-sealed ([`ResealReport::failed`]: run `verify`); [`Error::NotFound`],
    /// [`Error::Shredded`] (tenant); [`Error::ReadOnlySecondary`]; [`Error::Storage`].
    pub fn reseal(
        &self,
        tenant: TenantId,
        conversation: Option<ConversationId>,
        opts: &ResealOptions,
        mut progress: impl FnMut(&ResealProgress),
    ) -> Result<ResealReport> {
        let i = &self.inner;
        i.writable("re-sealing records")?;
        let t = tenant.0;
        i.tenant_state(t)?;
        let c0 = conversation.map_or(0, |c| c.0);
        if let Some(v) = i.get(cf::META, &state_place(t, c0))? {
            if !decode_state(&v)?.keys_done {
                self.rotate_data_keys(tenant, conversation, Actor::operator())?;
            }
        }
        let started = Instant::now();
        let prefix = match conversation {
            Some(c) => KeyBuf::new().u64(t).u64(c.0).into_vec(),
            None => KeyBuf::new().u64(t).into_vec(),
        };
        let mut pr = ResealProgress {
            total: 0,
            scanned: 0,
            resealed: 0,
        };
        for name in [cf::MESSAGES, cf::REVISIONS] {
            let mut it = i.prefix_iter(name, &prefix)?;
            while it.valid() {
                pr.total += 1;
                it.next();
            }
            it.status().map_err(Error::storage("counting records"))?;
        }
        let mut r = ResealReport {
            scanned: 0,
            resealed: 0,
            already_current: 0,
            expired: 0,
            shredded: 0,
            failed: 0,
            batches: 0,
            elapsed_ms: 0,
            retired: None,
        };
        let per_batch = opts.batch_records.max(1);
        for name in [cf::MESSAGES, cf::REVISIONS] {
            let mut cursor: Option<Vec<u8>> = None;
            loop {
                let _g = i.policy_lock.lock();
                let _e = i.edit_lock.lock();
                let snap = i.retention.current();
                let now = i.opts.clock.now_ms();
                let mut batch = WriteBatch::default();
                let ccf = i.cf(name)?;
                let (mut resealed, mut scanned) = (0usize, 0usize);
                let mut it = i.prefix_iter(name, &prefix)?;
                if let Some(k) = &cursor {
                    it.seek(k);
                    if it.key() == Some(k.as_slice()) {
                        it.next();
                    }
                }
                while it.valid() && resealed < per_batch && scanned < per_batch * 16 {
                    let (Some(k), Some(v)) = (it.key(), it.value()) else {
                        break;
                    };
                    scanned += 1;
                    match reseal_one(i, k, v, &snap, now) {
                        Ok(Outcome::Resealed(new, xref)) => {
                            batch.put_cf(&ccf, k, new);
                            if let Some((place, sealed)) = xref {
                                batch.put_cf(&i.cf(cf::META)?, place, sealed);
                            }
                            resealed += 1;
                        }
                        Ok(Outcome::Current) => r.already_current += 1,
                        Ok(Outcome::Expired) => r.expired += 1,
                        Ok(Outcome::Shredded) => r.shredded += 1,
                        Err(Error::Storage { op, source }) => {
                            return Err(Error::Storage { op, source })
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "a record could not be re-sealed; left as it is");
                            r.failed += 1;
                        }
                    }
                    cursor = Some(k.to_vec());
                    it.next();
                }
                let done = !it.valid();
                it.status().map_err(Error::storage("re-sealing records"))?;
                drop(it);
                if resealed > 0 {
                    i.write_sync(batch, "re-sealing records")?;
                    r.batches += 1;
                }
                r.scanned += scanned as u64;
                r.resealed += resealed as u64;
                pr.scanned = r.scanned;
                pr.resealed = r.resealed;
                drop(_e);
                drop(_g);
                progress(&pr);
                if done {
                    break;
                }
            }
        }
        r.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            tenant = t,
            conversation = c0,
            resealed = r.resealed,
            scanned = r.scanned,
            failed = r.failed,
            "records re-sealed"
        );
        if opts.retire {
            r.retired = Some(self.retire_data_keys(tenant, conversation, Actor::operator())?);
        }
        Ok(r)
    }

    /// Deletes the old versions of the tenant's (or one conversation's) epoch keys, and with
    /// the tenant scope of its user keys, that a data-key rotation left, once a scan of the
    /// scope's records (headers only) shows that no readable record is sealed under them;
    /// expired records and records of shredded scopes do not count (they are never opened
    /// again). Then the rotation's record (`meta 0x1A`) is deleted, in the same fsynced
    /// WriteBatch. Afterwards a copy of the data directory made before the rotation cannot
    /// open what was re-sealed since, with any key the live vault holds. Old ciphertext stays
    /// in the SST files until a compaction (`Vault::compact_scope`), sealed under the deleted
    /// versions.
    ///
    /// Errors: [`Error::KeyVersionsInUse`] (nothing deleted: run [`Vault::reseal`]);
    /// [`Error::InvalidInput`] if a rotation of the scope was interrupted before all its new
    /// versions were written (call [`Vault::rotate_data_keys`] again); [`Error::NotFound`],
    /// [`Error::Shredded`]; [`Error::PermissionDenied`]; [`Error::ReadOnlySecondary`];
    /// [`Error::Storage`].
    pub fn retire_data_keys(
        &self,
        tenant: TenantId,
        conversation: Option<ConversationId>,
        actor: Actor,
    ) -> Result<RetireReport> {
        let i = &self.inner;
        i.writable("retiring old data-key versions")?;
        check_admin(&actor, "retire old data-key versions")?;
        let t = tenant.0;
        i.tenant_state(t)?;
        let started = Instant::now();
        let _g = i.policy_lock.lock();
        let scope = scope_text(t, conversation.map(|c| c.0));
        // The rotations this retirement completes.
        let state_prefix = match conversation {
            Some(c) => state_place(t, c.0),
            None => KeyBuf::tag(codec::meta::DATA_ROTATION).u64(t).into_vec(),
        };
        let states = rekey::scan(i, cf::META, &state_prefix)?;
        for (_, v) in &states {
            if !decode_state(v)?.keys_done {
                return Err(Error::InvalidInput(format!(
                    "a data-key rotation of {scope} stopped before all its new key versions \
                     were written; run it again to finish it (`chatvault key rotate-data`, or \
                     `Vault::rotate_data_keys`), re-seal, then retire"
                )));
            }
        }
        // Old versions: below the highest stored version of their key.
        let old_epochs = old_versions(
            i,
            &match conversation {
                Some(c) => KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c.0).into_vec(),
                None => KeyBuf::tag(codec::keys::EPOCH).u64(t).into_vec(),
            },
            |k| Some((k.get(9..17).and_then(be64)?, k.get(17..21).and_then(be32)?)),
            21,
        )?;
        let old_users = match conversation {
            Some(_) => BTreeMap::new(),
            None => old_versions(
                i,
                &KeyBuf::tag(codec::keys::USER).u64(t).into_vec(),
                |k| Some((k.get(9..17).and_then(be64)?, 0)),
                17,
            )?,
        };
        let prefix = match conversation {
            Some(c) => KeyBuf::new().u64(t).u64(c.0).into_vec(),
            None => KeyBuf::new().u64(t).into_vec(),
        };
        let snap = i.retention.current();
        let now = i.opts.clock.now_ms();
        let (mut scanned, mut in_use) = (0u64, 0u64);
        let (mut epoch_used, mut user_used) = (BTreeSet::new(), BTreeSet::new());
        if !old_epochs.is_empty() || !old_users.is_empty() {
            for name in [cf::MESSAGES, cf::REVISIONS] {
                let mut it = i.prefix_iter(name, &prefix)?;
                while it.valid() {
                    let (Some(k), Some(v)) = (it.key(), it.value()) else {
                        break;
                    };
                    scanned += 1;
                    let c = k.get(8..16).and_then(be64).unwrap_or(0);
                    if let Ok(h) = RecordHeader::decode(v, String::new) {
                        let author = (h.author != 0).then_some(h.author);
                        if !snap.is_shredded(t, c, author, h.sent_at_ms)
                            && !snap.is_expired(t, c, author, h.sent_at_ms, now)
                        {
                            let e = old_epochs
                                .get(&(c, h.epoch))
                                .is_some_and(|vs| vs.contains(&h.epoch_version));
                            let u = author.is_some_and(|a| {
                                old_users
                                    .get(&(a, 0))
                                    .is_some_and(|vs| vs.contains(&h.author_version))
                            });
                            if e {
                                epoch_used.insert((c, h.epoch, h.epoch_version));
                            }
                            if u {
                                user_used.insert((h.author, h.author_version));
                            }
                            if e || u {
                                in_use += 1;
                            }
                        }
                    }
                    it.next();
                }
                it.status()
                    .map_err(Error::storage("checking which key versions are used"))?;
            }
        }
        if in_use > 0 {
            return Err(Error::KeyVersionsInUse {
                scope,
                records: in_use,
                detail: format!(
                    "{} old epoch key version(s), {} old user key version(s)",
                    epoch_used.len(),
                    user_used.len()
                ),
            });
        }
        let kcf = i.cf(cf::KEYS)?;
        let mut batch = WriteBatch::default();
        let mut report = RetireReport {
            epoch_key_versions: 0,
            user_key_versions: 0,
            records_scanned: scanned,
            elapsed_ms: 0,
        };
        for ((c, e), vs) in &old_epochs {
            for v in vs {
                let place = KeyBuf::tag(codec::keys::EPOCH)
                    .u64(t)
                    .u64(*c)
                    .u32(*e)
                    .u32(*v)
                    .into_vec();
                batch.delete_cf(&kcf, place);
                report.epoch_key_versions += 1;
            }
        }
        for ((u, _), vs) in &old_users {
            for v in vs {
                let place = KeyBuf::tag(codec::keys::USER)
                    .u64(t)
                    .u64(*u)
                    .u32(*v)
                    .into_vec();
                batch.delete_cf(&kcf, place);
                report.user_key_versions += 1;
            }
        }
        let mcf = i.cf(cf::META)?;
        for (k, _) in &states {
            batch.delete_cf(&mcf, k);
        }
        let app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::KeyRotation {
                tenant,
                conversation,
                step: RotationStep::OldVersionsRetired,
            },
            AuditOutcome::Done,
        )?;
        {
            let _c = i.create_lock.lock();
            swap(i, batch, t, "retiring old data-key versions")?;
        }
        app.commit();
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            tenant = t,
            epoch_key_versions = report.epoch_key_versions,
            user_key_versions = report.user_key_versions,
            "old data-key versions retired"
        );
        Ok(report)
    }
}

impl RotationState {
    fn new(i: &Inner) -> Self {
        RotationState {
            started_at_ms: i.opts.clock.now_ms(),
            next_conversation: 0,
            next_user: 0,
            keys_done: false,
        }
    }
}

impl DataKeyRotationReport {
    fn add(&mut self, p: &Pass<'_>) {
        self.conversation_keys += p.report.conversation_keys_reversioned;
        self.epoch_keys += p.epoch_keys_rotated;
        self.keys_rewrapped += p.report.keys_rewrapped;
        self.meta_resealed += p.report.meta_resealed;
    }
}

/// A new version (new random value) of user `u`'s key under the current tenant KEK, with the
/// profile and restriction record sealed again under it. Returns the records sealed again.
#[allow(clippy::too_many_arguments)]
fn rotate_user(
    i: &Inner,
    batch: &mut WriteBatch,
    t: Iid,
    u: Iid,
    entries: &[Entry],
    keks: &BTreeMap<u32, SecretKey>,
    kek: &Cipher,
    kv: u32,
) -> Result<u64> {
    let mut old: BTreeMap<u32, SecretKey> = BTreeMap::new();
    for (place, value) in entries {
        let (h, key) = rekey::unwrap_child(place, value, keks)?;
        old.insert(h.version, key);
    }
    let nv = old.keys().next_back().copied().unwrap_or(0) + 1;
    let key = SecretKey::generate()?;
    let place = KeyBuf::tag(codec::keys::USER)
        .u64(t)
        .u64(u)
        .u32(nv)
        .into_vec();
    let h = WrapHeader {
        kind: codec::keys::USER,
        version: nv,
        parent_version: kv,
    };
    batch.put_cf(
        &i.cf(cf::KEYS)?,
        &place,
        envelope::wrap_key(kek, &h, &place, &key)?,
    );
    let cipher = key.cipher();
    let mcf = i.cf(cf::META)?;
    let mut n = 0;
    for tag in [codec::meta::USER, codec::meta::RESTRICTION] {
        let mplace = KeyBuf::tag(tag).u64(t).u64(u).into_vec();
        if let Some(v) = i.get(cf::META, &mplace)? {
            batch.put_cf(
                &mcf,
                &mplace,
                rekey::reseal(&mplace, &v, &old, &cipher, nv)?,
            );
            n += 1;
        }
    }
    // The user's consent grants (`0x19 t u e`, `src/consent.rs`) are sealed under the user key
    // too: sealed again with the profile, or they would not open once the old version is gone.
    let grants = KeyBuf::tag(codec::meta::USER_CONSENT)
        .u64(t)
        .u64(u)
        .into_vec();
    for (mplace, v) in rekey::scan(i, cf::META, &grants)? {
        batch.put_cf(
            &mcf,
            &mplace,
            rekey::reseal(&mplace, &v, &old, &cipher, nv)?,
        );
        n += 1;
    }
    Ok(n)
}

/// Per key (`id` from its RocksDB key), the stored versions below the highest one. `ver_at`:
/// where the version is in the key.
fn old_versions(
    i: &Inner,
    prefix: &[u8],
    id: impl Fn(&[u8]) -> Option<(Iid, u32)>,
    ver_at: usize,
) -> Result<BTreeMap<(Iid, u32), Vec<u32>>> {
    let mut all: BTreeMap<(Iid, u32), Vec<u32>> = BTreeMap::new();
    for (k, _) in rekey::scan(i, cf::KEYS, prefix)? {
        if let (Some(id), Some(v)) = (id(&k), k.get(ver_at..ver_at + 4).and_then(be32)) {
            all.entry(id).or_default().push(v);
        }
    }
    Ok(all
        .into_iter()
        .filter_map(|(id, mut vs)| {
            vs.sort_unstable();
            vs.pop();
            (!vs.is_empty()).then_some((id, vs))
        })
        .collect())
}

enum Outcome {
    /// The record sealed again, and the external reference of the message, if it has one.
    Resealed(Vec<u8>, Option<(Vec<u8>, Vec<u8>)>),
    Current,
    Expired,
    Shredded,
}

/// Re-seals one record under the current versions of its epoch and author keys, if it is not
/// under them already. Callers hold `policy_lock` and `edit_lock`.
fn reseal_one(
    i: &Inner,
    k: &[u8],
    v: &[u8],
    snap: &crate::retention::Snapshot,
    now: i64,
) -> Result<Outcome> {
    let (Some(t), Some(c)) = (k.get(0..8).and_then(be64), k.get(8..16).and_then(be64)) else {
        return Err(Error::corrupt(
            format!("record {}", hex::encode(k)),
            "bad key length",
        ));
    };
    let what = || format!("record {}", hex::encode(k));
    let h = RecordHeader::decode(v, what)?;
    let author = (h.author != 0).then_some(h.author);
    if snap.is_shredded(t, c, author, h.sent_at_ms) {
        return Ok(Outcome::Shredded);
    }
    if snap.is_expired(t, c, author, h.sent_at_ms, now) {
        return Ok(Outcome::Expired);
    }
    let gone = |e: Error| match e {
        Error::NotFound { .. } | Error::Shredded { .. } => Ok(Outcome::Shredded),
        e => Err(e),
    };
    let ev = match i.key(KeyId::Epoch {
        t,
        c,
        e: h.epoch,
        v: 0,
    }) {
        Ok(k) => k.version,
        Err(e) => return gone(e),
    };
    let av = match author {
        Some(a) => match i.user_key(t, a, 0) {
            Ok(k) => k.version,
            Err(e) => return gone(e),
        },
        None => 0,
    };
    if h.epoch_version == ev && h.author_version == av {
        return Ok(Outcome::Current);
    }
    let old = match i.dek(t, c, h.epoch, h.epoch_version, h.author, h.author_version) {
        Ok(k) => k,
        Err(e) => return gone(e),
    };
    let pt = envelope::open_record(&old.cipher, v, k, what)?;
    let nh = RecordHeader {
        epoch_version: ev,
        author_version: av,
        ..h
    };
    let new = i.dek(t, c, h.epoch, ev, h.author, av)?;
    let record = envelope::seal_record(&new.cipher, &nh, k, &pt)?;
    // An imported message's external reference (`meta 0x20 t c id`, `src/import/xref.rs`) is
    // sealed under the message's DEK: sealed again with the current revision, in its batch.
    let mut xref = None;
    if k.len() == 24 {
        let mut place = Vec::with_capacity(25);
        place.push(codec::meta::EXTERNAL_REF);
        place.extend_from_slice(k);
        if let Some(rv) = i.get(cf::META, &place)? {
            let what = || format!("external reference {}", hex::encode(&place));
            let rpt = envelope::open_meta(&old.cipher, &rv, MetaKind::ExternalRef, &place, what)?;
            let sealed = envelope::seal_meta(
                &new.cipher,
                MetaKind::ExternalRef,
                new.version,
                &place,
                &rpt,
            )?;
            xref = Some((place, sealed));
        }
    }
    Ok(Outcome::Resealed(record, xref))
}
