//! Rotation of the keys below the root key: tenant KEKs (new value, children re-wrapped, old
//! version deleted) and data keys (new versions for new writes, re-seal of old records, old
//! versions retired only once nothing readable uses them), with `verify` clean after each step,
//! `key_stats` showing the fraction of records under the current versions, legal holds,
//! retention and shreds respected, an old copy of the directory unable to open what was
//! re-sealed, and the CLI wrapping the same calls.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chatvault::{
    cf, Actor, AuditEvent, ConversationId, ConversationKind, Error, HoldScope, Message, NewMessage,
    PolicyOverride, ResealOptions, Retention, RotationStep, ShredScope, StaticKeyProvider,
    TenantId, TenantOptions, UserProfile, Vault, VaultOptions,
};
use common::DAY;

const D0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;

fn verify_ok(v: &Vault) {
    let r = v.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
}

/// Every message of every conversation of `t` (id order), as `(conversation, id, body)`.
fn everything(v: &Vault, t: TenantId) -> Vec<(ConversationId, u64, String)> {
    let mut out = Vec::new();
    for c in v.conversations(t).unwrap() {
        let c = c.unwrap().id;
        for m in v
            .messages(t, c, None, chatvault::Direction::Forward)
            .unwrap()
        {
            let m: Message = m.unwrap();
            out.push((c, m.id, m.body));
        }
    }
    out
}

