//! `Vault::open_secondary` beside a writer in the same process (reads, catches up, sees shreds
//! after `catch_up`, refuses every write with `Error::ReadOnlySecondary`); `Vault::restore`:
//! refuses what is not a checkpoint and a non-empty target, checks the root key before writing,
//! keeps shredded data shredded, refuses a checkpoint that needs a root key version retired by a
//! purge (`Error::RootKeyVersionRetired`); `Vault::key_stats` and `Vault::compact_scope`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chatvault::{
    Actor, Direction, Error, NewMessage, PurgeOptions, ShredScope, StaticKeyProvider, Vault,
    VaultOptions,
};

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

/// A vault whose root key lives in a key file (so that purges can re-version it).
fn vault_with_key_file() -> (tempfile::TempDir, Vault, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args(["init", "--data"])
        .arg(dir.path().join("data"))
        .arg("--key-file")
        .arg(&key)
        .env_remove("CHATVAULT_ROOT_KEY")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
    let v = Vault::open(dir.path().join("data"), p, VaultOptions::default()).unwrap();
    (dir, v, key)
}

fn provider(key: &std::path::Path) -> Arc<StaticKeyProvider> {
    Arc::new(StaticKeyProvider::from_file(key).unwrap())
}

#[test]
fn secondary_reads_beside_the_writer_catches_up_and_never_writes() {
    let (dir, v, key) = vault_with_key_file();
    let f = common::fixture(&v, "acme", Default::default());
    for n in 0..50 {
        v.append(f.t, f.c, NewMessage::text(f.alice, T0 + n, format!("m{n}")))
            .unwrap()
            .stored()
            .unwrap();
    }
    // A second window, to shred later.
    v.append(f.t, f.c, NewMessage::text(f.bob, T0 + DAY, "next day"))
        .unwrap()
        .stored()
        .unwrap();
    let sec = Vault::open_secondary(
        dir.path().join("data"),
        dir.path().join("secondary"),
        provider(&key),
        VaultOptions::default(),
    )
    .expect("a secondary opens while the primary holds the vault");
    assert!(sec.is_secondary() && !v.is_secondary());
    let t = sec.tenant("acme").unwrap();
    let c = sec.conversation_id(t, "general").unwrap();
    assert_eq!(sec.message_count(t, c).unwrap(), 51);
    assert_eq!(sec.get(t, c, 1).unwrap().body, "m0");

    // The writer goes on; the secondary sees the new messages after catching up.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(51));
    let w = {
        let (v, stop, acked) = (v.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) || n < 20 {
                let id = v
                    .append(
                        f.t,
                        f.c,
                        NewMessage::text(f.alice, T0 + 100 + n, format!("w{n}")),
                    )
                    .unwrap()
                    .stored()
                    .unwrap();
                acked.store(id, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = acked.load(Ordering::SeqCst);
    sec.catch_up().unwrap();
    let seen = sec.message_count(t, c).unwrap();
    assert!(
        seen >= before,
        "caught up: sees {seen}, {before} were acknowledged before"
    );
    let r = sec.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();

    // Every write is refused with the typed error, and nothing changes.
    let refused = |e: Error| {
        assert!(
            matches!(e, Error::ReadOnlySecondary { .. }),
            "expected ReadOnlySecondary, got {e:?}"
        );
        assert!(e.to_string().contains("read-only secondary"), "{e}");
    };
    refused(
        sec.append(t, c, NewMessage::text(f.alice, T0, "no"))
            .unwrap_err(),
    );
    refused(sec.create_tenant("other", Default::default()).unwrap_err());
    refused(
        sec.shred(t, Actor::operator(), ShredScope::User(f.bob))
            .unwrap_err(),
    );
    refused(sec.purge(PurgeOptions::default()).unwrap_err());
    refused(sec.compact().unwrap_err());
    refused(sec.compact_scope(t, None).unwrap_err());
    refused(sec.checkpoint(dir.path().join("cp")).unwrap_err());
    refused(sec.rotate_root_key().unwrap_err());
    refused(sec.retire_root_key(1).unwrap_err());
    assert!(!dir.path().join("cp").exists());
    // The key file was not given a new version by the refused rotation.
    assert_eq!(provider(&key).versions(), vec![1]);

    // A shred by the primary: the secondary reads it as shredded after catching up.
    v.shred(
        f.t,
        Actor::operator(),
        ShredScope::Window {
            conversation: f.c,
            at_ms: T0 + DAY,
        },
    )
    .unwrap();
    // The shred re-versioned its key path: the key file now holds root key version 2 only,
    // and the secondary reads it again when it catches up.
    assert_eq!(provider(&key).versions(), vec![2]);
    sec.catch_up().unwrap();
    assert!(matches!(sec.get(t, c, 51), Err(Error::Shredded { .. })));
    assert_eq!(sec.get(t, c, 1).unwrap().body, "m0");
    // Stats and key stats read on a secondary.
    let ks = sec.key_stats().unwrap();
    assert_eq!(ks.shred_tombstones, 1);
    assert_eq!(ks.key_paths_pending_reversioning, 0);
    assert_eq!(ks.root_key_version, 2);
    assert!(sec.stats().unwrap().column_families.len() == 5);
}

#[test]
fn key_stats_count_keys_and_records_under_current_versions() {
    let (_dir, v, _key) = vault_with_key_file();
    let f = common::fixture(&v, "acme", Default::default());
    for n in 0..10 {
        v.append(f.t, f.c, NewMessage::text(f.alice, T0 + n * DAY, "x"))
            .unwrap()
            .stored()
            .unwrap();
    }
    let s = v.key_stats().unwrap();
    assert_eq!(
        (
            s.tenant_keks,
            s.conversation_keys,
            s.epoch_keys,
            s.user_keys
        ),
        (1, 1, 10, 2)
    );
    assert_eq!(
        (s.shred_tombstones, s.key_paths_pending_reversioning),
        (0, 0)
    );
    let ts = &s.tenants[&f.t];
    assert_eq!(
        (ts.records, ts.current, ts.older_versions, ts.key_destroyed),
        (10, 10, 0, 0)
    );
    assert_eq!(ts.current_fraction(), 1.0);
    // A destroyed day: its record counts as awaiting purge.
    v.shred(
        f.t,
        Actor::operator(),
        ShredScope::Window {
            conversation: f.c,
            at_ms: T0,
        },
    )
    .unwrap();
    let s = v.key_stats().unwrap();
    let ts = &s.tenants[&f.t];
    assert_eq!((ts.records, ts.current, ts.key_destroyed), (10, 9, 1));
    // The shred re-versioned its path at once: the tenant KEK is under root v2 already.
    assert_eq!(
        (
            s.epoch_keys,
            s.shred_tombstones,
            s.key_paths_pending_reversioning,
            s.root_key_version
        ),
        (9, 1, 0, 2)
    );
    // Purge: the record leaves.
    assert!(v.purge(PurgeOptions::default()).unwrap().complete);
    let s = v.key_stats().unwrap();
    assert_eq!(s.tenants[&f.t].records, 9);
    assert_eq!(
        (s.key_paths_pending_reversioning, s.root_key_version),
        (0, 2)
    );
    assert_eq!(s.tenant_keks_under_old_root, 0);
    let cf = v.stats().unwrap();
    for c in &cf.column_families {
        assert!(c.dead_bytes() <= c.sst_bytes);
    }
}

#[test]
fn compact_scope_compacts_a_tenant_and_a_conversation() {
    let (_dir, v, _key) = vault_with_key_file();
    let f = common::fixture(&v, "acme", Default::default());
    let g = common::fixture(&v, "other", Default::default());
    for n in 0..100 {
        v.append(f.t, f.c, NewMessage::text(f.alice, T0 + n, "x"))
            .unwrap()
            .stored()
            .unwrap();
        v.append(g.t, g.c, NewMessage::text(g.alice, T0 + n, "y"))
            .unwrap()
            .stored()
            .unwrap();
    }
    for n in 1..=50 {
        v.delete(f.t, f.c, n, T0 + 1000).unwrap();
    }
    let count = v.message_count(f.t, f.c).unwrap();
    let listed = v
        .messages(f.t, f.c, None, Direction::Forward)
        .unwrap()
        .count();
    let r = v.compact_scope(f.t, Some(f.c)).unwrap();
    assert!(r.ranges >= 3);
    let r = v.compact_scope(f.t, None).unwrap();
    assert!(r.ranges > 10);
    assert_eq!(v.message_count(g.t, g.c).unwrap(), 100);
    assert_eq!(v.message_count(f.t, f.c).unwrap(), count);
    assert_eq!(
        v.messages(f.t, f.c, None, Direction::Forward)
            .unwrap()
            .count(),
        listed
    );
    assert!(v.verify().unwrap().is_ok());
}

#[test]
fn restore_checks_the_checkpoint_the_target_and_the_key() {
    let (dir, v, key) = vault_with_key_file();
    let f = common::fixture(&v, "acme", Default::default());
    v.append(f.t, f.c, NewMessage::text(f.alice, T0, "kept"))
        .unwrap()
        .stored()
        .unwrap();
    let cp = dir.path().join("cp");
    v.checkpoint(&cp).unwrap();

    // Not a checkpoint.
    let not = dir.path().join("not-a-checkpoint");
    std::fs::create_dir(&not).unwrap();
    std::fs::write(not.join("x"), "x").unwrap();
    let e = Vault::restore(
        &not,
        dir.path().join("r0"),
        provider(&key),
        VaultOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(
        e.to_string().contains("is not a chatvault checkpoint"),
        "{e}"
    );
    assert!(!dir.path().join("r0").exists());
    // A non-empty target.
    let e = Vault::restore(&cp, &not, provider(&key), VaultOptions::default()).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("a restore needs a new or empty directory"),
        "{e}"
    );
    // Another root key: refused before anything is written.
    let e = Vault::restore(
        &cp,
        dir.path().join("r1"),
        common::provider(),
        VaultOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::WrongRootKey { .. }), "{e:?}");
    assert!(!dir.path().join("r1").exists());

    // Into an empty directory: it opens and reads.
    let r2 = dir.path().join("r2");
    std::fs::create_dir(&r2).unwrap();
    let r = Vault::restore(&cp, &r2, provider(&key), VaultOptions::default()).unwrap();
    assert_eq!((r.tenant_keks, r.tenants, r.root_key_version), (1, 1, 1));
    assert!(r.files_copied >= 5 && r.bytes_copied > 0);
    drop(v);
    let w = Vault::open(&r2, provider(&key), VaultOptions::default()).unwrap();
    let t = w.tenant("acme").unwrap();
    let c = w.conversation_id(t, "general").unwrap();
    assert_eq!(w.get(t, c, 1).unwrap().body, "kept");
    assert!(w.verify().unwrap().is_ok());
    // No staging directory left behind.
    assert!(!dir.path().join(".r2.chatvault-restore").exists());
}

/// `RootKeyVersionRetired` for version 1 with version 2 held, and nothing written.
fn assert_refused_needing_v1(
    cp: &std::path::Path,
    target: &std::path::Path,
    key: &std::path::Path,
) {
    let e = Vault::restore(cp, target, provider(key), VaultOptions::default()).unwrap_err();
    match &e {
        Error::RootKeyVersionRetired { needed, held, .. } => {
            assert_eq!((*needed, held.as_str()), (1, "2"));
        }
        e => panic!("expected RootKeyVersionRetired, got {e:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("needs root key version 1"), "{msg}");
    assert!(
        msg.contains("key file kept from the time of the copy"),
        "{msg}"
    );
    assert!(!target.exists());
}

#[test]
fn restore_never_brings_shredded_data_back() {
    let (dir, v, key) = vault_with_key_file();
    let f = common::fixture(&v, "acme", Default::default());
    let secret = v
        .append(f.t, f.c, NewMessage::text(f.alice, T0, "shred me"))
        .unwrap()
        .stored()
        .unwrap();
    let cp_before = dir.path().join("cp-before");
    v.checkpoint(&cp_before).unwrap();
    // The shred re-versions its key path at once: root key version 1 is retired before the
    // call returns, and nothing waits for a purge.
    v.shred(f.t, Actor::operator(), ShredScope::Conversation(f.c))
        .unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert_eq!(provider(&key).versions(), vec![2]);

    // Before any purge, the checkpoint taken before the shred is refused, naming the version
    // it needs.
    assert_refused_needing_v1(&cp_before, &dir.path().join("refused"), &key);

    // The checkpoint taken after the shred restores, and the conversation stays shredded in it.
    let cp_after_shred = dir.path().join("cp-after-shred");
    v.checkpoint(&cp_after_shred).unwrap();
    let r = dir.path().join("r-after-shred");
    Vault::restore(&cp_after_shred, &r, provider(&key), VaultOptions::default()).unwrap();
    {
        let w = Vault::open(&r, provider(&key), VaultOptions::default()).unwrap();
        assert!(matches!(
            w.get(f.t, f.c, secret),
            Err(Error::Shredded { .. })
        ));
        assert!(w.verify().unwrap().is_ok());
    }

    // The purge has no key path left to re-version; it removes the records and still
    // verifies by its byte scan that the versions the shred's pass replaced are gone.
    let p = v.purge(PurgeOptions::default()).unwrap();
    assert!(p.complete, "{p:?}");
    assert!(p.rekey.is_none(), "{:?}", p.rekey);
    assert_refused_needing_v1(&cp_before, &dir.path().join("refused"), &key);

    // A checkpoint taken after the purge restores, still shredded.
    let cp_after = dir.path().join("cp-after-purge");
    v.checkpoint(&cp_after).unwrap();
    let r = dir.path().join("r-after-purge");
    let rep = Vault::restore(&cp_after, &r, provider(&key), VaultOptions::default()).unwrap();
    assert_eq!(rep.root_key_version, 2);
    let w = Vault::open(&r, provider(&key), VaultOptions::default()).unwrap();
    assert!(matches!(
        w.get(f.t, f.c, secret),
        Err(Error::Shredded { .. })
    ));
}

/// An erasure, and an erasure queued under a legal hold and carried out by the hold's release,
/// re-version their key paths like a shred: a checkpoint taken before either is refused.
#[test]
fn restore_never_brings_back_an_erasure_or_a_queued_erasure() {
    let (dir, v, key) = vault_with_key_file();
    let f = common::fixture(&v, "acme", Default::default());
    for (who, at, body) in [(f.alice, T0, "alice's"), (f.bob, T0 + 1, "bob's")] {
        v.append(f.t, f.c, NewMessage::text(who, at, body))
            .unwrap()
            .stored()
            .unwrap();
    }
    let cp1 = dir.path().join("cp1");
    v.checkpoint(&cp1).unwrap();
    v.erase_user(f.t, Actor::operator(), f.alice).unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert_refused_needing_v1(&cp1, &dir.path().join("refused1"), &key);

    // Root key version 2 now; a hold queues bob's erasure, its release carries it out.
    let hold = v
        .place_hold(
            f.t,
            Actor::operator(),
            chatvault::HoldScope::Custodian(f.bob),
            "case 7",
        )
        .unwrap()
        .id;
    let cp2 = dir.path().join("cp2");
    v.checkpoint(&cp2).unwrap();
    let queued = v
        .shred_or_queue(f.t, Actor::operator(), ShredScope::User(f.bob))
        .unwrap();
    assert!(matches!(queued, chatvault::ShredOutcome::Queued(_)));
    let done = v
        .release_hold_with_receipts(f.t, Actor::operator(), hold)
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert_eq!(provider(&key).versions(), vec![3]);
    let e = Vault::restore(
        &cp2,
        &dir.path().join("refused2"),
        provider(&key),
        VaultOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::RootKeyVersionRetired { needed: 2, .. }),
        "{e:?}"
    );
}

/// With `rekey_after_shred: false` (erasing many scopes in a row, one pass at the end), a
/// checkpoint taken before a shred still opens the shredded data until a pass runs: the
/// window DESIGN.md §7 documents. `Vault::key_paths_pending` says so; `Vault::rekey` closes
/// it, and so does the next open of the vault with the option on (as after a crash between
/// a shred and its pass).
#[test]
fn with_rekey_after_shred_off_old_copies_open_until_a_pass_runs() {
    let (dir, v, key) = vault_with_key_file();
    drop(v);
    let off = || VaultOptions {
        rekey_after_shred: false,
        ..VaultOptions::default()
    };
    let v = Vault::open(dir.path().join("data"), provider(&key), off()).unwrap();
    let f = common::fixture(&v, "acme", Default::default());
    let id = v
        .append(f.t, f.c, NewMessage::text(f.alice, T0, "before"))
        .unwrap()
        .stored()
        .unwrap();
    let cp = dir.path().join("cp");
    v.checkpoint(&cp).unwrap();
    v.shred(f.t, Actor::operator(), ShredScope::Conversation(f.c))
        .unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 1);
    let r = dir.path().join("r");
    Vault::restore(&cp, &r, provider(&key), off()).unwrap();
    {
        let w = Vault::open(&r, provider(&key), off()).unwrap();
        assert_eq!(w.get(f.t, f.c, id).unwrap().body, "before");
    }
    std::fs::remove_dir_all(&r).unwrap();

    // Reopened with the default options: the open runs the pass the shred did not.
    drop(v);
    let v = Vault::open(
        dir.path().join("data"),
        provider(&key),
        VaultOptions::default(),
    )
    .unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert_refused_needing_v1(&cp, &r, &key);
    drop(v);
}
