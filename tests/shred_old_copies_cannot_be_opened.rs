//! Old copies: a copy of the data directory taken before a shred (a backup, a copied folder)
//! must not decrypt the shredded data after the purge, even for an attacker who also holds
//! everything the live vault holds: its current root key (the key file) and every live key.
//!
//! The attack: start from the current key file and every key the live vault can unwrap, then
//! unwrap everything possible from the old copy's `keys` column family, to a fixpoint (each key
//! recovered from the old copy is tried as a parent too). Each shred re-versions its key path
//! before it returns, so right after the shred the attack recovers none of the shredded keys and
//! the old copy does not even open with the current key file. With that turned off
//! (`VaultOptions::rekey_after_shred: false`, shreds in bulk), the attack works until the next
//! pass (the test shows that it can succeed), and the purge's pass closes it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chatvault::envelope::{self, WrapHeader};
use chatvault::{
    Actor, Error, KeyProvider, NewMessage, PurgeOptions, SecretKey, ShredScope, StaticKeyProvider,
    TenantOptions, Vault, VaultOptions,
};
use common::DAY;

const D1: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;
const D2: i64 = D1 + DAY;
const TENANT_KEK: u8 = 0x01;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        assert!(e.file_type().unwrap().is_file(), "flat data directory");
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Every `(place, wrapped value)` of a data directory's `keys` column family.
fn wrapped_keys(data: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = common::open_raw(data);
    let cf = db.cf_handle(chatvault::cf::KEYS).unwrap();
    db.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Unwraps, to a fixpoint, every key of `wrapped` that the root key `provider` and the keys in
/// `known` (plus whatever is recovered on the way) can open. Returns the places recovered.
fn attack(
    provider: &dyn KeyProvider,
    known: &[SecretKey],
    wrapped: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> BTreeMap<Vec<u8>, SecretKey> {
    let mut parents: Vec<SecretKey> = known.to_vec();
    let mut got: BTreeMap<Vec<u8>, SecretKey> = BTreeMap::new();
    loop {
        let before = got.len();
        for (place, value) in wrapped {
            if got.contains_key(place) {
                continue;
            }
            let Ok(h) = WrapHeader::decode(value, String::new) else {
                continue;
            };
            let key = if place[0] == TENANT_KEK {
                provider.unwrap(&value[10..], &h.aad(place)).ok()
            } else {
                parents.iter().find_map(|p| {
                    envelope::unwrap_key(&p.cipher(), value, place, String::new)
                        .ok()
                        .map(|(_, k)| k)
                })
            };
            if let Some(k) = key {
                parents.push(k.clone());
                got.insert(place.clone(), k);
            }
        }
        if got.len() == before {
            return got;
        }
    }
}

/// The attack with every key the live vault at `data` unwraps: which of `destroyed` (places in
/// the old copy's `keys`) it recovers from `old_keys`, in hex.
fn recovered(
    p: &dyn KeyProvider,
    data: &Path,
    old_keys: &BTreeMap<Vec<u8>, Vec<u8>>,
    destroyed: &[Vec<u8>],
) -> Vec<String> {
    let live = attack(p, &[], &wrapped_keys(data));
    let live_keys: Vec<SecretKey> = live.values().cloned().collect();
    let after = attack(p, &live_keys, old_keys);
    destroyed
        .iter()
        .filter(|k| after.contains_key(*k))
        .map(hex::encode)
        .collect()
}

fn key_file_provider(path: &Path) -> Arc<StaticKeyProvider> {
    Arc::new(StaticKeyProvider::from_file(path).unwrap())
}

/// Shreds in bulk: the option off, one pass at the purge.
fn bulk() -> VaultOptions {
    VaultOptions {
        rekey_after_shred: false,
        ..VaultOptions::default()
    }
}

#[test]
fn right_after_a_shred_an_old_copy_opens_nothing_it_destroyed() {
    let d = tempfile::tempdir().unwrap();
    let key_file = d.path().join("root.key");
    let data = d.path().join("data");
    let old = d.path().join("old-copy");
    let p = Arc::new(StaticKeyProvider::create_key_file(&key_file).unwrap());
    let v = Vault::create(&data, p.clone(), VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let mallory = v
        .create_user(f.t, "mallory", chatvault::UserProfile::default())
        .unwrap();
    v.add_member(f.t, f.c, mallory, D1).unwrap();
    for (who, day) in [(f.alice, D1), (mallory, D1), (f.bob, D2)] {
        v.append(f.t, f.c, NewMessage::text(who, day + 1, "x"))
            .unwrap()
            .stored()
            .unwrap();
    }
    let keep = common::fixture(&v, "initech", TenantOptions::default());
    let kept = v
        .append(keep.t, keep.c, NewMessage::text(keep.bob, D2, "kept"))
        .unwrap()
        .stored()
        .unwrap();
    drop(v);
    copy_dir(&data, &old);
    let old_keys = wrapped_keys(&old);

    let v = Vault::open(&data, p.clone(), VaultOptions::default()).unwrap();
    v.shred(f.t, Actor::operator(), ShredScope::User(mallory))
        .unwrap();
    v.shred(
        f.t,
        Actor::operator(),
        ShredScope::Window {
            conversation: f.c,
            at_ms: D1,
        },
    )
    .unwrap();
    // No purge: the shreds themselves re-versioned their paths.
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert_eq!(
        p.versions(),
        vec![3],
        "one pass per shred, old versions retired"
    );
    assert_eq!(v.get(keep.t, keep.c, kept).unwrap().body, "kept");
    drop(v);

    let t8 = f.t.as_u64().to_be_bytes();
    let destroyed: Vec<Vec<u8>> = old_keys
        .keys()
        .filter(|k| {
            k[1..9] == t8
                && ((k[0] == 0x04 && k[9..17] == mallory.as_u64().to_be_bytes())
                    || (k[0] == 0x03
                        && k[9..17] == f.c.as_u64().to_be_bytes()
                        && k[17..21] == ((D1 / DAY) as u32).to_be_bytes()))
        })
        .cloned()
        .collect();
    assert_eq!(destroyed.len(), 2, "mallory's key and day 1's key");
    assert!(matches!(
        Vault::open(&old, key_file_provider(&key_file), VaultOptions::default()),
        Err(Error::RootKeyVersionRetired { .. })
    ));
    let exposed = recovered(p.as_ref(), &data, &old_keys, &destroyed);
    assert!(
        exposed.is_empty(),
        "recovered from the old copy: {exposed:?}"
    );

    // The purge removes from every file what the shreds' passes replaced (the old versions of
    // acme's KEK and conversation key, as the old copy holds them) and the destroyed keys.
    let v = Vault::open(&data, p.clone(), VaultOptions::default()).unwrap();
    let r = v.purge(PurgeOptions::default()).unwrap();
    assert!(r.complete, "{r:?}");
    drop(v);
    let replaced: Vec<&Vec<u8>> = old_keys
        .iter()
        .filter(|(k, _)| k[1..9] == t8 && (k[0] == 0x01 || k[0] == 0x02))
        .map(|(_, v)| v)
        .chain(destroyed.iter().map(|k| &old_keys[k]))
        .collect();
    assert_eq!(
        replaced.len(),
        4,
        "KEK v1, conversation key v1, the 2 destroyed keys"
    );
    for e in std::fs::read_dir(&data).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for old_value in &replaced {
            let tag = &old_value[old_value.len() - 16..];
            assert!(
                !bytes.windows(16).any(|w| w == tag),
                "{} still holds an old wrapped key",
                path.display()
            );
        }
    }
}

#[test]
fn an_old_copy_cannot_open_shredded_data_with_every_live_key() {
    let d = tempfile::tempdir().unwrap();
    let key_file = d.path().join("root.key");
    let data = d.path().join("data");
    let old = d.path().join("old-copy");
    let p = Arc::new(StaticKeyProvider::create_key_file(&key_file).unwrap());
    let v = Vault::create(&data, p, bulk()).unwrap();

    // acme: conversation x (shredded whole), y (day 1 shredded, day 2 kept), z (kept), user
    // mallory (shredded); globex: shredded whole; initech: untouched.
    let acme = common::fixture(&v, "acme", TenantOptions::default());
    let (alice, bob) = (acme.alice, acme.bob);
    let mallory = v
        .create_user(acme.t, "mallory", chatvault::UserProfile::default())
        .unwrap();
    let conv = |name: &str| {
        v.create_conversation(
            acme.t,
            name,
            chatvault::ConversationKind::Group,
            None,
            &[(alice, 0), (bob, 0), (mallory, 0)],
        )
        .unwrap()
    };
    let (x, y, z) = (conv("x"), conv("y"), conv("z"));
    for c in [x, y, z] {
        for (day, who) in [(D1, alice), (D2, bob), (D2, mallory)] {
            v.append(
                acme.t,
                c,
                NewMessage::text(who, day + 5, format!("{c} {day} {who}")),
            )
            .unwrap()
            .stored()
            .unwrap();
        }
    }
    let globex = common::fixture(&v, "globex", TenantOptions::default());
    v.append(
        globex.t,
        globex.c,
        NewMessage::text(globex.alice, D1, "globex secret"),
    )
    .unwrap()
    .stored()
    .unwrap();
    let initech = common::fixture(&v, "initech", TenantOptions::default());
    let kept = v
        .append(
            initech.t,
            initech.c,
            NewMessage::text(initech.bob, D2, "initech kept"),
        )
        .unwrap()
        .stored()
        .unwrap();
    drop(v);

    // The backup.
    copy_dir(&data, &old);
    let old_keys = wrapped_keys(&old);

    let p = key_file_provider(&key_file);
    let v = Vault::open(&data, p.clone(), bulk()).unwrap();
    let admin = Actor::operator();
    v.shred(acme.t, admin, ShredScope::Conversation(x)).unwrap();
    v.shred(
        acme.t,
        admin,
        ShredScope::Window {
            conversation: y,
            at_ms: D1,
        },
    )
    .unwrap();
    v.shred(acme.t, admin, ShredScope::User(mallory)).unwrap();
    v.shred(globex.t, admin, ShredScope::Tenant).unwrap();

    // The places of every destroyed key, in the old copy.
    let t8 = |t: chatvault::TenantId| t.as_u64().to_be_bytes();
    let destroyed: Vec<Vec<u8>> = old_keys
        .keys()
        .filter(|k| {
            let t = &k[1..9];
            let c = || &k[9..17];
            (t == t8(globex.t))
                || (t == t8(acme.t)
                    && match k[0] {
                        0x02 | 0x03 => c() == x.as_u64().to_be_bytes(),
                        0x04 => c() == mallory.as_u64().to_be_bytes(),
                        _ => false,
                    })
                || (t == t8(acme.t)
                    && k[0] == 0x03
                    && c() == y.as_u64().to_be_bytes()
                    && k[17..21] == ((D1 / DAY) as u32).to_be_bytes())
        })
        .cloned()
        .collect();
    assert_eq!(
        destroyed.len(),
        1 + 1 + 2 /* globex KEK, conv, 2 users */ + 1 /* globex epoch */
            + 1 + 2 /* x: key, 2 epochs */ + 1 /* y day 1 */ + 1, /* mallory */
        "the scopes' keys, as the old copy holds them"
    );

    // Before the purge, the attack works: the live keys open the old copy's shredded keys.
    drop(v);
    let live = attack(p.as_ref(), &[], &wrapped_keys(&data));
    let live_keys: Vec<SecretKey> = live.values().cloned().collect();
    let before = attack(p.as_ref(), &live_keys, &old_keys);
    let exposed: Vec<_> = destroyed
        .iter()
        .filter(|k| before.contains_key(*k))
        .collect();
    assert!(
        !exposed.is_empty(),
        "before the purge an old copy is still exposed (the attack must be able to succeed)"
    );

    // The purge re-versions the key paths and retires the old root key version.
    let v = Vault::open(&data, p.clone(), bulk()).unwrap();
    let versions_before = p.versions();
    let report = v.purge(PurgeOptions::default()).unwrap();
    assert!(report.complete, "{report:?}");
    let rekey = report.rekey.clone().expect("a re-versioning pass ran");
    assert_eq!(rekey.tenant_keks_reversioned, 1, "acme (globex is gone)");
    assert_eq!(rekey.conversation_keys_reversioned, 1, "y");
    assert_eq!(rekey.tenant_keks_rewrapped, 1, "initech");
    assert_eq!(rekey.retired_root_versions, versions_before);
    assert_eq!(p.versions(), vec![versions_before[0] + 1]);
    // A second purge has nothing more to re-version.
    assert!(v.purge(PurgeOptions::default()).unwrap().rekey.is_none());

    // Everything out of scope reads back, also after a restart with the rewritten key file.
    let check = |v: &Vault| {
        assert_eq!(
            v.get(initech.t, initech.c, kept).unwrap().body,
            "initech kept"
        );
        for c in [y, z] {
            let bodies: Vec<String> = v
                .messages(acme.t, c, None, chatvault::Direction::Forward)
                .unwrap()
                .map(|m| m.unwrap().body)
                .collect();
            let want: Vec<String> = [(D1, alice), (D2, bob)]
                .into_iter()
                .filter(|(day, _)| !(c == y && *day == D1))
                .map(|(day, who)| format!("{c} {day} {who}"))
                .collect();
            assert_eq!(bodies, want, "conversation {c}");
        }
        assert_eq!(v.user_id(acme.t, "alice@example.org").unwrap(), alice);
        assert_eq!(v.conversation_id(acme.t, "z").unwrap(), z);
        assert!(matches!(v.get(acme.t, x, 1), Err(Error::Shredded { .. })));
    };
    check(&v);
    drop(v);
    let p2 = key_file_provider(&key_file);
    let v = Vault::open(&data, p2.clone(), VaultOptions::default()).unwrap();
    check(&v);
    // New writes after the pass: a new user, member and conversation under the new versions.
    let carol = v
        .create_user(acme.t, "carol", chatvault::UserProfile::default())
        .unwrap();
    v.add_member(acme.t, z, carol, D2).unwrap();
    v.append(acme.t, z, NewMessage::text(carol, D2 + 99, "carol here"))
        .unwrap()
        .stored()
        .unwrap();
    drop(v);

    // After the purge: the old copy does not open with the current key file...
    assert!(matches!(
        Vault::open(&old, p2.clone(), VaultOptions::default()),
        Err(Error::RootKeyVersionRetired { .. })
    ));
    // ...and the attack with every live key recovers none of the destroyed keys.
    assert!(
        attack(p2.as_ref(), &[], &wrapped_keys(&data)).len() >= 10,
        "the live keys"
    );
    let exposed = recovered(p2.as_ref(), &data, &old_keys, &destroyed);
    assert!(
        exposed.is_empty(),
        "destroyed keys recovered from the old copy: {exposed:?}"
    );
}

/// A root key the application holds (`StaticKeyProvider::single` / `parse`) is never given a new
/// version behind its back (the new version would be lost at exit, and the vault with it): the
/// shred leaves its path marked, the purge removes the records but says old copies stay
/// exposed, and keeps the marks; the same vault opened with its key file later is re-versioned
/// at open.
#[test]
fn a_root_key_the_application_holds_is_never_rotated_behind_its_back() {
    let d = tempfile::tempdir().unwrap();
    let key_file = d.path().join("root.key");
    let data = d.path().join("data");
    StaticKeyProvider::create_key_file(&key_file).unwrap();
    let text = std::fs::read_to_string(&key_file).unwrap();
    let fixed = || Arc::new(StaticKeyProvider::parse(&text).unwrap());
    let v = Vault::create(&data, fixed(), VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let kept = v
        .append(f.t, f.c, NewMessage::text(f.alice, D1, "kept"))
        .unwrap()
        .stored()
        .unwrap();
    v.append(f.t, f.c, NewMessage::text(f.bob, D1, "bob's"))
        .unwrap()
        .stored()
        .unwrap();
    v.shred(f.t, Actor::operator(), ShredScope::User(f.bob))
        .unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 1);
    let r = v.purge(PurgeOptions::default()).unwrap();
    assert!(!r.complete && r.rekey.is_none(), "{r:?}");
    assert!(
        r.old_copies_exposed
            .as_deref()
            .is_some_and(|m| m.contains("given by the application")),
        "{r:?}"
    );
    assert_eq!(r.key_paths_pending, 1);
    drop(v);
    // Still opens with the application's key: nothing was re-wrapped.
    let v = Vault::open(&data, fixed(), VaultOptions::default()).unwrap();
    assert_eq!(v.get(f.t, f.c, kept).unwrap().body, "kept");
    drop(v);
    // With the key file, the next open re-versions the pending path.
    let p = key_file_provider(&key_file);
    let v = Vault::open(&data, p.clone(), VaultOptions::default()).unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert_eq!(p.versions(), vec![2]);
    // The purge reports the pass the open ran for it.
    let r = v.purge(PurgeOptions::default()).unwrap();
    assert!(r.complete && r.rekey.is_some(), "{r:?}");
    assert_eq!(v.get(f.t, f.c, kept).unwrap().body, "kept");
}
