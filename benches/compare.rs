//! chatvault against raw RocksDB (the same writes and reads, no encryption: the limit for
//! value-level encryption) and SQLCipher 4 (encrypted SQLite), on the same data: messages from
//! the IRC corpus (`ubuntu/dev` + `new-domains`; the bundled sample when the corpus is missing).
//!
//! Every benchmark id is `<workload>/<engine>`, engine one of `chatvault`, `rocksdb`,
//! `sqlcipher`; `scripts/bench-report` turns them into BENCHMARKS.md with the ratios.
//!
//! Run: `cargo bench --bench compare` (release profile). Workloads:
//! - `append_1t`: one thread, `Vault::append` of the next corpus message (sizes follow the corpus).
//! - `append_2t_one_conv` / `append_2t_two_convs`: two threads appending at once, to one
//!   conversation or one each. One iteration = one message per thread (2 messages).
//! - `get_warm`: `Vault::get` of random messages among 20 000, keys in the key cache.
//! - `get_warm_200k`: the same over 200 000 messages (more than SQLCipher's page cache holds).
//! - `get_cold`: the same with the vault reopened with `key_cache_entries: 1`, so that every get
//!   unwraps the whole key chain (tenant KEK from the root key, conversation key, epoch key,
//!   author key) and derives the DEK. The baselines have no keys: their figure is `get_warm`'s.
//! - `page_50`: `Vault::page(t, c, Some(from), Forward, 50)` at random `from`.
//! - `import_corpus`: the whole import into a fresh store (few samples).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use chatvault::VaultOptions;
use common::*;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

/// Messages loaded for the read workloads.
const READ_SET: usize = 20_000;
/// Messages loaded for `get_warm_200k`.
const LARGE_READ_SET: usize = 200_000;

/// `CHATVAULT_BENCH_ENGINES=chatvault,rocksdb` limits the engines set up (the report script
/// profiles one engine at a time); all three by default.
fn wanted(engine: &str) -> bool {
    std::env::var("CHATVAULT_BENCH_ENGINES")
        .map(|v| v.split(',').any(|e| e.trim() == engine))
        .unwrap_or(true)
}

/// `CHATVAULT_BENCH_GROUPS=page_50,get_warm` limits which workloads are set up and run (the
/// report script profiles one at a time, without the others' set-up in the profile); all by
/// default.
fn group_wanted(group: &str) -> bool {
    std::env::var("CHATVAULT_BENCH_GROUPS")
        .map(|v| v.split(',').any(|g| g.trim() == group))
        .unwrap_or(true)
}

struct Stores {
    _dir: tempfile::TempDir,
    engines: Vec<Box<dyn Engine>>,
}

/// One store of each engine in a fresh temporary directory, each with `convs` conversations.
fn stores(convs: usize) -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    if wanted("chatvault") {
        engines.push(Box::new(Chatvault::create(
            &dir.path().join("chatvault"),
            convs,
        )));
    }
    if wanted("rocksdb") {
        engines.push(Box::new(RawRocks::create(
            &dir.path().join("rocksdb"),
            convs,
        )));
    }
    if wanted("sqlcipher") {
        engines.push(Box::new(SqlCipher::create(
            &dir.path().join("sqlcipher.db"),
            convs,
        )));
    }
    Stores { _dir: dir, engines }
}

fn time_of(i: u64) -> i64 {
    // 1 ms apart, within one day (one epoch): the steady state of appending.
    DAY0_MS + (i % 86_400_000) as i64
}

fn append(c: &mut Criterion, lines: &[Line]) {
    if group_wanted("append_1t") {
        append_1t(c, lines);
    }
    for (name, convs) in [("append_2t_one_conv", 1usize), ("append_2t_two_convs", 2)] {
        if group_wanted(name) {
            append_2t(c, lines, name, convs);
        }
    }
}

fn append_1t(c: &mut Criterion, lines: &[Line]) {
    let mut g = c.benchmark_group("append_1t");
    g.throughput(Throughput::Elements(1));
    let s = stores(1);
    for e in &s.engines {
        let mut i = 0u64;
        g.bench_function(e.name(), |b| {
            b.iter(|| {
                i += 1;
                e.append(
                    0,
                    i as usize % AUTHORS,
                    time_of(i),
                    &lines[i as usize % lines.len()],
                )
            })
        });
    }
    g.finish();
}

fn append_2t(c: &mut Criterion, lines: &[Line], name: &str, convs: usize) {
    {
        let mut g = c.benchmark_group(name);
        // One iteration: one message from each of the two threads.
        g.throughput(Throughput::Elements(2));
        let s = stores(convs);
        for e in &s.engines {
            let e: &dyn Engine = e.as_ref();
            let mut round = 0u64;
            g.bench_function(e.name(), |b| {
                b.iter_custom(|iters| {
                    round += 1;
                    let start = Instant::now();
                    std::thread::scope(|sc| {
                        for th in 0..2usize {
                            let conv = if convs == 2 { th } else { 0 };
                            let base = round * 1_000_000_000 + th as u64 * 500_000_000;
                            sc.spawn(move || {
                                for k in 0..iters {
                                    let i = base + k;
                                    e.append(
                                        conv,
                                        (i as usize + th) % AUTHORS,
                                        time_of(i),
                                        &lines[(i as usize) % lines.len()],
                                    );
                                }
                            });
                        }
                    });
                    start.elapsed()
                })
            });
        }
        g.finish();
    }
}

