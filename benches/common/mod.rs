//! Shared by the comparison benchmarks (`benches/compare.rs`) and the peak-memory helper
//! (`benches/peak_memory.rs`): the IRC corpus, and the three engines doing the same work.
//!
//! - [`Chatvault`]: the engine itself (`Vault::append`, `Vault::get`, `Vault::page`,
//!   `import::import_irc_file`).
//! - [`RawRocks`]: raw RocksDB with chatvault's column families and options (`cf_options` and
//!   `db_options` of `src/vault.rs`, copied here), the same keys (`chatvault::codec`), the same
//!   index entries and counter merge in one WriteBatch per message, values of the plaintext size
//!   (the same postcard payload, not sealed): the limit for value-level encryption.
//! - [`SqlCipher`]: SQLCipher 4 through `rusqlite` (`bundled-sqlcipher`), `journal_mode=WAL`,
//!   `synchronous=NORMAL`, default cache and cipher settings, one INSERT per append in
//!   autocommit mode.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chatvault::codec::{self, KeyBuf};
use chatvault::import::irc::{self, IrcKind, IrcLog};
use chatvault::{
    Attachment, ConversationId, ConversationKind, Direction, MessageKind, NewMessage, SecretKey,
    StaticKeyProvider, TenantId, TenantOptions, UserId, UserProfile, Vault, VaultOptions,
};
use parking_lot::Mutex;
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize};

// ------------------------------------------------------------------------------------ corpus

/// Where the IRC corpus is: `CHATVAULT_CORPUS`, else `../shared/corpus/irc-disentanglement`
/// beside the repository (as `tests/corpus_acceptance.rs`). `None` if it is not there.
pub fn corpus_dir() -> Option<PathBuf> {
    let p = std::env::var_os("CHATVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/irc-disentanglement")
        });
    (p.join("ubuntu/dev").is_dir() && p.join("new-domains").is_dir()).then_some(p)
}

/// The bundled two-file sample (always in the repository).
pub fn sample_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/irc")
}

/// The log files the benchmarks use, and a label saying which: `ubuntu/dev` + `new-domains` of
/// the corpus, or the bundled sample when the corpus is missing. With
/// `CHATVAULT_BENCH_REQUIRE_CORPUS=1` (the report script sets it) a missing corpus is fatal.
pub fn bench_files() -> (String, Vec<PathBuf>) {
    match corpus_dir() {
        Some(c) => {
            let mut files = Vec::new();
            for part in ["ubuntu/dev", "new-domains"] {
                files.extend(chatvault::import::irc_log_files(&c.join(part)).unwrap());
            }
            (
                format!(
                    "IRC corpus ubuntu/dev + new-domains ({} files)",
                    files.len()
                ),
                files,
            )
        }
        None => {
            if std::env::var_os("CHATVAULT_BENCH_REQUIRE_CORPUS").is_some() {
                panic!(
                    "CHATVAULT_BENCH_REQUIRE_CORPUS is set but the IRC corpus is missing \
                     (expected ../shared/corpus/irc-disentanglement or CHATVAULT_CORPUS)"
                );
            }
            eprintln!("note: IRC corpus not found; using the bundled sample in tests/data/irc");
            (
                "bundled sample tests/data/irc (corpus missing)".into(),
                chatvault::import::irc_log_files(&sample_dir()).unwrap(),
            )
        }
    }
}

/// Parses one log file as the importer does.
pub fn parse_file(path: &Path) -> IrcLog {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let ann = irc::annotation_file_name(&name)
        .map(|a| path.with_file_name(a))
        .filter(|a| a.exists())
        .map(|a| std::fs::read_to_string(a).unwrap());
    irc::parse_log(&name, &text, ann.as_deref()).unwrap()
}

/// One message of the size source: a real body and kind, in corpus order.
#[derive(Clone)]
pub struct Line {
    pub body: String,
    pub kind: MessageKind,
}

