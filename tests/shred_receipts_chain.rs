//! Shred receipts: every shred appends a MAC-chained receipt in the same batch as the key
//! destruction; a purge that removes a shred's records appends a `Removed` receipt; tampering
//! with the chain through raw RocksDB (an edited, a dropped, a reordered entry, entries cut off
//! the end) is caught, naming the right entry; no receipt holds a name or an external id.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault::{
    cf, Actor, ChainFault, ChainHead, ConversationId, HoldScope, NewMessage, ReceiptEvent,
    ShredOutcome, ShredScope, StaticKeyProvider, TenantId, TenantOptions, UserId, Vault,
};
use common::DAY;

const D1: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;

struct World {
    _d: tempfile::TempDir,
    data: PathBuf,
    p: Arc<StaticKeyProvider>,
    v: Vault,
    t: TenantId,
    c1: ConversationId,
    c2: ConversationId,
    alice: UserId,
    other: TenantId,
}

/// Tenant "acme-receipts-test" (alice, bob; conversations "general" and "second-conversation")
/// with messages on two days, and tenant "globex-receipts-test".
fn world() -> World {
    let (d, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme-receipts-test", TenantOptions::default());
    let c2 = v
        .create_conversation(
            f.t,
            "second-conversation",
            chatvault::ConversationKind::Group,
            Some("Second Title"),
            &[],
        )
        .unwrap();
    for (c, day) in [(f.c, D1), (f.c, D1 + DAY), (c2, D1)] {
        for u in [f.alice, f.bob] {
            v.append(f.t, c, NewMessage::text(u, day + 10, "hello there"))
                .unwrap()
                .stored()
                .unwrap();
        }
    }
    let other = common::fixture(&v, "globex-receipts-test", TenantOptions::default());
    v.append(
        other.t,
        other.c,
        NewMessage::text(other.alice, D1, "globex"),
    )
    .unwrap()
    .stored()
    .unwrap();
    World {
        data: d.path().join("data"),
        _d: d,
        p,
        v,
        t: f.t,
        c1: f.c,
        c2,
        alice: f.alice,
        other: other.t,
    }
}

fn reopen(data: &Path, p: &Arc<StaticKeyProvider>) -> Vault {
    Vault::open(data, p.clone(), Default::default()).unwrap()
}

/// Shreds one scope of each kind: window, user, conversation, tenant. Returns the vault closed.
fn four_shreds(w: &World) -> [u64; 4] {
    let op = Actor::operator();
    let r0 =
        w.v.shred(
            w.t,
            op,
            ShredScope::Window {
                conversation: w.c1,
                at_ms: D1 + 5,
            },
        )
        .unwrap();
    let r1 = w.v.shred(w.t, op, ShredScope::User(w.alice)).unwrap();
    let r2 = w.v.shred(w.t, op, ShredScope::Conversation(w.c2)).unwrap();
    let r3 = w.v.shred(w.other, op, ShredScope::Tenant).unwrap();
    [r0.seq, r1.seq, r2.seq, r3.seq]
}

#[test]
fn every_scope_gets_a_chained_receipt_and_purge_records_the_removal() {
    let w = world();
    assert!(w.v.receipts().unwrap().is_empty());
    assert_eq!(w.v.receipts_head(), None);
    let seqs = four_shreds(&w);
    assert_eq!(seqs, [0, 1, 2, 3]);

    let rs = w.v.receipts().unwrap();
    assert_eq!(rs.len(), 4);
    let scopes: Vec<(TenantId, ShredScope)> = rs
        .iter()
        .map(|e| match &e.event {
            ReceiptEvent::Shredded {
                tenant,
                scope,
                key_ranges,
                queued,
                ..
            } => {
                assert!(!key_ranges.is_empty());
                assert_eq!(*queued, None);
                (*tenant, *scope)
            }
            other => panic!("expected Shredded, got {other:?}"),
        })
        .collect();
    assert_eq!(
        scopes,
        vec![
            (
                w.t,
                ShredScope::Window {
                    conversation: w.c1,
                    at_ms: D1 + 5
                }
            ),
            (w.t, ShredScope::User(w.alice)),
            (w.t, ShredScope::Conversation(w.c2)),
            (w.other, ShredScope::Tenant),
        ]
    );
    // The tenant receipt names all five key ranges of that tenant (KEK, conversation, epoch,
    // user and directory keys).
    match &rs[3].event {
        ReceiptEvent::Shredded { key_ranges, .. } => assert_eq!(key_ranges.len(), 5),
        other => panic!("{other:?}"),
    }
    let report = w.v.verify_receipts(None).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 4);
    let head = report.head.unwrap();
    assert_eq!(head.seq, 3);
    assert_eq!(head.mac, rs[3].mac);
    assert_eq!(w.v.receipts_head(), Some(head));

    // A complete purge records each shred's removal once.
    let p = w.v.purge(Default::default()).unwrap();
    assert!(p.complete, "{p:?}");
    assert_eq!(p.removed_shreds, vec![0, 1, 2, 3]);
    let rs = w.v.receipts().unwrap();
    let removed: Vec<u64> = rs[4..]
        .iter()
        .map(|e| match e.event {
            ReceiptEvent::Removed { shred_seq } => shred_seq,
            ref other => panic!("expected Removed, got {other:?}"),
        })
        .collect();
    assert_eq!(removed, vec![0, 1, 2, 3]);
    let p = w.v.purge(Default::default()).unwrap();
    assert!(p.removed_shreds.is_empty(), "recorded once only");
    assert_eq!(w.v.receipts().unwrap().len(), 8);

    // After a restart the chain continues from its stored head.
    let World { _d, data, p, v, .. } = w;
    let head = v.receipts_head().unwrap();
    drop(v);
    let v = reopen(&data, &p);
    assert_eq!(v.receipts_head(), Some(head));
    let t = v.tenant("acme-receipts-test").unwrap();
    let r = v.shred(t, Actor::operator(), ShredScope::Tenant).unwrap();
    assert_eq!(r.seq, 8);
    let report = v.verify_receipts(Some(&head)).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 9);
}

