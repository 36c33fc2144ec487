//! Someone with write access to the data directory alters, truncates or moves sealed records:
//! each gives a typed error, never a panic and never the wrong plaintext.

mod common;

use chatvault::{cf, codec, Error, NewMessage, TenantOptions, Vault, VaultOptions};

struct Setup {
    dir: tempfile::TempDir,
    p: std::sync::Arc<chatvault::StaticKeyProvider>,
    f: common::Fixture,
    f2: common::Fixture,
    c2: chatvault::ConversationId,
}

fn setup() -> Setup {
    let (dir, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let f2 = common::fixture(&v, "globex", TenantOptions::default());
    let c2 = v
        .create_conversation(
            f.t,
            "random",
            chatvault::ConversationKind::Group,
            None,
            &[(f.alice, 0)],
        )
        .unwrap();
    for n in 0..3 {
        v.append(
            f.t,
            f.c,
            NewMessage::text(f.alice, 1_000 + n, format!("acme general {n}")),
        )
        .unwrap()
        .stored()
        .unwrap();
        v.append(
            f.t,
            c2,
            NewMessage::text(f.alice, 1_000 + n, format!("acme random {n}")),
        )
        .unwrap()
        .stored()
        .unwrap();
        v.append(
            f2.t,
            f2.c,
            NewMessage::text(f2.alice, 1_000 + n, format!("globex {n}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    v.edit(f.t, f.c, 1, "edited", 2_000).unwrap();
    Setup { dir, p, f, f2, c2 }
}

fn with_raw(s: &Setup, edit: impl FnOnce(&rocksdb::DB)) -> Vault {
    let data = s.dir.path().join("data");
    {
        let db = common::open_raw(&data);
        edit(&db);
    }
    Vault::open(&data, s.p.clone(), VaultOptions::default()).unwrap()
}

fn msg_key(t: chatvault::TenantId, c: chatvault::ConversationId, id: u64) -> Vec<u8> {
    codec::message_key(t.as_u64(), c.as_u64(), id)
}

#[test]
fn a_flipped_bit_in_the_ciphertext_fails_authentication() {
    let s = setup();
    let k = msg_key(s.f.t, s.f.c, 2);
    let v = with_raw(&s, |db| {
        let h = db.cf_handle(cf::MESSAGES).unwrap();
        let mut val = db.get_cf(h, &k).unwrap().unwrap();
        let last = val.len() - 20;
        val[last] ^= 1;
        db.put_cf(h, &k, val).unwrap();
    });
    assert!(matches!(
        v.get(s.f.t, s.f.c, 2),
        Err(Error::Authentication { .. })
    ));
    // Its neighbours are untouched.
    assert_eq!(v.get(s.f.t, s.f.c, 3).unwrap().body, "acme general 2");
}

#[test]
fn a_flipped_header_byte_is_refused() {
    let s = setup();
    let k = msg_key(s.f.t, s.f.c, 2);
    let v = with_raw(&s, |db| {
        let h = db.cf_handle(cf::MESSAGES).unwrap();
        let mut val = db.get_cf(h, &k).unwrap().unwrap();
        val[3] ^= 0x40; // revision number
        db.put_cf(h, &k, val).unwrap();
    });
    assert!(matches!(
        v.get(s.f.t, s.f.c, 2),
        Err(Error::Authentication { .. })
    ));
}

#[test]
fn truncated_records_are_corrupt_or_fail_authentication() {
    let s = setup();
    let k = msg_key(s.f.t, s.f.c, 2);
    let full = {
        let db = common::open_raw(&s.dir.path().join("data"));
        db.get_cf(db.cf_handle(cf::MESSAGES).unwrap(), &k)
            .unwrap()
            .unwrap()
    };
    for cut in [0, 1, 10, 26, 30, 53, full.len() - 1] {
        let v = with_raw(&s, |db| {
            db.put_cf(db.cf_handle(cf::MESSAGES).unwrap(), &k, &full[..cut])
                .unwrap();
        });
        match v.get(s.f.t, s.f.c, 2) {
            Err(Error::Corrupt { .. }) | Err(Error::Authentication { .. }) => {}
            other => panic!("cut at {cut}: expected Corrupt or Authentication, got {other:?}"),
        }
        drop(v);
    }
}

#[test]
fn an_unknown_format_version_is_refused_not_misread() {
    let s = setup();
    let k = msg_key(s.f.t, s.f.c, 2);
    let v = with_raw(&s, |db| {
        let h = db.cf_handle(cf::MESSAGES).unwrap();
        let mut val = db.get_cf(h, &k).unwrap().unwrap();
        val[0] = 2;
        db.put_cf(h, &k, val).unwrap();
    });
    assert!(matches!(
        v.get(s.f.t, s.f.c, 2),
        Err(Error::UnsupportedFormat {
            found: 2,
            supported: 1,
            ..
        })
    ));
}

#[test]
fn a_record_moved_to_another_id_conversation_or_tenant_fails_to_open() {
    let s = setup();
    let src = msg_key(s.f.t, s.f.c, 2);
    let targets = [
        (s.f.t, s.f.c, 3u64), // another message id, same conversation
        (s.f.t, s.c2, 2),     // same id, another conversation of the tenant
        (s.f2.t, s.f2.c, 2),  // same id, another tenant
    ];
    for (t, c, id) in targets {
        let dst = msg_key(t, c, id);
        let v = with_raw(&s, |db| {
            let h = db.cf_handle(cf::MESSAGES).unwrap();
            let val = db.get_cf(h, &src).unwrap().unwrap();
            db.put_cf(h, &dst, val).unwrap();
        });
        match v.get(t, c, id) {
            Err(Error::Authentication { .. }) | Err(Error::Shredded { .. }) => {}
            other => panic!("record moved to {t}/{c}/{id}: expected an error, got {other:?}"),
        }
        drop(v);
    }
}

#[test]
fn a_revision_moved_into_the_current_slot_fails_to_open() {
    let s = setup();
    let rev = codec::revision_key(s.f.t.as_u64(), s.f.c.as_u64(), 1, 0);
    let cur = msg_key(s.f.t, s.f.c, 1);
    let v = with_raw(&s, |db| {
        let val = db
            .get_cf(db.cf_handle(cf::REVISIONS).unwrap(), &rev)
            .unwrap()
            .unwrap();
        db.put_cf(db.cf_handle(cf::MESSAGES).unwrap(), &cur, val)
            .unwrap();
    });
    assert!(v.get(s.f.t, s.f.c, 1).is_err());
}

#[test]
fn a_wrapped_key_moved_or_altered_fails_to_unwrap() {
    let s = setup();
    // Swap the two tenants' conversation keys.
    let k1 = codec::KeyBuf::tag(0x02)
        .u64(s.f.t.as_u64())
        .u64(s.f.c.as_u64())
        .u32(1)
        .into_vec();
    let k2 = codec::KeyBuf::tag(0x02)
        .u64(s.f2.t.as_u64())
        .u64(s.f2.c.as_u64())
        .u32(1)
        .into_vec();
    let v = with_raw(&s, |db| {
        let h = db.cf_handle(cf::KEYS).unwrap();
        let a = db.get_cf(h, &k1).unwrap().unwrap();
        let b = db.get_cf(h, &k2).unwrap().unwrap();
        db.put_cf(h, &k1, b).unwrap();
        db.put_cf(h, &k2, a).unwrap();
    });
    assert!(matches!(
        v.get(s.f.t, s.f.c, 2),
        Err(Error::Authentication { .. })
    ));
    assert!(matches!(
        v.get(s.f2.t, s.f2.c, 2),
        Err(Error::Authentication { .. })
    ));
    // Another conversation of the same tenant is unaffected.
    assert_eq!(v.get(s.f.t, s.c2, 1).unwrap().body, "acme random 0");
}

#[test]
fn a_tenant_kek_moved_to_another_tenant_fails_to_unwrap() {
    let s = setup();
    let k1 = codec::KeyBuf::tag(0x01)
        .u64(s.f.t.as_u64())
        .u32(1)
        .into_vec();
    let k2 = codec::KeyBuf::tag(0x01)
        .u64(s.f2.t.as_u64())
        .u32(1)
        .into_vec();
    let v = with_raw(&s, |db| {
        let h = db.cf_handle(cf::KEYS).unwrap();
        let a = db.get_cf(h, &k1).unwrap().unwrap();
        db.put_cf(h, &k2, a).unwrap();
    });
    assert!(v.get(s.f2.t, s.f2.c, 1).is_err());
    assert_eq!(v.get(s.f.t, s.f.c, 2).unwrap().body, "acme general 1");
}

/// The documented limit of per-record AEAD (DESIGN.md, "Threat model"): an older copy of a
/// record written back in its own place still authenticates, because it was sealed for exactly
/// that place. This test pins that behaviour so a change to it is noticed.
#[test]
fn rolling_back_a_record_to_an_older_copy_of_itself_is_not_detected() {
    let (dir, v, p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    v.append(f.t, f.c, NewMessage::text(f.alice, 1_000, "original"))
        .unwrap()
        .stored()
        .unwrap();
    drop(v);
    let data = dir.path().join("data");
    let k = msg_key(f.t, f.c, 1);
    let old = {
        let db = common::open_raw(&data);
        db.get_cf(db.cf_handle(cf::MESSAGES).unwrap(), &k)
            .unwrap()
            .unwrap()
    };
    let v = Vault::open(&data, p.clone(), VaultOptions::default()).unwrap();
    v.edit(f.t, f.c, 1, "edited", 2_000).unwrap();
    drop(v);
    {
        let db = common::open_raw(&data);
        db.put_cf(db.cf_handle(cf::MESSAGES).unwrap(), &k, &old)
            .unwrap();
    }
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    let m = v.get(f.t, f.c, 1).unwrap();
    assert_eq!((m.body.as_str(), m.revision), ("original", 0));
    // The revision list still shows that revision 0 was superseded: a verifier can notice that
    // the current revision is not newer than the last stored revision.
    assert_eq!(v.revisions(f.t, f.c, 1).unwrap().len(), 1);
}