/// Every message body of `files`, in order: the benchmarks cycle through them, so message sizes
/// follow the real distribution and every engine gets the same sequence.
pub fn lines(files: &[PathBuf]) -> Vec<Line> {
    let mut out = Vec::new();
    for f in files {
        for m in parse_file(f).messages {
            out.push(Line {
                body: m.body,
                kind: match m.kind {
                    IrcKind::Message => MessageKind::Text,
                    IrcKind::Action => MessageKind::Action,
                },
            });
        }
    }
    assert!(!out.is_empty());
    out
}

/// A deterministic permutation-ish sequence (xorshift) for random access patterns.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Start of a UTC day: appends stay in one epoch (steady state; epoch-key creation is measured
/// by the import).
pub const DAY0_MS: i64 = 1_700_006_400_000;

/// Number of authors of the benchmark conversations (each author has their own DEK per epoch).
pub const AUTHORS: usize = 16;

// ------------------------------------------------------------------------------------ engines

/// What every engine does for the benchmarks. `conv` indexes the engine's conversations (made
/// at setup), `author` its users.
pub trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    /// Appends one message; returns its id.
    fn append(&self, conv: usize, author: usize, sent_at_ms: i64, line: &Line) -> u64;
    /// Reads one message; returns its body length.
    fn get(&self, conv: usize, id: u64) -> usize;
    /// Reads 50 messages from `from` forward; returns the sum of body lengths.
    fn page(&self, conv: usize, from: u64) -> usize;
    /// The SQLCipher engine, for set-up shortcuts.
    fn as_sqlcipher(&self) -> Option<&SqlCipher> {
        None
    }
    /// Makes reads come from SST files and the block cache (or SQLite's pages), not a memtable.
    fn flush(&self) {}
}

/// Loads `n` messages into conversation `conv`, 1 s apart within one day, cycling through
/// `lines` and the authors.
pub fn load(e: &dyn Engine, conv: usize, lines: &[Line], n: usize) {
    for i in 0..n {
        e.append(
            conv,
            i % AUTHORS,
            DAY0_MS + (i as i64 % 86_400) * 1000,
            &lines[i % lines.len()],
        );
    }
    e.flush();
}

/// [`load`], but SQLCipher's rows go in one transaction (set-up speed only: the rows and pages
/// are the same).
pub fn load_bulk(e: &dyn Engine, conv: usize, lines: &[Line], n: usize) {
    if let Some(s) = e.as_sqlcipher() {
        s.conn.lock().execute_batch("BEGIN").unwrap();
        for i in 0..n {
            s.append(
                conv,
                i % AUTHORS,
                DAY0_MS + (i as i64 % 86_400) * 1000,
                &lines[i % lines.len()],
            );
        }
        s.conn.lock().execute_batch("COMMIT").unwrap();
    } else {
        load(e, conv, lines, n);
    }
}

// ---- chatvault

pub struct Chatvault {
    pub dir: PathBuf,
    pub vault: Vault,
    pub provider: Arc<StaticKeyProvider>,
    pub t: TenantId,
    pub convs: Vec<ConversationId>,
    pub users: Vec<UserId>,
}

impl Chatvault {
    /// A new vault in `dir` with one tenant, [`AUTHORS`] users and `convs` conversations.
    pub fn create(dir: &Path, convs: usize) -> Self {
        let provider = Arc::new(StaticKeyProvider::single(SecretKey::generate().unwrap()));
        let vault = Vault::create(dir, provider.clone(), VaultOptions::default()).unwrap();
        let t = vault
            .create_tenant("bench", TenantOptions::default())
            .unwrap();
        let users: Vec<UserId> = (0..AUTHORS)
            .map(|i| {
                vault
                    .create_user(
                        t,
                        &format!("user{i}"),
                        UserProfile::named(format!("User {i}")),
                    )
                    .unwrap()
            })
            .collect();
        let members: Vec<(UserId, i64)> = users.iter().map(|u| (*u, 0)).collect();
        let convs = (0..convs)
            .map(|i| {
                vault
                    .create_conversation(
                        t,
                        &format!("conv{i}"),
                        ConversationKind::Group,
                        None,
                        &members,
                    )
                    .unwrap()
            })
            .collect();
        Chatvault {
            dir: dir.to_path_buf(),
            vault,
            provider,
            t,
            convs,
            users,
        }
    }