fn wrapped_keys(data: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = common::open_raw(data);
    let h = db.cf_handle(cf::KEYS).unwrap();
    db.iterator_cf(h, rocksdb::IteratorMode::Start)
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[test]
fn tenant_kek_rotation_rewraps_every_child_and_deletes_the_old_version() {
    let d = tempfile::tempdir().unwrap();
    let (data, key) = (d.path().join("data"), d.path().join("root.key"));
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p, VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let other = common::fixture(&v, "globex", TenantOptions::default());
    for n in 0..20 {
        let who = if n % 2 == 0 { f.alice } else { f.bob };
        v.append(
            f.t,
            f.c,
            NewMessage::text(who, D0 + n * 3_600_000, format!("m{n}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    v.append(other.t, other.c, NewMessage::text(other.alice, D0, "other"))
        .unwrap()
        .stored()
        .unwrap();
    let hold = v
        .place_hold(
            f.t,
            Actor::operator(),
            HoldScope::Custodian(f.bob),
            "case 1",
        )
        .unwrap();
    v.set_conversation_policy(
        f.t,
        f.c,
        Actor::operator(),
        PolicyOverride {
            history: None,
            retention: Some(Retention::Forever),
        },
        false,
    )
    .unwrap();
    v.restrict_processing(f.t, Actor::operator(), f.bob, true)
        .unwrap();
    let before = everything(&v, f.t);
    let changes = v.policy_changes(f.t).unwrap().len();

    // Members may not rotate.
    assert!(matches!(
        v.rotate_tenant_kek(f.t, Actor::member(f.alice)),
        Err(Error::PermissionDenied(_))
    ));

    for round in 0..2u32 {
        let r = v.rotate_tenant_kek(f.t, Actor::operator()).unwrap();
        assert_eq!(r.kek_version, 2 + round, "{r:?}");
        // 1 conversation key, 2 user keys, and from the second rotation on the directory key
        // (the first one stores it, derived from the first KEK, as a wrapped key).
        assert_eq!(r.keys_rewrapped, 3 + u64::from(round), "{r:?}");
        // Tenant record, conversation override, 3 change records, 1 hold.
        assert_eq!(r.meta_resealed as usize, 1 + 1 + changes + 1, "{r:?}");
        assert_eq!(everything(&v, f.t), before);
        assert_eq!(v.tenant("acme").unwrap(), f.t);
        assert_eq!(v.user_id(f.t, "bob@example.org").unwrap(), f.bob);
        assert_eq!(v.conversation_id(f.t, "general").unwrap(), f.c);
        assert_eq!(
            v.conversation(f.t, f.c).unwrap().title.as_deref(),
            Some("General")
        );
        assert_eq!(v.members(f.t, f.c).unwrap().len(), 2);
        assert_eq!(
            v.user(f.t, f.alice).unwrap().profile.display_name,
            "Alice Example"
        );
        assert!(v.is_restricted(f.t, f.bob).unwrap());
        assert_eq!(v.holds(f.t).unwrap()[0].id, hold.id);
        assert_eq!(v.policy_changes(f.t).unwrap().len(), changes);
        verify_ok(&v);
        let ks = v.key_stats().unwrap();
        assert_eq!(ks.tenant_keks, 2, "one KEK version per tenant: {ks:?}");
    }
    // Appends after the rotation go under the new KEK's children.
    v.append(f.t, f.c, NewMessage::text(f.alice, D0 + DAY, "after"))
        .unwrap()
        .stored()
        .unwrap();
    let audit = v.audit_entries().unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.event
                == AuditEvent::KeyRotation {
                    tenant: f.t,
                    conversation: None,
                    step: RotationStep::TenantKek
                })
            .count(),
        2
    );
    drop(v);

    // Only version 3 of acme's KEK is stored; globex keeps its version 1.
    let keys = wrapped_keys(&data);
    let keks: Vec<(u64, u32)> = keys
        .keys()
        .filter(|k| k[0] == 0x01)
        .map(|k| {
            (
                u64::from_be_bytes(k[1..9].try_into().unwrap()),
                u32::from_be_bytes(k[9..13].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(keks, vec![(f.t.as_u64(), 3), (other.t.as_u64(), 1)]);
    let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    assert_eq!(everything(&v, f.t).len(), before.len() + 1);
    assert_eq!(v.get(other.t, other.c, 1).unwrap().body, "other");
    verify_ok(&v);
}

#[test]
fn data_keys_rotate_reseal_and_retire_respecting_holds_retention_and_shreds() {
    let (_d, v, _p, clock) = common::new_vault_with_clock(D0 + 10 * DAY);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let carol = v
        .create_user(f.t, "carol@example.org", UserProfile::named("Carol"))
        .unwrap();
    let short = v
        .create_conversation(f.t, "short", ConversationKind::Group, None, &[(f.alice, 0)])
        .unwrap();
    // general: 3 days of alice, bob and carol; short: expired under a 1-day retention.
    for day in 7..10 {
        for (k, u) in [f.alice, f.bob, carol].into_iter().enumerate() {
            v.append(
                f.t,
                f.c,
                NewMessage::text(u, D0 + day * DAY + k as i64 * 1000, format!("d{day} u{k}")),
            )
            .unwrap()
            .stored()
            .unwrap();
        }
        v.append(
            f.t,
            short,
            NewMessage::text(f.alice, D0 + day * DAY, format!("s{day}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    // Carol is erased; day 8 of general is shredded.
    v.shred(f.t, Actor::operator(), ShredScope::User(carol))
        .unwrap();
    v.shred(
        f.t,
        Actor::operator(),
        ShredScope::Window {
            conversation: f.c,
            at_ms: D0 + 8 * DAY,
        },
    )
    .unwrap();
    v.edit(f.t, f.c, 1, "d7 u0 edited", D0 + 9 * DAY).unwrap();
    // Bob is a custodian: his deleted message and its revisions are kept (hidden).
    v.place_hold(f.t, Actor::operator(), HoldScope::Custodian(f.bob), "case")
        .unwrap();
    v.edit(f.t, f.c, 2, "d7 u1 edited", D0 + 9 * DAY).unwrap();
    v.delete(f.t, f.c, 2, D0 + 9 * DAY + 1).unwrap();
    v.set_conversation_policy(
        f.t,
        short,
        Actor::operator(),
        PolicyOverride {
            history: None,
            retention: Some(Retention::period_ms(DAY as u64).unwrap()),
        },
        false,
    )
    .unwrap();
    let before = everything(&v, f.t);
    let revisions_stored = v.debug_count_records(cf::REVISIONS).unwrap();
    assert_eq!(revisions_stored, 3, "two edits and one delete under hold");
    let ks = v.key_stats().unwrap();
    let ts = ks.tenants[&f.t].clone();
    assert_eq!(ts.current_fraction(), 1.0, "{ts:?}");
    verify_ok(&v);

    let r = v.rotate_data_keys(f.t, None, Actor::operator()).unwrap();
    // general and short; general's days 7 and 9 (day 8 shredded), short's 7..9; alice, bob.
    assert_eq!(
        (r.conversation_keys, r.epoch_keys, r.user_keys),
        (2, 5, 2),
        "{r:?}"
    );
    assert!(!r.resumed);
    verify_ok(&v);
    assert_eq!(everything(&v, f.t), before);
    let ks = v.key_stats().unwrap();
    assert_eq!(ks.data_key_rotations_pending, 1);
    let ts = ks.tenants[&f.t].clone();
    assert_eq!(
        ts.current, 0,
        "every live record is under an old version: {ts:?}"
    );
    assert!(ts.older_versions > 0);

    // New writes use the new versions at once (also into an old epoch).
    v.append(f.t, f.c, NewMessage::text(f.alice, D0 + 9 * DAY + 5, "new"))
        .unwrap()
        .stored()
        .unwrap();
    let ts = v.key_stats().unwrap().tenants[&f.t].clone();
    assert_eq!(ts.current, 1, "{ts:?}");

    // The old versions are still in use: retiring is refused, nothing deleted. (The 3 expired
    // records of `short` do not count: they are never opened again.)
    let readable_old = ts.older_versions - 3;
    match v.retire_data_keys(f.t, None, Actor::operator()) {
        Err(Error::KeyVersionsInUse { records, .. }) => {
            assert_eq!(records, readable_old, "{ts:?}")
        }
        other => panic!("{other:?}"),
    }
    verify_ok(&v);

    let mut seen = Vec::new();
    let rs = v
        .reseal(
            f.t,
            None,
            &ResealOptions {
                batch_records: 2,
                retire: true,
            },
            |p| seen.push(*p),
        )
        .unwrap();
    assert_eq!(rs.resealed, readable_old, "{rs:?}");
    assert_eq!(rs.failed, 0);
    assert_eq!(rs.already_current, 1);
    assert!(rs.expired >= 3, "short's messages are expired: {rs:?}");
    assert!(rs.shredded >= 3, "carol's messages and day 8: {rs:?}");
    assert!(seen.len() > 2, "progress after every batch: {seen:?}");
    let last = seen.last().unwrap();
    assert_eq!((last.scanned, last.resealed), (rs.scanned, rs.resealed));
    assert_eq!(last.total, rs.scanned);
    let retired = rs.retired.unwrap();
    assert_eq!(
        (retired.epoch_key_versions, retired.user_key_versions),
        (5, 2),
        "{retired:?}"
    );
    let ks = v.key_stats().unwrap();
    assert_eq!(ks.data_key_rotations_pending, 0);
    let ts = ks.tenants[&f.t].clone();
    assert_eq!(ts.older_versions, 0, "{ts:?}");
    assert_eq!(ts.current_fraction(), 1.0);

    let check = |v: &Vault| {
        let mut want = before.clone();
        want.push((f.c, 10, "new".into()));
        want.sort();
        let mut got = everything(v, f.t);
        got.sort();
        assert_eq!(got, want);
        assert_eq!(
            v.revisions(f.t, f.c, 1).unwrap()[0].body,
            "d7 u0",
            "revisions re-sealed too"
        );
        // Held data is kept (hidden), expired stays expired, shredded stays shredded.
        assert_eq!(
            v.debug_count_records(cf::REVISIONS).unwrap(),
            revisions_stored
        );
        assert!(v.get(f.t, f.c, 2).unwrap().deleted_at_ms.is_some());
        assert!(matches!(v.get(f.t, short, 1), Err(Error::Expired { .. })));
        assert!(matches!(v.get(f.t, f.c, 3), Err(Error::Shredded { .. })));
        assert!(matches!(v.get(f.t, f.c, 4), Err(Error::Shredded { .. })));
        assert!(matches!(v.user(f.t, carol), Err(Error::Shredded { .. })));
        assert_eq!(
            v.user(f.t, f.bob).unwrap().profile.display_name,
            "Bob Example"
        );
        verify_ok(v);
    };
    check(&v);
    // A second re-seal finds nothing to do; retiring again deletes nothing.
    let again = v
        .reseal(f.t, None, &ResealOptions::default(), |_| {})
        .unwrap();
    assert_eq!(again.resealed, 0);
    assert_eq!(again.retired.unwrap().epoch_key_versions, 0);

    // One conversation's data keys.
    let r = v
        .rotate_data_keys(f.t, Some(f.c), Actor::operator())
        .unwrap();
    assert_eq!((r.conversation_keys, r.epoch_keys, r.user_keys), (1, 2, 0));
    assert_eq!(v.key_stats().unwrap().data_key_rotations_pending, 1);
    let rs = v
        .reseal(f.t, Some(f.c), &ResealOptions::default(), |_| {})
        .unwrap();
    assert!(rs.resealed > 0);
    assert_eq!(rs.retired.unwrap().epoch_key_versions, 2);
    check(&v);

    // Releasing the hold later still removes what it kept (nothing was lost or duplicated).
    clock.advance(1);
    let h = v.holds(f.t).unwrap()[0].id;
    v.release_hold(f.t, Actor::operator(), h).unwrap();
    assert_eq!(v.debug_count_records(cf::REVISIONS).unwrap(), 1);
    verify_ok(&v);
    let steps: Vec<RotationStep> = v
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            AuditEvent::KeyRotation { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            RotationStep::DataKeys,
            RotationStep::OldVersionsRetired,
            RotationStep::OldVersionsRetired,
            RotationStep::DataKeys,
            RotationStep::OldVersionsRetired,
        ]
    );
}

/// Puts every record of `from`'s messages column family into `into` (both closed), the way an
/// attacker with an old copy and the live files would combine them.
fn merge_messages(from: &Path, into: &Path) -> usize {
    let src = common::open_raw(from);
    let recs: Vec<(Vec<u8>, Vec<u8>)> = src
        .iterator_cf(
            src.cf_handle(cf::MESSAGES).unwrap(),
            rocksdb::IteratorMode::Start,
        )
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect();
    drop(src);
    let dst = common::open_raw(into);
    for (k, v) in &recs {
        dst.put_cf(dst.cf_handle(cf::MESSAGES).unwrap(), k, v)
            .unwrap();
    }
    recs.len()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn an_old_copy_with_the_current_key_file_cannot_open_records_resealed_after_a_rotation() {
    let d = tempfile::tempdir().unwrap();
    let (data, key) = (d.path().join("data"), d.path().join("root.key"));
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p, VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    for n in 0..10 {
        v.append(
            f.t,
            f.c,
            NewMessage::text(f.alice, D0 + n * DAY / 4, format!("m{n}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    drop(v);
    let old = d.path().join("old");
    copy_dir(&data, &old);
    let open = |dir: &Path| {
        let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
        Vault::open(dir, p, VaultOptions::default()).unwrap()
    };

    // Rotation, and one message written after it; no re-seal yet.
    let v = open(&data);
    v.rotate_tenant_kek(f.t, Actor::operator()).unwrap();
    v.rotate_data_keys(f.t, None, Actor::operator()).unwrap();
    v.append(
        f.t,
        f.c,
        NewMessage::text(f.alice, D0 + DAY, "after the rotation"),
    )
    .unwrap()
    .stored()
    .unwrap();
    drop(v);
    // The old copy plus the live records, opened with today's key file: the records still
    // under the old versions open (the attack works), the one written after does not.
    let mixed = d.path().join("mixed1");
    copy_dir(&old, &mixed);
    assert_eq!(merge_messages(&data, &mixed), 11);
    let m = open(&mixed);
    for n in 0..10u64 {
        assert_eq!(m.get(f.t, f.c, n + 1).unwrap().body, format!("m{n}"));
    }
    assert!(matches!(m.get(f.t, f.c, 11), Err(Error::Shredded { .. })));
    drop(m);

    // After the re-seal and the retirement, none opens with what the old copy holds.
    let v = open(&data);
    let rs = v
        .reseal(f.t, None, &ResealOptions::default(), |_| {})
        .unwrap();
    assert_eq!(rs.resealed, 10);
    assert!(rs.retired.is_some());
    verify_ok(&v);
    drop(v);
    let mixed = d.path().join("mixed2");
    copy_dir(&old, &mixed);
    assert_eq!(merge_messages(&data, &mixed), 11);
    let m = open(&mixed);
    for id in 1..=11u64 {
        let r = m.get(f.t, f.c, id);
        assert!(matches!(r, Err(Error::Shredded { .. })), "{id}: {r:?}");
    }
    drop(m);
    // The live vault reads everything.
    let v = open(&data);
    assert_eq!(everything(&v, f.t).len(), 11);
    verify_ok(&v);
}

#[test]
fn a_secondary_refuses_every_rotation() {
    let d = tempfile::tempdir().unwrap();
    let (data, key) = (d.path().join("data"), d.path().join("root.key"));
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p.clone(), VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    v.append(f.t, f.c, NewMessage::text(f.alice, D0, "x"))
        .unwrap()
        .stored()
        .unwrap();
    let s = Vault::open_secondary(&data, d.path().join("sec"), p, VaultOptions::default()).unwrap();
    let op = Actor::operator();
    assert!(matches!(
        s.rotate_tenant_kek(f.t, op),
        Err(Error::ReadOnlySecondary { .. })
    ));
    assert!(matches!(
        s.rotate_data_keys(f.t, None, op),
        Err(Error::ReadOnlySecondary { .. })
    ));
    assert!(matches!(
        s.reseal(f.t, None, &ResealOptions::default(), |_| {}),
        Err(Error::ReadOnlySecondary { .. })
    ));
    assert!(matches!(
        s.retire_data_keys(f.t, None, op),
        Err(Error::ReadOnlySecondary { .. })
    ));
    assert_eq!(v.key_stats().unwrap().tenant_keks, 1);
}

#[test]
fn the_cli_rotates_reseals_and_stats_shows_the_fraction() {
    let cli = common::Cli::with_sample();
    let stats = |cli: &common::Cli| -> serde_json::Value {
        serde_json::from_str(&cli.ok(&["stats", "--json"])).unwrap()
    };
    let s = stats(&cli);
    let tenant = s["tenants"][0]["tenant"].as_str().unwrap().to_string();
    let records = s["tenants"][0]["records"].as_u64().unwrap();
    assert!(records > 0);
    assert_eq!(s["tenants"][0]["current_fraction"], 1.0);

    let out = cli.ok(&["key", "rotate-tenant", &tenant, "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["kek_version"], 2, "{out}");

    let out = cli.ok(&["key", "rotate-data", &tenant]);
    assert!(out.contains("data keys of tenant"), "{out}");
    assert!(out.contains("chatvault key reseal"), "{out}");
    let s = stats(&cli);
    assert_eq!(s["tenants"][0]["current_fraction"], 0.0, "{s}");
    assert_eq!(s["tenants"][0]["records_older_versions"], records);
    assert_eq!(s["keys"]["data_key_rotations_pending"], 1);
    let text = cli.ok(&["stats"]);
    assert!(text.contains("(0.0%)"), "{text}");

    // Retiring before the re-seal is refused (exit 1) and says what to do.
    let err = cli.fails(&["key", "retire-data", &tenant], 1);
    assert!(
        err.contains("re-seal") && err.contains("chatvault key reseal"),
        "{err}"
    );

    let out = cli.ok(&["key", "reseal", &tenant, "--json", "--batch", "500"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["resealed"].as_u64().unwrap(), records, "{out}");
    assert!(
        j["retired"]["epoch_key_versions"].as_u64().unwrap() > 0,
        "{out}"
    );
    let s = stats(&cli);
    assert_eq!(s["tenants"][0]["current_fraction"], 1.0, "{s}");
    assert_eq!(s["keys"]["data_key_rotations_pending"], 0);
    cli.ok(&["verify"]);

    // One conversation, rotated and re-sealed in one command; the audit trail shows it all.
    let conv = {
        let ls = cli.ok(&["ls", &tenant]);
        ls.split_whitespace().next().unwrap().to_string()
    };
    let out = cli.ok(&[
        "key",
        "rotate-data",
        &tenant,
        "--conversation",
        &conv,
        "--reseal",
    ]);
    assert!(
        out.contains("re-sealed") && out.contains("old key versions retired"),
        "{out}"
    );
    cli.ok(&["verify"]);
    let audit = cli.ok(&["audit", "show"]);
    assert!(audit.contains("tenant KEK of tenant"), "{audit}");
    assert!(audit.contains("old data-key versions of"), "{audit}");
}
