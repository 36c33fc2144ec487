//! The vault format version (DESIGN.md §2, "Vault format version"): a format-1 vault (the
//! `tests/fixtures/v1` fixture) is upgraded in place at open by a writer and reads back exactly;
//! an upgrade stopped after any of its batches is finished by the next open; a vault from the
//! future (`tests/fixtures/future`) is refused before anything on disk changes, by the library
//! and by the CLI (exit 8); a read-only secondary refuses a format-1 vault and changes nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chatvault::{
    Error, ShredScope, StaticKeyProvider, TenantId, Vault, VaultOptions, NO_RECEIPT,
    VAULT_FORMAT_VERSION,
};

/// The fixtures' root key (public on purpose: the fixtures hold no secrets).
const FIXTURE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn provider() -> Arc<StaticKeyProvider> {
    Arc::new(StaticKeyProvider::parse_env_value(FIXTURE_KEY).unwrap())
}

/// A copy of fixture `name` in a temporary directory: `(guard, data dir)`.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assert!(src.join("KEYCHECK").exists(), "fixture missing at {src:?}");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in common::files_under(&src) {
        std::fs::copy(&f, data.join(f.file_name().unwrap())).unwrap();
    }
    (tmp, data)
}

type Snapshot = BTreeMap<PathBuf, (u64, SystemTime, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    common::files_under(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, (m.len(), m.modified().unwrap(), bytes))
        })
        .collect()
}

/// Raw read of the `meta` column family of a closed vault (read-only: writes nothing).
fn raw_meta(data: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut co = rocksdb::Options::default();
    co.set_merge_operator_associative("chatvault.max_u64.v1", chatvault::codec::merge_max_u64);
    let db = rocksdb::DB::open_cf_descriptors_read_only(
        &rocksdb::Options::default(),
        data,
        [rocksdb::ColumnFamilyDescriptor::new(
            chatvault::cf::META,
            co,
        )],
        false,
    )
    .unwrap();
    let meta = db.cf_handle(chatvault::cf::META).unwrap();
    db.iterator_cf(&meta, rocksdb::IteratorMode::Start)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Meta kind bytes of every user record (`0x05 t u`).
fn user_record_kinds(meta: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    meta.iter()
        .filter(|(k, _)| k.first() == Some(&0x05))
        .map(|(_, v)| v[1])
        .collect()
}

/// The shred receipt of format 1, as the builds before the receipt chain wrote it.
#[derive(serde::Serialize)]
struct ReceiptV1 {
    tenant: TenantId,
    scope: ShredScope,
    at_ms: i64,
    key_ranges: Vec<String>,
}

#[derive(serde::Serialize)]
struct TombstoneV1 {
    receipt: ReceiptV1,
    window: Option<(i64, i64)>,
}

/// Ids in the v1 fixture (the same in every copy): tenant `fixture-default` and its `room-1`.
fn fixture_ids() -> (TenantId, chatvault::ConversationId) {
    let (_tmp, data) = copy_fixture("v1");
    let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
    let t = v.tenant("fixture-default").unwrap();
    (t, v.conversation_id(t, "room-1").unwrap())
}

/// A format-1 vault with a shred tombstone in the format-1 layout (as the first shredding
/// builds wrote it, before the receipt chain): room-1 of fixture-default is shredded.
fn v1_with_old_tombstone() -> (tempfile::TempDir, PathBuf, TenantId) {
    let (t, c) = fixture_ids();
    let (tmp, data) = copy_fixture("v1");
    let tomb = TombstoneV1 {
        receipt: ReceiptV1 {
            tenant: t,
            scope: ShredScope::Conversation(c),
            at_ms: 1_650_000_000_000,
            key_ranges: vec![],
        },
        window: None,
    };
    let mut key = vec![0x10];
    key.extend_from_slice(&t.as_u64().to_be_bytes());
    key.push(2); // conversation scope
    key.extend_from_slice(&c.as_u64().to_be_bytes());
    key.extend_from_slice(&(1u64 << 63).to_be_bytes()); // start 0 (sign bit flipped)
    {
        let db = common::open_raw(&data);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        db.put_cf(&meta, &key, postcard::to_stdvec(&tomb).unwrap())
            .unwrap();
        db.flush_cf(&meta).unwrap();
    }
    (tmp, data, t)
}

/// After a finished upgrade: the record says format 2, every user record is kind 9, the old
/// tombstone has its receipt fields, room-1 of fixture-default reads as shredded, and the
/// other tenant reads back exactly.
fn check_upgraded(data: &Path) {
    {
        let v = Vault::open(data, provider(), VaultOptions::default()).unwrap();
        assert_eq!(v.format_version().unwrap(), VAULT_FORMAT_VERSION);
        let t = v.tenant("fixture-default").unwrap();
        let a = v.tenant("fixture-author-erased").unwrap();
        let room = v.conversation_id(a, "room-1").unwrap();
        let msgs: Vec<_> = v
            .messages(a, room, None, chatvault::Direction::Forward)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0].body, "first message, edited");
        assert_eq!(msgs[1].body, "reply with ünïcödé 🎉");
        let ada = v.user_id(a, "ada").unwrap();
        assert_eq!(v.user(a, ada).unwrap().profile.display_name, "Ada Lovelace");
        // The shredded conversation of the old tombstone stays shredded.
        let ada_t = v.user_id(t, "ada").unwrap();
        assert_eq!(
            v.user(t, ada_t).unwrap().profile.display_name,
            "Ada Lovelace"
        );
        let convs: Vec<_> = v.conversations(t).unwrap().filter_map(Result::ok).collect();
        assert!(convs.is_empty(), "room-1 is shredded: {convs:?}");
    }
    let meta = raw_meta(data);
    assert_eq!(
        meta.get(&vec![0x1D]).map(|v| v[..5].to_vec()),
        Some(vec![1, 0, 0, 0, 2])
    );
    assert_eq!(user_record_kinds(&meta), [9, 9, 9, 9]);
    let tombs: Vec<_> = meta.iter().filter(|(k, _)| k[0] == 0x10).collect();
    assert_eq!(tombs.len(), 1);
    // seq = NO_RECEIPT (a 10-byte varint) and queued = None follow the key ranges.
    let mut tail = postcard::to_stdvec(&NO_RECEIPT).unwrap();
    tail.extend([0, 0]);
    assert!(tombs[0].1.ends_with(&tail), "{:02x?}", tombs[0].1);
}