    /// Closes and reopens the vault with `opts` (e.g. a key cache of one entry).
    pub fn reopen(self, opts: VaultOptions) -> Self {
        let Chatvault {
            dir,
            vault,
            provider,
            t,
            convs,
            users,
        } = self;
        drop(vault);
        let vault = Vault::open(&dir, provider.clone(), opts).unwrap();
        Chatvault {
            dir,
            vault,
            provider,
            t,
            convs,
            users,
        }
    }
}

impl Engine for Chatvault {
    fn name(&self) -> &'static str {
        "chatvault"
    }
    fn append(&self, conv: usize, author: usize, sent_at_ms: i64, line: &Line) -> u64 {
        let mut m = NewMessage::text(self.users[author], sent_at_ms, line.body.clone());
        m.kind = line.kind;
        self.vault
            .append(self.t, self.convs[conv], m)
            .unwrap()
            .stored()
            .unwrap()
    }
    fn get(&self, conv: usize, id: u64) -> usize {
        self.vault
            .get(self.t, self.convs[conv], id)
            .unwrap()
            .body
            .len()
    }
    fn page(&self, conv: usize, from: u64) -> usize {
        let p = self
            .vault
            .page(self.t, self.convs[conv], Some(from), Direction::Forward, 50)
            .unwrap();
        debug_assert_eq!(p.messages.len(), 50);
        p.messages.iter().map(|m| m.body.len()).sum()
    }
    fn flush(&self) {
        self.vault.flush().unwrap();
    }
}

// ---- raw RocksDB

/// The plaintext chatvault seals: the same fields in the same order, so postcard gives the same
/// bytes and sizes as `MessagePayload` in `src/model.rs`.
#[derive(Serialize, Deserialize)]
pub struct Payload {
    pub author: u64,
    pub sent_at_ms: i64,
    pub kind: MessageKind,
    pub body: String,
    pub reply_to: Option<u64>,
    pub also_reply_to: Vec<u64>,
    pub attachments: Vec<Attachment>,
    pub edited_at_ms: Option<i64>,
    pub deleted_at_ms: Option<i64>,
}

type Db = DBWithThreadMode<MultiThreaded>;

/// Column families, as `chatvault::cf::ALL`.
const CF_META: &str = "meta";
const CF_KEYS: &str = "keys";
const CF_MESSAGES: &str = "messages";
const CF_TIME: &str = "time_index";
const NEXT_MSG_ID: u8 = 0x08;

/// `cf_options` of `src/vault.rs`: no compression, bloom filters (10 bits/key) on messages,
/// keys and meta, one shared LRU block cache, the max-u64 merge operator on meta.
fn raw_cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut o = Options::default();
    o.set_compression_type(rocksdb::DBCompressionType::None);
    let mut b = BlockBasedOptions::default();
    b.set_block_cache(cache);
    if name == CF_MESSAGES || name == CF_KEYS || name == CF_META {
        b.set_bloom_filter(10.0, false);
    }
    o.set_block_based_table_factory(&b);
    if name == CF_META {
        o.set_merge_operator_associative("chatvault.max_u64.v1", codec::merge_max_u64);
    }
    o
}

/// `db_options` of `src/vault.rs`.
fn raw_db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(5);
    o.set_paranoid_checks(true);
    o
}

pub struct RawRocks {
    pub db: Db,
    write_opts: WriteOptions,
    t: u64,
    convs: Vec<(u64, AtomicU64)>,
    users: Vec<u64>,
    /// For the import: name → iid per tenant, and the next iid.
    dir: Mutex<HashMap<(u64, String), u64>>,
    next_iid: AtomicU64,
}

