//! The vault's format version: one record in the `meta` column family (`0x1D`) that says which
//! layout every record of the vault follows, so that a build never reads a vault it does not
//! understand and never leaves an older one half in the old layout.
//!
//! ```text
//!  meta key: 0x1D
//!  value:
//!  0     1                5     6
//!  +-----+----------------+-----+-------------------------------+
//!  | fmt | format version | n   | written by (UTF-8, n bytes,   |
//!  | =1  | u32 BE         | u8  | e.g. "chatvault 0.1.0")       |
//!  +-----+----------------+-----+-------------------------------+
//! ```
//!
//! | format | what it is |
//! |---|---|
//! | 1 | no `0x1D` record: every build before the record existed (`tests/fixtures/v1`). User records may be meta kind 4 (display name only); shred tombstones may lack the receipt fields (`seq`, `queued`) |
//! | 2 | the record says 2. Every readable user record is meta kind 9; every shred tombstone has the receipt fields (a tombstone written before the receipt chain gets `seq` = [`NO_RECEIPT`]) |
//!
//! **Opening.** [`Vault::open`](crate::Vault::open) first reads the record through a read-only
//! RocksDB open (which writes nothing: no LOG, no MANIFEST, no WAL), and refuses a newer format
//! with [`Error::VaultFormatTooNew`] before anything is written. A writer then upgrades an older
//! vault in place: each step rewrites only records still in the old layout (so it is
//! idempotent), in fsynced WriteBatches, and the version record is written last, in a batch of
//! its own, after every step. A crash anywhere leaves a vault without the record (format 1),
//! which the next open upgrades again from where it is. A read-only secondary never writes: it
//! refuses an older vault with [`Error::VaultFormatNeedsUpgrade`].

use std::cell::Cell;
use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::codec::be64;
use crate::envelope::MetaKind;
use crate::error::{Error, Result};
use crate::model::TenantId;
use crate::shred::{ShredReceipt, ShredScope, Tombstone};
use crate::vault::{cf, Db, Vault};

/// The vault format version this build writes, and the newest it reads.
pub const VAULT_FORMAT_VERSION: u32 = 2;

/// The oldest vault format version this build upgrades in place.
pub const OLDEST_UPGRADABLE_FORMAT: u32 = 1;

/// The `seq` of a shred tombstone written before the receipt chain existed (format 1): it has
/// no receipt.
pub const NO_RECEIPT: u64 = u64::MAX;

/// `meta` key of the format version record.
pub(crate) const FORMAT_KEY: [u8; 1] = [crate::codec::meta::FORMAT];

/// Version byte of the record's own layout.
const RECORD_FMT: u8 = 1;

/// How many user records one upgrade batch rewrites.
const USER_BATCH: usize = 512;

/// `chatvault X.Y.Z`: this build, as the record names its writer.
pub(crate) fn this_build() -> String {
    format!("chatvault {}", env!("CARGO_PKG_VERSION"))
}

/// The format version record: which format, written by which build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatRecord {
    pub version: u32,
    pub written_by: String,
}

