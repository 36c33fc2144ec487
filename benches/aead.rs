//! The AEAD alone: AES-256-GCM-SIV seal and open per plaintext size, RustCrypto `aes-gcm-siv`
//! (chatvault's backend) against `aws-lc-rs`; building a cipher from a key; drawing a nonce; and
//! chatvault's whole record envelope (`envelope::seal_record` / `open_record`: header, AAD,
//! nonce, seal).
//!
//! Ids: `aead_seal/<backend>/<size>`, `aead_open/<backend>/<size>`, `aead_key_setup/<backend>`,
//! `nonce/<source>`, `envelope_seal/chatvault/<size>`, `envelope_open/chatvault/<size>`.
//! `scripts/bench-report` also runs the RustCrypto cases built with `-C target-cpu=native`
//! (`benches/aead-native/`).

#[path = "common/aead_cases.rs"]
mod aead_cases;

use std::hint::black_box;

use aead_cases::{AAD_LEN, KEY, SIZES};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};
use chatvault::envelope::{self, RecordHeader, RecordKind};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::RngCore;

fn aws_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, &KEY).unwrap())
}

fn aws_lc(c: &mut Criterion) {
    let key = aws_key();
    let aad = [0x5au8; AAD_LEN];
    let mut g = c.benchmark_group("aead_seal");
    for size in SIZES {
        let pt = vec![0x41u8; size];
        let mut buf = vec![0u8; size];
        let mut n = 0u64;
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("aws-lc-rs", size), &size, |b, _| {
            b.iter(|| {
                n += 1;
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&n.to_le_bytes());
                buf.copy_from_slice(&pt);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&aad),
                        &mut buf,
                    )
                    .unwrap();
                black_box(tag)
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("aead_open");
    for size in SIZES {
        let nonce = [3u8; 12];
        let mut ct = vec![0x41u8; size];
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut ct,
            )
            .unwrap();
        let mut buf = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("aws-lc-rs", size), &size, |b, _| {
            b.iter(|| {
                buf.copy_from_slice(&ct);
                key.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    tag.as_ref(),
                    &mut buf,
                )
                .unwrap();
                black_box(&buf);
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("aead_key_setup");
    g.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            black_box(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM_SIV, black_box(&KEY)).unwrap(),
            ))
        })
    });
    g.finish();
}

fn nonces(c: &mut Criterion) {
    let mut g = c.benchmark_group("nonce");
    g.bench_function("thread_rng", |b| {
        b.iter(|| {
            let mut n = [0u8; 12];
            rand::thread_rng().fill_bytes(&mut n);
            black_box(n)
        })
    });
    g.bench_function("getrandom", |b| {
        b.iter(|| {
            let mut n = [0u8; 12];
            getrandom::getrandom(&mut n).unwrap();
            black_box(n)
        })
    });
    g.finish();
}

/// chatvault's own record sealing: header, AAD built from the label, header and RocksDB key,
/// a fresh nonce, AES-256-GCM-SIV.
fn envelope_path(c: &mut Criterion) {
    let cipher = chatvault::SecretKey::from_bytes(KEY).cipher();
    let header = RecordHeader {
        kind: RecordKind::Message,
        revision: 0,
        epoch: 19_675,
        epoch_version: 1,
        author: 7,
        author_version: 1,
        sent_at_ms: 1_700_000_000_000,
    };
    let place = chatvault::codec::message_key(1, 2, 3);
    let mut g = c.benchmark_group("envelope_seal");
    for size in SIZES {
        let pt = vec![0x41u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("chatvault", size), &size, |b, _| {
            b.iter(|| black_box(envelope::seal_record(&cipher, &header, &place, &pt).unwrap()))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("envelope_open");
    for size in SIZES {
        let sealed = envelope::seal_record(&cipher, &header, &place, &vec![0x41u8; size]).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("chatvault", size), &size, |b, _| {
            b.iter(|| {
                black_box(envelope::open_record(&cipher, &sealed, &place, String::new).unwrap())
            })
        });
    }
    g.finish();
}

fn all(c: &mut Criterion) {
    aead_cases::rustcrypto(c, "aead_", "rustcrypto");
    aws_lc(c);
    nonces(c);
    envelope_path(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_millis(1200));
    targets = all
}
criterion_main!(benches);