impl RawRocks {
    pub fn create(dir: &Path, convs: usize) -> Self {
        let cache = rocksdb::Cache::new_lru_cache(VaultOptions::default().block_cache_bytes);
        let cfs = chatvault::cf::ALL
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, raw_cf_options(n, &cache)));
        let db = Db::open_cf_descriptors(&raw_db_options(), dir, cfs).unwrap();
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(false);
        // Internal ids like chatvault's: tenant 1, users 2..=17, conversations after.
        let users = (0..AUTHORS as u64).map(|i| 2 + i).collect();
        let convs = (0..convs as u64)
            .map(|i| (2 + AUTHORS as u64 + i, AtomicU64::new(1)))
            .collect();
        RawRocks {
            db,
            write_opts,
            t: 1,
            convs,
            users,
            dir: Mutex::new(HashMap::new()),
            next_iid: AtomicU64::new(1),
        }
    }

    fn put_messages(&self, t: u64, c: u64, first: u64, msgs: &[Payload]) {
        let db = &self.db;
        let (mcf, tcf, meta) = (
            db.cf_handle(CF_MESSAGES).unwrap(),
            db.cf_handle(CF_TIME).unwrap(),
            db.cf_handle(CF_META).unwrap(),
        );
        let mut b = WriteBatch::default();
        for (n, p) in msgs.iter().enumerate() {
            let id = first + n as u64;
            b.put_cf(
                &mcf,
                codec::message_key(t, c, id),
                postcard::to_stdvec(p).unwrap(),
            );
            b.put_cf(&tcf, codec::time_key(t, c, p.sent_at_ms, id), []);
        }
        let counter = KeyBuf::tag(NEXT_MSG_ID).u64(t).u64(c).into_vec();
        b.merge_cf(&meta, counter, (first + msgs.len() as u64).to_le_bytes());
        db.write_opt(b, &self.write_opts).unwrap();
    }

    /// Streams a whole conversation in id order, decoding each payload: (messages, body bytes).
    pub fn scan(&self, conv: usize) -> (u64, u64) {
        let c = self.convs[conv].0;
        let prefix = KeyBuf::new().u64(self.t).u64(c).into_vec();
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.clone());
        ro.set_iterate_upper_bound(codec::prefix_successor(&prefix).unwrap());
        let mut it = self
            .db
            .raw_iterator_cf_opt(&self.db.cf_handle(CF_MESSAGES).unwrap(), ro);
        it.seek(&prefix);
        let (mut n, mut bytes) = (0, 0);
        while it.valid() {
            let p: Payload = postcard::from_bytes(it.value().unwrap()).unwrap();
            bytes += p.body.len() as u64;
            n += 1;
            it.next();
        }
        it.status().unwrap();
        (n, bytes)
    }

    /// A plaintext record in meta (the import's tenants, users, conversations, members).
    fn put_meta(&self, b: &mut WriteBatch, key: Vec<u8>, value: &[u8]) {
        b.put_cf(&self.db.cf_handle(CF_META).unwrap(), key, value);
    }

    fn iid(&self, t: u64, name: &str, create: impl FnOnce(u64)) -> u64 {
        let mut d = self.dir.lock();
        if let Some(i) = d.get(&(t, name.to_string())) {
            return *i;
        }
        let i = self.next_iid.fetch_add(1, Ordering::SeqCst);
        d.insert((t, name.to_string()), i);
        drop(d);
        create(i);
        i
    }
}

