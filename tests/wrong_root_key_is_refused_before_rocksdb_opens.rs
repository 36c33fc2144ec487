//! A wrong root key gives a typed `WrongRootKey` error, never a panic or a corruption report,
//! and changes nothing on disk (it is checked before RocksDB opens and writes its LOG).

mod common;

use std::collections::BTreeMap;
use std::time::SystemTime;

use chatvault::{Error, NewMessage, StaticKeyProvider, TenantOptions, Vault, VaultOptions};

fn snapshot(dir: &std::path::Path) -> BTreeMap<std::path::PathBuf, (u64, SystemTime, Vec<u8>)> {
    common::files_under(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, (m.len(), m.modified().unwrap(), bytes))
        })
        .collect()
}

#[test]
fn wrong_root_key_gives_typed_error_and_changes_nothing() {
    let (dir, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    v.append(
        f.t,
        f.c,
        NewMessage::text(f.alice, 1_000, "secret message body"),
    )
    .unwrap()
    .stored()
    .unwrap();
    drop(v);
    let data = dir.path().join("data");
    let before = snapshot(&data);

    for _ in 0..3 {
        match Vault::open(&data, common::provider(), VaultOptions::default()) {
            Err(Error::WrongRootKey { path }) => assert_eq!(path, data),
            other => panic!("expected WrongRootKey, got {other:?}"),
        }
    }
    assert_eq!(
        snapshot(&data),
        before,
        "a failed open must not touch the data directory"
    );

    // The right key still opens it, and the data is there.
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    assert_eq!(v.get(f.t, f.c, 1).unwrap().body, "secret message body");
}

#[test]
fn root_key_from_env_text_and_key_file_formats() {
    let hex = "11".repeat(32);
    let a = StaticKeyProvider::parse_env_value(&hex).unwrap();
    let b = StaticKeyProvider::parse(&format!("chatvault-root-key-v1\n1:{hex}\n")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Vault::create(&data, std::sync::Arc::new(a), VaultOptions::default()).unwrap();
    // Same key through the key-file syntax opens the same vault.
    Vault::open(&data, std::sync::Arc::new(b), VaultOptions::default()).unwrap();

    assert!(StaticKeyProvider::parse_env_value("abcd").is_err());
    assert!(StaticKeyProvider::parse("not a key file").is_err());
    assert!(StaticKeyProvider::parse(&format!("chatvault-root-key-v1\n0:{hex}\n")).is_err());
    // Debug never shows key bytes.
    let dbg = format!("{:?}", StaticKeyProvider::parse_env_value(&hex).unwrap());
    assert!(!dbg.contains("1111"), "{dbg}");
    assert!(!format!("{:?}", chatvault::SecretKey::from_bytes([0x11; 32])).contains("11"));
}

#[test]
fn key_file_is_created_with_mode_0600_and_group_readable_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("root.key");
    StaticKeyProvider::create_key_file(&kf).unwrap();
    assert_eq!(
        std::fs::metadata(&kf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(StaticKeyProvider::from_file(&kf).is_ok());
    assert!(
        StaticKeyProvider::create_key_file(&kf).is_err(),
        "never overwrites a key file"
    );
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(StaticKeyProvider::from_file(&kf).is_err());
}

#[test]
fn opening_a_directory_without_a_vault_is_not_found_and_creating_twice_fails() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Vault::open(dir.path(), common::provider(), VaultOptions::default()),
        Err(Error::NotFound { .. })
    ));
    let data = dir.path().join("data");
    let v = Vault::create(&data, common::provider(), VaultOptions::default()).unwrap();
    drop(v);
    assert!(matches!(
        Vault::create(&data, common::provider(), VaultOptions::default()),
        Err(Error::AlreadyExists { .. })
    ));
}
