//! The vault: the public API over RocksDB and the key hierarchy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rocksdb::{
    BlockBasedOptions, BoundColumnFamily, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode,
    DBWithThreadMode, MultiThreaded, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::chain::{self, Chain, ChainId};
use crate::codec::{self, be64, prefix_successor, Iid, KeyBuf};
use crate::envelope::{self, MetaKind, RecordHeader, RecordKind, WrapHeader, RECORD_HEADER_LEN};
use crate::error::{Error, Result};
use crate::keycheck;
use crate::keys::{self, labels, KeyCache, KeyProvider, ReadyKey, SecretKey};
use crate::model::*;
use crate::retention::{Clock, ExpiryFilterFactory, FilterKind, History, Shared, SystemClock};

pub(crate) type Db = DBWithThreadMode<MultiThreaded>;

/// Column family names. See DESIGN.md, "Column families and keys".
pub mod cf {
    /// Tenants, conversations, members, users, directories, counters.
    pub const META: &str = "meta";
    /// Wrapped keys.
    pub const KEYS: &str = "keys";
    /// Current revision of each message.
    pub const MESSAGES: &str = "messages";
    /// Older revisions of edited messages.
    pub const REVISIONS: &str = "revisions";
    /// `(conversation, sent_at, id)` index for reads by time range.
    pub const TIME_INDEX: &str = "time_index";
    /// Every column family chatvault creates, in order.
    pub const ALL: [&str; 5] = [META, KEYS, MESSAGES, REVISIONS, TIME_INDEX];
}

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged once in RocksDB's WAL in the OS page cache (RocksDB's default,
    /// `WriteOptions::sync = false`). A process crash loses nothing acknowledged; a power loss
    /// or kernel crash can lose the last writes. Default.
    #[default]
    Buffered,
    /// Every write fsyncs the WAL before it is acknowledged (`WriteOptions::sync = true`). Survives
    /// power loss; costs one fsync per write.
    Sync,
}

/// Options for opening a vault.
#[derive(Clone)]
pub struct VaultOptions {
    /// See [`Durability`]. Default: [`Durability::Buffered`].
    pub durability: Durability,
    /// How many unwrapped keys (with their ready ciphers) stay in memory. Default 65 536
    /// (about 1 KiB each). Evicted keys are zeroized.
    pub key_cache_entries: usize,
    /// Largest message body accepted, in bytes. Default 65 536 (64 KiB). Larger bodies give
    /// [`Error::MessageTooLarge`].
    pub max_body_bytes: usize,
    /// RocksDB block cache size in bytes (`BlockBasedOptions::set_block_cache`). Default 64 MiB.
    pub block_cache_bytes: usize,
    /// The clock retention is measured against (UTC). Default: [`SystemClock`]; tests use a
    /// [`crate::FakeClock`].
    pub clock: Arc<dyn Clock>,
    /// Whether every shred and erasure ([`Vault::shred`], [`Vault::erase_user`], queued
    /// erasures carried out by [`Vault::release_hold`] or at open) re-versions the keys on the
    /// path to what it destroyed at once ([`Vault::rekey`]), so that no checkpoint, backup or
    /// copied folder taken before it opens the shredded data again (DESIGN.md §7, "Old
    /// copies"). Default `true`. The pass costs about one unwrap and one wrap per tenant
    /// (BENCHMARKS.md, "Key re-versioning") and rotates the root key version in the key
    /// provider each time. With `false`, destructions only mark their key paths and the next
    /// [`Vault::purge`] or [`Vault::rekey`] re-versions them all in one pass (for erasing many
    /// scopes in a row); until then old copies still open them ([`Vault::key_paths_pending`]).
    pub rekey_after_shred: bool,
}

impl std::fmt::Debug for VaultOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultOptions")
            .field("durability", &self.durability)
            .field("key_cache_entries", &self.key_cache_entries)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("rekey_after_shred", &self.rekey_after_shred)
            .finish_non_exhaustive()
    }
}