impl Engine for RawRocks {
    fn name(&self) -> &'static str {
        "rocksdb"
    }
    fn append(&self, conv: usize, author: usize, sent_at_ms: i64, line: &Line) -> u64 {
        let (c, next) = &self.convs[conv];
        let id = next.fetch_add(1, Ordering::SeqCst);
        let p = Payload {
            author: self.users[author],
            sent_at_ms,
            kind: line.kind,
            body: line.body.clone(),
            reply_to: None,
            also_reply_to: Vec::new(),
            attachments: Vec::new(),
            edited_at_ms: None,
            deleted_at_ms: None,
        };
        self.put_messages(self.t, *c, id, std::slice::from_ref(&p));
        id
    }
    fn get(&self, conv: usize, id: u64) -> usize {
        let c = self.convs[conv].0;
        let v = self
            .db
            .get_cf(
                &self.db.cf_handle(CF_MESSAGES).unwrap(),
                codec::message_key(self.t, c, id),
            )
            .unwrap()
            .unwrap();
        let p: Payload = postcard::from_bytes(&v).unwrap();
        p.body.len()
    }
    fn page(&self, conv: usize, from: u64) -> usize {
        let c = self.convs[conv].0;
        let prefix = KeyBuf::new().u64(self.t).u64(c).into_vec();
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.clone());
        ro.set_iterate_upper_bound(codec::prefix_successor(&prefix).unwrap());
        let mut it = self
            .db
            .raw_iterator_cf_opt(&self.db.cf_handle(CF_MESSAGES).unwrap(), ro);
        it.seek(codec::message_key(self.t, c, from));
        let mut sum = 0;
        for _ in 0..50 {
            assert!(it.valid());
            let p: Payload = postcard::from_bytes(it.value().unwrap()).unwrap();
            sum += p.body.len();
            it.next();
        }
        // The next page's first id, as `Page::next` (the key only).
        if it.valid() {
            std::hint::black_box(codec::decode_message_key(it.key().unwrap()));
        }
        sum
    }
    fn flush(&self) {
        for n in chatvault::cf::ALL {
            self.db.flush_cf(&self.db.cf_handle(n).unwrap()).unwrap();
        }
    }
}

// ---- SQLCipher

pub struct SqlCipher {
    pub conn: Mutex<rusqlite::Connection>,
    next: Vec<AtomicU64>,
}

/// The passphrase: `PRAGMA key` with a passphrase runs SQLCipher's default KDF (PBKDF2-HMAC-
/// SHA512, 256 000 iterations) once at open.
const SQLCIPHER_PASSPHRASE: &str = "chatvault-bench-passphrase";

impl SqlCipher {
    pub fn create(path: &Path, convs: usize) -> Self {
        let conn = Self::open_conn(path);
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                 conversation INTEGER NOT NULL,
                 id INTEGER NOT NULL,
                 author INTEGER NOT NULL,
                 sent_at INTEGER NOT NULL,
                 kind INTEGER NOT NULL,
                 body TEXT NOT NULL,
                 reply_to INTEGER,
                 also_reply_to TEXT,
                 PRIMARY KEY (conversation, id)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS messages_by_time ON messages (conversation, sent_at);
             CREATE TABLE IF NOT EXISTS tenants (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL,
                 external_id TEXT NOT NULL, display_name TEXT NOT NULL, UNIQUE (tenant, external_id));
             CREATE TABLE IF NOT EXISTS conversations (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL,
                 external_id TEXT NOT NULL, title TEXT, UNIQUE (tenant, external_id));
             CREATE TABLE IF NOT EXISTS members (conversation INTEGER NOT NULL, user INTEGER NOT NULL,
                 joined_at INTEGER NOT NULL, PRIMARY KEY (conversation, user)) WITHOUT ROWID;",
        )
        .unwrap();
        SqlCipher {
            conn: Mutex::new(conn),
            next: (0..convs).map(|_| AtomicU64::new(1)).collect(),
        }
    }

    pub fn open_conn(path: &Path) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.pragma_update(None, "key", SQLCIPHER_PASSPHRASE)
            .unwrap();
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn
    }

    /// The settings in force, as SQLCipher reports them (for the report).
    pub fn settings(&self) -> Vec<(String, String)> {
        let conn = self.conn.lock();
        let mut out = Vec::new();
        for p in [
            "cipher_version",
            "cipher_provider",
            "cipher_provider_version",
            "cipher_page_size",
            "kdf_iter",
            "cipher_hmac_algorithm",
            "cipher_kdf_algorithm",
            "cipher_use_hmac",
            "cipher_plaintext_header_size",
            "cipher_memory_security",
            "journal_mode",
            "synchronous",
            "cache_size",
            "page_size",
            "temp_store",
            "mmap_size",
        ] {
            let v: String = conn
                .query_row(&format!("PRAGMA {p}"), [], |r| {
                    let v: rusqlite::types::Value = r.get(0)?;
                    Ok(match v {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(s) => s,
                        rusqlite::types::Value::Real(f) => f.to_string(),
                        other => format!("{other:?}"),
                    })
                })
                .unwrap_or_else(|e| format!("(no value: {e})"));
            out.push((p.to_string(), v));
        }
        let sqlite: String = conn
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .unwrap();
        out.push(("sqlite_version()".into(), sqlite));
        out
    }
}

