//! Model-based fuzz target: decodes the input into at most 64 operations
//! (`model::ops_from_bytes`: append, edit, delete, policies, legal holds, the clock, shreds,
//! erasure, purge, exports, restarts and reads), runs them against a fresh vault in a temporary
//! directory and against the in-memory model of `tests/model/mod.rs` (the same driver as the
//! proptest `tests/model_based.rs`), and panics at the first read or write whose result, or
//! error variant, differs from the model's.
//!
//! Run (from the repository root; builds against the dev build's RocksDB):
//! `./dev fuzz model --seconds 600`, or by hand
//! `cargo +nightly fuzz run model fuzz/corpus/model fuzz/seeds/model -- -detect_leaks=0`.
//! LeakSanitizer is off for this target (`fuzz/model.options`, read by `./dev fuzz`): RocksDB's
//! process-wide objects (its default environment and thread pools, created once) are reported
//! as leaks otherwise. Each input's vault and temporary directory are dropped before the next.
//! A crash is replayed with `cargo +nightly fuzz run model fuzz/artifacts/model/crash-...`;
//! turn it into a deterministic test in `tests/model_based.rs` before fixing it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

fuzz_target!(|data: &[u8]| {
    let ops = model::ops_from_bytes(data);
    if ops.is_empty() {
        return;
    }
    if let Err(e) = model::Harness::run(&ops) {
        panic!("the vault disagrees with the model: {e}");
    }
});