fn reads(c: &mut Criterion, lines: &[Line]) {
    if group_wanted("get_warm") || group_wanted("page_50") {
        let s = stores(1);
        for e in &s.engines {
            load(e.as_ref(), 0, lines, READ_SET);
        }
        if group_wanted("get_warm") {
            let mut g = c.benchmark_group("get_warm");
            g.throughput(Throughput::Elements(1));
            for e in &s.engines {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
                g.bench_function(e.name(), |b| {
                    b.iter(|| e.get(0, rng.below(READ_SET as u64) + 1))
                });
            }
            g.finish();
        }
        if group_wanted("page_50") {
            let mut g = c.benchmark_group("page_50");
            g.throughput(Throughput::Elements(50));
            for e in &s.engines {
                let mut rng = Rng(0x2545_F491_4F6C_DD1D);
                g.bench_function(e.name(), |b| {
                    b.iter(|| e.page(0, rng.below(READ_SET as u64 - 60) + 1))
                });
            }
            g.finish();
        }
    }

    // The same with 10x the data: more than SQLCipher's default page cache holds.
    if group_wanted("get_warm_200k") {
        let s = stores(1);
        for e in &s.engines {
            load_bulk(e.as_ref(), 0, lines, LARGE_READ_SET);
        }
        let mut g = c.benchmark_group("get_warm_200k");
        g.throughput(Throughput::Elements(1));
        for e in &s.engines {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            g.bench_function(e.name(), |b| {
                b.iter(|| e.get(0, rng.below(LARGE_READ_SET as u64) + 1))
            });
        }
        g.finish();
    }

    // Cold: the same data in a vault reopened with a key cache of one entry.
    if !wanted("chatvault") || !group_wanted("get_cold") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cv = Chatvault::create(&dir.path().join("chatvault"), 1);
    load(&cv, 0, lines, READ_SET);
    let cv = cv.reopen(VaultOptions {
        key_cache_entries: 1,
        ..VaultOptions::default()
    });
    let mut g = c.benchmark_group("get_cold");
    g.throughput(Throughput::Elements(1));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    g.bench_function("chatvault", |b| {
        b.iter(|| cv.get(0, rng.below(READ_SET as u64) + 1))
    });
    g.finish();
}

fn import(c: &mut Criterion, label: &str, files: &[std::path::PathBuf]) {
    let mut g = c.benchmark_group("import_corpus");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    g.measurement_time(Duration::from_secs(1));
    let mut messages = 0;
    for engine in ["chatvault", "rocksdb", "sqlcipher"] {
        if !wanted(engine) {
            continue;
        }
        g.bench_function(engine, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let imp: Box<dyn Importer> = match engine {
                        "chatvault" => Box::new(empty_vault(&dir.path().join("cv")).0),
                        "rocksdb" => Box::new(RawRocks::create(&dir.path().join("rdb"), 0)),
                        _ => Box::new(SqlCipher::create(&dir.path().join("sc.db"), 0)),
                    };
                    let start = Instant::now();
                    messages = black_box(imp.import_files(files));
                    total += start.elapsed();
                    drop(imp);
                }
                total
            })
        });
    }
    g.finish();
    record_info(&[
        ("import.source".into(), label.into()),
        ("import.files".into(), files.len().to_string()),
        ("import.messages".into(), messages.to_string()),
    ]);
}

fn all(c: &mut Criterion) {
    let (label, files) = bench_files();
    let lines = lines(&files);
    // Plaintext sizes (postcard payload, what chatvault seals and the RocksDB baseline stores).
    let mut sizes: Vec<usize> = lines
        .iter()
        .map(|l| {
            postcard::to_stdvec(&Payload {
                author: 5,
                sent_at_ms: DAY0_MS,
                kind: l.kind,
                body: l.body.clone(),
                reply_to: None,
                also_reply_to: Vec::new(),
                attachments: Vec::new(),
                edited_at_ms: None,
                deleted_at_ms: None,
            })
            .unwrap()
            .len()
        })
        .collect();
    sizes.sort_unstable();
    let pct = |p: f64| sizes[((sizes.len() - 1) as f64 * p) as usize];
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    let sql_dir = tempfile::tempdir().unwrap();
    let sql = SqlCipher::create(&sql_dir.path().join("s.db"), 0);
    let mut info = vec![
        ("size_source".into(), label.clone()),
        ("size_source.messages".into(), lines.len().to_string()),
        (
            "payload_bytes".into(),
            format!(
                "p10 {} / p50 {} / p90 {} / p99 {} / max {} / mean {mean:.0}",
                pct(0.10),
                pct(0.50),
                pct(0.90),
                pct(0.99),
                pct(1.0)
            ),
        ),
        ("read_set".into(), READ_SET.to_string()),
        ("large_read_set".into(), LARGE_READ_SET.to_string()),
    ];
    for (k, v) in sql.settings() {
        info.push((format!("sqlcipher.{k}"), v));
    }
    drop(sql);
    record_info(&info);

    append(c, &lines);
    reads(c, &lines);
    if group_wanted("import_corpus") {
        import(c, &label, &files);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3));
    targets = all
}
criterion_main!(benches);