impl Engine for SqlCipher {
    fn name(&self) -> &'static str {
        "sqlcipher"
    }
    fn as_sqlcipher(&self) -> Option<&SqlCipher> {
        Some(self)
    }
    fn append(&self, conv: usize, author: usize, sent_at_ms: i64, line: &Line) -> u64 {
        let id = self.next[conv].fetch_add(1, Ordering::SeqCst);
        let conn = self.conn.lock();
        let mut st = conn
            .prepare_cached(
                "INSERT INTO messages (conversation, id, author, sent_at, kind, body, reply_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
            )
            .unwrap();
        st.execute(rusqlite::params![
            conv as i64,
            id as i64,
            author as i64,
            sent_at_ms,
            (line.kind == MessageKind::Action) as i64,
            line.body,
        ])
        .unwrap();
        id
    }
    fn get(&self, conv: usize, id: u64) -> usize {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT author, sent_at, kind, body, reply_to FROM messages
                 WHERE conversation = ?1 AND id = ?2",
            )
            .unwrap();
        st.query_row(rusqlite::params![conv as i64, id as i64], |r| {
            let _author: i64 = r.get(0)?;
            let _sent: i64 = r.get(1)?;
            let _kind: i64 = r.get(2)?;
            let body: String = r.get(3)?;
            let _reply: Option<i64> = r.get(4)?;
            Ok(body.len())
        })
        .unwrap()
    }
    fn page(&self, conv: usize, from: u64) -> usize {
        let conn = self.conn.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT id, author, sent_at, kind, body, reply_to FROM messages
                 WHERE conversation = ?1 AND id >= ?2 ORDER BY id LIMIT 50",
            )
            .unwrap();
        let mut rows = st
            .query(rusqlite::params![conv as i64, from as i64])
            .unwrap();
        let (mut n, mut sum) = (0, 0);
        while let Some(r) = rows.next().unwrap() {
            let _id: i64 = r.get(0).unwrap();
            let _author: i64 = r.get(1).unwrap();
            let _sent: i64 = r.get(2).unwrap();
            let _kind: i64 = r.get(3).unwrap();
            let body: String = r.get(4).unwrap();
            let _reply: Option<i64> = r.get(5).unwrap();
            sum += body.len();
            n += 1;
        }
        assert_eq!(n, 50);
        sum
    }
}

// ------------------------------------------------------------------------------------ import

/// Imports IRC log files as `chatvault import irc` does (one tenant per channel, one
/// conversation per file, one user per nick, messages in batches of
/// `chatvault::import::IMPORT_BATCH`), into each engine. Returns the messages written.
pub trait Importer {
    fn import_files(&self, files: &[PathBuf]) -> u64;
}

/// A new, empty vault in `dir` (for the import), and its root key provider.
pub fn empty_vault(dir: &Path) -> (Vault, Arc<StaticKeyProvider>) {
    let provider = Arc::new(StaticKeyProvider::single(SecretKey::generate().unwrap()));
    let vault = Vault::create(dir, provider.clone(), VaultOptions::default()).unwrap();
    (vault, provider)
}

impl Importer for Vault {
    fn import_files(&self, files: &[PathBuf]) -> u64 {
        let mut n = 0;
        for f in files {
            let r = chatvault::import::import_irc_file(self, f, |_| true).unwrap();
            assert!(r.completed);
            n += r.messages_written;
        }
        n
    }
}

