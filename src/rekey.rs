//! Key-path re-versioning: after keys are destroyed (a shred, or crypto-retention of expired
//! days), a copy of the data directory taken before (a checkpoint, a backup, a copied folder)
//! still holds the destroyed keys, wrapped under their parents. If those parents are still
//! live, whoever holds the old copy and the live keys unwraps the destroyed keys from the old
//! copy. So every key on the path from the root to a destroyed key gets a new version, its live
//! children are re-wrapped under the new version (their values do not change), whatever was
//! sealed under the old version is sealed again, and the old versions are retired:
//!
//! ```text
//!  root key vN ──► tenant KEK v1 ──► conversation key v1 ──► epoch key (destroyed)
//!        │                 │                    └──────────► epoch key (live)
//!        ▼                 ▼
//!  root key vN+1 ─► tenant KEK v2 ─► conversation key v2 ──► epoch key (live, same value,
//!  (vN retired)    (v1 deleted)      (v1 deleted)             re-wrapped)
//! ```
//! The root key of every tenant's path changes, so every tenant KEK is re-wrapped under the new
//! root key version (same value for tenants with nothing destroyed), and the vault key in the
//! key-check file too. Records are sealed under DEKs derived from epoch and user keys, whose
//! values do not change: no record is re-sealed, so the pass costs one unwrap and one wrap per
//! key on the affected paths plus the metadata sealed under them, never work per message.
//!
//! Destructions mark their path (`meta` prefix `0x11`, in the destruction's own batch); a
//! shred runs the pass at once, after its batch is durable ([`crate::VaultOptions`]
//! `rekey_after_shred`, default on), and [`Vault::purge`] runs one pass for every path still
//! marked (crypto-retention's destroyed days, shreds with the option off), so those share one
//! pass. A pass that did not run (a crash after the shred, a provider that cannot add
//! versions) leaves the marks for the next open, purge or rekey.
//!
//! Crash safety, step by step (DESIGN.md §7):
//! 1. the key provider adds root version N+1 (durable; N is still there);
//! 2. the key-check file is re-written with the vault key under N+1 (atomic rename);
//! 3. one fsynced RocksDB batch re-wraps and re-seals everything, deletes the old versions,
//!    clears the marks and records the root versions to retire (`0x14`);
//! 4. the provider retires them, then the `0x14` record is deleted.
//!
//! A crash before 3 leaves every key under root N, which the provider still holds (the marks
//! stay, and the next purge starts again); after 3, every key is under N+1, and the next pass
//! (or purge) finishes step 4.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use rocksdb::WriteBatch;

use crate::codec::{self, be64, Iid, KeyBuf};
use crate::envelope::{self, MetaKind, WrapHeader};
use crate::error::{Error, Result};
use crate::keycheck;
use crate::keys::{Cipher, SecretKey};
use crate::vault::{cf, derived_dir_key, Inner, Vault};

/// What one key re-versioning pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// Root key version in use after the pass.
    pub root_version: u32,
    /// Root key versions retired by the provider.
    pub retired_root_versions: Vec<u32>,
    /// Tenant KEKs re-wrapped under the new root key version (value unchanged).
    pub tenant_keks_rewrapped: u64,
    /// Tenant KEKs given a new version (a key under them was destroyed).
    pub tenant_keks_reversioned: u64,
    /// Conversation keys given a new version (an epoch key under them was destroyed).
    pub conversation_keys_reversioned: u64,
    /// Live child keys re-wrapped under a new parent version (value unchanged).
    pub keys_rewrapped: u64,
    /// Metadata records sealed again under a new key version.
    pub meta_resealed: u64,
    /// Wall time of the pass, milliseconds.
    pub elapsed_ms: u64,
}

/// Bytes of each replaced value kept for the purge's byte scan (meta `0x1B`): its AEAD tag.
const NEEDLE_LEN: usize = 16;

/// A pass's report.
pub(crate) struct RekeyOutcome {
    pub report: RekeyReport,
}

