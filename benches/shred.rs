//! Latency of `Vault::shred` against the amount of data in scope (DESIGN.md §7: one range
//! tombstone per key range, so it should not grow with the data): a conversation, a user and a
//! tenant scope, each holding 1 000, 100 000 and 1 000 000 messages.
//!
//! A shred destroys what it measures, so each size has one template vault, filled once per run
//! (`append_batch`, then flushed and compacted: the data is in SST files, as in a vault that has
//! been serving a while), and every iteration works on a fresh copy of it: `Vault::checkpoint`
//! (hard links), `Vault::open`, one read of the conversation and the user (a serving vault has
//! its tenant and keys cached) and a `sync` (so that the set-up's file-system work is not
//! committed by the shred's fsync), all untimed; then only the `shred` call is timed, fsync
//! included (the call returns once the shred is durable, whatever the vault's durability).
//! The copies are opened with `rekey_after_shred: false`: this measures the destruction; the
//! key re-versioning pass that a shred runs next by default is measured by `benches/rekey.rs`
//! (and must not run here: it would retire the root key version the template still uses).
//!
//! Run: `cargo bench --bench shred` (release profile), or `scripts/bench-report --only shred`
//! to update only the "Shred latency" section of BENCHMARKS.md. The vaults live under the cargo
//! target directory (a real disk, so the fsync is real), removed at the end.
//! `CHATVAULT_BENCH_SHRED_SIZES=1000,100000` chooses other sizes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault::{
    Actor, ConversationId, ConversationKind, NewMessage, SecretKey, ShredScope, StaticKeyProvider,
    TenantId, TenantOptions, UserId, UserProfile, Vault, VaultOptions,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};

const T0: i64 = 1_700_000_000_000;

/// A template vault: one tenant, one conversation, one author who wrote all `n` messages (one
/// per second, so 1 000 000 span 12 daily epochs), and a second member who wrote none. So each
/// of the three scopes holds exactly `n` messages.
struct Template {
    _dir: tempfile::TempDir,
    vault: Vault,
    provider: Arc<StaticKeyProvider>,
    t: TenantId,
    c: ConversationId,
    u: UserId,
}

/// The cargo target directory (the bench runs from `<target>/release/deps/`): a real disk.
fn work_root() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let root = exe
        .ancestors()
        .nth(3)
        .map(|p| p.join("chatvault-bench-shred"))
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root).expect("bench work dir");
    root
}

fn template(n: u64) -> Template {
    let dir = tempfile::tempdir_in(work_root()).expect("tempdir");
    let provider = Arc::new(StaticKeyProvider::single(
        SecretKey::generate().expect("key"),
    ));
    let v = Vault::create(
        dir.path().join("template"),
        provider.clone(),
        VaultOptions::default(),
    )
    .expect("create");
    let t = v
        .create_tenant("bench", TenantOptions::default())
        .expect("tenant");
    let profile = |s: &str| UserProfile::named(s);
    let u = v
        .create_user(t, "subject", profile("Subject"))
        .expect("user");
    let other = v.create_user(t, "other", profile("Other")).expect("user");
    let c = v
        .create_conversation(
            t,
            "conv",
            ConversationKind::Group,
            None,
            &[(u, 0), (other, 0)],
        )
        .expect("conversation");
    let started = Instant::now();
    let mut next = 0u64;
    while next < n {
        let batch: Vec<NewMessage> = (next..(next + 1000).min(n))
            .map(|i| {
                // 40–160 bytes, like chat lines.
                let body = format!("message {i} {}", "m".repeat(30 + (i % 121) as usize));
                NewMessage::text(u, T0 + i as i64 * 1000, body)
            })
            .collect();
        next += batch.len() as u64;
        v.append_batch(t, c, &batch)
            .expect("append")
            .stored()
            .expect("stored");
    }
    v.flush().expect("flush");
    v.compact().expect("compact");
    eprintln!(
        "shred bench: template of {n} messages filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Template {
        _dir: dir,
        vault: v,
        provider,
        t,
        c,
        u,
    }
}

/// Messages in scope, per size. Under `cargo test` (criterion's test mode: no `--bench`), only
/// 1 000, so the test suite does not fill a million-message vault in a debug build.
fn sizes() -> Vec<u64> {
    if let Ok(s) = std::env::var("CHATVAULT_BENCH_SHRED_SIZES") {
        return s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .expect("CHATVAULT_BENCH_SHRED_SIZES: numbers")
            })
            .collect();
    }
    if std::env::args().any(|a| a == "--bench") {
        vec![1_000, 100_000, 1_000_000]
    } else {
        vec![1_000]
    }
}

/// `sync(1)`: writes back every file system's dirty data and metadata.
fn sync_all() {
    let ok = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sync(1) failed");
}

fn shred_latency(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("shred");
    // Each iteration's set-up (checkpoint + open, tens of ms) is untimed but real: keep the
    // iteration count modest. The shred itself is a few ms (one fsync).
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600));
    for n in sizes() {
        let tpl = template(n);
        let copies = tempfile::tempdir_in(work_root()).expect("tempdir");
        let mut k = 0u64;
        for (name, scope) in [
            ("conversation", ShredScope::Conversation(tpl.c)),
            ("user", ShredScope::User(tpl.u)),
            ("tenant", ShredScope::Tenant),
        ] {
            g.bench_with_input(BenchmarkId::new(name, n), &scope, |b, scope| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        k += 1;
                        let dir = copies.path().join(format!("copy-{k}"));
                        tpl.vault.checkpoint(&dir).expect("checkpoint");
                        let opts = VaultOptions {
                            rekey_after_shred: false,
                            ..VaultOptions::default()
                        };
                        let v = Vault::open(&dir, tpl.provider.clone(), opts).expect("open copy");
                        v.conversation(tpl.t, tpl.c).expect("warm conversation");
                        v.user(tpl.t, tpl.u).expect("warm user");
                        // Commit the set-up's file-system work (links, new files, the removed
                        // copy) first: else the shred's fsync pays for it in the shared journal,
                        // more for bigger copies.
                        sync_all();
                        let start = Instant::now();
                        let r = v.shred(tpl.t, Actor::operator(), *scope);
                        total += start.elapsed();
                        r.expect("shred");
                        drop(v);
                        std::fs::remove_dir_all(&dir).expect("remove copy");
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, shred_latency);
criterion_main!(benches);