impl FormatRecord {
    fn current() -> Self {
        FormatRecord {
            version: VAULT_FORMAT_VERSION,
            written_by: this_build(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // At most 255 bytes, cut at a character boundary.
        let mut end = self.written_by.len().min(255);
        while !self.written_by.is_char_boundary(end) {
            end -= 1;
        }
        let by = &self.written_by.as_bytes()[..end];
        let mut v = Vec::with_capacity(6 + by.len());
        v.push(RECORD_FMT);
        v.extend_from_slice(&self.version.to_be_bytes());
        v.push(by.len() as u8);
        v.extend_from_slice(by);
        v
    }

    pub(crate) fn decode(v: &[u8]) -> Result<Self> {
        let what = "vault format version record (meta 0x1D)";
        let fmt = *v.first().ok_or_else(|| Error::corrupt(what, "empty"))?;
        if fmt != RECORD_FMT {
            return Err(Error::UnsupportedFormat {
                what,
                found: fmt,
                supported: RECORD_FMT,
            });
        }
        let version = v
            .get(1..5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| Error::corrupt(what, "too short"))?;
        let n = *v.get(5).ok_or_else(|| Error::corrupt(what, "too short"))? as usize;
        let by = v
            .get(6..6 + n)
            .filter(|_| v.len() == 6 + n)
            .ok_or_else(|| Error::corrupt(what, "bad length"))?;
        let written_by = String::from_utf8_lossy(by).into_owned();
        Ok(FormatRecord {
            version,
            written_by,
        })
    }
}

/// The format of a vault whose `meta` holds `value` at [`FORMAT_KEY`] (`None`: format 1).
fn format_of(value: Option<&[u8]>) -> Result<FormatRecord> {
    match value {
        None => Ok(FormatRecord {
            version: 1,
            written_by: "chatvault 0.1.0 (before the format version record)".into(),
        }),
        Some(v) => FormatRecord::decode(v),
    }
}

/// Refuses a vault newer than this build knows.
fn refuse_newer(path: &Path, f: &FormatRecord) -> Result<()> {
    if f.version > VAULT_FORMAT_VERSION {
        return Err(Error::VaultFormatTooNew {
            path: path.to_path_buf(),
            found: f.version,
            written_by: f.written_by.clone(),
            supported: VAULT_FORMAT_VERSION,
            this_build: this_build(),
        });
    }
    Ok(())
}

/// Reads the format record through a read-only RocksDB open of `meta` alone, which writes
/// nothing in the data directory, and refuses a newer format before the vault is opened for
/// writing. A probe that cannot open (a damaged MANIFEST, ...) leaves the verdict to the real
/// open, which reports the error and checks the format again.
pub(crate) fn probe(path: &Path) -> Result<()> {
    let mut o = Options::default();
    // Open table files lazily: the probe reads one key.
    o.set_max_open_files(16);
    let mut mo = Options::default();
    mo.set_merge_operator_associative("chatvault.max_u64.v1", crate::codec::merge_max_u64);
    let cfs = [ColumnFamilyDescriptor::new(cf::META, mo)];
    let db = match Db::open_cf_descriptors_read_only(&o, path, cfs, false) {
        Ok(db) => db,
        Err(e) => {
            tracing::debug!(error = %e, "format probe could not open the vault read-only");
            return Ok(());
        }
    };
    let Some(meta) = db.cf_handle(cf::META) else {
        return Ok(());
    };
    let value = db
        .get_cf(&meta, FORMAT_KEY)
        .map_err(Error::storage("reading the vault format version"))?;
    drop(meta);
    refuse_newer(path, &format_of(value.as_deref())?)
}

thread_local! {
    /// Test hook: stop the upgrade after this many batches (see [`stop_upgrade_after`]).
    static STOP_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// For tests of the upgrade's crash model: makes the next format upgrades **on this thread**
/// stop (with [`Error::InvalidInput`]) after `batches` upgrade batches have been written, as a
/// crash there would; `None` turns it off. Not for production use.
#[doc(hidden)]
pub fn stop_upgrade_after(batches: Option<usize>) {
    STOP_AFTER.with(|s| s.set(batches));
}

/// Counts the batches of one upgrade against the test hook.
struct Steps {
    written: usize,
    stop_after: Option<usize>,
}

impl Steps {
    fn written(&mut self) -> Result<()> {
        self.written += 1;
        if self.stop_after.is_some_and(|n| self.written >= n) {
            return Err(Error::InvalidInput(format!(
                "format upgrade stopped after {} batch(es) by the test hook",
                self.written
            )));
        }
        Ok(())
    }
}

/// The shred receipt of format 1 (before the receipt chain): no `seq`, no `queued`.
#[derive(Serialize, Deserialize)]
struct ShredReceiptV1 {
    tenant: TenantId,
    scope: ShredScope,
    at_ms: i64,
    key_ranges: Vec<String>,
}

/// The shred tombstone of format 1.
#[derive(Serialize, Deserialize)]
struct TombstoneV1 {
    receipt: ShredReceiptV1,
    window: Option<(i64, i64)>,
}

/// Decodes a shred tombstone of the current layout, consuming every byte.
pub(crate) fn decode_tombstone(v: &[u8]) -> Option<Tombstone> {
    match postcard::take_from_bytes::<Tombstone>(v) {
        Ok((t, rest)) if rest.is_empty() => Some(t),
        _ => None,
    }
}

/// A format-1 tombstone in the current layout, if `v` is one.
pub(crate) fn upgrade_tombstone(v: &[u8]) -> Option<Tombstone> {
    let (old, rest) = postcard::take_from_bytes::<TombstoneV1>(v).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(Tombstone {
        receipt: ShredReceipt {
            tenant: old.receipt.tenant,
            scope: old.receipt.scope,
            at_ms: old.receipt.at_ms,
            key_ranges: old.receipt.key_ranges,
            seq: NO_RECEIPT,
            queued: None,
        },
        window: old.window,
    })
}

impl Vault {
    /// The vault's format version (see [`VAULT_FORMAT_VERSION`]). A vault open for writing is
    /// always at the current version (it was upgraded at open if it was older).
    ///
    /// Errors: [`Error::Storage`]; [`Error::Corrupt`] if the record is malformed.
    pub fn format_version(&self) -> Result<u32> {
        Ok(format_of(self.inner.get(cf::META, &FORMAT_KEY)?.as_deref())?.version)
    }

    /// The format version this vault was upgraded from when this handle opened it, if it was
    /// upgraded (`Some(1)`: it had no format record and was brought to
    /// [`VAULT_FORMAT_VERSION`]).
    pub fn upgraded_from(&self) -> Option<u32> {
        self.inner.upgraded_from.get().copied()
    }

    /// At open, before anything else reads records: refuses a newer format, refuses an older
    /// one on a secondary, upgrades an older one in place on a writer, and writes the record
    /// of a new vault (`creating`).
    pub(crate) fn check_format(&self, creating: bool) -> Result<()> {
        let i = &self.inner;
        let found = format_of(i.get(cf::META, &FORMAT_KEY)?.as_deref())?;
        refuse_newer(&i.path, &found)?;
        if found.version == VAULT_FORMAT_VERSION {
            return Ok(());
        }
        if i.secondary.is_some() {
            return Err(Error::VaultFormatNeedsUpgrade {
                path: i.path.clone(),
                found: found.version,
                current: VAULT_FORMAT_VERSION,
            });
        }
        if creating {
            return self.write_format_record();
        }
        tracing::info!(
            path = %i.path.display(),
            from = found.version,
            to = VAULT_FORMAT_VERSION,
            "upgrading the vault format in place"
        );
        let mut steps = Steps {
            written: 0,
            stop_after: STOP_AFTER.with(Cell::get),
        };
        // Format 1 → 2. Each step rewrites only what is still in the old layout.
        self.upgrade_tombstones(&mut steps)?;
        self.upgrade_user_records(&mut steps)?;
        self.write_format_record()?;
        let _ = i.upgraded_from.set(found.version);
        tracing::info!(
            path = %i.path.display(),
            from = found.version,
            to = VAULT_FORMAT_VERSION,
            "vault format upgraded"
        );
        Ok(())
    }

    fn write_format_record(&self) -> Result<()> {
        let i = &self.inner;
        let mut b = WriteBatch::default();
        b.put_cf(
            &i.cf(cf::META)?,
            FORMAT_KEY,
            FormatRecord::current().encode(),
        );
        i.write_sync(b, "writing the vault format version")
    }

    /// Step 1 of 1 → 2: shred tombstones without the receipt fields get them (`seq` =
    /// [`NO_RECEIPT`]). One batch (tombstones are few: one per shred).
    fn upgrade_tombstones(&self, steps: &mut Steps) -> Result<()> {
        let i = &self.inner;
        let meta = i.cf(cf::META)?;
        let mut batch = WriteBatch::default();
        let mut n = 0u64;
        let mut it = i.prefix_iter(cf::META, &[crate::codec::meta::SHRED])?;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if decode_tombstone(v).is_none() {
                match upgrade_tombstone(v) {
                    Some(t) => {
                        let bytes = postcard::to_stdvec(&t).map_err(|e| {
                            Error::InvalidInput(format!("cannot encode a shred tombstone: {e}"))
                        })?;
                        batch.put_cf(&meta, k, bytes);
                        n += 1;
                    }
                    // Neither layout: left for load_retention to report as corrupt.
                    None => tracing::warn!(
                        key = %hex::encode(k),
                        "a shred tombstone in neither layout; left as it is"
                    ),
                }
            }
            it.next();
        }
        it.status()
            .map_err(Error::storage("reading shred tombstones"))?;
        drop(it);
        if n > 0 {
            i.write_sync(batch, "upgrading shred tombstones")?;
            tracing::info!(tombstones = n, "format upgrade: shred tombstones rewritten");
            steps.written()?;
        }
        Ok(())
    }

    /// Step 2 of 1 → 2: user records of meta kind 4 (display name only) are sealed again as
    /// kind 9 under the user's current key, [`USER_BATCH`] per batch. A record that cannot be
    /// opened (its key was destroyed by a shred, or it fails authentication) is left as it is:
    /// readers still accept kind 4, and `verify` reports a damaged one.
    fn upgrade_user_records(&self, steps: &mut Steps) -> Result<()> {
        let i = &self.inner;
        let mut todo: Vec<(u64, u64)> = Vec::new();
        {
            let mut it = i.prefix_iter(cf::META, &[crate::codec::meta::USER])?;
            while it.valid() {
                if let (Some(k), Some(v)) = (it.key(), it.value()) {
                    if v.get(1) == Some(&(MetaKind::User as u8)) {
                        if let (Some(t), Some(u)) =
                            (k.get(1..9).and_then(be64), k.get(9..17).and_then(be64))
                        {
                            todo.push((t, u));
                        }
                    }
                }
                it.next();
            }
            it.status()
                .map_err(Error::storage("reading user records"))?;
        }
        let mut rewritten = 0u64;
        for chunk in todo.chunks(USER_BATCH) {
            let mut batch = WriteBatch::default();
            let mut n = 0;
            for &(t, u) in chunk {
                match i.read_user(t, u) {
                    Ok(rec) => {
                        i.put_user(&mut batch, t, u, &rec)?;
                        n += 1;
                    }
                    Err(e) => tracing::debug!(
                        tenant = t,
                        user = u,
                        error = %e,
                        "format upgrade: a user record that cannot be opened stays as it is"
                    ),
                }
            }
            if n > 0 {
                i.write_sync(batch, "upgrading user records")?;
                rewritten += n;
                steps.written()?;
            }
        }
        if rewritten > 0 {
            tracing::info!(
                users = rewritten,
                "format upgrade: user records sealed again as meta kind 9"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_record_round_trips_and_rejects_bad_bytes() {
        let r = FormatRecord {
            version: 7,
            written_by: "chatvault 9.9.9".into(),
        };
        assert_eq!(FormatRecord::decode(&r.encode()).unwrap(), r);
        assert!(FormatRecord::decode(&[]).is_err());
        assert!(matches!(
            FormatRecord::decode(&[2, 0, 0, 0, 1, 0]),
            Err(Error::UnsupportedFormat { found: 2, .. })
        ));
        let mut long = r.encode();
        long.push(0);
        assert!(FormatRecord::decode(&long).is_err());
        assert_eq!(format_of(None).unwrap().version, 1);
    }

    /// Regression (found writing the fuzz target `key_files`): a name longer than the 255
    /// bytes the record holds was cut inside a character, so it read back with a U+FFFD
    /// that the name never had.
    #[test]
    fn a_long_name_is_cut_at_a_character_boundary() {
        let r = FormatRecord {
            version: 2,
            written_by: format!("chatvault {}", "é".repeat(200)),
        };
        let back = FormatRecord::decode(&r.encode()).unwrap();
        assert!(
            r.written_by.starts_with(&back.written_by),
            "{:?}",
            back.written_by
        );
        assert!(back.written_by.len() <= 255 && back.written_by.len() >= 254);
    }

    #[test]
    fn a_format_1_tombstone_gets_the_receipt_fields_and_a_current_one_is_left() {
        let old = TombstoneV1 {
            receipt: ShredReceiptV1 {
                tenant: TenantId(3),
                scope: ShredScope::Window {
                    conversation: crate::model::ConversationId(5),
                    at_ms: 1_600_000_000_000,
                },
                at_ms: 1_600_000_500_000,
                key_ranges: vec!["03".into()],
            },
            window: Some((1_599_955_200_000, 1_600_041_600_000)),
        };
        let bytes = postcard::to_stdvec(&old).unwrap();
        assert!(decode_tombstone(&bytes).is_none(), "not the current layout");
        let new = upgrade_tombstone(&bytes).unwrap();
        assert_eq!(new.receipt.seq, NO_RECEIPT);
        assert_eq!(new.window, old.window);
        let again = postcard::to_stdvec(&new).unwrap();
        assert!(decode_tombstone(&again).is_some());
        assert!(upgrade_tombstone(&again).is_none(), "idempotent");
    }
}
