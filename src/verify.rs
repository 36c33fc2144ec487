//! `Vault::verify`: opens and authenticates every wrapped key, every sealed metadata record and
//! every message record and revision, and checks that the time index and the records agree.
//! Reports counts per conversation (fine, expired and awaiting purge, shredded and awaiting
//! purge, failed) with ids only, never plaintext.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::codec::{self, be32, be64, Iid};
use crate::envelope::{self, MetaKind, RecordHeader};
use crate::error::{Error, Result};
use crate::model::{ConversationId, TenantId};
use crate::progress::{Progress, Ticker};
use crate::vault::{cf, KeyId, Vault};

/// Counts of one conversation's records (current revisions, deletion markers and older
/// revisions together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationCheck {
    /// Records that opened and authenticated.
    pub ok: u64,
    /// Records past their retention that the next purge removes (not decrypted).
    pub expired_awaiting_purge: u64,
    /// Records whose keys are destroyed, that the next purge removes (not decrypted).
    pub shredded_awaiting_purge: u64,
    /// Records that failed (see [`VerifyReport::failures`]).
    pub failed: u64,
}

/// One thing that failed verification. Ids only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// What failed: `message t/c/id`, `revision t/c/id/rev`, `wrapped key <hex of its RocksDB
    /// key>`, `metadata <hex>`, `time index entry t/c/id`.
    pub what: String,
    /// Why (the typed error's message: authentication, corruption, missing counterpart).
    pub error: String,
}

/// What [`Vault::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Wrapped keys that unwrapped and authenticated under their parent.
    pub keys_ok: u64,
    /// Sealed metadata records that opened.
    pub meta_ok: u64,
    /// Sealed metadata records of shredded scopes (their key is destroyed).
    pub meta_shredded: u64,
    /// Time-index entries that match their record.
    pub index_ok: u64,
    /// Per conversation, in id order.
    pub conversations: BTreeMap<(TenantId, ConversationId), ConversationCheck>,
    /// Every failure, in the order found.
    pub failures: Vec<VerifyFailure>,
}

