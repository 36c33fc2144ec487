//! Key rotation below the root key while the vault serves: writer threads append (to old days
//! and new ones), edit and delete, and a reader pages, gets, reads by time and runs `verify`,
//! while the main thread rotates tenant KEKs and data keys, re-seals in small batches and
//! retires the old versions, with a shred and a purge (a re-versioning pass) in between.
//! Nothing may fail spuriously, the retirement must never find a record written under a
//! replaced version, and afterwards every acknowledged write reads back exactly, every record
//! is under the current versions and `verify` is clean.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chatvault::{
    Actor, ConversationKind, Direction, NewMessage, PurgeOptions, ResealOptions, ShredScope,
    StaticKeyProvider, TenantOptions, Vault, VaultOptions,
};
use common::DAY;

const D0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;

#[test]
fn writers_and_readers_run_through_rotations_reseals_and_retirements() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("root.key");
    let data = d.path().join("data");
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p, VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let side = v
        .create_conversation(f.t, "side", ConversationKind::Group, None, &[(f.bob, 0)])
        .unwrap();
    let doomed = v
        .create_conversation(f.t, "doomed", ConversationKind::Group, None, &[(f.bob, 0)])
        .unwrap();
    for n in 0..200i64 {
        for c in [f.c, side, doomed] {
            v.append(
                f.t,
                c,
                NewMessage::text(f.alice, D0 + (n % 5) * DAY + n, format!("seed {n}")),
            )
            .unwrap()
            .stored()
            .unwrap();
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (v, stop) = (v.clone(), stop.clone());
        std::thread::spawn(move || {
            // (conversation, id) → body as last written; deleted ids map to "".
            let mut acked: BTreeMap<(chatvault::ConversationId, u64), String> = BTreeMap::new();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) || n < 200 {
                n += 1;
                let (c, who) = if n % 2 == 0 {
                    (f.c, f.alice)
                } else {
                    (side, f.bob)
                };
                let body = format!("w{n}");
                // Old days, and a new day now and then (a new epoch key during a rotation).
                let at = D0 + (n % 7) * DAY + 1_000 + n;
                let id = v
                    .append(f.t, c, NewMessage::text(who, at, body.clone()))
                    .unwrap()
                    .stored()
                    .unwrap();
                acked.insert((c, id), body);
                if n % 5 == 0 {
                    let body = format!("w{n} edited");
                    v.edit(f.t, c, id, &body, at + 1).unwrap();
                    acked.insert((c, id), body);
                }
                // Paced, so that the vault (and the re-seals) stay small.
                std::thread::sleep(std::time::Duration::from_micros(300));
                if n % 11 == 0 {
                    v.delete(f.t, c, id, at + 2).unwrap();
                    acked.insert((c, id), String::new());
                }
            }
            acked
        })
    };
    let reader = {
        let (v, stop) = (v.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut reads, mut verifies) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let page = v.page(f.t, f.c, None, Direction::Forward, 500).unwrap();
                reads += page.messages.len() as u64;
                assert!(page.messages.len() >= 200, "{}", page.messages.len());
                for m in v.messages_between(f.t, side, D0, D0 + DAY).unwrap() {
                    m.unwrap();
                    reads += 1;
                }
                assert_eq!(v.get(f.t, f.c, 1).unwrap().body, "seed 0");
                v.members(f.t, f.c).unwrap();
                v.user(f.t, f.alice).unwrap();
                let r = v.verify().unwrap();
                assert!(r.is_ok(), "{:?}", r.failures);
                verifies += 1;
            }
            (reads, verifies)
        })
    };
    let op = Actor::operator();
    let opts = ResealOptions {
        batch_records: 16,
        retire: true,
    };
    let mut resealed = 0;
    for round in 0..3 {
        v.rotate_tenant_kek(f.t, op).unwrap();
        v.rotate_data_keys(f.t, None, op).unwrap();
        resealed += v.reseal(f.t, None, &opts, |_| {}).unwrap().resealed;
        v.rotate_data_keys(f.t, Some(side), op).unwrap();
        resealed += v.reseal(f.t, Some(side), &opts, |_| {}).unwrap().resealed;
        if round == 1 {
            v.shred(
                f.t,
                op,
                ShredScope::Window {
                    conversation: doomed,
                    at_ms: D0,
                },
            )
            .unwrap();
            // The shred ran its re-versioning pass while the writer and the reader go on.
            assert_eq!(v.key_paths_pending().unwrap(), 0);
            assert!(v.purge(PurgeOptions::default()).unwrap().complete);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    let (reads, verifies) = reader.join().unwrap();
    assert!(reads > 0 && verifies > 0 && acked.len() >= 200);
    println!(
        "3 rounds, {resealed} records re-sealed, {} writes, {reads} messages read, {verifies} \
         verify runs",
        acked.len()
    );

    let check = |v: &Vault| {
        for ((c, id), body) in &acked {
            let m = v.get(f.t, *c, *id).unwrap();
            assert_eq!(&m.body, body, "{c:?}/{id}");
        }
        let r = v.verify().unwrap();
        assert!(r.is_ok(), "{:?}", r.failures);
    };
    check(&v);
    // Finish: everything under the current versions, nothing pending.
    v.reseal(f.t, None, &ResealOptions::default(), |_| {})
        .unwrap();
    let ks = v.key_stats().unwrap();
    assert_eq!(ks.data_key_rotations_pending, 0);
    assert_eq!(ks.tenants[&f.t].older_versions, 0, "{:?}", ks.tenants[&f.t]);
    check(&v);
    drop(v);
    let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    check(&v);
}