#[test]
fn v1_fixture_is_upgraded_in_place_and_reads_back_exactly() {
    let (_tmp, data, _) = v1_with_old_tombstone();
    let before = raw_meta(&data);
    assert!(!before.contains_key(&vec![0x1D]), "format 1 has no record");
    assert_eq!(user_record_kinds(&before), [4, 4, 4, 4]);
    {
        let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
        assert_eq!(v.upgraded_from(), Some(1));
    }
    check_upgraded(&data);
    // The next open has nothing to do.
    let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
    assert_eq!(v.upgraded_from(), None);
}

#[test]
fn an_upgrade_stopped_after_any_batch_is_finished_by_the_next_open() {
    // Batch 1 rewrites the tombstone, batch 2 the user records; the record comes after both.
    for stop in 1..=2 {
        let (_tmp, data, _) = v1_with_old_tombstone();
        chatvault::stop_upgrade_after(Some(stop));
        let r = Vault::open(&data, provider(), VaultOptions::default());
        chatvault::stop_upgrade_after(None);
        match r {
            Err(Error::InvalidInput(m)) => assert!(m.contains("stopped"), "{m}"),
            other => panic!("stop after {stop}: expected the test hook's stop, got {other:?}"),
        }
        let meta = raw_meta(&data);
        assert!(
            !meta.contains_key(&vec![0x1D]),
            "stop after {stop}: the record is written last"
        );
        let kinds = user_record_kinds(&meta);
        assert_eq!(
            kinds,
            if stop == 1 { [4; 4] } else { [9; 4] },
            "stop {stop}"
        );
        let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
        assert_eq!(v.upgraded_from(), Some(1), "stop after {stop}");
        drop(v);
        check_upgraded(&data);
    }
}

