//! Key re-versioning pass (`Vault::rekey`, run by every shred by default and by `Vault::purge`) on a
//! vault with 1,000 and 10,000 tenants: the root key gets a new version (the key file is
//! rewritten and fsynced), every tenant KEK is re-wrapped under it, and the tenant with a
//! destroyed key gets a new KEK version with its 100 users' keys and its metadata re-wrapped.
//! Each iteration shreds one user (untimed, with `rekey_after_shred: false`) and times the pass
//! alone: what a shred adds to its own latency by default.
//!
//! Run: `cargo bench --bench rekey` (release profile). The report carries the figures
//! (BENCHMARKS.md, "Key re-versioning").

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault::{
    Actor, ShredScope, StaticKeyProvider, TenantOptions, UserProfile, Vault, VaultOptions,
};
use criterion::{criterion_group, criterion_main, Criterion};

const USERS: usize = 100;

fn rekey(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("rekey_pass");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for tenants in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("root.key");
        let p = Arc::new(StaticKeyProvider::create_key_file(&key_file).unwrap());
        let opts = VaultOptions {
            rekey_after_shred: false,
            ..VaultOptions::default()
        };
        let v = Vault::create(dir.path().join("data"), p, opts).unwrap();
        let started = Instant::now();
        let first = v.create_tenant("t0", TenantOptions::default()).unwrap();
        for n in 1..tenants {
            v.create_tenant(&format!("t{n}"), TenantOptions::default())
                .unwrap();
        }
        for n in 0..USERS {
            v.create_user(first, &format!("u{n}"), UserProfile::default())
                .unwrap();
        }
        let mut next = USERS;
        eprintln!("set-up of {tenants} tenants: {:?}", started.elapsed());
        g.bench_function(format!("{tenants}_tenants"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // One user more, shredded: the tenant keeps USERS live users.
                    next += 1;
                    let u = v
                        .create_user(first, &format!("u{next}"), UserProfile::default())
                        .unwrap();
                    v.shred(first, Actor::operator(), ShredScope::User(u))
                        .unwrap();
                    let t = Instant::now();
                    let r = v.rekey().unwrap().expect("a pass");
                    total += t.elapsed();
                    assert_eq!(r.tenant_keks_rewrapped as usize, tenants - 1);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rekey);
criterion_main!(benches);