impl VerifyReport {
    /// Whether nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl Vault {
    /// Opens and authenticates every wrapped key, sealed metadata record, message record and
    /// revision, and checks that every live record has its time-index entry and every
    /// time-index entry its record. Expired and shredded records are counted, not decrypted.
    /// Reads only; safe while the vault serves (it reads a consistent view per column family,
    /// so records written during the run may be missed, never misreported as failures).
    ///
    /// Errors: [`Error::Storage`] if RocksDB cannot be read; everything wrong with the stored
    /// data goes in the report instead.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(&|_| {})
    }

    /// [`Vault::verify`], reporting its progress to `progress`: one stage per column family
    /// (`keys`, `meta`, `messages`, `revisions`, `time_index`), with the records checked and
    /// RocksDB's estimate of the column family's keys.
    ///
    /// Errors: as [`Vault::verify`].
    pub fn verify_with_progress(&self, progress: &dyn Fn(Progress<'_>)) -> Result<VerifyReport> {
        let mut r = VerifyReport::default();
        let mut tick = Ticker::new(progress, 5);
        // RocksDB's own checks (block checksums) stop an iteration at a damaged file: that is a
        // failure of the column family, reported with the others, and the next one goes on.
        let steps: [(&str, Step); 5] = [
            (cf::KEYS, |v, r, p| v.verify_keys(r, p)),
            (cf::META, |v, r, p| v.verify_meta(r, p)),
            (cf::MESSAGES, |v, r, p| v.verify_records(r, cf::MESSAGES, p)),
            (cf::REVISIONS, |v, r, p| {
                v.verify_records(r, cf::REVISIONS, p)
            }),
            (cf::TIME_INDEX, |v, r, p| v.verify_index(r, p)),
        ];
        for (name, step) in steps {
            let i = &self.inner;
            let total =
                i.db.property_int_value_cf(&i.cf(name)?, "rocksdb.estimate-num-keys")
                    .ok()
                    .flatten();
            tick.stage(name, total);
            let res = step(self, &mut r, &mut tick);
            tick.end_stage();
            match res {
                Ok(()) => {}
                Err(e @ Error::Storage { .. }) => r.failures.push(VerifyFailure {
                    what: format!("column family {name}"),
                    error: format!(
                        "{}; what follows the damage in it was not checked",
                        failure_text(&e)
                    ),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(r)
    }

    fn verify_keys(&self, r: &mut VerifyReport, tick: &mut Ticker<'_>) -> Result<()> {
        let i = &self.inner;
        let gen = i.rekey_generation.load(Ordering::Acquire);
        let mut it = i.db.raw_iterator_cf(&i.cf(cf::KEYS)?);
        it.seek_to_first();
        while it.valid() {
            tick.tick();
            if let Some(k) = it.key() {
                let what = || format!("wrapped key {}", hex::encode(k));
                match key_id(k) {
                    None => r.failures.push(VerifyFailure {
                        what: what(),
                        error: "not a key of any known kind".into(),
                    }),
                    // A re-versioning pass that ran meanwhile may have replaced this key (or
                    // its parent): load it again after the pass; gone means replaced.
                    Some(id) => match i.rekey_retry_since(gen, || i.load_key_uncached(&id)) {
                        Ok(_) => r.keys_ok += 1,
                        // Destroyed (shredded, re-versioned) since the listing began; a
                        // tenant KEK read before a pass and unwrapped after it retired its
                        // root key version fails in the provider: gone too.
                        Err(
                            Error::NotFound { .. } | Error::Shredded { .. } | Error::KeyProvider(_),
                        ) if i.get(cf::KEYS, k)?.is_none() => {}
                        Err(e) => r.failures.push(VerifyFailure {
                            what: what(),
                            error: failure_text(&e),
                        }),
                    },
                }
            }
            it.next();
        }
        it.status().map_err(Error::storage("verifying keys"))
    }

    fn verify_meta(&self, r: &mut VerifyReport, tick: &mut Ticker<'_>) -> Result<()> {
        let i = &self.inner;
        let snap = i.retention.current();
        let mut it = i.db.raw_iterator_cf(&i.cf(cf::META)?);
        it.seek_to_first();
        while it.valid() {
            tick.tick();
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let id8 = |at: usize| k.get(at..at + 8).and_then(be64);
            // A message's external reference (importers, §10): sealed under the message's DEK,
            // opened as `Vault::external_ref` does. Its message gone (purged): not checked.
            if k[0] == codec::meta::EXTERNAL_REF && k.len() == 25 && id8(17) != Some(0) {
                if let (Some(t), Some(c), Some(id)) = (id8(1), id8(9), id8(17)) {
                    match self.external_ref(TenantId(t), ConversationId(c), id) {
                        Ok(Some(_)) => r.meta_ok += 1,
                        Ok(None) => {}
                        Err(Error::Shredded { .. } | Error::NotFound { .. }) => {
                            r.meta_shredded += 1
                        }
                        Err(e) => r.failures.push(VerifyFailure {
                            what: format!("metadata {}", hex::encode(k)),
                            error: failure_text(&e),
                        }),
                    }
                }
                it.next();
                continue;
            }
            // Which key seals it, if it is sealed.
            let key = match k[0] {
                codec::meta::TENANT
                | codec::meta::TENANT_POLICY
                | codec::meta::CONV_POLICY
                | codec::meta::POLICY_LOG
                | codec::meta::HOLD
                | codec::meta::EXTENSION
                | codec::meta::ORG_CONSENT => id8(1).map(|t| (t, None, None)),
                codec::meta::CONVERSATION | codec::meta::MEMBER => {
                    id8(1).zip(id8(9)).map(|(t, c)| (t, Some(c), None))
                }
                // A conversation's own external reference; those of messages are sealed under
                // the messages' DEKs and opened with them (`Vault::external_ref`).
                codec::meta::EXTERNAL_REF if k.len() == 25 && id8(17) == Some(0) => {
                    id8(1).zip(id8(9)).map(|(t, c)| (t, Some(c), None))
                }
                codec::meta::USER | codec::meta::RESTRICTION | codec::meta::USER_CONSENT => {
                    id8(1).zip(id8(9)).map(|(t, u)| (t, None, Some(u)))
                }
                _ => {
                    it.next();
                    continue;
                }
            };
            let what = || format!("metadata {}", hex::encode(k));
            let check = |v: &[u8]| -> Result<()> {
                let (t, c, u) = key.ok_or_else(|| Error::corrupt(what(), "bad key length"))?;
                let kind = v
                    .get(1)
                    .and_then(|b| MetaKind::from_u8(*b))
                    .ok_or_else(|| Error::corrupt(what(), "unknown metadata kind"))?;
                let kv = envelope::meta_key_version(v, kind, what)?;
                let shredded = |e: Error| match e {
                    Error::NotFound { .. } => Error::Shredded { what: what() },
                    e => e,
                };
                let tr = snap.tenant(t);
                if tr.is_some_and(|tr| {
                    tr.shred.tenant
                        || c.is_some_and(|c| tr.shred.whole_conversation(c))
                        || u.is_some_and(|u| tr.shred.users.contains(&u))
                }) {
                    return Err(Error::Shredded { what: what() });
                }
                let id = match (c, u) {
                    (Some(c), _) => KeyId::Conv { t, c, v: kv },
                    (_, Some(u)) => KeyId::User { t, u, v: kv },
                    _ => KeyId::TenantKek { t, v: kv },
                };
                let key = i.key(id).map_err(shredded)?;
                envelope::open_meta(&key.cipher, v, kind, k, what)?;
                Ok(())
            };
            let mut outcome = check(v);
            if outcome.is_err() {
                // Changed since the listing began (sealed again by a re-versioning pass, or
                // removed by a shred): check the record as it is now; gone, nothing to check.
                drop(i.rekey_lock.read());
                match i.get(cf::META, k)? {
                    Some(now) if now.as_slice() != v => outcome = check(&now),
                    Some(_) => {}
                    None => {
                        it.next();
                        continue;
                    }
                }
            }
            match outcome {
                Ok(()) => r.meta_ok += 1,
                Err(Error::Shredded { .. }) => r.meta_shredded += 1,
                Err(e) => r.failures.push(VerifyFailure {
                    what: what(),
                    error: failure_text(&e),
                }),
            }
            it.next();
        }
        it.status().map_err(Error::storage("verifying metadata"))
    }

    fn verify_records(
        &self,
        r: &mut VerifyReport,
        cf_name: &'static str,
        tick: &mut Ticker<'_>,
    ) -> Result<()> {
        let i = &self.inner;
        let revisions = cf_name == cf::REVISIONS;
        let gen = i.rekey_generation.load(Ordering::Acquire);
        let mut it = i.db.raw_iterator_cf(&i.cf(cf_name)?);
        it.seek_to_first();
        while it.valid() {
            tick.tick();
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let ids = (
                k.get(0..8).and_then(be64),
                k.get(8..16).and_then(be64),
                k.get(16..24).and_then(be64),
            );
            let rev = if revisions {
                k.get(24..28).and_then(be32)
            } else {
                None
            };
            let (Some(t), Some(c), Some(id)) = ids else {
                r.failures.push(VerifyFailure {
                    what: format!("{cf_name} record {}", hex::encode(k)),
                    error: "bad key length".into(),
                });
                it.next();
                continue;
            };
            let what = match rev {
                Some(n) => format!("revision {t}/{c}/{id}/{n}"),
                None => format!("message {t}/{c}/{id}"),
            };
            let counts = r
                .conversations
                .entry((TenantId(t), ConversationId(c)))
                .or_default();
            let mut opened = i.open_record(t, c, id, k, v);
            if matches!(
                opened,
                Err(Error::Shredded { .. } | Error::NotFound { .. } | Error::Authentication { .. })
            ) {
                // Re-sealed, and its old key versions retired, since the listing began: check
                // the record as it is now; gone, nothing to check.
                drop(i.rekey_lock.read());
                if i.rekey_generation.load(Ordering::Acquire) != gen {
                    match i.get(cf_name, k)? {
                        Some(now) => opened = i.open_record(t, c, id, k, &now),
                        None => {
                            it.next();
                            continue;
                        }
                    }
                }
            }
            match opened {
                Ok(_) => {
                    counts.ok += 1;
                    if !revisions {
                        // Its time-index entry.
                        let sent = RecordHeader::decode(v, || what.clone())?.sent_at_ms;
                        let tk = codec::time_key(t, c, sent, id);
                        if i.get(cf::TIME_INDEX, &tk)?.is_some() {
                            r.index_ok += 1;
                        } else {
                            counts.failed += 1;
                            r.failures.push(VerifyFailure {
                                what: format!("time index entry {t}/{c}/{id}"),
                                error: "missing: the message is not found by time (pages by \
                                        time skip it)"
                                    .into(),
                            });
                        }
                    }
                }
                Err(Error::Expired { .. }) => counts.expired_awaiting_purge += 1,
                Err(Error::Shredded { .. }) => counts.shredded_awaiting_purge += 1,
                Err(e) => {
                    counts.failed += 1;
                    r.failures.push(VerifyFailure {
                        what,
                        error: failure_text(&e),
                    });
                }
            }
            it.next();
        }
        it.status().map_err(Error::storage("verifying records"))
    }

    /// Time-index entries without a record.
    fn verify_index(&self, r: &mut VerifyReport, tick: &mut Ticker<'_>) -> Result<()> {
        let i = &self.inner;
        let snap = i.retention.current();
        let now = i.opts.clock.now_ms();
        let mut it = i.db.raw_iterator_cf(&i.cf(cf::TIME_INDEX)?);
        it.seek_to_first();
        while it.valid() {
            tick.tick();
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            match codec::decode_time_key(k) {
                None => r.failures.push(VerifyFailure {
                    what: format!("time index entry {}", hex::encode(k)),
                    error: "bad key length".into(),
                }),
                Some((t, c, at, id)) => {
                    let author = be64(v);
                    let gone = snap.is_shredded(t, c, author, at)
                        || snap.is_expired(t, c, author, at, now);
                    if !gone
                        && i.get(cf::MESSAGES, &codec::message_key(t, c, id))?
                            .is_none()
                    {
                        r.failures.push(VerifyFailure {
                            what: format!("time index entry {t}/{c}/{id}"),
                            error: "its message record is missing".into(),
                        });
                    }
                }
            }
            it.next();
        }
        it.status()
            .map_err(Error::storage("verifying the time index"))
    }
}

/// One pass of `verify` over one column family.
type Step = fn(&Vault, &mut VerifyReport, &mut Ticker<'_>) -> Result<()>;

/// The key id a `keys` column family key names (with its explicit version).
fn key_id(k: &[u8]) -> Option<KeyId> {
    let id8 = |at: usize| k.get(at..at + 8).and_then(be64);
    let v4 = |at: usize| k.get(at..at + 4).and_then(be32);
    let t: Iid = id8(1)?;
    Some(match (k[0], k.len()) {
        (codec::keys::TENANT_KEK, 13) => KeyId::TenantKek { t, v: v4(9)? },
        (codec::keys::INDEX, 13) => KeyId::Index { t, v: v4(9)? },
        (codec::keys::CONVERSATION, 21) => KeyId::Conv {
            t,
            c: id8(9)?,
            v: v4(17)?,
        },
        (codec::keys::USER, 21) => KeyId::User {
            t,
            u: id8(9)?,
            v: v4(17)?,
        },
        (codec::keys::EPOCH, 25) => KeyId::Epoch {
            t,
            c: id8(9)?,
            e: v4(17)?,
            v: v4(21)?,
        },
        _ => return None,
    })
}

/// A failure's text for the report: the typed error's message, without the advice to run
/// `chatvault verify` that a corrupt record's error gives elsewhere (this is that run).
fn failure_text(e: &Error) -> String {
    match e {
        Error::Corrupt { what, detail } => format!("corrupt {what}: {detail}"),
        e => e.to_string(),
    }
}
