//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault::{
    ConversationId, ConversationKind, SecretKey, StaticKeyProvider, TenantId, TenantOptions,
    UserId, UserProfile, Vault, VaultOptions,
};

/// A fresh random root key provider whose added versions live in memory (purges after shreds
/// re-version key paths; the tests that need a durable key file make one).
pub fn provider() -> Arc<StaticKeyProvider> {
    Arc::new(StaticKeyProvider::ephemeral(
        SecretKey::generate().expect("OS randomness"),
    ))
}

/// A new vault in a temporary directory (kept alive by the returned guard).
pub fn new_vault() -> (tempfile::TempDir, Vault, Arc<StaticKeyProvider>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = provider();
    let v = Vault::create(dir.path().join("data"), p.clone(), VaultOptions::default())
        .expect("create vault");
    (dir, v, p)
}

/// A tenant with one conversation and two members.
pub struct Fixture {
    pub t: TenantId,
    pub c: ConversationId,
    pub alice: UserId,
    pub bob: UserId,
}

pub fn fixture(v: &Vault, tenant: &str, opts: TenantOptions) -> Fixture {
    let t = v.create_tenant(tenant, opts).expect("tenant");
    let alice = v
        .create_user(t, "alice@example.org", UserProfile::named("Alice Example"))
        .expect("alice");
    let bob = v
        .create_user(t, "bob@example.org", UserProfile::named("Bob Example"))
        .expect("bob");
    let c = v
        .create_conversation(
            t,
            "general",
            ConversationKind::Group,
            Some("General"),
            &[(alice, 0), (bob, 0)],
        )
        .expect("conversation");
    Fixture { t, c, alice, bob }
}

/// Opens the vault's RocksDB directly (the vault must be closed), for tests that tamper with
/// stored bytes the way an attacker with the data directory could.
pub fn open_raw(path: &Path) -> rocksdb::DB {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(false);
    let cfs: Vec<_> = chatvault::cf::ALL
        .iter()
        .map(|n| {
            let mut co = rocksdb::Options::default();
            if *n == chatvault::cf::META {
                co.set_merge_operator_associative(
                    "chatvault.max_u64.v1",
                    chatvault::codec::merge_max_u64,
                );
            }
            rocksdb::ColumnFamilyDescriptor::new(*n, co)
        })
        .collect();
    rocksdb::DB::open_cf_descriptors(&o, path, cfs).expect("open raw db")
}

/// The bundled IRC sample (in the repository).
pub fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/irc")
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Imports every IRC log under `dir`, then reads every conversation back and checks it against
/// the parsed input: same messages, same order, byte for byte (body, author, time, kind,
/// reply-to). Returns (files, messages, import seconds).
pub fn import_and_verify(v: &Vault, dir: &Path) -> (usize, u64, f64) {
    use chatvault::import::{self, irc};
    let files = import::irc_log_files(dir).expect("list logs");
    assert!(!files.is_empty(), "no IRC logs under {}", dir.display());
    let start = std::time::Instant::now();
    for f in &files {
        let r = import::import_irc_file(v, f, |_| true).expect("import");
        assert!(r.completed);
    }
    let secs = start.elapsed().as_secs_f64();
    let mut total = 0u64;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        let ann = irc::annotation_file_name(name)
            .map(|a| f.with_file_name(a))
            .filter(|a| a.exists())
            .map(|a| std::fs::read_to_string(a).unwrap());
        let log = irc::parse_log(name, &text, ann.as_deref()).expect("parse");
        let t = v.tenant(&log.channel).expect("tenant");
        let c = v
            .conversation_id(t, &log.conversation)
            .expect("conversation");
        let line_to_id: std::collections::HashMap<u32, u64> = log
            .messages
            .iter()
            .enumerate()
            .map(|(n, m)| (m.line_no, n as u64 + 1))
            .collect();
        let mut nicks = std::collections::HashMap::new();
        let mut stored = v
            .messages(t, c, None, chatvault::Direction::Forward)
            .unwrap();
        for (n, want) in log.messages.iter().enumerate() {
            let got = stored
                .next()
                .unwrap_or_else(|| panic!("{name}: message {} missing", n + 1))
                .unwrap();
            assert_eq!(got.id, n as u64 + 1, "{name}: id");
            assert_eq!(
                got.body.as_bytes(),
                want.body.as_bytes(),
                "{name}: body of line {}",
                want.line_no
            );
            assert_eq!(
                got.sent_at_ms, want.sent_at_ms,
                "{name}: time of line {}",
                want.line_no
            );
            let kind = match want.kind {
                irc::IrcKind::Message => chatvault::MessageKind::Text,
                irc::IrcKind::Action => chatvault::MessageKind::Action,
            };
            assert_eq!(got.kind, kind, "{name}: kind of line {}", want.line_no);
            assert_eq!(
                got.reply_to,
                want.reply_to_line.map(|l| line_to_id[&l]),
                "{name}: reply-to of line {}",
                want.line_no
            );
            assert_eq!(
                got.also_reply_to,
                want.other_reply_to_lines
                    .iter()
                    .map(|l| line_to_id[l])
                    .collect::<Vec<_>>(),
                "{name}: other parents of line {}",
                want.line_no
            );
            let nick = nicks
                .entry(got.author)
                .or_insert_with(|| v.user(t, got.author).unwrap().external_id);
            assert_eq!(nick, &want.nick, "{name}: author of line {}", want.line_no);
            total += 1;
        }
        assert!(stored.next().is_none(), "{name}: extra messages stored");
    }
    (files.len(), total, secs)
}

