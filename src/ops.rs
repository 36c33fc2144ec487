//! Operator figures and scoped maintenance: [`Vault::key_stats`] (keys per state, and per
//! tenant the records sealed under the current key versions) and [`Vault::compact_scope`]
//! (manual compaction of one tenant's or conversation's key ranges).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use crate::codec::{self, be32, be64, prefix_successor, Iid, KeyBuf};
use crate::envelope::RecordHeader;
use crate::error::{Error, Result};
use crate::model::{ConversationId, TenantId};
use crate::vault::{cf, Vault};

/// Wrapped keys, shred tombstones and pending work, counted from the stored records
/// (what [`Vault::key_stats`] returns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Live wrapped tenant KEKs (`keys` CF `0x01`), every version.
    pub tenant_keks: u64,
    /// Live wrapped conversation keys (`0x02`), every version.
    pub conversation_keys: u64,
    /// Live wrapped epoch (day) keys (`0x03`), every version.
    pub epoch_keys: u64,
    /// Live wrapped user keys (`0x04`), every version.
    pub user_keys: u64,
    /// Stored tenant directory keys (`0x05`), every version.
    pub directory_keys: u64,
    /// Shred tombstones (`meta 0x10`): scopes whose keys were destroyed.
    pub shred_tombstones: u64,
    /// Key paths waiting for a re-versioning pass (`meta 0x11`; 0 once every shred's pass ran).
    pub key_paths_pending_reversioning: u64,
    /// Erasures queued under legal holds (`meta 0x13`).
    pub queued_erasures: u64,
    /// Data-key rotations ([`Vault::rotate_data_keys`]) whose old key versions are not retired
    /// yet (`meta 0x1A`): re-seal and retire them ([`Vault::reseal`]).
    pub data_key_rotations_pending: u64,
    /// Root key version the key provider wraps new tenant KEKs under.
    pub root_key_version: u32,
    /// Tenant KEKs wrapped under an older root key version than the current one.
    pub tenant_keks_under_old_root: u64,
    /// Per tenant (internal id order), every tenant that has a record or a tenant KEK.
    pub tenants: BTreeMap<TenantId, TenantKeyStats>,
}

/// One tenant's records by the key versions that sealed them ([`KeyStats::tenants`]).
///
/// A message record (current revision or older revision) is sealed under a DEK derived from
/// its epoch key version and, under the default erasure policy, its author's user key version;
/// both are in its clear header. It is *current* when both are the highest stored version of
/// that key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantKeyStats {
    /// Message and revision records stored.
    pub records: u64,
    /// Records sealed under the current epoch key version and author key version.
    pub current: u64,
    /// Records sealed under an older version of their epoch or author key (re-sealing would
    /// move them to the current one).
    pub older_versions: u64,
    /// Records whose epoch or author key version is destroyed (shredded or expired, awaiting
    /// purge; or expired records whose old key version a data-key rotation retired).
    pub key_destroyed: u64,
}

impl TenantKeyStats {
    /// `current / (records - key_destroyed)`, 1.0 when there is none.
    pub fn current_fraction(&self) -> f64 {
        let live = self.current + self.older_versions;
        if live == 0 {
            1.0
        } else {
            self.current as f64 / live as f64
        }
    }
}