impl Default for VaultOptions {
    fn default() -> Self {
        VaultOptions {
            durability: Durability::Buffered,
            key_cache_entries: 65_536,
            max_body_bytes: 64 * 1024,
            block_cache_bytes: 64 << 20,
            clock: Arc::new(SystemClock),
            rekey_after_shred: true,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum KeyId {
    TenantKek {
        t: Iid,
        v: u32,
    },
    Conv {
        t: Iid,
        c: Iid,
        v: u32,
    },
    Epoch {
        t: Iid,
        c: Iid,
        e: u32,
        v: u32,
    },
    User {
        t: Iid,
        u: Iid,
        v: u32,
    },
    /// The tenant's directory key (stored once the tenant KEK has been re-versioned).
    Index {
        t: Iid,
        v: u32,
    },
    Dek {
        t: Iid,
        c: Iid,
        e: u32,
        ev: u32,
        a: Iid,
        av: u32,
    },
}

pub(crate) struct TenantState {
    pub(crate) iid: Iid,
    pub(crate) dir_key: SecretKey,
    pub(crate) policy: ErasurePolicy,
    pub(crate) epoch_ms: u64,
}

/// A freshly generated key: where it goes, its wrapped bytes, and the key itself.
pub(crate) struct NewKey {
    place: Vec<u8>,
    wrapped: Vec<u8>,
    ready: Arc<ReadyKey>,
}

pub(crate) struct ConvState {
    next_id: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    pub(crate) provider: Arc<dyn KeyProvider>,
    /// The vault key (from the key-check file): keys the tenant directory; re-wrapped, never
    /// changed, when the root key gets a new version.
    pub(crate) vault_key: SecretKey,
    pub(crate) tenant_dir_key: SecretKey,
    /// Bumped by every key re-versioning pass (under `rekey_lock`'s write side): a key load
    /// that raced with one retries once, and never caches what it loaded.
    pub(crate) rekey_generation: AtomicU64,
    /// Held for writing while a re-versioning pass swaps keys (see `rekey.rs`).
    pub(crate) rekey_lock: RwLock<()>,
    /// The report of the pass the open ran for paths a destruction left marked, until the next
    /// purge reports it as its own.
    pub(crate) open_rekey: Mutex<Option<crate::RekeyReport>>,
    /// Held for reading by every write that seals a record (append, edit, delete) from the
    /// moment it picks its key versions until its batch is written; a data-key rotation takes
    /// it for writing once its new versions are in place, so that afterwards no record can
    /// still be written under a version it replaced (`rotate.rs`).
    pub(crate) seal_lock: RwLock<()>,
    pub(crate) cache: KeyCache<KeyId>,
    pub(crate) tenants: RwLock<HashMap<Iid, Arc<TenantState>>>,
    pub(crate) convs: RwLock<HashMap<(Iid, Iid), Arc<ConvState>>>,
    /// Serializes creation of keys, tenants, users and conversations (rare), so that two threads
    /// never create two different keys for one place.
    pub(crate) create_lock: Mutex<()>,
    /// Serializes edits and deletions (read-modify-write of one record).
    pub(crate) edit_lock: Mutex<()>,
    pub(crate) next_iid: Mutex<u64>,
    pub(crate) write_opts: WriteOptions,
    pub(crate) sync_opts: WriteOptions,
    pub(crate) opts: VaultOptions,
    /// Retention state and clock, shared with the compaction filters.
    pub(crate) retention: Arc<Shared>,
    /// Serializes policy and hold changes.
    pub(crate) policy_lock: Mutex<()>,
    /// The shred receipt chain (its key is derived from the vault key).
    pub(crate) receipts: Chain,
    /// `Some(dir)` for a read-only secondary instance ([`Vault::open_secondary`]), with its
    /// own directory for RocksDB's info log: every write is refused.
    pub(crate) secondary: Option<PathBuf>,
    /// The audit trail (chain id 2; `audit.rs`). Always locked after `receipts` when both are.
    pub(crate) audit: Chain,
    /// The format version the open upgraded the vault from, if it did (`format.rs`).
    pub(crate) upgraded_from: std::sync::OnceLock<u32>,
}

/// A chain of the vault, its tip read from its last stored entry.
fn load_chain(db: &Db, path: &Path, id: ChainId, vault_key: &SecretKey) -> Result<Chain> {
    let p = chain::prefix(id);
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(p.clone());
    if let Some(up) = prefix_successor(&p) {
        ro.set_iterate_upper_bound(up);
    }
    let meta = db.cf_handle(cf::META).ok_or_else(|| {
        Error::corrupt(
            format!("vault at {}", path.display()),
            "column family meta is missing",
        )
    })?;
    let mut it = db.raw_iterator_cf_opt(&meta, ro);
    it.seek_to_last();
    let last = match (it.key(), it.value()) {
        (Some(k), Some(v)) => Some((k.to_vec(), v.to_vec())),
        _ => {
            it.status()
                .map_err(Error::storage("reading a MAC-chained log"))?;
            None
        }
    };
    Ok(Chain::new(
        id,
        vault_key,
        last.as_ref().map(|(k, v)| (k.as_slice(), v.as_slice())),
    ))
}

/// An open vault. Cheap to clone (an `Arc`), `Send + Sync`, safe to use from many threads.
#[derive(Clone)]
pub struct Vault {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn cf_options(name: &str, cache: &rocksdb::Cache, retention: &Arc<Shared>) -> Options {
    let mut o = Options::default();
    // Ciphertext does not compress; the index and meta keys are short fixed-width ids whose
    // shared prefixes RocksDB's block format already delta-encodes. So no compression anywhere
    // (the crate is also built without compression libraries). DESIGN.md, "Compression".
    o.set_compression_type(rocksdb::DBCompressionType::None);
    let mut b = BlockBasedOptions::default();
    b.set_block_cache(cache);
    if name == cf::MESSAGES || name == cf::KEYS || name == cf::META {
        // Point gets dominate: a bloom filter saves a block read on misses.
        b.set_bloom_filter(10.0, false);
    }
    if name == cf::TIME_INDEX {
        // Every key stored whole (no prefix delta encoding), so that `purge` can verify by a raw
        // scan of the files that no expired index entry is left.
        b.set_block_restart_interval(1);
    }
    o.set_block_based_table_factory(&b);
    let filter = match name {
        cf::MESSAGES | cf::REVISIONS => Some(FilterKind::Records),
        cf::TIME_INDEX => Some(FilterKind::TimeIndex),
        _ => None,
    };
    if let Some(kind) = filter {
        o.set_compaction_filter_factory(ExpiryFilterFactory {
            shared: retention.clone(),
            kind,
            name: std::ffi::CString::from(c"chatvault.expiry.v1"),
        });
    }
    if name == cf::META {
        o.set_merge_operator_associative("chatvault.max_u64.v1", codec::merge_max_u64);
    }
    o
}

fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(5);
    // Write the OPTIONS file and fsync the directory as RocksDB does by default; paranoid
    // checks stop the vault on a background error rather than continue on bad data.
    o.set_paranoid_checks(true);
    // Roll the MANIFEST on every version edit, so that it holds only the live files' metadata:
    // the smallest and largest keys of files removed by a purge (which can be time-index keys of
    // expired messages) do not linger in its history. Costs one small snapshot per flush or
    // compaction.
    o.set_max_manifest_file_size(1);
    // RocksDB 10 auto-tunes the roll-over size (it only rolls when the MANIFEST is several
    // times the size of a fresh one); 0 turns that off. Not wrapped by the rocksdb crate, so set
    // through RocksDB's options-string parser.
    match o.get_options_from_string("max_manifest_space_amp_pct=0") {
        Ok(tuned) => tuned,
        Err(e) => {
            tracing::warn!("cannot set max_manifest_space_amp_pct: {e}");
            o
        }
    }
}

impl Vault {
    /// Creates a new vault in `path` (created if missing; must not already hold a vault): writes
    /// the key-check file, then creates the RocksDB database. On Unix the data directory is made
    /// private (mode 0700): its files hold only ciphertext, but sizes and counts are metadata.
    ///
    /// Errors: [`Error::AlreadyExists`] if `path` already holds a vault; [`Error::Io`],
    /// [`Error::Storage`], [`Error::KeyProvider`].
    pub fn create(
        path: impl AsRef<Path>,
        provider: Arc<dyn KeyProvider>,
        opts: VaultOptions,
    ) -> Result<Vault> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(Error::io("creating", path))?;
        if path.join(keycheck::KEYCHECK_FILE).exists() || path.join("CURRENT").exists() {
            return Err(Error::AlreadyExists {
                what: format!("a vault at {}", path.display()),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(Error::io("making private", path))?;
        }
        let vault_key = keycheck::create(path, provider.as_ref())?;
        Self::open_db(path, provider, vault_key, opts, None, true)
    }

    /// Opens an existing vault. The root key is checked against the key-check file before
    /// RocksDB is opened, so a wrong key changes nothing on disk.
    ///
    /// A vault of an older format version ([`crate::VAULT_FORMAT_VERSION`]) is upgraded in
    /// place, crash-safely ([`Vault::upgraded_from`] says so); one of a newer version is refused
    /// before anything is written (DESIGN.md §2, "Vault format version").
    ///
    /// Errors: [`Error::WrongRootKey`]; [`Error::NotFound`] if `path` holds no vault;
    /// [`Error::VaultFormatTooNew`]; [`Error::Storage`] if RocksDB cannot open it (for example
    /// another process holds it).
    pub fn open(
        path: impl AsRef<Path>,
        provider: Arc<dyn KeyProvider>,
        opts: VaultOptions,
    ) -> Result<Vault> {
        let path = path.as_ref();
        let vault_key = keycheck::open(path, provider.as_ref())?;
        if !path.join("CURRENT").exists() {
            return Err(Error::corrupt(
                format!("vault at {}", path.display()),
                "the key-check file exists but the RocksDB database does not",
            ));
        }
        // A newer format is refused before RocksDB is opened for writing (which would write
        // its LOG, a MANIFEST and a WAL).
        crate::format::probe(path)?;
        Self::open_db(path, provider, vault_key, opts, None, false)
    }

    /// Opens an existing vault **read-only, beside the process that holds it open for
    /// writing**, as a RocksDB secondary instance (`DB::OpenAsSecondary`): it takes no lock,
    /// sees the primary's data as of the open, and sees later writes after
    /// [`Vault::catch_up`] (RocksDB `TryCatchUpWithPrimary`: it replays the primary's MANIFEST
    /// and WAL). `secondary_dir` holds the instance's own RocksDB info log (created if missing;
    /// it must not lie inside the data directory; reuse it between runs). Every write call
    /// (appends, policy changes, shreds, purge, compaction, checkpoints, key rotation) returns
    /// [`Error::ReadOnlySecondary`]; erasures queued under released holds are left to the
    /// primary. Reads, [`Vault::verify`] and [`Vault::stats`] work as on a normal handle.
    ///
    /// What it sees: shreds, policies and holds as of the open or the last
    /// [`Vault::catch_up`]. The root key provider is the one given here: after the primary
    /// rotates the root key (or a purge re-versions key paths), tenant KEKs are wrapped under a
    /// version this provider may not hold; open the secondary again with the updated key file.
    ///
    /// Errors: as [`Vault::open`] ([`Error::WrongRootKey`], [`Error::NotFound`],
    /// [`Error::VaultFormatTooNew`]); [`Error::VaultFormatNeedsUpgrade`] for a vault of an
    /// older format version (a secondary never upgrades); [`Error::InvalidInput`] if `secondary_dir` lies inside the data directory;
    /// [`Error::Storage`] if RocksDB cannot open the secondary instance.
    pub fn open_secondary(
        path: impl AsRef<Path>,
        secondary_dir: impl AsRef<Path>,
        provider: Arc<dyn KeyProvider>,
        opts: VaultOptions,
    ) -> Result<Vault> {
        let path = path.as_ref();
        let secondary_dir = secondary_dir.as_ref();
        if keys::path_is_inside(secondary_dir, path) {
            return Err(Error::InvalidInput(format!(
                "the secondary instance's directory {} is inside the vault's data directory {}; \
                 choose a directory outside it",
                secondary_dir.display(),
                path.display()
            )));
        }
        let vault_key = keycheck::open(path, provider.as_ref())?;
        if !path.join("CURRENT").exists() {
            return Err(Error::corrupt(
                format!("vault at {}", path.display()),
                "the key-check file exists but the RocksDB database does not",
            ));
        }
        std::fs::create_dir_all(secondary_dir).map_err(Error::io("creating", secondary_dir))?;
        Self::open_db(path, provider, vault_key, opts, Some(secondary_dir), false)
    }

    /// Whether this handle is a read-only secondary instance ([`Vault::open_secondary`]).
    pub fn is_secondary(&self) -> bool {
        self.inner.secondary.is_some()
    }

    /// For a secondary instance: catches up with the primary (RocksDB
    /// `TryCatchUpWithPrimary`), reloads the key provider's root key versions
    /// ([`KeyProvider::reload`]: a key file the writer rotated at a shred or a purge is read
    /// again), then reloads retention policies, holds and shred tombstones and forgets every
    /// cached key and counter, so that reads answer as the primary would now (a scope shredded
    /// since the open reads as shredded). On a normal handle it does nothing.
    ///
    /// Errors: [`Error::Storage`] if RocksDB cannot read the primary's MANIFEST or WAL;
    /// [`Error::KeyProvider`] if the key file cannot be read again.
    pub fn catch_up(&self) -> Result<()> {
        let i = &self.inner;
        if i.secondary.is_none() {
            return Ok(());
        }
        i.db.try_catch_up_with_primary()
            .map_err(Error::storage("catching up with the primary"))?;
        i.provider.reload()?;
        i.cache.remove_where(|_| true);
        i.tenants.write().clear();
        i.convs.write().clear();
        let next = i
            .get(cf::META, &[codec::meta::NEXT_IID])?
            .and_then(|v| codec::read_counter(&v))
            .unwrap_or(1);
        *i.next_iid.lock() = next.max(1);
        self.load_retention()
    }

    fn open_db(
        path: &Path,
        provider: Arc<dyn KeyProvider>,
        vault_key: SecretKey,
        opts: VaultOptions,
        secondary: Option<&Path>,
        creating: bool,
    ) -> Result<Vault> {
        let cache = rocksdb::Cache::new_lru_cache(opts.block_cache_bytes);
        let retention = Shared::new(opts.clock.clone());
        let cfs = cf::ALL
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n, &cache, &retention)));
        let db = match secondary {
            None => Db::open_cf_descriptors(&db_options(), path, cfs)
                .map_err(Error::storage("opening the vault"))?,
            Some(dir) => {
                let mut o = db_options();
                o.create_if_missing(false);
                o.create_missing_column_families(false);
                // A secondary instance keeps every file open (RocksDB requires
                // max_open_files = -1 for secondaries).
                o.set_max_open_files(-1);
                Db::open_cf_descriptors_as_secondary(&o, path, dir, cfs)
                    .map_err(Error::storage("opening the vault as a secondary instance"))?
            }
        };
        let tenant_dir_key = keys::derive_key(&[&vault_key], labels::TENANT_DIRECTORY, b"");
        let receipts = load_chain(&db, path, ChainId::Receipts, &vault_key)?;
        let audit = load_chain(&db, path, ChainId::Audit, &vault_key)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(opts.durability == Durability::Sync);
        let mut sync_opts = WriteOptions::default();
        sync_opts.set_sync(true);
        let inner = Inner {
            db,
            path: path.to_path_buf(),
            provider,
            vault_key,
            tenant_dir_key,
            rekey_generation: AtomicU64::new(0),
            rekey_lock: RwLock::new(()),
            open_rekey: Mutex::new(None),
            seal_lock: RwLock::new(()),
            cache: KeyCache::new(opts.key_cache_entries),
            tenants: RwLock::new(HashMap::new()),
            convs: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
            edit_lock: Mutex::new(()),
            next_iid: Mutex::new(0),
            write_opts,
            sync_opts,
            opts,
            retention,
            policy_lock: Mutex::new(()),
            receipts,
            secondary: secondary.map(Path::to_path_buf),
            audit,
            upgraded_from: std::sync::OnceLock::new(),
        };
        let next = inner
            .get(cf::META, &[codec::meta::NEXT_IID])?
            .and_then(|v| codec::read_counter(&v))
            .unwrap_or(1);
        *inner.next_iid.lock() = next.max(1);
        let vault = Vault {
            inner: Arc::new(inner),
        };
        // Before anything reads records: a newer format is refused, an older one upgraded.
        vault.check_format(creating)?;
        vault.load_retention()?;
        if secondary.is_some() {
            tracing::info!(path = %path.display(), "vault opened as a read-only secondary");
            return Ok(vault);
        }
        // Erasures queued under holds that are gone (the release and the erasure are one
        // WriteBatch, so this finds work only if something else removed a hold): carried out now.
        if let Err(e) = vault.run_queued_erasures() {
            tracing::error!(error = %e, "cannot carry out queued erasures at open; they stay queued");
        }
        // A shred whose re-versioning pass did not run (a crash right after the shred, a key
        // provider that failed): finished now, so old copies stop opening what it destroyed.
        if vault.inner.opts.rekey_after_shred {
            let _g = vault.inner.policy_lock.lock();
            *vault.inner.open_rekey.lock() = vault.rekey_after_destruction();
        }
        tracing::info!(path = %path.display(), "vault opened");
        Ok(vault)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    // ------------------------------------------------------------------ tenants

    /// Creates a tenant with a fresh KEK wrapped under the root key. The name is kept only
    /// inside the sealed tenant record; RocksDB keys see a blind index of it.
    ///
    /// Errors: [`Error::AlreadyExists`], [`Error::InvalidInput`] (empty name, epoch under a
    /// minute).
    pub fn create_tenant(&self, name: &str, options: TenantOptions) -> Result<TenantId> {
        let i = &self.inner;
        if name.is_empty() {
            return Err(Error::InvalidInput("tenant name is empty".into()));
        }
        if options.epoch_ms < 60_000 {
            return Err(Error::InvalidInput(
                "epoch_ms must be at least 60000 (one minute)".into(),
            ));
        }
        let _g = i.create_lock.lock();
        let dir = i.tenant_dir_entry(name);
        if i.get(cf::META, &dir)?.is_some() {
            return Err(Error::AlreadyExists {
                what: "tenant".into(),
            });
        }
        let mut batch = WriteBatch::default();
        let t = i.alloc_iid(&mut batch)?;
        let kek = SecretKey::generate()?;
        // Tenant KEK wrapped by the root key provider.
        let place = KeyBuf::tag(codec::keys::TENANT_KEK)
            .u64(t)
            .u32(1)
            .into_vec();
        let header = WrapHeader {
            kind: codec::keys::TENANT_KEK,
            version: 1,
            parent_version: i.provider.current_version(),
        };
        let blob = i.provider.wrap(&kek, &header.aad(&place))?;
        batch.put_cf(&i.cf(cf::KEYS)?, &place, header.with_blob(&blob));
        let ready = ReadyKey::new(kek, 1);
        let rec = TenantRecord {
            name: name.to_string(),
            erasure_policy: options.erasure_policy,
            epoch_ms: options.epoch_ms,
            created_at_ms: now_ms(),
        };
        let place = KeyBuf::tag(codec::meta::TENANT).u64(t).into_vec();
        let sealed = envelope::seal_meta(
            &ready.cipher,
            MetaKind::Tenant,
            1,
            &place,
            &to_postcard(&rec)?,
        )?;
        batch.put_cf(&i.cf(cf::META)?, &place, sealed);
        batch.put_cf(&i.cf(cf::META)?, &dir, t.to_be_bytes());
        i.write_sync(batch, "creating a tenant")?;
        i.cache.insert(KeyId::TenantKek { t, v: 1 }, ready);
        Ok(TenantId(t))
    }

    /// Looks a tenant up by name. Errors: [`Error::NotFound`].
    pub fn tenant(&self, name: &str) -> Result<TenantId> {
        let i = &self.inner;
        match i.get(cf::META, &i.tenant_dir_entry(name))? {
            Some(v) => Ok(TenantId(be64(&v).ok_or_else(|| {
                Error::corrupt("tenant directory entry", "not 8 bytes")
            })?)),
            None => Err(Error::NotFound {
                what: "tenant".into(),
            }),
        }
    }

    /// Every tenant, by internal id order.
    pub fn tenants(&self) -> Result<Vec<TenantInfo>> {
        self.inner.rekey_retry(|| self.tenants_once())
    }

    fn tenants_once(&self) -> Result<Vec<TenantInfo>> {
        let i = &self.inner;
        let mut out = Vec::new();
        let snap = i.retention.current();
        let prefix = [codec::meta::TENANT];
        let mut it = i.prefix_iter(cf::META, &prefix)?;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let t = be64(&k[1..]).ok_or_else(|| Error::corrupt("tenant key", "bad length"))?;
            // Shredded tenants are not listed (their records can no longer be opened).
            if !snap.tenant(t).is_some_and(|tr| tr.shred.tenant) {
                out.push(i.tenant_info(t, k, v)?);
            }
            it.next();
        }
        it.status().map_err(Error::storage("listing tenants"))?;
        Ok(out)
    }

    // ------------------------------------------------------------------ users

    /// Creates a user in a tenant, with a fresh user key wrapped under the tenant KEK and the
    /// profile sealed under it. Errors: [`Error::AlreadyExists`], [`Error::NotFound`] (tenant).
    pub fn create_user(
        &self,
        tenant: TenantId,
        external_id: &str,
        profile: UserProfile,
    ) -> Result<UserId> {
        let i = &self.inner;
        if external_id.is_empty() {
            return Err(Error::InvalidInput("user id is empty".into()));
        }
        let ts = i.tenant_state(tenant.0)?;
        let _g = i.create_lock.lock();
        let dir = i.dir_entry(&ts, codec::meta::DIR_USER, external_id);
        if i.get(cf::META, &dir)?.is_some() {
            return Err(Error::AlreadyExists {
                what: "user".into(),
            });
        }
        let mut batch = WriteBatch::default();
        let u = i.alloc_iid(&mut batch)?;
        let kek = i.key(KeyId::TenantKek { t: ts.iid, v: 0 })?;
        let nk = i.new_wrapped_key(
            &kek,
            KeyBuf::tag(codec::keys::USER).u64(ts.iid).u64(u),
            codec::keys::USER,
        )?;
        batch.put_cf(&i.cf(cf::KEYS)?, &nk.place, &nk.wrapped);
        let ukey = nk.ready;
        let rec = UserRecord {
            external_id: external_id.to_string(),
            profile,
        };
        let mplace = KeyBuf::tag(codec::meta::USER).u64(ts.iid).u64(u).into_vec();
        let sealed = envelope::seal_meta(
            &ukey.cipher,
            MetaKind::UserV2,
            ukey.version,
            &mplace,
            &to_postcard(&rec)?,
        )?;
        batch.put_cf(&i.cf(cf::META)?, &mplace, sealed);
        batch.put_cf(&i.cf(cf::META)?, &dir, u.to_be_bytes());
        i.write_sync(batch, "creating a user")?;
        i.cache.insert(
            KeyId::User {
                t: ts.iid,
                u,
                v: ukey.version,
            },
            ukey.clone(),
        );
        i.cache.insert(KeyId::User { t: ts.iid, u, v: 0 }, ukey);
        Ok(UserId(u))
    }

    /// Looks a user up by external id. Errors: [`Error::NotFound`].
    pub fn user_id(&self, tenant: TenantId, external_id: &str) -> Result<UserId> {
        let ts = self.inner.tenant_state(tenant.0)?;
        self.inner
            .dir_lookup(&ts, codec::meta::DIR_USER, external_id, "user")
            .map(UserId)
    }

    /// A user's external id and profile. Errors: [`Error::NotFound`], [`Error::Shredded`].
    pub fn user(&self, tenant: TenantId, user: UserId) -> Result<UserInfo> {
        let rec = self.inner.read_user(tenant.0, user.0)?;
        Ok(UserInfo {
            id: user,
            external_id: rec.external_id,
            profile: rec.profile,
        })
    }

    // ------------------------------------------------------------------ conversations

    /// Creates a conversation with a fresh conversation key wrapped under the tenant KEK, and its
    /// initial members (each `(user, joined_at_ms)`).
    pub fn create_conversation(
        &self,
        tenant: TenantId,
        external_id: &str,
        kind: ConversationKind,
        title: Option<&str>,
        members: &[(UserId, i64)],
    ) -> Result<ConversationId> {
        let i = &self.inner;
        if external_id.is_empty() {
            return Err(Error::InvalidInput("conversation id is empty".into()));
        }
        let ts = i.tenant_state(tenant.0)?;
        let _g = i.create_lock.lock();
        let dir = i.dir_entry(&ts, codec::meta::DIR_CONV, external_id);
        if i.get(cf::META, &dir)?.is_some() {
            return Err(Error::AlreadyExists {
                what: "conversation".into(),
            });
        }
        let mut batch = WriteBatch::default();
        let c = i.alloc_iid(&mut batch)?;
        let kek = i.key(KeyId::TenantKek { t: ts.iid, v: 0 })?;
        let nk = i.new_wrapped_key(
            &kek,
            KeyBuf::tag(codec::keys::CONVERSATION).u64(ts.iid).u64(c),
            codec::keys::CONVERSATION,
        )?;
        batch.put_cf(&i.cf(cf::KEYS)?, &nk.place, &nk.wrapped);
        let ckey = nk.ready;
        let rec = ConversationRecord {
            external_id: external_id.to_string(),
            kind,
            title: title.map(str::to_string),
            created_at_ms: now_ms(),
        };
        let mplace = KeyBuf::tag(codec::meta::CONVERSATION)
            .u64(ts.iid)
            .u64(c)
            .into_vec();
        let sealed = envelope::seal_meta(
            &ckey.cipher,
            MetaKind::Conversation,
            ckey.version,
            &mplace,
            &to_postcard(&rec)?,
        )?;
        let meta = i.cf(cf::META)?;
        batch.put_cf(&meta, &mplace, sealed);
        batch.put_cf(&meta, &dir, c.to_be_bytes());
        for (u, joined) in members {
            i.put_member(&mut batch, &ckey, ts.iid, c, u.0, *joined, None)?;
        }
        i.write_sync(batch, "creating a conversation")?;
        i.cache.insert(
            KeyId::Conv {
                t: ts.iid,
                c,
                v: ckey.version,
            },
            ckey.clone(),
        );
        i.cache.insert(KeyId::Conv { t: ts.iid, c, v: 0 }, ckey);
        Ok(ConversationId(c))
    }

    /// Looks a conversation up by external id. Errors: [`Error::NotFound`].
    pub fn conversation_id(&self, tenant: TenantId, external_id: &str) -> Result<ConversationId> {
        let ts = self.inner.tenant_state(tenant.0)?;
        self.inner
            .dir_lookup(&ts, codec::meta::DIR_CONV, external_id, "conversation")
            .map(ConversationId)
    }

    /// One conversation's record.
    pub fn conversation(&self, tenant: TenantId, conv: ConversationId) -> Result<ConversationInfo> {
        self.inner
            .rekey_retry(|| self.conversation_once(tenant, conv))
    }

    fn conversation_once(
        &self,
        tenant: TenantId,
        conv: ConversationId,
    ) -> Result<ConversationInfo> {
        let i = &self.inner;
        i.tenant_state(tenant.0)?;
        i.check_conversation_alive(tenant.0, conv.0)?;
        let place = KeyBuf::tag(codec::meta::CONVERSATION)
            .u64(tenant.0)
            .u64(conv.0)
            .into_vec();
        let v = i.get(cf::META, &place)?.ok_or_else(|| Error::NotFound {
            what: format!("conversation {conv} of tenant {tenant}"),
        })?;
        i.conversation_info(tenant.0, &place, &v)
    }

    /// Adds a member (or re-adds one who left: the new join time replaces the old record).
    pub fn add_member(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        user: UserId,
        joined_at_ms: i64,
    ) -> Result<()> {
        let i = &self.inner;
        // Membership records are sealed under the conversation key: not while a purge
        // re-versions it (it holds `create_lock`).
        let _g = i.create_lock.lock();
        let ckey = i.key(KeyId::Conv {
            t: tenant.0,
            c: conv.0,
            v: 0,
        })?;
        i.user_key(tenant.0, user.0, 0)?;
        let mut batch = WriteBatch::default();
        i.put_member(
            &mut batch,
            &ckey,
            tenant.0,
            conv.0,
            user.0,
            joined_at_ms,
            None,
        )?;
        i.write(batch, "adding a member")
    }

    /// Records that a member left at `left_at_ms`.
    pub fn remove_member(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        user: UserId,
        left_at_ms: i64,
    ) -> Result<()> {
        let i = &self.inner;
        let m = self
            .members(tenant, conv)?
            .into_iter()
            .find(|m| m.user == user)
            .ok_or_else(|| Error::NotFound {
                what: format!("member {user} of conversation {conv}"),
            })?;
        let _g = i.create_lock.lock();
        let ckey = i.key(KeyId::Conv {
            t: tenant.0,
            c: conv.0,
            v: 0,
        })?;
        let mut batch = WriteBatch::default();
        i.put_member(
            &mut batch,
            &ckey,
            tenant.0,
            conv.0,
            user.0,
            m.joined_at_ms,
            Some(left_at_ms),
        )?;
        i.write(batch, "removing a member")
    }

    /// Members of a conversation (current and past), by user id.
    ///
    /// Errors: [`Error::Shredded`] (the conversation or its tenant is shredded: the membership
    /// records stay, sealed under the destroyed conversation key).
    pub fn members(&self, tenant: TenantId, conv: ConversationId) -> Result<Vec<Membership>> {
        // From the in-memory tombstones, before the records (whose key is gone) are read.
        self.inner.check_conversation_alive(tenant.0, conv.0)?;
        self.inner.rekey_retry(|| self.members_once(tenant, conv))
    }

    fn members_once(&self, tenant: TenantId, conv: ConversationId) -> Result<Vec<Membership>> {
        let i = &self.inner;
        let prefix = KeyBuf::tag(codec::meta::MEMBER)
            .u64(tenant.0)
            .u64(conv.0)
            .into_vec();
        let mut it = i.prefix_iter(cf::META, &prefix)?;
        let mut out = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let what = || format!("membership record of conversation {conv}");
            let u = be64(&k[17..]).ok_or_else(|| Error::corrupt(what(), "bad key"))?;
            let kv = envelope::meta_key_version(v, MetaKind::Member, what)?;
            let ckey = i.key(KeyId::Conv {
                t: tenant.0,
                c: conv.0,
                v: kv,
            })?;
            let pt = envelope::open_meta(&ckey.cipher, v, MetaKind::Member, k, what)?;
            let rec: MemberRecord = from_postcard(&pt, what)?;
            out.push(Membership {
                user: UserId(u),
                joined_at_ms: rec.joined_at_ms,
                left_at_ms: rec.left_at_ms,
            });
            it.next();
        }
        it.status().map_err(Error::storage("listing members"))?;
        Ok(out)
    }