impl Vault {
    /// Runs a key re-versioning pass now if any key path is marked (see the module docs);
    /// `Ok(None)` if none is. [`Vault::purge`] calls this; call it directly only to re-version
    /// without compacting. Safe while the vault serves: key creation, membership changes and
    /// policy changes wait for the pass (a few milliseconds per thousand tenants).
    ///
    /// Errors: [`Error::KeyProvider`] with [`crate::ProviderError::CannotRotate`] when the
    /// root key provider cannot add versions (a root key from `CHATVAULT_ROOT_KEY`): nothing is
    /// changed and the marks stay for a later pass; [`Error::Storage`], [`Error::Io`].
    pub fn rekey(&self) -> Result<Option<RekeyReport>> {
        let _g = self.inner.policy_lock.lock();
        Ok(self.rekey_locked(false)?.map(|o| o.report))
    }

    /// How many key paths are waiting for a re-versioning pass. Non-zero means that a
    /// checkpoint, backup or copy of the data directory taken before a destruction still opens
    /// what it destroyed, with today's key file; [`Vault::rekey`] (or [`Vault::purge`]) closes
    /// that. Zero after every shred whose pass ran ([`crate::VaultOptions`]
    /// `rekey_after_shred`). Errors: [`Error::Storage`].
    pub fn key_paths_pending(&self) -> Result<u64> {
        Ok(self.rekey_pending()?.len() as u64)
    }

