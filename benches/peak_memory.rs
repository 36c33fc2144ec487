//! Workloads whose peak memory `scripts/bench-report` measures with `/usr/bin/time -v`, one
//! process per workload and engine. Not a criterion benchmark: run by `cargo bench` (which
//! passes `--bench`) it does nothing.
//!
//! ```text
//! peak_memory import      <engine> <dir>        import the corpus (ubuntu/dev + new-domains)
//! peak_memory build-large <engine> <dir> <n>    one conversation of n corpus messages (not measured)
//! peak_memory read-large  <engine> <dir>        stream that whole conversation, oldest first
//! ```
//! `engine` is `chatvault`, `rocksdb` or `sqlcipher`. Each prints one `result` line:
//! `result <workload> <engine> messages=<n> seconds=<s> bytes=<body bytes>`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chatvault::{
    ConversationKind, Direction, NewMessage, StaticKeyProvider, TenantOptions, UserProfile, Vault,
    VaultOptions,
};
use common::*;

fn key_file(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

fn import(engine: &str, dir: &Path) -> (u64, u64) {
    let (_label, files) = bench_files();
    let n = match engine {
        "chatvault" => {
            let p = Arc::new(StaticKeyProvider::create_key_file(&key_file(dir)).unwrap());
            let v = Vault::create(dir, p, VaultOptions::default()).unwrap();
            v.import_files(&files)
        }
        "rocksdb" => RawRocks::create(dir, 0).import_files(&files),
        "sqlcipher" => SqlCipher::create(dir, 0).import_files(&files),
        e => panic!("unknown engine {e}"),
    };
    (n, 0)
}

/// One conversation of `n` messages (the corpus lines over and over, 1 s apart, 16 authors),
/// written in batches of 512.
fn build_large(engine: &str, dir: &Path, n: usize) {
    let (_label, files) = bench_files();
    let lines = lines(&files);
    let at = |i: usize| DAY0_MS + i as i64 * 1000;
    match engine {
        "chatvault" => {
            let p = Arc::new(StaticKeyProvider::create_key_file(&key_file(dir)).unwrap());
            let v = Vault::create(dir, p, VaultOptions::default()).unwrap();
            let t = v.create_tenant("bench", TenantOptions::default()).unwrap();
            let users: Vec<_> = (0..AUTHORS)
                .map(|i| {
                    v.create_user(
                        t,
                        &format!("user{i}"),
                        UserProfile::named(format!("User {i}")),
                    )
                    .unwrap()
                })
                .collect();
            let members: Vec<_> = users.iter().map(|u| (*u, 0)).collect();
            let c = v
                .create_conversation(t, "large", ConversationKind::Group, None, &members)
                .unwrap();
            let mut i = 0;
            while i < n {
                let batch: Vec<NewMessage> = (i..(i + 512).min(n))
                    .map(|k| {
                        let l = &lines[k % lines.len()];
                        let mut m = NewMessage::text(users[k % AUTHORS], at(k), l.body.clone());
                        m.kind = l.kind;
                        m
                    })
                    .collect();
                i += batch.len();
                v.append_batch(t, c, &batch).unwrap().stored().unwrap();
            }
            v.compact().unwrap();
        }
        "rocksdb" | "sqlcipher" => {
            let e: Box<dyn Engine> = if engine == "rocksdb" {
                Box::new(RawRocks::create(dir, 1))
            } else {
                Box::new(SqlCipher::create(dir, 1))
            };
            for k in 0..n {
                if k % 100_000 == 0 {
                    eprintln!("{engine}: {k} of {n}");
                }
                e.append(0, k % AUTHORS, at(k), &lines[k % lines.len()]);
            }
            e.flush();
        }
        e => panic!("unknown engine {e}"),
    }
}

/// Streams the whole conversation, oldest first; returns (messages, body bytes).
fn read_large(engine: &str, dir: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    match engine {
        "chatvault" => {
            let p = Arc::new(StaticKeyProvider::from_file(&key_file(dir)).unwrap());
            let v = Vault::open(dir, p, VaultOptions::default()).unwrap();
            let t = v.tenant("bench").unwrap();
            let c = v.conversation_id(t, "large").unwrap();
            for m in v.messages(t, c, None, Direction::Forward).unwrap() {
                bytes += m.unwrap().body.len() as u64;
                n += 1;
            }
        }
        "rocksdb" => {
            let r = RawRocks::create(dir, 1);
            // The same stream as `Vault::messages`: one iterator over the conversation's prefix.
            (n, bytes) = r.scan(0);
        }
        "sqlcipher" => {
            let s = SqlCipher::create(dir, 1);
            let conn = s.conn.lock();
            let mut st = conn
                .prepare(
                    "SELECT id, author, sent_at, kind, body, reply_to FROM messages
                     WHERE conversation = 0 ORDER BY id",
                )
                .unwrap();
            let mut rows = st.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let body: String = r.get(4).unwrap();
                bytes += body.len() as u64;
                n += 1;
            }
        }
        e => panic!("unknown engine {e}"),
    }
    (n, bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--bench" || a == "--test") {
        // Run by `cargo bench` / `cargo test --benches`: the script runs the real workloads.
        println!("peak_memory: run by scripts/bench-report (see the file's docs); nothing to do");
        return;
    }
    let (mode, engine, dir) = (&args[0], &args[1], PathBuf::from(&args[2]));
    let start = Instant::now();
    let (n, bytes) = match mode.as_str() {
        "import" => import(engine, &dir),
        "build-large" => {
            build_large(engine, &dir, args[3].parse().unwrap());
            (args[3].parse().unwrap(), 0)
        }
        "read-large" => read_large(engine, &dir),
        m => panic!("unknown mode {m}"),
    };
    println!(
        "result {mode} {engine} messages={n} seconds={:.3} bytes={bytes}",
        start.elapsed().as_secs_f64()
    );
}
