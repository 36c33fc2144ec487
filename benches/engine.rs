//! Baseline criterion benchmarks of the hot paths: append and get of chat-sized messages.
//! The full suite against raw RocksDB and SQLCipher, and its report, is issue 3's.
//!
//! Run: `cargo bench --bench engine` (release profile).

use std::sync::Arc;

use chatvault::{
    ConversationKind, NewMessage, SecretKey, StaticKeyProvider, TenantOptions, UserProfile, Vault,
    VaultOptions,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn setup() -> (
    tempfile::TempDir,
    Vault,
    chatvault::TenantId,
    chatvault::ConversationId,
    chatvault::UserId,
) {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(StaticKeyProvider::single(SecretKey::generate().unwrap()));
    let v = Vault::create(dir.path().join("data"), p, VaultOptions::default()).unwrap();
    let t = v.create_tenant("bench", TenantOptions::default()).unwrap();
    let u = v
        .create_user(t, "user", UserProfile::named("User"))
        .unwrap();
    let c = v
        .create_conversation(t, "conv", ConversationKind::Group, None, &[(u, 0)])
        .unwrap();
    (dir, v, t, c, u)
}

fn append_and_get(cr: &mut Criterion) {
    // 120 bytes: a typical IRC line.
    let body = "x".repeat(120);
    let mut g = cr.benchmark_group("vault");
    g.throughput(Throughput::Elements(1));
    {
        let (_d, v, t, c, u) = setup();
        let mut at = 1_700_000_000_000i64;
        g.bench_function("append_120B", |b| {
            b.iter_batched(
                || {
                    at += 1;
                    NewMessage::text(u, at, body.clone())
                },
                |m| v.append(t, c, m).unwrap().stored().unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    {
        let (_d, v, t, c, u) = setup();
        let n = 10_000u64;
        for i in 0..n {
            v.append(
                t,
                c,
                NewMessage::text(u, 1_700_000_000_000 + i as i64, body.clone()),
            )
            .unwrap()
            .stored()
            .unwrap();
        }
        let mut i = 0u64;
        g.bench_function("get_120B_warm", |b| {
            b.iter(|| {
                i = i % n + 1;
                v.get(t, c, i).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append_and_get);
criterion_main!(benches);
