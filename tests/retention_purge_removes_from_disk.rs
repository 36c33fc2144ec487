//! Purge removes expired records from every file of the data directory, including records
//! still in the memtable and on the bottommost level; it reports itself incomplete while an open
//! iterator pins old files; it runs while other threads keep writing; a dry run changes nothing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use chatvault::import;
use chatvault::{
    cf, Actor, Direction, Policy, PurgeOptions, Retention, TenantOptions, TenantPolicy, Vault,
};
use common::DAY;

/// Bytes that identify each stored record of `tenant` in the files: the nonce and first
/// ciphertext bytes of every message and revision record (34 = record header length), and every
/// time-index key (stored whole).
fn needles_of(data: &std::path::Path, tenant: chatvault::TenantId) -> Vec<Vec<u8>> {
    let db = common::open_raw(data);
    let prefix = tenant.as_u64().to_be_bytes();
    let mut out = Vec::new();
    for name in [cf::MESSAGES, cf::REVISIONS, cf::TIME_INDEX] {
        let h = db.cf_handle(name).unwrap();
        for kv in db.prefix_iterator_cf(h, prefix) {
            let (k, v) = kv.unwrap();
            if !k.starts_with(&prefix) {
                break;
            }
            if name == cf::TIME_INDEX {
                out.push(k.to_vec());
            } else {
                out.push(v[34..34 + 16].to_vec());
            }
        }
    }
    out
}

fn count_in_files(dir: &std::path::Path, needles: &[Vec<u8>]) -> usize {
    let ac = AhoCorasick::new(needles).unwrap();
    common::files_under(dir)
        .iter()
        .map(|f| {
            let n = ac.find_iter(&std::fs::read(f).unwrap_or_default()).count();
            if n > 0 {
                eprintln!("{n} found in {}", f.display());
            }
            n
        })
        .sum()
}

/// A pseudo-random delay in 0..20 ms, different each round and run.
fn rand_ms(round: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ round.wrapping_mul(0x9E37_79B9)) % 20
}

fn one_day(v: &Vault, t: chatvault::TenantId) {
    let p = TenantPolicy {
        default: Policy {
            retention: Retention::period_ms(DAY as u64).unwrap(),
            ..Default::default()
        },
        members_may_change: false,
    };
    v.set_tenant_policy(t, Actor::operator(), p).unwrap();
}

#[test]
fn purge_of_a_channel_leaves_no_record_of_it_in_any_file_and_the_rest_intact() {
    // The bundled sample is from 2011 (ubuntu) and 2018 (rust); "now" is 2026.
    let now = 1_795_000_000_000;
    let (d, v, p, clock) = common::new_vault_with_clock(now);
    let data = d.path().join("data");
    for f in import::irc_log_files(&common::sample_dir()).unwrap() {
        import::import_irc_file(&v, &f, |_| true).unwrap();
    }
    // Half of the ubuntu records stay in the memtable, half go to the bottommost level first.
    v.compact().unwrap();
    let ubuntu = v.tenant("ubuntu").unwrap();
    let conv = v.conversation_id(ubuntu, "2011-11-13_02").unwrap();
    v.edit(
        ubuntu,
        conv,
        5,
        "an edit, so there is a revision",
        now - 3000 * DAY,
    )
    .unwrap_or(0);
    drop(v);
    let needles = needles_of(&data, ubuntu);
    assert!(needles.len() > 2000, "{}", needles.len());
    assert!(
        count_in_files(&data, &needles) >= needles.len(),
        "the records are in the files"
    );

    let v = Vault::open(&data, p.clone(), common::options(&clock)).unwrap();
    let rust = v.tenant("rust").unwrap();
    one_day(&v, ubuntu);
    let dry = v
        .purge(PurgeOptions {
            dry_run: true,
            ..Default::default()
        })
        .unwrap();
    assert!(dry.dry_run && dry.expired_records() as usize >= needles.len() - 1);
    assert_eq!(
        v.debug_count_records(cf::MESSAGES).unwrap(),
        2420,
        "a dry run removes nothing"
    );

    let r = v.purge(Default::default()).unwrap();
    assert!(r.complete, "{r:?}");
    assert!(r.conversations.iter().all(|c| c.tenant == ubuntu));
    assert!(r.conversations[0].epoch_keys_destroyed >= 1);
    drop(v);
    assert_eq!(
        count_in_files(&data, &needles),
        0,
        "a raw scan finds no record of the expired channel"
    );

    // The other channel reads back exactly.
    let v = Vault::open(&data, p, common::options(&clock)).unwrap();
    let rc = v.conversation_id(rust, "rust.0").unwrap();
    assert_eq!(v.message_count(rust, rc).unwrap(), 1200);
    assert_eq!(v.message_count(ubuntu, conv).unwrap(), 0);
    common::import_and_verify_rust_only(&v);
}

