//! RustCrypto AES-256-GCM-SIV seal/open per size, as in `benches/aead.rs`; ids
//! `aead_native_seal/rustcrypto/<size>`, `aead_native_open/...`, `aead_native_key_setup/...`.
//! `scripts/bench-report` builds this with `RUSTFLAGS="-C target-cpu=native"`.

#[path = "../common/aead_cases.rs"]
mod aead_cases;

use criterion::{criterion_group, criterion_main, Criterion};

fn all(c: &mut Criterion) {
    aead_cases::rustcrypto(c, "aead_native_", "rustcrypto");
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