    /// The conversations of a tenant, streamed in internal id order.
    pub fn conversations(
        &self,
        tenant: TenantId,
    ) -> Result<impl Iterator<Item = Result<ConversationInfo>> + '_> {
        let i = &self.inner;
        i.tenant_state(tenant.0)?;
        let prefix = KeyBuf::tag(codec::meta::CONVERSATION)
            .u64(tenant.0)
            .into_vec();
        // Before the iterator (and its implicit snapshot) exists: records it yields may predate
        // a re-versioning pass that starts later.
        let gen = i.rekey_generation.load(Ordering::Acquire);
        let it = i.prefix_iter(cf::META, &prefix)?;
        let snap = i.retention.current();
        // Shredded conversations are left out of the listing.
        Ok(
            RawIter::new(it, "listing conversations").filter_map(move |kv| {
                let r = kv.and_then(|(k, v)| {
                    let c = k.get(9..17).and_then(be64).unwrap_or(0);
                    if snap
                        .tenant(tenant.0)
                        .is_some_and(|tr| tr.shred.whole_conversation(c))
                    {
                        return Ok(None);
                    }
                    // Re-read once if a re-versioning pass replaced the record meanwhile.
                    let mut first = Some(v);
                    i.rekey_retry_since(gen, || {
                        let v = match first.take() {
                            Some(v) => v,
                            None => i.get(cf::META, &k)?.ok_or_else(|| Error::NotFound {
                                what: format!("conversation record #{c}"),
                            })?,
                        };
                        i.conversation_info(tenant.0, &k, &v)
                    })
                    .map(Some)
                });
                r.transpose()
            }),
        )
    }

    /// The conversations a user is or was a member of, streamed in internal id order.
    pub fn user_conversations(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<impl Iterator<Item = Result<ConversationId>> + '_> {
        let i = &self.inner;
        // A shredded tenant fails (`Shredded`); shredded conversations are left out.
        i.tenant_state(tenant.0)?;
        let snap = i.retention.current();
        let prefix = KeyBuf::tag(codec::meta::USER_CONV)
            .u64(tenant.0)
            .u64(user.0)
            .into_vec();
        let it = i.prefix_iter(cf::META, &prefix)?;
        Ok(RawIter::new(it, "listing a user's conversations")
            .map(|kv| {
                kv.and_then(|(k, _)| {
                    be64(&k[17..])
                        .map(ConversationId)
                        .ok_or_else(|| Error::corrupt("user-conversation index", "bad key"))
                })
            })
            .filter(move |c| match c {
                Ok(c) => !snap
                    .tenant(tenant.0)
                    .is_some_and(|tr| tr.shred.whole_conversation(c.0)),
                Err(_) => true,
            }))
    }

    // ------------------------------------------------------------------ messages

    /// Appends a message and returns its id, or [`Appended::NotStored`] when the conversation's
    /// history is off. The record, its time-index entry and the
    /// conversation's next-id counter are written in one WriteBatch (atomically).
    ///
    /// Errors: [`Error::MessageTooLarge`], [`Error::InvalidInput`] (time before 1970),
    /// [`Error::NotFound`] (conversation or author), [`Error::Shredded`].
    pub fn append(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        msg: NewMessage,
    ) -> Result<Appended> {
        Ok(
            match self.append_batch(tenant, conv, std::slice::from_ref(&msg))? {
                Appended::Stored(ids) => Appended::Stored(ids[0]),
                Appended::NotStored(r) => Appended::NotStored(r),
            },
        )
    }

    /// Appends several messages in one WriteBatch (all or none), in order, and returns their ids.
    /// Much faster than one `append` each for imports. Errors as [`Vault::append`]; a message
    /// that would already be expired gives [`Error::Expired`] and nothing is written.
    pub fn append_batch(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        msgs: &[NewMessage],
    ) -> Result<Appended<Vec<MessageId>>> {
        self.append_batch_with(tenant, conv, msgs, &mut |_, _| Ok(()))
    }

    /// [`Vault::append_batch`], with `extra` adding rows (the importers' external references,
    /// sealed under each message's DEK) to the same WriteBatch once the ids are known, so that
    /// they land atomically with the messages. `extra` gets each message's id and DEK.

    pub(crate) fn append_batch_with(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        msgs: &[NewMessage],
        extra: &mut dyn FnMut(&[(MessageId, Arc<ReadyKey>)], &mut WriteBatch) -> Result<()>,
    ) -> Result<Appended<Vec<MessageId>>> {
        let i = &self.inner;
        for m in msgs {
            i.check_new_message(m)?;
        }
        let ts = i.tenant_state(tenant.0)?;
        let cs = i.conv_state(tenant.0, conv.0)?;
        let snap = i.retention.current();
        if snap.effective(tenant.0, conv.0).history == History::Off {
            return Ok(Appended::NotStored(NotStoredReason::HistoryOff));
        }
        if msgs.is_empty() {
            return Ok(Appended::Stored(Vec::new()));
        }
        let now = i.opts.clock.now_ms();
        for m in msgs {
            if snap.is_shredded(tenant.0, conv.0, Some(m.author.0), m.sent_at_ms) {
                return Err(Error::Shredded {
                    what: format!(
                        "the author or the time window of a message for conversation {conv}"
                    ),
                });
            }
            if snap.is_expired(tenant.0, conv.0, Some(m.author.0), m.sent_at_ms, now) {
                return Err(Error::Expired {
                    what: format!(
                        "a message sent at {} ms in conversation {conv} (its retention has                          already ended)",
                        m.sent_at_ms
                    ),
                });
            }
        }
        // Until the batch is written: a data-key rotation waits for it (see `Inner::seal_lock`).
        let _sealing = i.seal_lock.read();
        let mut sealers = Vec::with_capacity(msgs.len());
        for m in msgs {
            sealers.push(i.writer_dek(&ts, conv.0, m.author.0, m.sent_at_ms)?);
        }
        let first = cs.next_id.fetch_add(msgs.len() as u64, Ordering::SeqCst);
        let mut batch = WriteBatch::default();
        let (mcf, tcf, meta) = (i.cf(cf::MESSAGES)?, i.cf(cf::TIME_INDEX)?, i.cf(cf::META)?);
        let mut ids = Vec::with_capacity(msgs.len());
        let mut deks = Vec::with_capacity(msgs.len());
        for (n, (m, (header, dek))) in msgs.iter().zip(sealers).enumerate() {
            let id = first + n as u64;
            let place = codec::message_key(tenant.0, conv.0, id);
            let payload = MessagePayload {
                author: m.author.0,
                sent_at_ms: m.sent_at_ms,
                kind: m.kind,
                body: m.body.clone(),
                reply_to: m.reply_to,
                also_reply_to: m.also_reply_to.clone(),
                attachments: m.attachments.clone(),
                edited_at_ms: None,
                deleted_at_ms: None,
            };
            let pt = zeroize::Zeroizing::new(to_postcard(&payload)?);
            let sealed = envelope::seal_record(&dek.cipher, &header, &place, &pt)?;
            batch.put_cf(&mcf, &place, sealed);
            // The index entry's value names the author when the header does (the compaction
            // filter needs it for custodian holds); empty otherwise.
            let author = if header.author != 0 {
                header.author.to_be_bytes().to_vec()
            } else {
                Vec::new()
            };
            batch.put_cf(
                &tcf,
                codec::time_key(tenant.0, conv.0, m.sent_at_ms, id),
                author,
            );
            ids.push(id);
            deks.push((id, dek));
        }
        let counter = KeyBuf::tag(codec::meta::NEXT_MSG_ID)
            .u64(tenant.0)
            .u64(conv.0)
            .into_vec();
        batch.merge_cf(&meta, counter, (first + msgs.len() as u64).to_le_bytes());
        extra(&deks, &mut batch)?;
        i.write(batch, "appending messages")?;
        Ok(Appended::Stored(ids))
    }

    /// Reads one message. Errors: [`Error::NotFound`], [`Error::Shredded`],
    /// [`Error::Authentication`], [`Error::Corrupt`], [`Error::UnsupportedFormat`].
    pub fn get(&self, tenant: TenantId, conv: ConversationId, id: MessageId) -> Result<Message> {
        let i = &self.inner;
        let place = codec::message_key(tenant.0, conv.0, id);
        // Read again if old key versions were retired between the read and the key lookup
        // (the record was re-sealed meanwhile).
        i.rekey_retry(|| match i.get(cf::MESSAGES, &place)? {
            Some(v) => i.open_message(tenant.0, conv.0, id, &place, &v),
            None => Err(i.missing_message(tenant.0, conv.0, id)?),
        })
    }

    /// Edits a message: the current revision moves to the `revisions` CF and the new body
    /// becomes the current one, in one WriteBatch. The edit stays in the message's epoch.
    /// Returns the new revision number. Errors as [`Vault::get`], plus
    /// [`Error::InvalidInput`] for a deleted message and [`Error::Shredded`] when its author
    /// is erased (under `AuthorErased` their messages stay readable, but nobody writes as
    /// them).
    pub fn edit(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        id: MessageId,
        new_body: &str,
        edited_at_ms: i64,
    ) -> Result<u32> {
        let i = &self.inner;
        if new_body.len() > i.opts.max_body_bytes {
            return Err(Error::MessageTooLarge {
                size: new_body.len(),
                limit: i.opts.max_body_bytes,
            });
        }
        let _g = i.edit_lock.lock();
        let cur = self.get(tenant, conv, id)?;
        if cur.deleted_at_ms.is_some() {
            return Err(Error::InvalidInput(format!("message {id} is deleted")));
        }
        let ts = i.tenant_state(tenant.0)?;
        let _sealing = i.seal_lock.read();
        let (header, dek) = i.writer_dek(&ts, conv.0, cur.author.0, cur.sent_at_ms)?;
        let mut batch = WriteBatch::default();
        // Old revision, sealed in place under the revisions CF.
        let old = i.keep_as_revision(&mut batch, tenant.0, conv.0, &cur, &header, &dek)?;
        let new_rev = cur.revision + 1;
        let place = codec::message_key(tenant.0, conv.0, id);
        let new = MessagePayload {
            body: new_body.to_string(),
            edited_at_ms: Some(edited_at_ms),
            ..old
        };
        let nheader = RecordHeader {
            revision: new_rev,
            ..header
        };
        batch.put_cf(
            &i.cf(cf::MESSAGES)?,
            &place,
            envelope::seal_record(&dek.cipher, &nheader, &place, &to_postcard(&new)?)?,
        );
        i.write(batch, "editing a message")?;
        Ok(new_rev)
    }

    /// Earlier revisions of a message, oldest first (the current one is [`Vault::get`]).
    pub fn revisions(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Vec<Revision>> {
        self.inner
            .rekey_retry(|| self.revisions_once(tenant, conv, id))
    }

    fn revisions_once(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Vec<Revision>> {
        let i = &self.inner;
        // Enforces not-found and expiry; a deleted message shows no revisions (under a legal
        // hold they are kept on disk, but never shown).
        if self.get(tenant, conv, id)?.deleted_at_ms.is_some() {
            return Ok(Vec::new());
        }
        let prefix = codec::message_key(tenant.0, conv.0, id);
        let mut it = i.prefix_iter(cf::REVISIONS, &prefix)?;
        let mut out = Vec::new();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let m = i.open_record(tenant.0, conv.0, id, k, v)?;
            out.push(Revision {
                revision: m.revision,
                written_at_ms: m.edited_at_ms.unwrap_or(m.sent_at_ms),
                body: m.body,
            });
            it.next();
        }
        it.status().map_err(Error::storage("reading revisions"))?;
        Ok(out)
    }

    /// Deletes a message: its body, attachments and every revision leave the read path at once
    /// (the record is replaced by a sealed deletion marker and the revisions are deleted, in one
    /// WriteBatch) and leave the disk at the next compaction ([`Vault::compact`]). Under a legal
    /// hold the original and its revisions are kept, hidden, until the hold is released.
    /// Errors as [`Vault::edit`] (a deleted message: nothing to do, `Ok`).
    pub fn delete(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        id: MessageId,
        deleted_at_ms: i64,
    ) -> Result<()> {
        let i = &self.inner;
        let _g = i.edit_lock.lock();
        let cur = self.get(tenant, conv, id)?;
        if cur.deleted_at_ms.is_some() {
            return Ok(());
        }
        let ts = i.tenant_state(tenant.0)?;
        let _sealing = i.seal_lock.read();
        let (header, dek) = i.writer_dek(&ts, conv.0, cur.author.0, cur.sent_at_ms)?;
        let mut batch = WriteBatch::default();
        let held = i
            .retention
            .current()
            .tenant(tenant.0)
            .is_some_and(|tr| tr.held(conv.0, Some(cur.author.0)));
        if held {
            // Under legal hold the original and its revisions are kept (hidden from readers)
            // until the hold is released: the current revision moves to the revisions CF.
            i.keep_as_revision(&mut batch, tenant.0, conv.0, &cur, &header, &dek)?;
        } else {
            let rprefix = codec::message_key(tenant.0, conv.0, id);
            let rend = prefix_successor(&rprefix).unwrap_or_default();
            batch.delete_range_cf(&i.cf(cf::REVISIONS)?, &rprefix, &rend);
        }
        let marker = MessagePayload {
            author: cur.author.0,
            sent_at_ms: cur.sent_at_ms,
            kind: cur.kind,
            body: String::new(),
            reply_to: cur.reply_to,
            also_reply_to: cur.also_reply_to.clone(),
            attachments: Vec::new(),
            edited_at_ms: None,
            deleted_at_ms: Some(deleted_at_ms),
        };
        let place = codec::message_key(tenant.0, conv.0, id);
        let dheader = RecordHeader {
            kind: RecordKind::Deleted,
            revision: cur.revision + 1,
            ..header
        };
        batch.put_cf(
            &i.cf(cf::MESSAGES)?,
            &place,
            envelope::seal_record(&dek.cipher, &dheader, &place, &to_postcard(&marker)?)?,
        );
        i.write(batch, "deleting a message")
    }

    /// Streams a conversation's messages by id, starting at `from` (inclusive; `None` = the
    /// first message in `direction`). Holds one RocksDB iterator and one message at a time.
    ///
    /// Errors (before anything is read): [`Error::NotFound`] for a conversation that is not
    /// the tenant's (another tenant's id included); [`Error::Shredded`].
    pub fn messages(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        from: Option<MessageId>,
        direction: Direction,
    ) -> Result<MessageIter<'_>> {
        let i = &self.inner;
        // Shredded, or not a conversation of this tenant (NotFound), before any iterator.
        i.conv_state(tenant.0, conv.0)?;
        let prefix = KeyBuf::new().u64(tenant.0).u64(conv.0).into_vec();
        // Before the iterator (and its implicit snapshot) exists.
        let gen = i.rekey_generation.load(Ordering::Acquire);
        let mut it = i.prefix_iter(cf::MESSAGES, &prefix)?;
        match (direction, from) {
            (Direction::Forward, Some(id)) => it.seek(codec::message_key(tenant.0, conv.0, id)),
            (Direction::Forward, None) => it.seek_to_first(),
            (Direction::Backward, Some(id)) => {
                it.seek_for_prev(codec::message_key(tenant.0, conv.0, id))
            }
            (Direction::Backward, None) => it.seek_to_last(),
        }
        Ok(MessageIter {
            inner: i,
            it,
            tenant: tenant.0,
            conv: conv.0,
            forward: direction == Direction::Forward,
            started: false,
            gen,
        })
    }

    /// A page of at most `limit` messages from `from` (inclusive) in `direction`; `next` is
    /// the id of the first message after it (for `limit = 0`: the first message from `from`).
    pub fn page(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        from: Option<MessageId>,
        direction: Direction,
        limit: usize,
    ) -> Result<Page> {
        let mut it = self.messages(tenant, conv, from, direction)?;
        if limit == 0 {
            // At most `limit` messages; `next` is where a page would start.
            let next = it.next().transpose()?.map(|m| m.id);
            return Ok(Page {
                messages: Vec::new(),
                next,
            });
        }
        let mut messages = Vec::with_capacity(limit.min(1024));
        for m in it.by_ref() {
            messages.push(m?);
            if messages.len() == limit {
                break;
            }
        }
        let next = if messages.len() == limit {
            it.next().transpose()?.map(|m| m.id)
        } else {
            None
        };
        Ok(Page { messages, next })
    }

    /// Streams the messages sent in `[start_ms, end_ms)` (UTC ms), oldest first, through the
    /// time index.
    pub fn messages_between(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<impl Iterator<Item = Result<Message>> + '_> {
        let i = &self.inner;
        i.conv_state(tenant.0, conv.0)?;
        let lower = KeyBuf::new()
            .u64(tenant.0)
            .u64(conv.0)
            .time(start_ms)
            .into_vec();
        let upper = KeyBuf::new()
            .u64(tenant.0)
            .u64(conv.0)
            .time(end_ms)
            .into_vec();
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(upper);
        let mut it = i.db.raw_iterator_cf_opt(&i.cf(cf::TIME_INDEX)?, ro);
        it.seek(&lower);
        Ok(
            RawIter::new(it, "reading the time index").filter_map(move |kv| {
                let r = kv.and_then(|(k, _)| {
                    let (_, _, _, id) = codec::decode_time_key(&k)
                        .ok_or_else(|| Error::corrupt("time index entry", "bad key length"))?;
                    self.get(tenant, conv, id).map(Some).or_else(|e| match e {
                        // An index entry whose message is gone, or expired, is skipped.
                        Error::NotFound { .. } | Error::Expired { .. } | Error::Shredded { .. } => {
                            Ok(None)
                        }
                        e => Err(e),
                    })
                });
                r.transpose()
            }),
        )
    }

    /// Number of message ids handed out in a conversation so far (the next id minus one).
    pub fn last_message_id(&self, tenant: TenantId, conv: ConversationId) -> Result<MessageId> {
        let cs = self.inner.conv_state(tenant.0, conv.0)?;
        Ok(cs.next_id.load(Ordering::SeqCst) - 1)
    }

    // ------------------------------------------------------------------ maintenance

    /// Flushes memtables to SST files and syncs the WAL.
    pub fn flush(&self) -> Result<()> {
        let i = &self.inner;
        i.writable("flushing")?;
        for name in cf::ALL {
            i.db.flush_cf(&i.cf(name)?)
                .map_err(Error::storage("flushing"))?;
        }
        i.db.flush_wal(true)
            .map_err(Error::storage("syncing the WAL"))
    }

    /// Flushes, then compacts every column family down to the bottommost level (RocksDB
    /// `CompactRange` with `BottommostLevelCompaction::Force`), so that deleted data leaves
    /// the SST files.
    pub fn compact(&self) -> Result<()> {
        self.compact_with_progress(&|_| {})
    }

    /// [`Vault::compact`], reporting its progress to `progress`: one stage per column family
    /// (`done` is 0 at its start, 1 once it is compacted; `total` is 1).
    ///
    /// Errors: as [`Vault::compact`].
    pub fn compact_with_progress(
        &self,
        progress: &dyn Fn(crate::progress::Progress<'_>),
    ) -> Result<()> {
        let i = &self.inner;
        i.writable("compacting")?;
        self.flush()?;
        let mut co = rocksdb::CompactOptions::default();
        co.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        co.set_exclusive_manual_compaction(false);
        let mut tick = crate::progress::Ticker::new(progress, cf::ALL.len() as u32);
        for name in cf::ALL {
            tick.stage(name, Some(1));
            i.db.compact_range_cf_opt(&i.cf(name)?, None::<&[u8]>, None::<&[u8]>, &co);
            tick.tick();
            tick.end_stage();
        }
        Ok(())
    }

    /// Storage figures per column family.
    pub fn stats(&self) -> Result<VaultStats> {
        let i = &self.inner;
        let mut column_families = Vec::new();
        for name in cf::ALL {
            let h = i.cf(name)?;
            let prop = |p: &str| -> Result<u64> {
                Ok(i.db
                    .property_int_value_cf(&h, p)
                    .map_err(Error::storage("reading statistics"))?
                    .unwrap_or(0))
            };
            column_families.push(CfStats {
                name,
                estimated_keys: prop("rocksdb.estimate-num-keys")?,
                sst_bytes: prop("rocksdb.total-sst-files-size")?,
                live_data_bytes: prop("rocksdb.estimate-live-data-size")?,
                memtable_bytes: prop("rocksdb.cur-size-all-mem-tables")?,
            });
        }
        Ok(VaultStats {
            column_families,
            cached_keys: i.cache.len(),
        })
    }
}