#[test]
fn an_open_iterator_makes_the_purge_incomplete_until_it_is_released() {
    let now = 1_795_000_000_000;
    let (d, v, _p, _clock) = common::new_vault_with_clock(now);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    for i in 0..200 {
        v.append(
            f.t,
            f.c,
            chatvault::NewMessage::text(f.alice, now - 10 * DAY + i, format!("m{i}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    v.flush().unwrap();
    let keep = v
        .create_conversation(f.t, "keep", chatvault::ConversationKind::Group, None, &[])
        .unwrap();
    let _ = keep;
    one_day(&v, f.t);
    {
        // An iterator opened before the purge pins the files that hold the records.
        let mut it = v.messages(f.t, f.c, None, Direction::Forward).unwrap();
        assert!(
            it.next().is_none(),
            "expired messages are not shown even by an old iterator"
        );
        let r = v
            .purge(PurgeOptions {
                max_attempts: 2,
                ..Default::default()
            })
            .unwrap();
        assert!(!r.complete, "{r:?}");
        assert!(r.remaining_records > 0);
        assert_eq!(r.attempts, 2);
    }
    let r = v.purge(Default::default()).unwrap();
    assert!(r.complete, "{r:?}");
    let _ = d;
}

#[test]
fn purge_while_other_threads_keep_writing_to_other_conversations() {
    for round in 0..5u64 {
        let now = 1_795_000_000_000;
        let (_d, v, _p, _clock) = common::new_vault_with_clock(now);
        let f = common::fixture(&v, "acme", TenantOptions::default());
        let other_tenant = common::fixture(&v, "globex", TenantOptions::default());
        for i in 0..300 {
            v.append(
                f.t,
                f.c,
                chatvault::NewMessage::text(f.alice, now - 5 * DAY + i, "old"),
            )
            .unwrap()
            .stored()
            .unwrap();
        }
        one_day(&v, f.t);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (v, stop) = (v.clone(), stop.clone());
                let (t, c, a) = (other_tenant.t, other_tenant.c, other_tenant.alice);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) || n < 50 {
                        let at = now - 30 * DAY + (n as i64) * 1000 + w;
                        v.append(
                            t,
                            c,
                            chatvault::NewMessage::text(a, at, format!("w{w} {n}")),
                        )
                        .unwrap()
                        .stored()
                        .unwrap();
                        n += 1;
                        if (n + round) % 7 == 0 {
                            std::thread::yield_now();
                        }
                    }
                    n
                })
            })
            .collect();
        // Random timing: the purge starts at a random point of the writers' run.
        std::thread::sleep(std::time::Duration::from_millis(rand_ms(round)));
        let r = v.purge(Default::default()).unwrap();
        stop.store(true, Ordering::Relaxed);
        let written: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(r.complete, "round {round}: {r:?}");
        assert_eq!(v.message_count(f.t, f.c).unwrap(), 0);
        // Every message the writers were acknowledged for is there (globex keeps forever).
        assert_eq!(
            v.message_count(other_tenant.t, other_tenant.c).unwrap(),
            written
        );
    }
}