#[test]
fn a_vault_from_the_future_is_refused_and_nothing_on_disk_changes() {
    let (tmp, data) = copy_fixture("future");
    let before = snapshot(&data);
    for _ in 0..2 {
        match Vault::open(&data, provider(), VaultOptions::default()) {
            Err(e @ Error::VaultFormatTooNew { .. }) => {
                let Error::VaultFormatTooNew {
                    found,
                    ref written_by,
                    supported,
                    ..
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((found, supported), (999, VAULT_FORMAT_VERSION));
                assert_eq!(written_by, "chatvault 99.0.0");
                let m = e.to_string();
                assert!(
                    m.contains("format version 999") && m.contains("chatvault 99.0.0 or newer"),
                    "{m}"
                );
            }
            other => panic!("expected VaultFormatTooNew, got {other:?}"),
        }
    }
    assert_eq!(
        snapshot(&data),
        before,
        "a refused open must not touch the data directory"
    );

    // A secondary refuses it too, and leaves the vault as it was.
    let sec = tmp.path().join("secondary");
    assert!(matches!(
        Vault::open_secondary(&data, &sec, provider(), VaultOptions::default()),
        Err(Error::VaultFormatTooNew { found: 999, .. })
    ));
    assert_eq!(snapshot(&data), before);
}

#[test]
fn a_secondary_refuses_a_format_1_vault_and_says_to_open_it_with_a_writer() {
    let (tmp, data) = copy_fixture("v1");
    let before = snapshot(&data);
    let sec = tmp.path().join("secondary");
    match Vault::open_secondary(&data, &sec, provider(), VaultOptions::default()) {
        Err(e @ Error::VaultFormatNeedsUpgrade { found: 1, .. }) => {
            let m = e.to_string();
            assert!(m.contains("open it once for writing"), "{m}");
        }
        other => panic!("expected VaultFormatNeedsUpgrade, got {other:?}"),
    }
    assert_eq!(snapshot(&data), before, "a secondary never writes");
    // Once a writer opened it, the secondary opens.
    drop(Vault::open(&data, provider(), VaultOptions::default()).unwrap());
    let v = Vault::open_secondary(&data, &sec, provider(), VaultOptions::default()).unwrap();
    assert_eq!(v.format_version().unwrap(), VAULT_FORMAT_VERSION);
}

#[test]
fn a_new_vault_is_created_at_the_current_format() {
    let (_dir, v, _) = common::new_vault();
    assert_eq!(v.format_version().unwrap(), VAULT_FORMAT_VERSION);
    assert_eq!(v.upgraded_from(), None);
}

/// A key file with the fixtures' key, beside the data directory.
fn fixture_cli(tmp: &tempfile::TempDir, data: &Path) -> common::Cli {
    use std::os::unix::fs::PermissionsExt;
    let key = tmp.path().join("root.key");
    std::fs::write(&key, format!("chatvault-root-key-v1\n1:{FIXTURE_KEY}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    common::Cli::at(data, &key)
}

#[test]
fn cli_exits_8_on_a_vault_from_the_future_and_upgrades_a_format_1_vault() {
    let (tmp, data) = copy_fixture("future");
    let cli = fixture_cli(&tmp, &data);
    let before = snapshot(&data);
    for args in [&["stats"][..], &["verify"], &["ls", "--json"], &["purge"]] {
        let err = cli.fails(args, 8);
        assert!(
            err.contains("format version 999") && err.contains("chatvault 99.0.0 or newer"),
            "{args:?}: {err}"
        );
    }
    let sec = tmp.path().join("sec");
    let err = cli.fails(&["verify", "--secondary", sec.to_str().unwrap()], 8);
    assert!(err.contains("format version 999"), "{err}");
    assert_eq!(snapshot(&data), before);

    let (tmp, data) = copy_fixture("v1");
    let cli = fixture_cli(&tmp, &data);
    let sec = tmp.path().join("sec");
    let err = cli.fails(&["stats", "--secondary", sec.to_str().unwrap()], 8);
    assert!(err.contains("open it once for writing"), "{err}");
    let out = cli.ok(&["verify"]);
    assert!(out.contains("verify: everything authenticated"), "{out}");
    let out = cli.ok(&["stats", "--secondary", sec.to_str().unwrap(), "--json"]);
    assert!(out.contains("\"format_version\":2"), "{out}");
}
