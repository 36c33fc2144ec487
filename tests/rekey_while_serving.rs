//! Key re-versioning while the vault serves: writers append, create users and conversations and
//! add members, and readers read, while another thread shreds windows and purges (each purge
//! re-versions the tenant KEK and conversation keys and rotates the root key). Nothing may fail
//! spuriously, nothing acknowledged may be lost, and afterwards `verify` authenticates every key
//! and record (so nothing was sealed under a version the pass retired).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chatvault::{
    Actor, ConversationKind, Direction, NewMessage, PurgeOptions, ShredScope, StaticKeyProvider,
    TenantOptions, UserProfile, Vault, VaultOptions,
};
use common::DAY;

const D0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;

#[test]
fn writers_and_readers_run_through_re_versioning_passes() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("root.key");
    let data = d.path().join("data");
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p, VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    // A conversation whose old days get shredded, one after another.
    let old = v
        .create_conversation(f.t, "old", ConversationKind::Group, None, &[(f.alice, 0)])
        .unwrap();
    for day in 0..40 {
        v.append(f.t, old, NewMessage::text(f.alice, D0 + day * DAY, "old"))
            .unwrap()
            .stored()
            .unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (v, stop) = (v.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 30 {
                n += 1;
                // A new user, a new conversation with them, a member added, a message.
                let u = v
                    .create_user(f.t, &format!("u{n}"), UserProfile::default())
                    .unwrap();
                let c = v
                    .create_conversation(f.t, &format!("c{n}"), ConversationKind::Group, None, &[])
                    .unwrap();
                v.add_member(f.t, c, u, D0).unwrap();
                let body = format!("m{n}");
                let id = v
                    .append(f.t, c, NewMessage::text(u, D0 + n as i64, body.clone()))
                    .unwrap()
                    .stored()
                    .unwrap();
                let id2 = v
                    .append(
                        f.t,
                        f.c,
                        NewMessage::text(f.bob, D0 + 50 * DAY + n as i64, body.clone()),
                    )
                    .unwrap()
                    .stored()
                    .unwrap();
                acked.push((c, id, f.c, id2, body));
            }
            acked
        })
    };
    let reader = {
        let (v, stop) = (v.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut reads, mut verifies) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let page = v.page(f.t, f.c, None, Direction::Backward, 20).unwrap();
                reads += page.messages.len() as u64;
                for c in v.conversations(f.t).unwrap() {
                    let c = c.unwrap();
                    v.members(f.t, c.id).unwrap();
                }
                v.user_id(f.t, "alice@example.org").unwrap();
                // `verify` while passes run: never a spurious failure.
                let r = v.verify().unwrap();
                assert!(r.is_ok(), "{:?}", r.failures);
                verifies += 1;
            }
            (reads, verifies)
        })
    };
    let mut passes = 0;
    for day in 0..6 {
        v.shred(
            f.t,
            Actor::operator(),
            ShredScope::Window {
                conversation: old,
                at_ms: D0 + day * DAY,
            },
        )
        .unwrap();
        // The shred ran the pass while the writer and the reader go on.
        assert_eq!(v.key_paths_pending().unwrap(), 0);
        let r = v.purge(PurgeOptions::default()).unwrap();
        assert!(r.complete, "{r:?}");
        passes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    let (reads, verifies) = reader.join().unwrap();
    assert!(
        reads > 0 && verifies > 0 && acked.len() >= 30,
        "{reads} {verifies} {}",
        acked.len()
    );
    println!(
        "{passes} passes, {} writes, {reads} messages read, {verifies} verify runs",
        acked.len()
    );

    let check = |v: &Vault| {
        for (c, id, c2, id2, body) in &acked {
            assert_eq!(&v.get(f.t, *c, *id).unwrap().body, body);
            assert_eq!(&v.get(f.t, *c2, *id2).unwrap().body, body);
        }
        let r = v.verify().unwrap();
        assert!(r.is_ok(), "{:?}", r.failures);
        assert_eq!(
            v.messages(f.t, old, None, Direction::Forward)
                .unwrap()
                .count(),
            34
        );
    };
    check(&v);
    drop(v);
    let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
    assert_eq!(
        p.versions(),
        vec![7],
        "one root version per pass, the old ones retired"
    );
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    check(&v);
}