    /// After a destruction whose batch is durable (callers hold `policy_lock`): runs the
    /// re-versioning pass now, if the vault's options ask for it, and returns its report. A
    /// failure is logged, never returned (the destruction stands); the marks stay for the next
    /// open, purge or rekey.
    pub(crate) fn rekey_after_destruction(&self) -> Option<RekeyReport> {
        let i = &self.inner;
        if !i.opts.rekey_after_shred || i.writable("re-versioning keys").is_err() {
            return None;
        }
        match self.rekey_locked(false) {
            Ok(Some(o)) => {
                tracing::debug!(
                    root_version = o.report.root_version,
                    elapsed_ms = o.report.elapsed_ms,
                    "key paths re-versioned after a destruction"
                );
                Some(o.report)
            }
            Ok(None) => None,
            Err(Error::KeyProvider(crate::keys::ProviderError::CannotRotate(m))) => {
                tracing::warn!(
                    "key paths not re-versioned (copies taken before the shred still open it): {m}"
                );
                None
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "key paths not re-versioned; the next open, purge or `rekey` retries"
                );
                None
            }
        }
    }

    /// What re-versioning passes replaced and no purge has verified gone yet: (marker key,
    /// 16-byte needles).
    pub(crate) fn replaced_markers(&self) -> Result<Vec<(Vec<u8>, Vec<Vec<u8>>)>> {
        let mut out = Vec::new();
        for (k, v) in scan(&self.inner, cf::META, &[codec::meta::REPLACED])? {
            let needles = v
                .chunks_exact(NEEDLE_LEN)
                .map(|c| c.iter().map(|b| b ^ 0xFF).collect())
                .collect();
            out.push((k, needles));
        }
        Ok(out)
    }

    /// Key paths waiting for a re-versioning pass: `(tenant, conversation or 0)`.
    pub(crate) fn rekey_pending(&self) -> Result<Vec<(Iid, Iid)>> {
        let i = &self.inner;
        let mut out = Vec::new();
        for (k, _) in scan(i, cf::META, &[codec::meta::REKEY_PENDING])? {
            if let (Some(t), Some(c)) = (k.get(1..9).and_then(be64), k.get(9..17).and_then(be64)) {
                out.push((t, c));
            }
        }
        Ok(out)
    }

    /// Rotates the root key: the key provider adds a version, and the vault key and every
    /// tenant KEK are wrapped again under it (their values do not change), in one fsynced batch
    /// after the new version is durable in the provider, so that a crash at any point leaves a
    /// vault that opens with the provider's versions. The old version stays in the provider
    /// until [`Vault::retire_root_key`]; if key paths are waiting for re-versioning (after a
    /// shred), they are re-versioned too and the old versions are retired at once, as a purge
    /// would.
    ///
    /// Errors: [`Error::KeyProvider`] ([`crate::ProviderError::CannotRotate`] for a root key
    /// from `CHATVAULT_ROOT_KEY`); [`Error::Storage`], [`Error::Io`].
    pub fn rotate_root_key(&self) -> Result<RekeyReport> {
        let _g = self.inner.policy_lock.lock();
        let o = self.rekey_locked(true)?;
        o.map(|o| o.report)
            .ok_or_else(|| Error::InvalidInput("root key rotation did not run".into()))
    }

    /// Retires root key `version` in the key provider, for good, after checking that nothing in
    /// the vault still uses it: not the current version, no tenant KEK wrapped under it (the
    /// key-check file is first wrapped again under the current version).
    ///
    /// Errors: [`Error::InvalidInput`] naming what still uses it (run
    /// [`Vault::rotate_root_key`] first); [`Error::KeyProvider`].
    pub fn retire_root_key(&self, version: u32) -> Result<()> {
        let i = &self.inner;
        i.writable("retiring a root key version")?;
        let _g = i.policy_lock.lock();
        let _c = i.create_lock.lock();
        if version == i.provider.current_version() {
            return Err(Error::InvalidInput(format!(
                "root key version {version} is the current version; rotate the root key first \
                 (`chatvault key rotate-root`)"
            )));
        }
        let held = i.provider.versions();
        if !held.contains(&version) {
            return Err(Error::InvalidInput(format!(
                "root key version {version} is not in the key provider (it holds {}); nothing \
                 to retire",
                held.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        keycheck::rewrap(&i.path, i.provider.as_ref(), &i.vault_key)?;
        let mut using = 0u64;
        for (k, v) in scan(i, cf::KEYS, &[codec::keys::TENANT_KEK])? {
            let h = WrapHeader::decode(&v, || format!("wrapped key {}", hex::encode(&k)))?;
            if h.parent_version == version {
                using += 1;
            }
        }
        if using > 0 {
            return Err(Error::InvalidInput(format!(
                "root key version {version} still wraps {using} tenant KEK(s); rotate the root \
                 key first (`chatvault key rotate-root`), then retire it"
            )));
        }
        i.provider.retire_version(version)?;
        tracing::info!(version, "root key version retired");
        Ok(())
    }

    /// The pass. Callers hold `policy_lock`. `force_root`: rotate the root key even when no
    /// key path is marked.
    pub(crate) fn rekey_locked(&self, force_root: bool) -> Result<Option<RekeyOutcome>> {
        let i = &self.inner;
        i.writable("re-versioning keys")?;
        let started = Instant::now();
        let dirty = self.rekey_pending()?;
        if dirty.is_empty() && !force_root {
            let retired = self.finish_retire()?;
            if retired.is_empty() {
                return Ok(None);
            }
            return Ok(Some(RekeyOutcome {
                report: RekeyReport {
                    root_version: i.provider.current_version(),
                    retired_root_versions: retired,
                    tenant_keks_rewrapped: 0,
                    tenant_keks_reversioned: 0,
                    conversation_keys_reversioned: 0,
                    keys_rewrapped: 0,
                    meta_resealed: 0,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                },
            }));
        }
        let mut dirty_convs: BTreeMap<Iid, BTreeSet<Iid>> = BTreeMap::new();
        for (t, c) in &dirty {
            let e = dirty_convs.entry(*t).or_default();
            if *c != 0 {
                e.insert(*c);
            }
        }
        // No key is created, and nothing sealed under a tenant or conversation key is written,
        // while the pass runs.
        let _c = i.create_lock.lock();
        let new_root = i.provider.add_version()?;
        keycheck::rewrap(&i.path, i.provider.as_ref(), &i.vault_key)?;

        let mut p = Pass::new(i, new_root);
        // Every tenant KEK, grouped by tenant.
        let mut keks: BTreeMap<Iid, Vec<Entry>> = BTreeMap::new();
        for (k, v) in scan(i, cf::KEYS, &[codec::keys::TENANT_KEK])? {
            let t = k
                .get(1..9)
                .and_then(be64)
                .ok_or_else(|| Error::corrupt("tenant KEK key", "bad length"))?;
            keks.entry(t).or_default().push((k, v));
        }
        for (t, entries) in keks {
            match dirty_convs.get(&t) {
                Some(convs) => {
                    p.reversion_tenant(t, &entries, convs)?;
                }
                None => p.rewrap_tenant(&entries)?,
            }
        }
        let meta = i.cf(cf::META)?;
        if !dirty.is_empty() {
            // Old copies are protected only once the old root versions are gone.
            let retire: Vec<u32> = i
                .provider
                .versions()
                .into_iter()
                .filter(|v| *v < new_root)
                .collect();
            p.batch.put_cf(
                &meta,
                [codec::meta::RETIRE_PENDING],
                postcard::to_stdvec(&retire)
                    .map_err(|e| Error::InvalidInput(format!("cannot encode versions: {e}")))?,
            );
        }
        p.batch.delete_range_cf(
            &meta,
            [codec::meta::REKEY_PENDING],
            [codec::meta::REKEY_PENDING + 1],
        );
        // What this pass replaces stays in the files until compaction: the purge verifies
        // that it is gone (the marker survives restarts, unlike this pass's report).
        if !p.replaced.is_empty() {
            let mut needles = Vec::with_capacity(p.replaced.len() * NEEDLE_LEN);
            for v in &p.replaced {
                let tail = &v[v.len().saturating_sub(NEEDLE_LEN)..];
                needles.extend(tail.iter().map(|b| b ^ 0xFF));
            }
            p.batch.put_cf(
                &meta,
                KeyBuf::tag(codec::meta::REPLACED).u32(new_root).into_vec(),
                needles,
            );
        }
        let Pass {
            batch, mut report, ..
        } = p;
        {
            let _w = i.rekey_lock.write();
            i.write_sync(batch, "re-versioning key paths")?;
            i.rekey_generation.fetch_add(1, Ordering::AcqRel);
            i.cache.remove_where(|_| true);
            i.tenants.write().clear();
        }
        report.retired_root_versions = self.finish_retire()?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            root_version = report.root_version,
            tenants_reversioned = report.tenant_keks_reversioned,
            conversations_reversioned = report.conversation_keys_reversioned,
            elapsed_ms = report.elapsed_ms,
            "key paths re-versioned"
        );
        Ok(Some(RekeyOutcome { report }))
    }

    /// Step 4: retires the root versions recorded by a pass, then forgets the record.
    fn finish_retire(&self) -> Result<Vec<u32>> {
        let i = &self.inner;
        let Some(v) = i.get(cf::META, &[codec::meta::RETIRE_PENDING])? else {
            return Ok(Vec::new());
        };
        let versions: Vec<u32> = postcard::from_bytes(&v)
            .map_err(|e| Error::corrupt("root versions to retire", e.to_string()))?;
        let current = i.provider.current_version();
        let mut done = Vec::new();
        for v in versions {
            if v < current {
                i.provider.retire_version(v)?;
                done.push(v);
            }
        }
        let mut b = WriteBatch::default();
        b.delete_cf(&i.cf(cf::META)?, [codec::meta::RETIRE_PENDING]);
        i.write_sync(b, "retiring root key versions")?;
        Ok(done)
    }
}

/// One pass's batch and counts. Also used by the rotations of `rotate.rs` (one tenant or one
/// conversation at a time, with the root key version unchanged).
pub(crate) struct Pass<'a> {
    pub(crate) i: &'a Inner,
    pub(crate) batch: WriteBatch,
    /// Root key version new tenant KEK versions are wrapped under.
    pub(crate) new_root: u32,
    pub(crate) report: RekeyReport,
    pub(crate) replaced: Vec<Vec<u8>>,
    /// New epoch key versions (fresh random values) written by
    /// [`Pass::reversion_conversation`] with `new_epoch_versions`.
    pub(crate) epoch_keys_rotated: u64,
}

impl<'a> Pass<'a> {
    pub(crate) fn new(i: &'a Inner, new_root: u32) -> Self {
        Pass {
            i,
            batch: WriteBatch::default(),
            new_root,
            report: RekeyReport {
                root_version: new_root,
                retired_root_versions: Vec::new(),
                tenant_keks_rewrapped: 0,
                tenant_keks_reversioned: 0,
                conversation_keys_reversioned: 0,
                keys_rewrapped: 0,
                meta_resealed: 0,
                elapsed_ms: 0,
            },
            replaced: Vec::new(),
            epoch_keys_rotated: 0,
        }
    }

    /// A tenant with nothing destroyed under it: its KEK versions, re-wrapped under the new
    /// root key version.
    fn rewrap_tenant(&mut self, entries: &[Entry]) -> Result<()> {
        let kcf = self.i.cf(cf::KEYS)?;
        for (place, value) in entries {
            let (h, key) = self.unwrap_kek(place, value)?;
            let nh = WrapHeader {
                parent_version: self.new_root,
                ..h
            };
            let blob = self.i.provider.wrap(&key, &nh.aad(place))?;
            self.batch.put_cf(&kcf, place, nh.with_blob(&blob));
            self.replaced.push(value.clone());
            self.report.tenant_keks_rewrapped += 1;
        }
        Ok(())
    }

    pub(crate) fn unwrap_kek(&self, place: &[u8], value: &[u8]) -> Result<(WrapHeader, SecretKey)> {
        let what = || format!("wrapped key {}", hex::encode(place));
        let h = WrapHeader::decode(value, what)?;
        let key = self
            .i
            .provider
            .unwrap(value.get(10..).unwrap_or_default(), &h.aad(place))
            .map_err(|e| match e {
                crate::keys::ProviderError::Authentication => {
                    Error::Authentication { what: what() }
                }
                e => e.into(),
            })?;
        Ok((h, key))
    }

    /// A tenant with a destroyed key under it (or a tenant KEK rotation): a new KEK version with
    /// a new random value; its live children re-wrapped, its metadata sealed again, the
    /// conversations in `convs` re-versioned, old versions deleted. Returns the new version.
    pub(crate) fn reversion_tenant(
        &mut self,
        t: Iid,
        entries: &[Entry],
        convs: &BTreeSet<Iid>,
    ) -> Result<u32> {
        let i = self.i;
        let kcf = i.cf(cf::KEYS)?;
        let mcf = i.cf(cf::META)?;
        let mut old: BTreeMap<u32, SecretKey> = BTreeMap::new();
        for (place, value) in entries {
            let (h, key) = self.unwrap_kek(place, value)?;
            old.insert(h.version, key);
        }
        let Some((&max_v, current)) = old.iter().next_back() else {
            return Ok(0);
        };
        let nv = max_v + 1;
        let new_kek = SecretKey::generate()?;
        let new_c = new_kek.cipher();
        let place = KeyBuf::tag(codec::keys::TENANT_KEK)
            .u64(t)
            .u32(nv)
            .into_vec();
        let h = WrapHeader {
            kind: codec::keys::TENANT_KEK,
            version: nv,
            parent_version: self.new_root,
        };
        let blob = i.provider.wrap(&new_kek, &h.aad(&place))?;
        self.batch.put_cf(&kcf, &place, h.with_blob(&blob));

        // The directory key keeps its value: stored under the new KEK from now on.
        let index_prefix = KeyBuf::tag(codec::keys::INDEX).u64(t).into_vec();
        if scan(i, cf::KEYS, &index_prefix)?.is_empty() {
            let dir = derived_dir_key(t, current);
            let place = KeyBuf::tag(codec::keys::INDEX).u64(t).u32(1).into_vec();
            let h = WrapHeader {
                kind: codec::keys::INDEX,
                version: 1,
                parent_version: nv,
            };
            self.batch
                .put_cf(&kcf, &place, envelope::wrap_key(&new_c, &h, &place, &dir)?);
        }

        // Live children: conversation keys (those of re-versioned conversations below),
        // user keys, the directory key.
        for kind in [
            codec::keys::CONVERSATION,
            codec::keys::USER,
            codec::keys::INDEX,
        ] {
            let prefix = KeyBuf::tag(kind).u64(t).into_vec();
            for (place, value) in scan(i, cf::KEYS, &prefix)? {
                if kind == codec::keys::CONVERSATION
                    && place
                        .get(9..17)
                        .and_then(be64)
                        .is_some_and(|c| convs.contains(&c))
                {
                    continue;
                }
                self.rewrap_child(&place, &value, &old, &new_c, nv)?;
            }
        }
        // Metadata sealed under the tenant KEK.
        for tag in [
            codec::meta::TENANT,
            codec::meta::TENANT_POLICY,
            codec::meta::CONV_POLICY,
            codec::meta::POLICY_LOG,
            codec::meta::HOLD,
            codec::meta::EXTENSION,
            codec::meta::ORG_CONSENT,
        ] {
            let prefix = KeyBuf::tag(tag).u64(t).into_vec();
            for (place, value) in scan(i, cf::META, &prefix)? {
                let sealed = reseal(&place, &value, &old, &new_c, nv)?;
                self.batch.put_cf(&mcf, &place, sealed);
                self.replaced.push(value);
                self.report.meta_resealed += 1;
            }
        }
        for &c in convs {
            self.reversion_conversation(t, c, &old, &new_c, nv, false)?;
        }
        for (place, value) in entries {
            self.batch.delete_cf(&kcf, place);
            self.replaced.push(value.clone());
        }
        self.report.tenant_keks_reversioned += 1;
        Ok(nv)
    }

    /// A new version (new random value) of conversation `c`'s key, wrapped under `kek_new`
    /// (version `kek_nv`); its epoch keys (every version) re-wrapped under it, its record and
    /// memberships sealed again, its old versions deleted. With `new_epoch_versions`, every
    /// live epoch key also gets a new version with a new random value (data-key rotation): new
    /// writes use it, and the older versions stay for the records sealed under them.
    pub(crate) fn reversion_conversation(
        &mut self,
        t: Iid,
        c: Iid,
        kek_old: &BTreeMap<u32, SecretKey>,
        kek_new: &Cipher,
        kek_nv: u32,
        new_epoch_versions: bool,
    ) -> Result<()> {
        let i = self.i;
        let kcf = i.cf(cf::KEYS)?;
        let mcf = i.cf(cf::META)?;
        let prefix = KeyBuf::tag(codec::keys::CONVERSATION)
            .u64(t)
            .u64(c)
            .into_vec();
        let entries = scan(i, cf::KEYS, &prefix)?;
        if entries.is_empty() {
            // The whole conversation was shredded: its key is gone already.
            return Ok(());
        }
        let mut old: BTreeMap<u32, SecretKey> = BTreeMap::new();
        for (place, value) in &entries {
            let (h, key) = unwrap_child(place, value, kek_old)?;
            old.insert(h.version, key);
        }
        let nv = old.keys().next_back().copied().unwrap_or(0) + 1;
        let new_key = SecretKey::generate()?;
        let new_c = new_key.cipher();
        let place = KeyBuf::tag(codec::keys::CONVERSATION)
            .u64(t)
            .u64(c)
            .u32(nv)
            .into_vec();
        let h = WrapHeader {
            kind: codec::keys::CONVERSATION,
            version: nv,
            parent_version: kek_nv,
        };
        self.batch.put_cf(
            &kcf,
            &place,
            envelope::wrap_key(kek_new, &h, &place, &new_key)?,
        );
        let epochs = KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c).into_vec();
        // Highest stored version of each epoch key.
        let mut highest: BTreeMap<u32, u32> = BTreeMap::new();
        for (place, value) in scan(i, cf::KEYS, &epochs)? {
            self.rewrap_child(&place, &value, &old, &new_c, nv)?;
            if let (Some(e), Some(v)) = (
                place.get(17..21).and_then(codec::be32),
                place.get(21..25).and_then(codec::be32),
            ) {
                let h = highest.entry(e).or_default();
                *h = (*h).max(v);
            }
        }
        if new_epoch_versions {
            for (e, v) in highest {
                let ev = v + 1;
                let place = KeyBuf::tag(codec::keys::EPOCH)
                    .u64(t)
                    .u64(c)
                    .u32(e)
                    .u32(ev)
                    .into_vec();
                let h = WrapHeader {
                    kind: codec::keys::EPOCH,
                    version: ev,
                    parent_version: nv,
                };
                let key = SecretKey::generate()?;
                self.batch
                    .put_cf(&kcf, &place, envelope::wrap_key(&new_c, &h, &place, &key)?);
                self.epoch_keys_rotated += 1;
            }
        }
        // The conversation's own external reference (`0x20 t c 0`) is sealed under its key;
        // those of its messages are under the messages' DEKs, which do not change.
        for prefix in [
            KeyBuf::tag(codec::meta::CONVERSATION).u64(t).u64(c),
            KeyBuf::tag(codec::meta::MEMBER).u64(t).u64(c),
            KeyBuf::tag(codec::meta::EXTERNAL_REF).u64(t).u64(c).u64(0),
        ] {
            let prefix = prefix.into_vec();
            for (place, value) in scan(i, cf::META, &prefix)? {
                let sealed = reseal(&place, &value, &old, &new_c, nv)?;
                self.batch.put_cf(&mcf, &place, sealed);
                self.replaced.push(value);
                self.report.meta_resealed += 1;
            }
        }
        for (place, value) in entries {
            self.batch.delete_cf(&kcf, &place);
            self.replaced.push(value);
        }
        self.report.conversation_keys_reversioned += 1;
        Ok(())
    }

    fn rewrap_child(
        &mut self,
        place: &[u8],
        value: &[u8],
        old: &BTreeMap<u32, SecretKey>,
        new_parent: &Cipher,
        new_parent_version: u32,
    ) -> Result<()> {
        let (h, key) = unwrap_child(place, value, old)?;
        let nh = WrapHeader {
            parent_version: new_parent_version,
            ..h
        };
        let kcf = self.i.cf(cf::KEYS)?;
        self.batch.put_cf(
            &kcf,
            place,
            envelope::wrap_key(new_parent, &nh, place, &key)?,
        );
        self.replaced.push(value.to_vec());
        self.report.keys_rewrapped += 1;
        Ok(())
    }
}