/// Figures for one column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfStats {
    /// Column family name.
    pub name: &'static str,
    /// RocksDB's estimate of live keys (`rocksdb.estimate-num-keys`).
    pub estimated_keys: u64,
    /// Bytes in SST files (`rocksdb.total-sst-files-size`).
    pub sst_bytes: u64,
    /// RocksDB's estimate of the bytes of live data in the SST files
    /// (`rocksdb.estimate-live-data-size`): what is left once overwritten and deleted entries
    /// are compacted away. `sst_bytes - live_data_bytes` ([`CfStats::dead_bytes`]) estimates
    /// the dead part (old versions, tombstones, shredded and expired records not yet compacted).
    pub live_data_bytes: u64,
    /// Bytes in memtables (`rocksdb.cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
}

impl CfStats {
    /// Estimated bytes of dead entries in the SST files: `sst_bytes - live_data_bytes`
    /// (0 if RocksDB's live estimate exceeds the file size).
    pub fn dead_bytes(&self) -> u64 {
        self.sst_bytes.saturating_sub(self.live_data_bytes)
    }
}

/// What [`Vault::stats`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultStats {
    /// Per column family.
    pub column_families: Vec<CfStats>,
    /// Unwrapped keys now in the key cache.
    pub cached_keys: usize,
}