impl Vault {
    /// Counts wrapped keys per kind, shred tombstones, key paths pending re-versioning and
    /// queued erasures, and per tenant how many message records are sealed under the current
    /// versions of their keys. Reads every key and every record header (not the ciphertext):
    /// linear in the number of records, no decryption. Reads only (works on a secondary).
    ///
    /// Errors: [`Error::Storage`], [`Error::Corrupt`] for a malformed record header.
    pub fn key_stats(&self) -> Result<KeyStats> {
        let i = &self.inner;
        let mut s = KeyStats {
            root_key_version: i.provider.current_version(),
            ..KeyStats::default()
        };
        // Highest stored version of each epoch key and user key.
        let mut epochs: HashMap<(Iid, Iid, u32), u32> = HashMap::new();
        let mut users: HashMap<(Iid, Iid), u32> = HashMap::new();
        // Every stored version (old versions stay until retired after a data-key rotation).
        let mut stored: HashSet<(u8, Iid, Iid, u32, u32)> = HashSet::new();
        let mut it = i.db.raw_iterator_cf(&i.cf(cf::KEYS)?);
        it.seek_to_first();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let id8 = |at: usize| k.get(at..at + 8).and_then(be64);
            let v4 = |at: usize| k.get(at..at + 4).and_then(be32);
            match k.first().copied() {
                Some(codec::keys::TENANT_KEK) => {
                    s.tenant_keks += 1;
                    if let Some(t) = id8(1) {
                        s.tenants.entry(TenantId(t)).or_default();
                    }
                    if v.get(6..10).and_then(be32).unwrap_or(0) < s.root_key_version {
                        s.tenant_keks_under_old_root += 1;
                    }
                }
                Some(codec::keys::CONVERSATION) => s.conversation_keys += 1,
                Some(codec::keys::EPOCH) => {
                    s.epoch_keys += 1;
                    if let (Some(t), Some(c), Some(e), Some(ver)) = (id8(1), id8(9), v4(17), v4(21))
                    {
                        let m = epochs.entry((t, c, e)).or_default();
                        *m = (*m).max(ver);
                        stored.insert((codec::keys::EPOCH, t, c, e, ver));
                    }
                }
                Some(codec::keys::USER) => {
                    s.user_keys += 1;
                    if let (Some(t), Some(u), Some(ver)) = (id8(1), id8(9), v4(17)) {
                        let m = users.entry((t, u)).or_default();
                        *m = (*m).max(ver);
                        stored.insert((codec::keys::USER, t, u, 0, ver));
                    }
                }
                Some(codec::keys::INDEX) => s.directory_keys += 1,
                _ => {}
            }
            it.next();
        }
        it.status().map_err(Error::storage("counting keys"))?;
        drop(it);
        for (tag, n) in [
            (codec::meta::SHRED, &mut s.shred_tombstones),
            (
                codec::meta::REKEY_PENDING,
                &mut s.key_paths_pending_reversioning,
            ),
            (codec::meta::ERASURE_QUEUE, &mut s.queued_erasures),
            (
                codec::meta::DATA_ROTATION,
                &mut s.data_key_rotations_pending,
            ),
        ] {
            let mut it = i.prefix_iter(cf::META, &[tag])?;
            while it.valid() {
                *n += 1;
                it.next();
            }
            it.status().map_err(Error::storage("counting metadata"))?;
        }
        for name in [cf::MESSAGES, cf::REVISIONS] {
            let mut it = i.db.raw_iterator_cf(&i.cf(name)?);
            it.seek_to_first();
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                let (Some(t), Some(c)) = (k.get(0..8).and_then(be64), k.get(8..16).and_then(be64))
                else {
                    return Err(Error::corrupt(
                        format!("{name} record {}", hex::encode(k)),
                        "bad key length",
                    ));
                };
                let h = RecordHeader::decode(v, || format!("{name} record {t}/{c}"))?;
                let ts = s.tenants.entry(TenantId(t)).or_default();
                ts.records += 1;
                let epoch = epochs.get(&(t, c, h.epoch)).copied();
                let author = if h.author == 0 {
                    Some(None)
                } else {
                    users.get(&(t, h.author)).map(|v| Some(*v))
                };
                let exists = stored.contains(&(codec::keys::EPOCH, t, c, h.epoch, h.epoch_version))
                    && (h.author == 0
                        || stored.contains(&(codec::keys::USER, t, h.author, 0, h.author_version)));
                match (epoch, author) {
                    (Some(ev), Some(av)) if exists => {
                        if h.epoch_version == ev && av.is_none_or(|av| h.author_version == av) {
                            ts.current += 1;
                        } else {
                            ts.older_versions += 1;
                        }
                    }
                    _ => ts.key_destroyed += 1,
                }
                it.next();
            }
            it.status()
                .map_err(Error::storage("reading record headers"))?;
        }
        Ok(s)
    }

    /// Manual compaction of one tenant's key ranges in every column family, or with
    /// `conversation` of one conversation's, down to the bottommost level (RocksDB
    /// `CompactRange` per range with `BottommostLevelCompaction::Force`), after a flush, so
    /// that deleted, expired and shredded data in that scope leaves the SST files now. Ranges:
    /// `messages`, `revisions`, `time_index` by the `t` (or `t c`) key prefix; `keys` by every
    /// key kind's `kind t` (or `0x02/0x03 t c`) prefix; `meta` by every record kind keyed by
    /// tenant (or conversation). Returns how many ranges were compacted. Runs while the vault
    /// serves (RocksDB compacts beside writes).
    ///
    /// Errors: [`Error::ReadOnlySecondary`] on a secondary; [`Error::Storage`] from the flush.
    pub fn compact_scope(
        &self,
        tenant: TenantId,
        conversation: Option<ConversationId>,
    ) -> Result<CompactReport> {
        let i = &self.inner;
        i.writable("compacting")?;
        let started = Instant::now();
        self.flush()?;
        let scope = |tag: Option<u8>| -> Vec<u8> {
            let b = match tag {
                Some(tag) => KeyBuf::tag(tag).u64(tenant.0),
                None => KeyBuf::new().u64(tenant.0),
            };
            match conversation {
                Some(c) => b.u64(c.0).into_vec(),
                None => b.into_vec(),
            }
        };
        let mut ranges: Vec<(&'static str, Vec<u8>)> = Vec::new();
        for name in [cf::MESSAGES, cf::REVISIONS, cf::TIME_INDEX] {
            ranges.push((name, scope(None)));
        }
        let key_kinds: &[u8] = match conversation {
            Some(_) => &[codec::keys::CONVERSATION, codec::keys::EPOCH],
            None => &[
                codec::keys::TENANT_KEK,
                codec::keys::CONVERSATION,
                codec::keys::EPOCH,
                codec::keys::USER,
                codec::keys::INDEX,
            ],
        };
        for k in key_kinds {
            ranges.push((cf::KEYS, scope(Some(*k))));
        }
        use codec::meta as m;
        let meta_kinds: &[u8] = match conversation {
            Some(_) => &[
                m::CONVERSATION,
                m::MEMBER,
                m::NEXT_MSG_ID,
                m::CONV_POLICY,
                m::WATERMARK,
                m::REKEY_PENDING,
                m::DATA_ROTATION,
            ],
            None => &[
                m::TENANT,
                m::CONVERSATION,
                m::MEMBER,
                m::USER_CONV,
                m::USER,
                m::DIR,
                m::NEXT_MSG_ID,
                m::TENANT_POLICY,
                m::CONV_POLICY,
                m::POLICY_LOG,
                m::HOLD,
                m::WATERMARK,
                m::SHRED,
                m::REKEY_PENDING,
                m::ERASURE_QUEUE,
                m::DATA_ROTATION,
            ],
        };
        for k in meta_kinds {
            ranges.push((cf::META, scope(Some(*k))));
        }
        let mut co = rocksdb::CompactOptions::default();
        co.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        co.set_exclusive_manual_compaction(false);
        for (name, start) in &ranges {
            let end = prefix_successor(start);
            i.db.compact_range_cf_opt(&i.cf(name)?, Some(start.as_slice()), end.as_deref(), &co);
        }
        Ok(CompactReport {
            ranges: ranges.len() as u64,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// What [`Vault::compact_scope`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Key ranges compacted (over every column family).
    pub ranges: u64,
    /// Wall time, milliseconds.
    pub elapsed_ms: u64,
}