pub(crate) fn unwrap_child(
    place: &[u8],
    value: &[u8],
    parents: &BTreeMap<u32, SecretKey>,
) -> Result<(WrapHeader, SecretKey)> {
    let what = || format!("wrapped key {}", hex::encode(place));
    let h = WrapHeader::decode(value, what)?;
    let parent = parents.get(&h.parent_version).ok_or_else(|| {
        Error::corrupt(
            what(),
            format!(
                "wrapped under parent version {}, which does not exist",
                h.parent_version
            ),
        )
    })?;
    envelope::unwrap_key(&parent.cipher(), value, place, what)
}

/// Opens sealed metadata under whichever old version sealed it and seals it under the new one.
pub(crate) fn reseal(
    place: &[u8],
    value: &[u8],
    old: &BTreeMap<u32, SecretKey>,
    new: &Cipher,
    nv: u32,
) -> Result<Vec<u8>> {
    let what = || format!("metadata record {}", hex::encode(place));
    let kind = value
        .get(1)
        .and_then(|b| MetaKind::from_u8(*b))
        .ok_or_else(|| Error::corrupt(what(), "unknown metadata kind"))?;
    let kv = envelope::meta_key_version(value, kind, what)?;
    let key = old.get(&kv).ok_or_else(|| {
        Error::corrupt(
            what(),
            format!("sealed under key version {kv}, which does not exist"),
        )
    })?;
    let pt = envelope::open_meta(&key.cipher(), value, kind, place, what)?;
    envelope::seal_meta(new, kind, nv, place, &pt)
}

/// A stored `(key, value)`.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// Every `(key, value)` of `cf` under `prefix`.
pub(crate) fn scan(i: &Inner, cf_name: &'static str, prefix: &[u8]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut it = i.prefix_iter(cf_name, prefix)?;
    while it.valid() {
        if let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push((k.to_vec(), v.to_vec()));
        }
        it.next();
    }
    it.status()
        .map_err(Error::storage("reading keys to re-version"))?;
    Ok(out)
}

/// Marks the key path of a destroyed key for the next pass (in the destruction's batch):
/// `c == 0` for a key directly under the tenant KEK (a conversation or user key), else an epoch
/// key of conversation `c`.
pub(crate) fn mark(i: &Inner, batch: &mut WriteBatch, t: Iid, c: Iid) -> Result<()> {
    batch.put_cf(
        &i.cf(cf::META)?,
        KeyBuf::tag(codec::meta::REKEY_PENDING)
            .u64(t)
            .u64(c)
            .into_vec(),
        [],
    );
    Ok(())
}