/// Reply links of a parsed log as message ids (1-based, file order), as the importer maps them.
fn reply_ids(log: &IrcLog) -> Vec<(Option<u64>, Vec<u64>)> {
    let line_to_id: HashMap<u32, u64> = log
        .messages
        .iter()
        .enumerate()
        .map(|(n, m)| (m.line_no, n as u64 + 1))
        .collect();
    log.messages
        .iter()
        .map(|m| {
            (
                m.reply_to_line.and_then(|l| line_to_id.get(&l).copied()),
                m.other_reply_to_lines
                    .iter()
                    .filter_map(|l| line_to_id.get(l).copied())
                    .collect(),
            )
        })
        .collect()
}

fn kind_of(k: IrcKind) -> MessageKind {
    match k {
        IrcKind::Message => MessageKind::Text,
        IrcKind::Action => MessageKind::Action,
    }
}

impl Importer for RawRocks {
    /// The same message writes as chatvault's import (records, time index, counter merge, in
    /// WriteBatches of `IMPORT_BATCH`, sync = false), plus plaintext tenant, user, conversation
    /// and member records with a name → id directory (sync = false: with no keys to make durable
    /// first, a plaintext store has no reason to fsync them).
    fn import_files(&self, files: &[PathBuf]) -> u64 {
        let mut n = 0;
        for f in files {
            let log = parse_file(f);
            let t = self.iid(0, &log.channel, |i| {
                let mut b = WriteBatch::default();
                self.put_meta(
                    &mut b,
                    KeyBuf::tag(0x01).u64(i).into_vec(),
                    log.channel.as_bytes(),
                );
                self.put_meta(
                    &mut b,
                    KeyBuf::tag(0x06).bytes(log.channel.as_bytes()).into_vec(),
                    &i.to_be_bytes(),
                );
                self.db.write_opt(b, &self.write_opts).unwrap();
            });
            let mut users: HashMap<&str, u64> = HashMap::new();
            let mut members = Vec::new();
            for m in &log.messages {
                if users.contains_key(m.nick.as_str()) {
                    continue;
                }
                let u = self.iid(t, &m.nick, |i| {
                    let mut b = WriteBatch::default();
                    self.put_meta(
                        &mut b,
                        KeyBuf::tag(0x05).u64(t).u64(i).into_vec(),
                        m.nick.as_bytes(),
                    );
                    self.put_meta(
                        &mut b,
                        KeyBuf::tag(0x07)
                            .u64(t)
                            .u8(0x02)
                            .bytes(m.nick.as_bytes())
                            .into_vec(),
                        &i.to_be_bytes(),
                    );
                    self.db.write_opt(b, &self.write_opts).unwrap();
                });
                users.insert(m.nick.as_str(), u);
                members.push((u, m.sent_at_ms));
            }
            let c = self.iid(t, &format!("conv:{}", log.conversation), |i| {
                let mut b = WriteBatch::default();
                self.put_meta(
                    &mut b,
                    KeyBuf::tag(0x02).u64(t).u64(i).into_vec(),
                    log.conversation.as_bytes(),
                );
                self.put_meta(
                    &mut b,
                    KeyBuf::tag(0x07)
                        .u64(t)
                        .u8(0x01)
                        .bytes(log.conversation.as_bytes())
                        .into_vec(),
                    &i.to_be_bytes(),
                );
                for (u, joined) in &members {
                    self.put_meta(
                        &mut b,
                        KeyBuf::tag(0x03).u64(t).u64(i).u64(*u).into_vec(),
                        &joined.to_be_bytes(),
                    );
                    self.put_meta(
                        &mut b,
                        KeyBuf::tag(0x04).u64(t).u64(*u).u64(i).into_vec(),
                        &[],
                    );
                }
                self.db.write_opt(b, &self.write_opts).unwrap();
            });
            let replies = reply_ids(&log);
            let mut next = 1u64;
            for (chunk, rchunk) in log
                .messages
                .chunks(chatvault::import::IMPORT_BATCH)
                .zip(replies.chunks(chatvault::import::IMPORT_BATCH))
            {
                let batch: Vec<Payload> = chunk
                    .iter()
                    .zip(rchunk)
                    .map(|(m, (r, also))| Payload {
                        author: users[m.nick.as_str()],
                        sent_at_ms: m.sent_at_ms,
                        kind: kind_of(m.kind),
                        body: m.body.clone(),
                        reply_to: *r,
                        also_reply_to: also.clone(),
                        attachments: Vec::new(),
                        edited_at_ms: None,
                        deleted_at_ms: None,
                    })
                    .collect();
                self.put_messages(t, c, next, &batch);
                next += batch.len() as u64;
            }
            n += log.messages.len() as u64;
        }
        n
    }
}