/// A closed vault with four receipts (seqs 0..=3); returns it with the head kept at the end.
fn closed_with_receipts() -> (World, ChainHead) {
    let w = world();
    four_shreds(&w);
    let head = w.v.verify_receipts(None).unwrap().head.unwrap();
    (w, head)
}

fn entry_key(seq: u64) -> Vec<u8> {
    let mut k = vec![0x12, 1];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Closes the vault, applies `tamper` to its raw RocksDB, reopens it and verifies the chain.
fn tamper_and_verify(tamper: impl FnOnce(&rocksdb::DB), with_head: bool) -> chatvault::ChainReport {
    let (w, head) = closed_with_receipts();
    let World { _d, data, p, v, .. } = w;
    drop(v);
    {
        let db = common::open_raw(&data);
        tamper(&db);
        db.flush_cf(db.cf_handle(cf::META).unwrap()).unwrap();
    }
    let v = reopen(&data, &p);
    v.verify_receipts(with_head.then_some(&head)).unwrap()
}

fn meta(db: &rocksdb::DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf::META).unwrap()
}

#[test]
fn an_edited_entry_is_caught_and_named() {
    // One byte of entry 2's body (after the 49-byte header) changed.
    let r = tamper_and_verify(
        |db| {
            let mut v = db.get_cf(meta(db), entry_key(2)).unwrap().unwrap();
            v[50] ^= 0x01;
            db.put_cf(meta(db), entry_key(2), v).unwrap();
        },
        false,
    );
    let b = r.broken.expect("edit caught");
    assert_eq!((b.seq, b.fault), (2, ChainFault::Edited), "{b}");
    assert_eq!(r.entries, 2);
    assert_eq!(r.head.map(|h| h.seq), Some(1));

    // The time is under the MAC too.
    let r = tamper_and_verify(
        |db| {
            let mut v = db.get_cf(meta(db), entry_key(1)).unwrap().unwrap();
            v[16] ^= 0x01;
            db.put_cf(meta(db), entry_key(1), v).unwrap();
        },
        false,
    );
    let b = r.broken.expect("edit caught");
    assert_eq!((b.seq, b.fault), (1, ChainFault::Edited), "{b}");
}

#[test]
fn a_dropped_entry_is_caught_and_named() {
    let r = tamper_and_verify(|db| db.delete_cf(meta(db), entry_key(1)).unwrap(), false);
    let b = r.broken.expect("drop caught");
    assert_eq!((b.seq, b.fault), (1, ChainFault::Missing), "{b}");
    assert_eq!(r.entries, 1);
}

