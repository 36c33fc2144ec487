//! Root key rotation and retirement: every tenant KEK and the vault key are wrapped again under
//! the new version; an old version is retired only when nothing uses it; a rotation stopped
//! after the key file got its new version (a crash) leaves a vault that opens and cannot lose
//! the old version by mistake.

mod common;

use std::path::Path;
use std::sync::Arc;

use chatvault::{
    Error, KeyProvider, NewMessage, StaticKeyProvider, TenantOptions, Vault, VaultOptions,
};

fn reopen(data: &Path, key: &Path) -> (Vault, Arc<StaticKeyProvider>) {
    let p = Arc::new(StaticKeyProvider::from_file(key).unwrap());
    (
        Vault::open(data, p.clone(), VaultOptions::default()).unwrap(),
        p,
    )
}

fn all_readable(v: &Vault, n: usize) {
    for k in 0..n {
        let t = v.tenant(&format!("t{k}")).unwrap();
        let c = v.conversation_id(t, "general").unwrap();
        assert_eq!(v.get(t, c, 1).unwrap().body, format!("hello {k}"));
    }
    let r = v.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
}

#[test]
fn rotate_then_retire_and_a_stopped_rotation_keeps_the_old_version() {
    let d = tempfile::tempdir().unwrap();
    let (data, key) = (d.path().join("data"), d.path().join("root.key"));
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p, VaultOptions::default()).unwrap();
    for k in 0..5 {
        let f = common::fixture(&v, &format!("t{k}"), TenantOptions::default());
        v.append(
            f.t,
            f.c,
            NewMessage::text(f.alice, 1_000, format!("hello {k}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    assert!(matches!(
        v.retire_root_key(1),
        Err(Error::InvalidInput(m)) if m.contains("current version")
    ));
    assert!(matches!(
        v.retire_root_key(9),
        Err(Error::InvalidInput(m)) if m.contains("not in the key provider (it holds 1)")
    ));

    // A rotation that stopped after the key file got version 2 (as if the process died).
    let (v, p) = {
        drop(v);
        let (v, p) = reopen(&data, &key);
        assert_eq!(p.add_version().unwrap(), 2);
        (v, p)
    };
    // Version 1 still wraps every tenant KEK: retiring it is refused, and nothing is lost.
    match v.retire_root_key(1) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("still wraps 5 tenant KEK"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.versions(), vec![1, 2]);
    drop(v);
    let (v, _) = reopen(&data, &key);
    all_readable(&v, 5);

    // The rotation itself.
    let r = v.rotate_root_key().unwrap();
    assert_eq!(r.root_version, 3);
    assert_eq!(r.tenant_keks_rewrapped, 5);
    assert!(r.retired_root_versions.is_empty(), "kept until retired");
    all_readable(&v, 5);
    drop(v);
    let (v, p) = reopen(&data, &key);
    assert_eq!(p.versions(), vec![1, 2, 3]);
    all_readable(&v, 5);
    v.retire_root_key(1).unwrap();
    v.retire_root_key(2).unwrap();
    assert_eq!(p.versions(), vec![3]);
    drop(v);
    let (v, _) = reopen(&data, &key);
    all_readable(&v, 5);
    drop(v);

    // The CLI wraps the same calls.
    let c = common::Cli::at(&data, &key);
    let cli = |args: &[&str]| c.out(args);
    let (code, out) = cli(&["key", "rotate-root"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("version 4 is current; 5 tenant KEKs re-wrapped"),
        "{out}"
    );
    let (code, out) = cli(&["key", "retire-root", "4"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("current version"), "{out}");
    let (code, out) = cli(&["key", "retire-root", "3"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cli(&["verify"]);
    assert_eq!(code, Some(0), "{out}");
    let (v, p) = reopen(&data, &key);
    assert_eq!(p.versions(), vec![4]);
    all_readable(&v, 5);
}