impl Importer for SqlCipher {
    /// One transaction for a file's tenant, users, conversation and members, then one
    /// transaction per `IMPORT_BATCH` messages (prepared INSERTs).
    fn import_files(&self, files: &[PathBuf]) -> u64 {
        let mut conn = self.conn.lock();
        let mut n = 0;
        for f in files {
            let log = parse_file(f);
            let tx = conn.transaction().unwrap();
            tx.execute(
                "INSERT OR IGNORE INTO tenants (name) VALUES (?1)",
                [&log.channel],
            )
            .unwrap();
            let t: i64 = tx
                .query_row(
                    "SELECT id FROM tenants WHERE name = ?1",
                    [&log.channel],
                    |r| r.get(0),
                )
                .unwrap();
            let mut users: HashMap<&str, i64> = HashMap::new();
            let mut members = Vec::new();
            for m in &log.messages {
                if users.contains_key(m.nick.as_str()) {
                    continue;
                }
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO users (tenant, external_id, display_name)
                     VALUES (?1, ?2, ?2)",
                )
                .unwrap()
                .execute(rusqlite::params![t, m.nick])
                .unwrap();
                let u: i64 = tx
                    .prepare_cached("SELECT id FROM users WHERE tenant = ?1 AND external_id = ?2")
                    .unwrap()
                    .query_row(rusqlite::params![t, m.nick], |r| r.get(0))
                    .unwrap();
                users.insert(m.nick.as_str(), u);
                members.push((u, m.sent_at_ms));
            }
            tx.execute(
                "INSERT INTO conversations (tenant, external_id, title) VALUES (?1, ?2, ?2)",
                rusqlite::params![t, log.conversation],
            )
            .unwrap();
            let c = tx.last_insert_rowid();
            for (u, joined) in &members {
                tx.prepare_cached(
                    "INSERT INTO members (conversation, user, joined_at) VALUES (?1, ?2, ?3)",
                )
                .unwrap()
                .execute(rusqlite::params![c, u, joined])
                .unwrap();
            }
            tx.commit().unwrap();
            let replies = reply_ids(&log);
            let mut id = 1i64;
            for (chunk, rchunk) in log
                .messages
                .chunks(chatvault::import::IMPORT_BATCH)
                .zip(replies.chunks(chatvault::import::IMPORT_BATCH))
            {
                let tx = conn.transaction().unwrap();
                {
                    let mut st = tx
                        .prepare_cached(
                            "INSERT INTO messages (conversation, id, author, sent_at, kind, body,
                             reply_to, also_reply_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )
                        .unwrap();
                    for (m, (r, also)) in chunk.iter().zip(rchunk) {
                        let also = (!also.is_empty()).then(|| {
                            also.iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        });
                        st.execute(rusqlite::params![
                            c,
                            id,
                            users[m.nick.as_str()],
                            m.sent_at_ms,
                            (m.kind == IrcKind::Action) as i64,
                            m.body,
                            r.map(|r| r as i64),
                            also,
                        ])
                        .unwrap();
                        id += 1;
                    }
                }
                tx.commit().unwrap();
            }
            n += log.messages.len() as u64;
        }
        n
    }
}

/// Writes `key = value` lines to `$CHATVAULT_BENCH_INFO` (if set), for the report.
pub fn record_info(lines: &[(String, String)]) {
    let Some(path) = std::env::var_os("CHATVAULT_BENCH_INFO") else {
        return;
    };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for (k, v) in lines {
        writeln!(f, "{k}\t{v}").unwrap();
    }
}
