//! AES-256-GCM-SIV seal and open alone, RustCrypto `aes-gcm-siv` (the backend chatvault uses),
//! per plaintext size. Shared by `benches/aead.rs` and the standalone crate in
//! `benches/aead-native/` (built with `-C target-cpu=native` in its own target directory, so
//! that RocksDB is not rebuilt for it).

use std::hint::black_box;

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Plaintext sizes (bytes of the postcard payload chatvault seals). IRC corpus payloads
/// (ubuntu/dev + new-domains): p10 23, p50 62, p90 155, p99 328, max 480 (BENCHMARKS.md has the
/// figures of each run); 4 KiB stands for a long message.
pub const SIZES: [usize; 6] = [32, 64, 128, 256, 512, 4096];

/// AAD of a message record: "chatvault/v1/record" (19) + header (26) + RocksDB key (24).
pub const AAD_LEN: usize = 69;

pub const KEY: [u8; 32] = [7u8; 32];

/// `{group_prefix}seal/{label}/{size}` and `{group_prefix}open/{label}/{size}`.
pub fn rustcrypto(c: &mut Criterion, group_prefix: &str, label: &str) {
    let cipher = Aes256GcmSiv::new((&KEY).into());
    let aad = [0x5au8; AAD_LEN];
    let mut g = c.benchmark_group(format!("{group_prefix}seal"));
    for size in SIZES {
        let pt = vec![0x41u8; size];
        let mut buf = vec![0u8; size];
        let mut n = 0u64;
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new(label, size), &size, |b, _| {
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&n.to_le_bytes());
                buf.copy_from_slice(&pt);
                let tag = cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf)
                    .unwrap();
                black_box(tag)
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("{group_prefix}open"));
    for size in SIZES {
        let nonce = [3u8; 12];
        let mut ct = vec![0x41u8; size];
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut ct)
            .unwrap();
        let mut buf = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new(label, size), &size, |b, _| {
            b.iter(|| {
                buf.copy_from_slice(&ct);
                cipher
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf, &tag)
                    .unwrap();
                black_box(&buf);
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("{group_prefix}key_setup"));
    g.bench_function(label, |b| {
        b.iter(|| black_box(Aes256GcmSiv::new(black_box(&KEY).into())))
    });
    g.finish();
}