/// Streams messages; see [`Vault::messages`].
pub struct MessageIter<'a> {
    inner: &'a Inner,
    it: DBRawIteratorWithThreadMode<'a, Db>,
    tenant: Iid,
    conv: Iid,
    forward: bool,
    started: bool,
    /// Key re-versioning generation before the iterator was made.
    gen: u64,
}

impl Iterator for MessageIter<'_> {
    type Item = Result<Message>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.started {
                if self.forward {
                    self.it.next();
                } else {
                    self.it.prev();
                }
            }
            self.started = true;
            if !self.it.valid() {
                return self
                    .it
                    .status()
                    .err()
                    .map(|e| Err(Error::storage("reading messages")(e)));
            }
            let (k, v) = (self.it.key()?, self.it.value()?);
            let Some((_, _, id)) = codec::decode_message_key(k) else {
                return Some(Err(Error::corrupt("message key", "bad length")));
            };
            let mut r = self.inner.open_message(self.tenant, self.conv, id, k, v);
            if matches!(
                r,
                Err(Error::Shredded { .. } | Error::NotFound { .. } | Error::Authentication { .. })
            ) {
                // The iterator's snapshot may predate a re-seal whose old key versions were
                // retired since (`rotate.rs`): read the record as it is now.
                drop(self.inner.rekey_lock.read());
                if self.inner.rekey_generation.load(Ordering::Acquire) != self.gen {
                    let k = k.to_vec();
                    r = match self.inner.get(cf::MESSAGES, &k) {
                        Ok(Some(now)) => {
                            self.inner
                                .open_message(self.tenant, self.conv, id, &k, &now)
                        }
                        Ok(None) => continue,
                        Err(e) => Err(e),
                    };
                }
            }
            match r {
                // Expired messages, and those of a shredded window or author, are left out of
                // every listing (a shredded conversation fails when the iterator is made).
                Err(Error::Expired { .. }) | Err(Error::Shredded { .. }) => continue,
                r => return Some(r),
            }
        }
    }
}

