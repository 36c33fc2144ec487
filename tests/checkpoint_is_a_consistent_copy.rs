//! `Vault::checkpoint` while other threads append: the copy opens with the same root key (and
//! only with it), holds every message acknowledged before the checkpoint started, exactly, and
//! is a point-in-time copy (each conversation a gap-free prefix of what was written); the original
//! keeps working; shreds made before the checkpoint are in the copy; unsuitable targets are
//! refused with typed errors.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chatvault::{
    Actor, ConversationId, ConversationKind, Direction, Error, NewMessage, ShredScope, TenantId,
    UserId, Vault, VaultOptions,
};

const T0: i64 = 1_700_000_000_000;

fn body(conv: usize, n: u64) -> String {
    format!(
        "conversation {conv} message {n} {}",
        "x".repeat((n % 7) as usize * 10)
    )
}

/// Appends `body(k, n)` for n = 1, 2, ... until `stop`; `acked` is the count acknowledged.
fn writer(
    v: Vault,
    t: TenantId,
    c: ConversationId,
    u: UserId,
    k: usize,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let id = v
                .append(t, c, NewMessage::text(u, T0 + n as i64, body(k, n)))
                .unwrap()
                .stored()
                .unwrap();
            assert_eq!(id, n);
            acked.store(n, Ordering::SeqCst);
        }
    })
}

/// The conversation's messages, checked to be exactly `body(k, 1..=n)`; returns n.
fn exact_prefix(v: &Vault, t: TenantId, c: ConversationId, u: UserId, k: usize) -> u64 {
    let mut n = 0u64;
    for m in v.messages(t, c, None, Direction::Forward).unwrap() {
        let m = m.unwrap();
        n += 1;
        assert_eq!(m.id, n, "no gap in conversation {k}");
        assert_eq!(m.body, body(k, n));
        assert_eq!((m.author, m.sent_at_ms), (u, T0 + n as i64));
    }
    n
}

#[test]
fn a_checkpoint_taken_during_appends_holds_everything_acknowledged_before_it() {
    let (dir, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme", Default::default());
    let c2 = v
        .create_conversation(f.t, "second", ConversationKind::Group, None, &[(f.bob, 0)])
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let threads = [
        writer(
            v.clone(),
            f.t,
            f.c,
            f.alice,
            0,
            acked[0].clone(),
            stop.clone(),
        ),
        writer(v.clone(), f.t, c2, f.bob, 1, acked[1].clone(), stop.clone()),
    ];
    while acked.iter().any(|a| a.load(Ordering::SeqCst) < 300) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    let cp = dir.path().join("copies").join("cp1");
    let before = [
        acked[0].load(Ordering::SeqCst),
        acked[1].load(Ordering::SeqCst),
    ];
    v.checkpoint(&cp).unwrap();
    let after = [
        acked[0].load(Ordering::SeqCst),
        acked[1].load(Ordering::SeqCst),
    ];
    // Let the writers go on a little against the original.
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    for th in threads {
        th.join().unwrap();
    }
    assert!(cp.join(chatvault::KEYCHECK_FILE).exists());

    // Another root key is refused by the copy's KEYCHECK before RocksDB opens.
    assert!(matches!(
        Vault::open(&cp, common::provider(), VaultOptions::default()),
        Err(Error::WrongRootKey { .. })
    ));
    // The copy opens (while the original is still open) and holds a point-in-time prefix.
    let copy = Vault::open(&cp, p.clone(), VaultOptions::default()).unwrap();
    let t = copy.tenant("acme").unwrap();
    assert_eq!(t, f.t);
    for (k, (c, u)) in [(f.c, f.alice), (c2, f.bob)].into_iter().enumerate() {
        let n = exact_prefix(&copy, t, c, u, k);
        assert!(
            n >= before[k],
            "conversation {k}: copy has {n}, {} were acknowledged before the checkpoint",
            before[k]
        );
        // Can only hold what was written by the time the call returned (plus at most the one
        // append in flight then).
        assert!(n <= after[k] + 1, "conversation {k}: {n} > {}", after[k]);
        assert_eq!(copy.get(t, c, 1).unwrap().body, body(k, 1));
    }
    // The copy is a vault of its own: writing to it leaves the original alone.
    let c3 = copy
        .create_conversation(t, "only in the copy", ConversationKind::Group, None, &[])
        .unwrap();
    copy.append(t, c3, NewMessage::text(f.alice, T0, "copy"))
        .unwrap()
        .stored()
        .unwrap();
    drop(copy);

    // The original keeps working and holds everything its writers were told was stored.
    for (k, (c, u)) in [(f.c, f.alice), (c2, f.bob)].into_iter().enumerate() {
        assert_eq!(
            exact_prefix(&v, f.t, c, u, k),
            acked[k].load(Ordering::SeqCst)
        );
    }
    assert!(matches!(
        v.conversation_id(f.t, "only in the copy"),
        Err(Error::NotFound { .. })
    ));
    let id = v
        .append(f.t, f.c, NewMessage::text(f.alice, T0 + 1_000_000, "later"))
        .unwrap()
        .stored()
        .unwrap();
    assert_eq!(v.get(f.t, f.c, id).unwrap().body, "later");
    v.purge(Default::default()).unwrap();
    // A second checkpoint, into an existing empty directory, after more writes.
    let cp2 = dir.path().join("cp2");
    std::fs::create_dir(&cp2).unwrap();
    v.checkpoint(&cp2).unwrap();
    drop(v);
    let copy2 = Vault::open(&cp2, p, VaultOptions::default()).unwrap();
    assert_eq!(copy2.get(f.t, f.c, id).unwrap().body, "later");
}

#[test]
fn shreds_made_before_the_checkpoint_hold_in_the_copy() {
    let (dir, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme", Default::default());
    v.append(f.t, f.c, NewMessage::text(f.alice, T0, "alice"))
        .unwrap()
        .stored()
        .unwrap();
    v.append(f.t, f.c, NewMessage::text(f.bob, T0 + 1, "bob"))
        .unwrap()
        .stored()
        .unwrap();
    v.shred(f.t, Actor::operator(), ShredScope::User(f.alice))
        .unwrap();
    let cp = dir.path().join("cp");
    v.checkpoint(&cp).unwrap();
    let copy = Vault::open(&cp, p, VaultOptions::default()).unwrap();
    assert!(matches!(copy.get(f.t, f.c, 1), Err(Error::Shredded { .. })));
    assert!(matches!(
        copy.user(f.t, f.alice),
        Err(Error::Shredded { .. })
    ));
    assert_eq!(copy.get(f.t, f.c, 2).unwrap().body, "bob");
}

#[test]
fn a_non_empty_target_or_one_inside_the_vault_is_refused() {
    let (dir, v, _p) = common::new_vault();
    let data = dir.path().join("data");
    for inside in [data.clone(), data.join("cp"), data.join("sub").join("cp")] {
        assert!(
            matches!(v.checkpoint(&inside), Err(Error::InvalidInput(_))),
            "{}",
            inside.display()
        );
    }
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("something"), b"keep me").unwrap();
    assert!(matches!(
        v.checkpoint(&full),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(full.join("something")).unwrap(), b"keep me");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        v.checkpoint(&file),
        Err(Error::AlreadyExists { .. })
    ));
    // Nothing was left behind by the refusals, and the vault directory is untouched.
    assert!(!data.join("cp").exists() && !data.join("sub").exists());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains("chatvault-checkpoint")),
        "{names:?}"
    );
}