#[test]
fn a_reordered_pair_is_caught_and_named() {
    let r = tamper_and_verify(
        |db| {
            let a = db.get_cf(meta(db), entry_key(1)).unwrap().unwrap();
            let b = db.get_cf(meta(db), entry_key(2)).unwrap().unwrap();
            db.put_cf(meta(db), entry_key(1), b).unwrap();
            db.put_cf(meta(db), entry_key(2), a).unwrap();
        },
        false,
    );
    let b = r.broken.expect("reorder caught");
    assert_eq!((b.seq, b.fault), (1, ChainFault::Reordered), "{b}");

    // Dropping entry 1 and renumbering the rest to close the gap is caught as well.
    let r = tamper_and_verify(
        |db| {
            for s in 1..3 {
                let next = db.get_cf(meta(db), entry_key(s + 1)).unwrap().unwrap();
                db.put_cf(meta(db), entry_key(s), next).unwrap();
            }
            db.delete_cf(meta(db), entry_key(3)).unwrap();
        },
        false,
    );
    let b = r.broken.expect("renumbering caught");
    assert_eq!((b.seq, b.fault), (1, ChainFault::Reordered), "{b}");
}

#[test]
fn entries_cut_off_the_end_are_caught_only_with_the_kept_head() {
    let cut = |db: &rocksdb::DB| {
        db.delete_cf(meta(db), entry_key(3)).unwrap();
        db.delete_cf(meta(db), entry_key(2)).unwrap();
    };
    let r = tamper_and_verify(cut, false);
    assert!(
        r.is_intact(),
        "without a kept head a shorter chain looks whole: {r:?}"
    );
    assert_eq!(r.entries, 2);
    let r = tamper_and_verify(cut, true);
    let b = r.broken.expect("truncation caught with the kept head");
    assert_eq!((b.seq, b.fault), (3, ChainFault::Truncated), "{b}");

    // Everything cut: still caught.
    let r = tamper_and_verify(
        |db| {
            for s in 0..4 {
                db.delete_cf(meta(db), entry_key(s)).unwrap();
            }
        },
        true,
    );
    assert_eq!(r.broken.map(|b| b.fault), Some(ChainFault::Truncated));
}

#[test]
fn no_receipt_or_queued_request_holds_a_name_or_an_external_id() {
    let w = world();
    let op = Actor::operator();
    // Every kind of entry: shreds of each scope, a queued request carried out, removals.
    let bob = w.v.user_id(w.t, "bob@example.org").unwrap();
    let h =
        w.v.place_hold(w.t, op, HoldScope::Custodian(bob), "m")
            .unwrap();
    assert!(matches!(
        w.v.shred_or_queue(w.t, op, ShredScope::User(bob)).unwrap(),
        ShredOutcome::Queued(_)
    ));
    let World { _d, data, p, v, .. } = w;
    drop(v);
    // A queued request at rest.
    let names: [&[u8]; 10] = [
        b"acme-receipts-test",
        b"globex-receipts-test",
        b"alice@example.org",
        b"bob@example.org",
        b"Alice Example",
        b"Bob Example",
        b"general",
        b"General",
        b"second-conversation",
        b"Second Title",
    ];
    let check = |data: &Path, min_entries: usize| {
        let db = common::open_raw(data);
        let mut n = 0;
        for prefix in [0x12u8, 0x13] {
            for kv in db.prefix_iterator_cf(meta(&db), [prefix]) {
                let (k, v) = kv.unwrap();
                if k[0] != prefix {
                    break;
                }
                n += 1;
                for name in names {
                    for b in [&k[..], &v[..]] {
                        assert!(
                            !b.windows(name.len()).any(|x| x == name),
                            "{:?} found in a {prefix:#x} entry",
                            String::from_utf8_lossy(name)
                        );
                    }
                }
            }
        }
        assert!(n >= min_entries, "{n} entries checked");
    };
    check(&data, 2);
    let v = reopen(&data, &p);
    let t = v.tenant("acme-receipts-test").unwrap();
    let other = v.tenant("globex-receipts-test").unwrap();
    v.release_hold(t, op, h.id).unwrap();
    let c1 = v.conversation_id(t, "general").unwrap();
    let alice = v.user_id(t, "alice@example.org").unwrap();
    v.shred(
        t,
        op,
        ShredScope::Window {
            conversation: c1,
            at_ms: D1,
        },
    )
    .unwrap();
    v.shred(t, op, ShredScope::User(alice)).unwrap();
    v.shred(t, op, ShredScope::Conversation(c1)).unwrap();
    v.shred(other, op, ShredScope::Tenant).unwrap();
    assert!(v.purge(Default::default()).unwrap().complete);
    let n = v.receipts().unwrap().len();
    assert_eq!(
        n,
        1 + 1 + 4 + 5,
        "queued, its shred, four shreds, five removals"
    );
    drop(v);
    check(&data, n);
}