/// Adapts a raw iterator (already positioned) into owned `(key, value)` items.
pub(crate) struct RawIter<'a> {
    it: DBRawIteratorWithThreadMode<'a, Db>,
    op: &'static str,
    started: bool,
    done: bool,
}

impl<'a> RawIter<'a> {
    pub(crate) fn new(it: DBRawIteratorWithThreadMode<'a, Db>, op: &'static str) -> Self {
        RawIter {
            it,
            op,
            started: false,
            done: false,
        }
    }
}

impl Iterator for RawIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.started {
            self.it.next();
        }
        self.started = true;
        if !self.it.valid() {
            self.done = true;
            return self
                .it
                .status()
                .err()
                .map(|e| Err(Error::storage(self.op)(e)));
        }
        Some(Ok((self.it.key()?.to_vec(), self.it.value()?.to_vec())))
    }
}

impl Inner {
    /// Reads and opens a user record (either layout: `User` of format 1, or `UserV2`).
    pub(crate) fn read_user(&self, t: Iid, u: Iid) -> Result<UserRecord> {
        self.tenant_state(t)?;
        let (tenant, user) = (TenantId(t), UserId(u));
        if self
            .retention
            .current()
            .tenant(t)
            .is_some_and(|tr| tr.shred.users.contains(&u))
        {
            return Err(Error::Shredded {
                what: format!("user {user} of tenant {tenant}"),
            });
        }
        let place = KeyBuf::tag(codec::meta::USER).u64(t).u64(u).into_vec();
        let what = || format!("user {user} of tenant {tenant}");
        let v = self
            .get(cf::META, &place)?
            .ok_or_else(|| Error::NotFound { what: what() })?;
        let kind = match v.get(1).copied() {
            Some(b) if b == MetaKind::User as u8 => MetaKind::User,
            _ => MetaKind::UserV2,
        };
        let kv = envelope::meta_key_version(&v, kind, what)?;
        let ukey = self.key(KeyId::User { t, u, v: kv })?;
        let pt = envelope::open_meta(&ukey.cipher, &v, kind, &place, what)?;
        if kind == MetaKind::User {
            let old: UserRecordV1 = from_postcard(&pt, what)?;
            return Ok(UserRecord {
                external_id: old.external_id,
                profile: UserProfile::named(old.profile.display_name),
            });
        }
        from_postcard(&pt, what)
    }

    /// Seals `rec` as user `u`'s record (layout `UserV2`) under their current user key and puts
    /// it in `batch`.
    pub(crate) fn put_user(
        &self,
        batch: &mut WriteBatch,
        t: Iid,
        u: Iid,
        rec: &UserRecord,
    ) -> Result<()> {
        let ukey = self.user_key(t, u, 0)?;
        let place = KeyBuf::tag(codec::meta::USER).u64(t).u64(u).into_vec();
        let sealed = envelope::seal_meta(
            &ukey.cipher,
            MetaKind::UserV2,
            ukey.version,
            &place,
            &to_postcard(rec)?,
        )?;
        batch.put_cf(&self.cf(cf::META)?, place, sealed);
        Ok(())
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<Arc<BoundColumnFamily<'_>>> {
        self.db.cf_handle(name).ok_or_else(|| {
            Error::corrupt(
                format!("vault at {}", self.path.display()),
                format!("column family {name} is missing"),
            )
        })
    }

    pub(crate) fn get(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(&self.cf(cf_name)?, key)
            .map_err(Error::storage("reading"))
    }

    /// Refuses on a read-only secondary instance ([`Error::ReadOnlySecondary`]).
    pub(crate) fn writable(&self, op: crate::error::Op) -> Result<()> {
        match self.secondary {
            None => Ok(()),
            Some(_) => Err(Error::ReadOnlySecondary {
                path: self.path.clone(),
                op,
            }),
        }
    }

    pub(crate) fn write(&self, batch: WriteBatch, op: crate::error::Op) -> Result<()> {
        self.writable(op)?;
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(Error::storage(op))
    }

    pub(crate) fn write_sync(&self, batch: WriteBatch, op: crate::error::Op) -> Result<()> {
        self.writable(op)?;
        self.db
            .write_opt(batch, &self.sync_opts)
            .map_err(Error::storage(op))
    }

