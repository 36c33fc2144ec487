//! Many threads appending to one conversation: no lost or duplicate ids, ids strictly
//! increasing within each thread, and the counter survives a reopen.

mod common;

use std::collections::BTreeSet;

use chatvault::{Direction, NewMessage, TenantOptions, Vault, VaultOptions};

#[test]
fn eight_threads_appending_to_one_conversation() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 250;
    let (dir, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let handles: Vec<_> = (0..THREADS)
        .map(|n| {
            let v = v.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::with_capacity(PER_THREAD);
                for i in 0..PER_THREAD {
                    // Spread over several epochs so that epoch keys are created concurrently too.
                    let at = 1_700_000_000_000 + (i as i64 % 5) * 86_400_000;
                    let body = format!("thread {n} message {i}");
                    ids.push(
                        v.append(f.t, f.c, NewMessage::text(f.alice, at, body))
                            .unwrap()
                            .stored()
                            .unwrap(),
                    );
                }
                ids
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for h in handles {
        let ids = h.join().unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids increase within a thread"
        );
        for id in ids {
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    let n = (THREADS * PER_THREAD) as u64;
    assert_eq!(all, (1..=n).collect::<BTreeSet<_>>(), "no id lost");

    // Every message reads back with its own body.
    let mut seen = 0;
    for m in v.messages(f.t, f.c, None, Direction::Forward).unwrap() {
        let m = m.unwrap();
        assert!(m.body.starts_with("thread "));
        seen += 1;
    }
    assert_eq!(seen, n);

    drop(v);
    let v = Vault::open(dir.path().join("data"), p, VaultOptions::default()).unwrap();
    assert_eq!(v.last_message_id(f.t, f.c).unwrap(), n);
    assert_eq!(
        v.append(f.t, f.c, NewMessage::text(f.bob, 0, "after reopen"))
            .unwrap()
            .stored()
            .unwrap(),
        n + 1
    );
}

#[test]
fn vault_is_send_sync_and_cheap_to_clone() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<Vault>();
    assert_eq!(
        std::mem::size_of::<Vault>(),
        std::mem::size_of::<usize>(),
        "one Arc"
    );
}