/// A new vault on a fake clock.
pub fn new_vault_with_clock(
    start_ms: i64,
) -> (
    tempfile::TempDir,
    Vault,
    Arc<StaticKeyProvider>,
    Arc<chatvault::FakeClock>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = provider();
    let clock = chatvault::FakeClock::new(start_ms);
    let v =
        Vault::create(dir.path().join("data"), p.clone(), options(&clock)).expect("create vault");
    (dir, v, p, clock)
}

/// Vault options on the given fake clock.
pub fn options(clock: &Arc<chatvault::FakeClock>) -> VaultOptions {
    VaultOptions {
        clock: clock.clone(),
        ..VaultOptions::default()
    }
}

pub const DAY: i64 = 86_400_000;
pub const HOUR: i64 = 3_600_000;

/// Checks that the bundled rust sample reads back exactly from `v` (imported earlier).
pub fn import_and_verify_rust_only(v: &Vault) {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("new-domains");
    std::fs::create_dir(&sub).unwrap();
    for n in ["rust.0.ascii.txt", "rust.0.annotation.txt"] {
        std::fs::copy(sample_dir().join("new-domains").join(n), sub.join(n)).unwrap();
    }
    // Re-importing writes nothing (it is all there) and the read-back check passes.
    let (_, msgs, _) = import_and_verify(v, dir.path());
    assert_eq!(msgs, 1200);
}

/// The `chatvault` binary on one vault: every command gets `--data DATA --key-file KEY`, and none
/// of the root key, data, key file or log variables of the environment.
pub struct Cli {
    _dir: Option<tempfile::TempDir>,
    pub data: PathBuf,
    pub key: PathBuf,
}

impl Cli {
    /// The vault at `data` with the key file `key` (neither needs to exist yet).
    pub fn at(data: &Path, key: &Path) -> Cli {
        Cli {
            _dir: None,
            data: data.to_path_buf(),
            key: key.to_path_buf(),
        }
    }

    /// A new vault (`chatvault init`) in a temporary directory, with the bundled IRC sample
    /// imported (2 files, 2420 messages).
    pub fn with_sample() -> Cli {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cli = Cli::at(&dir.path().join("data"), &dir.path().join("root.key"));
        cli._dir = Some(dir);
        cli.ok(&["init"]);
        let out = cli.ok(&["import", "irc", sample_dir().to_str().expect("utf-8 path")]);
        assert!(
            out.contains("imported 2 files") && out.contains("2420 messages written"),
            "{out}"
        );
        cli
    }

    /// A path beside the vault's data directory (for checkpoints, exports, restores).
    pub fn path(&self, name: &str) -> PathBuf {
        self.data.parent().unwrap_or(Path::new(".")).join(name)
    }

    /// Runs `chatvault ARGS`.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_on(&self.data, args)
    }

    /// Runs `chatvault ARGS` on another data directory, with this vault's key file.
    pub fn run_on(&self, data: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatvault"))
            .args(args)
            .arg("--data")
            .arg(data)
            .arg("--key-file")
            .arg(&self.key)
            .env_remove("CHATVAULT_ROOT_KEY")
            .env_remove("CHATVAULT_DATA")
            .env_remove("CHATVAULT_KEY_FILE")
            .env_remove("CHATVAULT_LOG")
            .output()
            .expect("run chatvault")
    }

    /// The key file's `VERSION:HEX` lines, comma-separated: the root key as
    /// CHATVAULT_ROOT_KEY takes it.
    pub fn root_key_env_value(&self) -> String {
        let text = std::fs::read_to_string(&self.key).expect("key file");
        text.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && l.contains(':'))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `chatvault ARGS` with the root key in CHATVAULT_ROOT_KEY (which cannot get new
    /// versions) instead of the key file, and `extra` variables.
    pub fn run_with_env_key(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_chatvault"));
        c.args(args)
            .arg("--data")
            .arg(&self.data)
            .env("CHATVAULT_ROOT_KEY", self.root_key_env_value())
            .env_remove("CHATVAULT_KEY_FILE")
            .env_remove("CHATVAULT_DATA")
            .env_remove("CHATVAULT_LOG");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().expect("run chatvault")
    }

    /// Runs, expects success and exactly one JSON object on one line of stdout (`--json`).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        assert_eq!(
            out.lines().count(),
            1,
            "one JSON object on one line:\n{out}"
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Runs; returns the exit code and stdout followed by stderr.
    pub fn out(&self, args: &[&str]) -> (Option<i32>, String) {
        let o = self.run(args);
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// Runs, expects success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_on(&self.data, args)
    }

    /// [`Cli::ok`] on another data directory.
    pub fn ok_on(&self, data: &Path, args: &[&str]) -> String {
        let o = self.run_on(data, args);
        assert!(
            o.status.success(),
            "chatvault {args:?} failed ({:?}):\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8 output")
    }

    /// Runs, expects exit code `code`, returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "chatvault {args:?}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stderr).expect("utf-8 stderr")
    }
}

/// The keys of a JSON object (pinning a `--json` shape).
pub fn keys(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// `names` as a set, to compare with [`keys`].
pub fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}