    /// A raw iterator bounded to keys starting with `prefix`, positioned at the first.
    pub(crate) fn prefix_iter(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
    ) -> Result<DBRawIteratorWithThreadMode<'_, Db>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        if let Some(up) = prefix_successor(prefix) {
            ro.set_iterate_upper_bound(up);
        }
        let mut it = self.db.raw_iterator_cf_opt(&self.cf(cf_name)?, ro);
        it.seek(prefix);
        Ok(it)
    }

    /// Allocates an internal id; the counter update goes in `batch`. Callers hold `create_lock`.
    pub(crate) fn alloc_iid(&self, batch: &mut WriteBatch) -> Result<u64> {
        let mut n = self.next_iid.lock();
        let id = *n;
        batch.merge_cf(
            &self.cf(cf::META)?,
            [codec::meta::NEXT_IID],
            (id + 1).to_le_bytes(),
        );
        // If the batch is never written the id is skipped, never reused.
        *n = id + 1;
        Ok(id)
    }

    pub(crate) fn tenant_dir_entry(&self, name: &str) -> Vec<u8> {
        KeyBuf::tag(codec::meta::TENANT_DIR)
            .bytes(&keys::blind_index(
                &self.tenant_dir_key,
                b"tenant",
                name.as_bytes(),
            ))
            .into_vec()
    }

    /// Looks an external id up in a tenant's directory (users or conversations).
    pub(crate) fn dir_lookup(
        &self,
        ts: &TenantState,
        sub: u8,
        external_id: &str,
        what: &str,
    ) -> Result<Iid> {
        match self.get(cf::META, &self.dir_entry(ts, sub, external_id))? {
            Some(v) => be64(&v)
                .ok_or_else(|| Error::corrupt(format!("{what} directory entry"), "not 8 bytes")),
            None => Err(Error::NotFound { what: what.into() }),
        }
    }

    pub(crate) fn dir_entry(&self, ts: &TenantState, sub: u8, external_id: &str) -> Vec<u8> {
        KeyBuf::tag(codec::meta::DIR)
            .u64(ts.iid)
            .u8(sub)
            .bytes(&keys::blind_index(
                &ts.dir_key,
                &[sub],
                external_id.as_bytes(),
            ))
            .into_vec()
    }

    /// `Shredded` if the tenant or the conversation has been shredded.
    pub(crate) fn check_conversation_alive(&self, t: Iid, c: Iid) -> Result<()> {
        let snap = self.retention.current();
        match snap.tenant(t) {
            Some(tr) if tr.shred.whole_conversation(c) => Err(Error::Shredded {
                what: format!("conversation #{c} of tenant #{t}"),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn tenant_state(&self, t: Iid) -> Result<Arc<TenantState>> {
        self.rekey_retry(|| self.tenant_state_once(t))
    }

    fn tenant_state_once(&self, t: Iid) -> Result<Arc<TenantState>> {
        if self
            .retention
            .current()
            .tenant(t)
            .is_some_and(|tr| tr.shred.tenant)
        {
            return Err(Error::Shredded {
                what: format!("tenant #{t}"),
            });
        }
        if let Some(s) = self.tenants.read().get(&t) {
            return Ok(s.clone());
        }
        let place = KeyBuf::tag(codec::meta::TENANT).u64(t).into_vec();
        let v = self.get(cf::META, &place)?.ok_or_else(|| Error::NotFound {
            what: format!("tenant #{t}"),
        })?;
        let what = || format!("tenant record #{t}");
        let kv = envelope::meta_key_version(&v, MetaKind::Tenant, what)?;
        let kek = self.key(KeyId::TenantKek { t, v: kv })?;
        let pt = envelope::open_meta(&kek.cipher, &v, MetaKind::Tenant, &place, what)?;
        let rec: TenantRecord = from_postcard(&pt, what)?;
        let state = Arc::new(TenantState {
            iid: t,
            dir_key: self.tenant_dir_key_of(t)?,
            policy: rec.erasure_policy,
            epoch_ms: rec.epoch_ms,
        });
        self.tenants.write().insert(t, state.clone());
        Ok(state)
    }

    /// The key of tenant `t`'s directory (blind index of conversation and user ids): the stored
    /// index key once the tenant KEK has been re-versioned, else derived from the current KEK.
    pub(crate) fn tenant_dir_key_of(&self, t: Iid) -> Result<SecretKey> {
        match self.key(KeyId::Index { t, v: 0 }) {
            Ok(k) => return Ok(k.key.clone()),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let current = self.key(KeyId::TenantKek { t, v: 0 })?;
        Ok(derived_dir_key(t, &current.key))
    }

    pub(crate) fn tenant_info(&self, t: Iid, place: &[u8], v: &[u8]) -> Result<TenantInfo> {
        let what = || format!("tenant record #{t}");
        let kv = envelope::meta_key_version(v, MetaKind::Tenant, what)?;
        let kek = self.key(KeyId::TenantKek { t, v: kv })?;
        let pt = envelope::open_meta(&kek.cipher, v, MetaKind::Tenant, place, what)?;
        let rec: TenantRecord = from_postcard(&pt, what)?;
        Ok(TenantInfo {
            id: TenantId(t),
            name: rec.name,
            erasure_policy: rec.erasure_policy,
            epoch_ms: rec.epoch_ms,
            created_at_ms: rec.created_at_ms,
        })
    }

    pub(crate) fn conversation_info(
        &self,
        t: Iid,
        place: &[u8],
        v: &[u8],
    ) -> Result<ConversationInfo> {
        let c = be64(&place[9..]).ok_or_else(|| Error::corrupt("conversation key", "bad key"))?;
        let what = || format!("conversation record #{c} of tenant #{t}");
        let kv = envelope::meta_key_version(v, MetaKind::Conversation, what)?;
        let ckey = self.key(KeyId::Conv { t, c, v: kv })?;
        let pt = envelope::open_meta(&ckey.cipher, v, MetaKind::Conversation, place, what)?;
        let rec: ConversationRecord = from_postcard(&pt, what)?;
        Ok(ConversationInfo {
            id: ConversationId(c),
            external_id: rec.external_id,
            kind: rec.kind,
            title: rec.title,
            created_at_ms: rec.created_at_ms,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_member(
        &self,
        batch: &mut WriteBatch,
        ckey: &ReadyKey,
        t: Iid,
        c: Iid,
        u: Iid,
        joined_at_ms: i64,
        left_at_ms: Option<i64>,
    ) -> Result<()> {
        let place = KeyBuf::tag(codec::meta::MEMBER)
            .u64(t)
            .u64(c)
            .u64(u)
            .into_vec();
        let rec = MemberRecord {
            joined_at_ms,
            left_at_ms,
        };
        let sealed = envelope::seal_meta(
            &ckey.cipher,
            MetaKind::Member,
            ckey.version,
            &place,
            &to_postcard(&rec)?,
        )?;
        let meta = self.cf(cf::META)?;
        batch.put_cf(&meta, &place, sealed);
        batch.put_cf(
            &meta,
            KeyBuf::tag(codec::meta::USER_CONV)
                .u64(t)
                .u64(u)
                .u64(c)
                .into_vec(),
            [],
        );
        Ok(())
    }

    pub(crate) fn conv_state(&self, t: Iid, c: Iid) -> Result<Arc<ConvState>> {
        self.check_conversation_alive(t, c)?;
        if let Some(s) = self.convs.read().get(&(t, c)) {
            return Ok(s.clone());
        }
        let mut w = self.convs.write();
        if let Some(s) = w.get(&(t, c)) {
            return Ok(s.clone());
        }
        let place = KeyBuf::tag(codec::meta::CONVERSATION)
            .u64(t)
            .u64(c)
            .into_vec();
        if self.get(cf::META, &place)?.is_none() {
            return Err(Error::NotFound {
                what: format!("conversation #{c} of tenant #{t}"),
            });
        }
        let counter = KeyBuf::tag(codec::meta::NEXT_MSG_ID)
            .u64(t)
            .u64(c)
            .into_vec();
        let next = self
            .get(cf::META, &counter)?
            .and_then(|v| codec::read_counter(&v))
            .unwrap_or(1)
            .max(1);
        let s = Arc::new(ConvState {
            next_id: AtomicU64::new(next),
        });
        w.insert((t, c), s.clone());
        Ok(s)
    }

    pub(crate) fn check_new_message(&self, m: &NewMessage) -> Result<()> {
        if m.body.len() > self.opts.max_body_bytes {
            return Err(Error::MessageTooLarge {
                size: m.body.len(),
                limit: self.opts.max_body_bytes,
            });
        }
        if m.sent_at_ms < 0 {
            return Err(Error::InvalidInput(format!(
                "sent_at_ms {} is before 1970-01-01T00:00:00Z",
                m.sent_at_ms
            )));
        }
        Ok(())
    }

    /// Creates a fresh random key, version 1, wrapped under `parent`, at `place_prefix | 1`.
    pub(crate) fn new_wrapped_key(
        &self,
        parent: &ReadyKey,
        place_prefix: KeyBuf,
        kind: u8,
    ) -> Result<NewKey> {
        let key = SecretKey::generate()?;
        let place = place_prefix.u32(1).into_vec();
        let header = WrapHeader {
            kind,
            version: 1,
            parent_version: parent.version,
        };
        let wrapped = envelope::wrap_key(&parent.cipher, &header, &place, &key)?;
        Ok(NewKey {
            place,
            wrapped,
            ready: ReadyKey::new(key, 1),
        })
    }

    pub(crate) fn user_key(&self, t: Iid, u: Iid, v: u32) -> Result<Arc<ReadyKey>> {
        self.key(KeyId::User { t, u, v })
    }

    /// The DEK and record header for writing a message by `author` at `sent_at_ms`. Creates the
    /// epoch key if this is the first message of its epoch.
    pub(crate) fn writer_dek(
        &self,
        ts: &TenantState,
        c: Iid,
        author: Iid,
        sent_at_ms: i64,
    ) -> Result<(RecordHeader, Arc<ReadyKey>)> {
        let t = ts.iid;
        let epoch = u32::try_from(sent_at_ms.max(0) as u64 / ts.epoch_ms).map_err(|_| {
            Error::InvalidInput(format!("sent_at_ms {sent_at_ms} is too far in the future"))
        })?;
        let ekey = match self.key(KeyId::Epoch {
            t,
            c,
            e: epoch,
            v: 0,
        }) {
            Ok(k) => k,
            Err(Error::NotFound { .. }) => self.create_epoch_key(t, c, epoch)?,
            Err(e) => return Err(e),
        };
        // The author must exist (and not be shredded) under either policy: writing (an
        // append, edit or deletion) as an erased user is `Shredded`, also under `AuthorErased`
        // where their messages stay readable.
        let ukey = self.user_key(t, author, 0).map_err(|e| match e {
            Error::NotFound { .. }
                if self
                    .retention
                    .current()
                    .tenant(t)
                    .is_some_and(|tr| tr.shred.users.contains(&author)) =>
            {
                Error::Shredded {
                    what: format!("author {} in tenant #{t} (erased)", UserId(author)),
                }
            }
            Error::NotFound { .. } => Error::NotFound {
                what: format!("author {} in tenant #{t}", UserId(author)),
            },
            e => e,
        })?;
        let (a, av) = match ts.policy {
            ErasurePolicy::MessagesUnreadable => (author, ukey.version),
            ErasurePolicy::AuthorErased => (0, 0),
        };
        let header = RecordHeader {
            kind: RecordKind::Message,
            revision: 0,
            epoch,
            epoch_version: ekey.version,
            author: a,
            author_version: av,
            sent_at_ms,
        };
        let dek = self.dek(t, c, epoch, ekey.version, a, av)?;
        Ok((header, dek))
    }

    pub(crate) fn create_epoch_key(&self, t: Iid, c: Iid, e: u32) -> Result<Arc<ReadyKey>> {
        let _g = self.create_lock.lock();
        // Another thread may have created it while we waited.
        match self.key(KeyId::Epoch { t, c, e, v: 0 }) {
            Ok(k) => return Ok(k),
            Err(Error::NotFound { .. }) => {}
            Err(err) => return Err(err),
        }
        let ckey = self.key(KeyId::Conv { t, c, v: 0 })?;
        let nk = self.new_wrapped_key(
            &ckey,
            KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c).u32(e),
            codec::keys::EPOCH,
        )?;
        let mut b = WriteBatch::default();
        b.put_cf(&self.cf(cf::KEYS)?, &nk.place, &nk.wrapped);
        let ekey = nk.ready;
        // Durable before any record sealed under it can be acknowledged.
        self.write_sync(b, "creating an epoch key")?;
        self.cache
            .insert(KeyId::Epoch { t, c, e, v: 0 }, ekey.clone());
        self.cache.insert(
            KeyId::Epoch {
                t,
                c,
                e,
                v: ekey.version,
            },
            ekey.clone(),
        );
        Ok(ekey)
    }

    /// The message DEK: `HKDF(epoch key [|| author key])`, see [`labels::MSG_DEK`].
    pub(crate) fn dek(
        &self,
        t: Iid,
        c: Iid,
        e: u32,
        ev: u32,
        a: Iid,
        av: u32,
    ) -> Result<Arc<ReadyKey>> {
        let id = KeyId::Dek { t, c, e, ev, a, av };
        if let Some(k) = self.cache.get(&id) {
            return Ok(k);
        }
        let ekey = self.key(KeyId::Epoch { t, c, e, v: ev })?;
        let mut info = KeyBuf::new().u64(t).u64(c).u32(e).u32(ev);
        let secret = if a != 0 {
            let ukey = self.user_key(t, a, av)?;
            info = info.u64(a).u32(av);
            keys::derive_key(&[&ekey.key, &ukey.key], labels::MSG_DEK, &info.0)
        } else {
            keys::derive_key(&[&ekey.key], labels::MSG_DEK, &info.0)
        };
        let k = ReadyKey::new(secret, 0);
        self.cache.insert(id, k.clone());
        Ok(k)
    }

    /// Runs `f`, and once more if it failed the way a read fails when a key re-versioning pass
    /// replaced what it read midway (a record read before the pass, its key looked up after):
    /// then it waits for the pass to end and reads again. For reads of metadata sealed under a
    /// key version that a pass may retire.
    pub(crate) fn rekey_retry<T>(&self, f: impl FnMut() -> Result<T>) -> Result<T> {
        self.rekey_retry_since(self.rekey_generation.load(Ordering::Acquire), f)
    }

    /// [`Inner::rekey_retry`] for a read whose data was fixed at an earlier moment (an
    /// iterator's implicit snapshot): `gen` is the generation read before that moment.
    pub(crate) fn rekey_retry_since<T>(
        &self,
        gen: u64,
        mut f: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        match f() {
            Err(
                e
                @ (Error::NotFound { .. } | Error::Shredded { .. } | Error::Authentication { .. }),
            ) => {
                // Waits for a pass in progress.
                drop(self.rekey_lock.read());
                if self.rekey_generation.load(Ordering::Acquire) != gen {
                    f()
                } else {
                    Err(e)
                }
            }
            r => r,
        }
    }

    /// Loads (and caches) a key. `v == 0` means the current (highest) version. A key that is not
    /// stored gives `NotFound`; callers that know the key must exist turn that into `Shredded`.
    ///
    /// A load that fails while a key re-versioning pass rewrites the key path (it read a child
    /// before the pass and its parent after) waits for the pass and retries once.
    pub(crate) fn key(&self, id: KeyId) -> Result<Arc<ReadyKey>> {
        if let Some(k) = self.cache.get(&id) {
            return Ok(k);
        }
        let gen = self.rekey_generation.load(Ordering::Acquire);
        match self.load_key(&id, gen) {
            Err(Error::NotFound { .. } | Error::Shredded { .. } | Error::Authentication { .. })
                if {
                    // Waits for a pass in progress.
                    drop(self.rekey_lock.read());
                    self.rekey_generation.load(Ordering::Acquire) != gen
                } =>
            {
                let gen = self.rekey_generation.load(Ordering::Acquire);
                self.load_key(&id, gen)
            }
            r => r,
        }
    }

    /// Loads a key from its stored bytes, authenticating it under its parent, whether or not
    /// it is cached (for `verify`).
    pub(crate) fn load_key_uncached(&self, id: &KeyId) -> Result<Arc<ReadyKey>> {
        self.load_key(id, self.rekey_generation.load(Ordering::Acquire))
    }

    fn load_key(&self, id: &KeyId, gen: u64) -> Result<Arc<ReadyKey>> {
        let id = id.clone();
        let (prefix, version, kind) = match &id {
            KeyId::TenantKek { t, v } => (
                KeyBuf::tag(codec::keys::TENANT_KEK).u64(*t),
                *v,
                codec::keys::TENANT_KEK,
            ),
            KeyId::Conv { t, c, v } => (
                KeyBuf::tag(codec::keys::CONVERSATION).u64(*t).u64(*c),
                *v,
                codec::keys::CONVERSATION,
            ),
            KeyId::Epoch { t, c, e, v } => (
                KeyBuf::tag(codec::keys::EPOCH).u64(*t).u64(*c).u32(*e),
                *v,
                codec::keys::EPOCH,
            ),
            KeyId::User { t, u, v } => (
                KeyBuf::tag(codec::keys::USER).u64(*t).u64(*u),
                *v,
                codec::keys::USER,
            ),
            KeyId::Index { t, v } => (
                KeyBuf::tag(codec::keys::INDEX).u64(*t),
                *v,
                codec::keys::INDEX,
            ),
            KeyId::Dek { .. } => {
                return Err(Error::InvalidInput("DEKs are derived, not stored".into()))
            }
        };
        let what = || format!("wrapped key {}", hex::encode(&prefix.0));
        let (place, value) = if version == 0 {
            // Highest version: the last key with this prefix.
            let mut ro = ReadOptions::default();
            ro.set_iterate_lower_bound(prefix.0.clone());
            if let Some(up) = prefix_successor(&prefix.0) {
                ro.set_iterate_upper_bound(up);
            }
            let mut it = self.db.raw_iterator_cf_opt(&self.cf(cf::KEYS)?, ro);
            it.seek_to_last();
            if !it.valid() {
                it.status().map_err(Error::storage("reading a key"))?;
                return Err(Error::NotFound { what: what() });
            }
            match (it.key(), it.value()) {
                (Some(k), Some(v)) => (k.to_vec(), v.to_vec()),
                _ => return Err(Error::NotFound { what: what() }),
            }
        } else {
            let place = prefix.clone().u32(version).into_vec();
            match self.get(cf::KEYS, &place)? {
                Some(v) => (place, v),
                None => return Err(Error::NotFound { what: what() }),
            }
        };
        let header = WrapHeader::decode(&value, what)?;
        if header.kind != kind {
            return Err(Error::corrupt(what(), "key kind does not match its place"));
        }
        let secret = match &id {
            KeyId::TenantKek { .. } => {
                let blob = &value[10..];
                self.provider
                    .unwrap(blob, &header.aad(&place))
                    .map_err(|e| match e {
                        keys::ProviderError::Authentication => {
                            Error::Authentication { what: what() }
                        }
                        e => e.into(),
                    })?
            }
            other => {
                let parent_id = match other {
                    KeyId::Conv { t, .. } | KeyId::User { t, .. } | KeyId::Index { t, .. } => {
                        KeyId::TenantKek {
                            t: *t,
                            v: header.parent_version,
                        }
                    }
                    KeyId::Epoch { t, c, .. } => KeyId::Conv {
                        t: *t,
                        c: *c,
                        v: header.parent_version,
                    },
                    _ => unreachable_key_id(),
                };
                let parent = self.key(parent_id).map_err(not_found_is_shredded)?;
                envelope::unwrap_key(&parent.cipher, &value, &place, what)?.1
            }
        };
        let ready = ReadyKey::new(secret, header.version);
        // Never cache what a re-versioning pass may have replaced meanwhile.
        let _r = self.rekey_lock.read();
        if self.rekey_generation.load(Ordering::Acquire) == gen {
            self.cache.insert(id.clone(), ready.clone());
        }
        Ok(ready)
    }

    /// Seals the current revision `cur` into the revisions CF (in `batch`) and returns its
    /// payload. Used by edits, and by deletions under a legal hold.
    pub(crate) fn keep_as_revision(
        &self,
        batch: &mut WriteBatch,
        t: Iid,
        c: Iid,
        cur: &Message,
        header: &RecordHeader,
        dek: &ReadyKey,
    ) -> Result<MessagePayload> {
        let rplace = codec::revision_key(t, c, cur.id, cur.revision);
        let old = MessagePayload {
            author: cur.author.0,
            sent_at_ms: cur.sent_at_ms,
            kind: cur.kind,
            body: cur.body.clone(),
            reply_to: cur.reply_to,
            also_reply_to: cur.also_reply_to.clone(),
            attachments: cur.attachments.clone(),
            edited_at_ms: cur.edited_at_ms,
            deleted_at_ms: None,
        };
        let rheader = RecordHeader {
            kind: RecordKind::Revision,
            revision: cur.revision,
            ..*header
        };
        batch.put_cf(
            &self.cf(cf::REVISIONS)?,
            &rplace,
            envelope::seal_record(&dek.cipher, &rheader, &rplace, &to_postcard(&old)?)?,
        );
        Ok(old)
    }

    /// The error for a message id with no record: `Expired` when the id was handed out and the
    /// conversation is under retention (a purge removed it; deletion leaves a marker, so nothing
    /// else removes records), `NotFound` otherwise.
    pub(crate) fn missing_message(&self, t: Iid, c: Iid, id: u64) -> Result<Error> {
        let what = format!("message {id} of conversation #{c} in tenant #{t}");
        // First: every id of a shredded conversation (0 included) is `Shredded`.
        let next_id = self.conv_state(t, c)?.next_id.load(Ordering::SeqCst);
        let handed_out = id >= 1 && id < next_id;
        let snap = self.retention.current();
        let under_retention = snap.tenant(t).is_some_and(|tr| {
            tr.watermark(c).is_some()
                || matches!(tr.effective(c).retention, crate::Retention::Period { .. })
        });
        let partly_shredded = snap.tenant(t).is_some_and(|tr| {
            !tr.shred.users.is_empty() || tr.shred.windows.iter().any(|w| w.0 == c)
        });
        Ok(if handed_out && under_retention {
            Error::Expired { what }
        } else if handed_out && partly_shredded {
            Error::Shredded { what }
        } else {
            Error::NotFound { what }
        })
    }

    pub(crate) fn open_message(
        &self,
        t: Iid,
        c: Iid,
        id: u64,
        place: &[u8],
        v: &[u8],
    ) -> Result<Message> {
        self.open_record(t, c, id, place, v)
    }

    pub(crate) fn open_record(
        &self,
        t: Iid,
        c: Iid,
        id: u64,
        place: &[u8],
        v: &[u8],
    ) -> Result<Message> {
        let what = || format!("message {id} of conversation #{c} in tenant #{t}");
        let h = RecordHeader::decode(v, what)?;
        // Expiry first, from the clear header: an expired record is never decrypted.
        let snap = self.retention.current();
        let now = self.opts.clock.now_ms();
        let header_author = (h.author != 0).then_some(h.author);
        if snap.is_shredded(t, c, header_author, h.sent_at_ms) {
            return Err(Error::Shredded { what: what() });
        }
        if snap.is_expired(t, c, header_author, h.sent_at_ms, now) {
            return Err(Error::Expired { what: what() });
        }
        if v.len() < RECORD_HEADER_LEN {
            return Err(Error::corrupt(what(), "truncated"));
        }
        let dek = self
            .dek(t, c, h.epoch, h.epoch_version, h.author, h.author_version)
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::Shredded { what: what() },
                e => e,
            })?;
        let pt = envelope::open_record(&dek.cipher, v, place, what)?;
        let p: MessagePayload = from_postcard(&pt, what)?;
        if h.author != 0 && h.author != p.author {
            return Err(Error::corrupt(
                what(),
                "author in header and payload differ",
            ));
        }
        if header_author.is_none() && snap.is_expired(t, c, Some(p.author), h.sent_at_ms, now) {
            return Err(Error::Expired { what: what() });
        }
        Ok(Message {
            id,
            author: UserId(p.author),
            sent_at_ms: p.sent_at_ms,
            body: p.body,
            kind: p.kind,
            reply_to: p.reply_to,
            also_reply_to: p.also_reply_to,
            attachments: p.attachments,
            revision: h.revision,
            edited_at_ms: p.edited_at_ms,
            deleted_at_ms: p.deleted_at_ms,
        })
    }
}

/// The directory key of a tenant that has no stored index key: HKDF of its KEK.
pub(crate) fn derived_dir_key(t: Iid, kek: &SecretKey) -> SecretKey {
    keys::derive_key(&[kek], labels::DIRECTORY, &t.to_be_bytes())
}

#[cold]
fn unreachable_key_id() -> KeyId {
    // Only called for the variants matched above; keep the type checker happy without panicking.
    KeyId::TenantKek { t: 0, v: u32::MAX }
}

fn not_found_is_shredded(e: Error) -> Error {
    match e {
        Error::NotFound { what } => Error::Shredded { what },
        e => e,
    }
}

pub(crate) fn to_postcard<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| Error::InvalidInput(format!("cannot encode record: {e}")))
}

pub(crate) fn from_postcard<T: serde::de::DeserializeOwned>(
    b: &[u8],
    what: impl Fn() -> String,
) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| Error::corrupt(what(), format!("payload: {e}")))
}

/// Now, UTC milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
