//! Data-subject rights through the library: access (profile, conversations, messages within
//! the membership bounds), rectification (admins only; no old value on disk after a purge; the
//! audit entry names fields, never values), restriction of processing (readable by the user and
//! admins, left out of third-party exports), erasure (every read path and the exports leave the
//! user out; queued under a hold), and the audit trail (what is recorded; tampering caught by
//! editing, dropping and cutting off the end).

mod common;

use chatvault::{
    Actor, AuditEvent, AuditOutcome, ChainFault, ConversationKind, Error, ExportOptions,
    ExportScope, HoldScope, MessageRole, NewMessage, PurgeOptions, ShredOutcome, ShredScope,
    TenantOptions, UserProfile, Vault,
};

fn profile(name: &str, email: &str) -> UserProfile {
    let mut p = UserProfile::named(name);
    p.email = Some(email.into());
    p.phone = Some("+44 20 7946 0000".into());
    p.fields.insert("pronouns".into(), "she/her".into());
    p
}

fn lines(buf: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(buf)
        .expect("utf-8 export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn of_type<'a>(ls: &'a [serde_json::Value], ty: &str) -> Vec<&'a serde_json::Value> {
    ls.iter().filter(|l| l["type"] == ty).collect()
}

/// A tenant with alice (writes at 1000 and 5000), bob (joins at 2000, leaves at 4000) and carol
/// (an admin), in one conversation.
struct World {
    t: chatvault::TenantId,
    c: chatvault::ConversationId,
    alice: chatvault::UserId,
    bob: chatvault::UserId,
    carol: chatvault::UserId,
}

fn world(v: &Vault) -> World {
    let t = v.create_tenant("acme", TenantOptions::default()).unwrap();
    let alice = v
        .create_user(t, "alice", profile("Alice", "alice@old.example"))
        .unwrap();
    let bob = v
        .create_user(t, "bob", profile("Bob", "bob@example.org"))
        .unwrap();
    let carol = v
        .create_user(t, "carol", UserProfile::named("Carol"))
        .unwrap();
    let c = v
        .create_conversation(
            t,
            "general",
            ConversationKind::Group,
            None,
            &[(alice, 0), (bob, 2000), (carol, 0)],
        )
        .unwrap();
    v.remove_member(t, c, bob, 4000).unwrap();
    for (a, at, body) in [
        (alice, 1000, "before bob"),
        (bob, 2500, "bob speaks"),
        (alice, 3000, "while bob is here"),
        (alice, 5000, "after bob left"),
    ] {
        v.append(t, c, NewMessage::text(a, at, body))
            .unwrap()
            .stored()
            .unwrap();
    }
    World {
        t,
        c,
        alice,
        bob,
        carol,
    }
}

#[test]
fn access_lists_profile_conversations_and_messages_within_membership() {
    let (_d, v, _p) = common::new_vault();
    let w = world(&v);
    let a = v.subject_access(w.t, Actor::member(w.bob), w.bob).unwrap();
    assert_eq!(a.user.profile.email.as_deref(), Some("bob@example.org"));
    assert_eq!(a.user.profile.fields["pronouns"], "she/her");
    assert_eq!(a.conversations.len(), 1);
    let m = a.conversations[0].membership.unwrap();
    assert_eq!((m.joined_at_ms, m.left_at_ms), (2000, Some(4000)));
    let got: Vec<(String, MessageRole)> = v
        .subject_messages(w.t, Actor::member(w.bob), w.bob, w.c)
        .unwrap()
        .map(|r| r.map(|(m, role)| (m.body, role)).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            ("bob speaks".to_string(), MessageRole::Sent),
            ("while bob is here".to_string(), MessageRole::Received),
        ]
    );
    // An admin may read it too; another member may not.
    v.subject_access(w.t, Actor::admin(w.carol), w.bob).unwrap();
    assert!(matches!(
        v.subject_access(w.t, Actor::member(w.alice), w.bob),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        v.subject_messages(w.t, Actor::member(w.alice), w.bob, w.c)
            .map(|_| ()),
        Err(Error::PermissionDenied(_))
    ));
}

#[test]
fn rectification_is_for_admins_keeps_no_old_value_and_audits_field_names_only() {
    let (d, v, p) = common::new_vault();
    let w = world(&v);
    let path = v.path().to_path_buf();
    let mut new = v.user(w.t, w.alice).unwrap().profile;
    new.email = Some("alice@new.example".into());
    new.fields.insert("team".into(), "Blue".into());
    assert!(matches!(
        v.rectify_profile(w.t, Actor::member(w.alice), w.alice, new.clone()),
        Err(Error::PermissionDenied(_))
    ));
    // The sealed record as it is before the rectification.
    v.flush().unwrap();
    drop(v);
    let old_record = {
        let db = common::open_raw(&path);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        let mut k = vec![0x05];
        k.extend_from_slice(&w.t.as_u64().to_be_bytes());
        k.extend_from_slice(&w.alice.as_u64().to_be_bytes());
        db.get_cf(meta, &k).unwrap().expect("alice's record")
    };
    let v = Vault::open(&path, p.clone(), Default::default()).unwrap();
    let changed = v
        .rectify_profile(w.t, Actor::admin(w.carol), w.alice, new.clone())
        .unwrap();
    assert_eq!(
        changed,
        vec!["email".to_string(), "fields.team".to_string()]
    );
    assert_eq!(v.user(w.t, w.alice).unwrap().profile, new);
    // Nothing changes, nothing is recorded.
    let before = v.audit_entries().unwrap().len();
    assert!(v
        .rectify_profile(w.t, Actor::admin(w.carol), w.alice, new.clone())
        .unwrap()
        .is_empty());
    assert_eq!(v.audit_entries().unwrap().len(), before);

    let e = v.audit_entries().unwrap().pop().unwrap();
    assert_eq!(e.actor, Some(w.carol));
    assert_eq!(
        e.event,
        AuditEvent::Rectification {
            tenant: w.t,
            user: w.alice,
            fields: vec!["email".into(), "fields.team".into()],
        }
    );
    assert_eq!(e.outcome, AuditOutcome::Done);
    let dbg = format!("{e:?}");
    assert!(!dbg.contains("alice@") && !dbg.contains("Blue"), "{dbg}");

    let r = v.purge(PurgeOptions::default()).unwrap();
    assert!(r.complete);
    drop(v);
    // The old value is nowhere in the data directory: neither in clear nor its sealed record
    // (its nonce and ciphertext), and neither is the new value in clear.
    let old_sealed = &old_record[6..old_record.len().min(6 + 12 + 16)];
    for f in common::files_under(&path) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [
            b"alice@old.example".as_slice(),
            b"alice@new.example".as_slice(),
            old_sealed,
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|x| x == needle),
                "{} holds {:?}",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    drop(d);
}

#[test]
fn restriction_keeps_data_readable_for_the_user_and_admins_but_out_of_third_party_exports() {
    let (_d, v, _p) = common::new_vault();
    let w = world(&v);
    assert!(!v.is_restricted(w.t, w.bob).unwrap());
    assert!(matches!(
        v.restrict_processing(w.t, Actor::member(w.alice), w.bob, true),
        Err(Error::PermissionDenied(_))
    ));
    v.restrict_processing(w.t, Actor::member(w.bob), w.bob, true)
        .unwrap();
    assert!(v.is_restricted(w.t, w.bob).unwrap());
    // Still stored and readable by the user and admins.
    let a = v.subject_access(w.t, Actor::member(w.bob), w.bob).unwrap();
    assert!(a.restricted_since_ms.is_some());
    v.subject_access(w.t, Actor::admin(w.carol), w.bob).unwrap();
    let mut own = Vec::new();
    v.export_user(
        w.t,
        Actor::member(w.bob),
        w.bob,
        &ExportOptions::default(),
        &mut own,
    )
    .unwrap();
    let ls = lines(&own);
    assert_eq!(of_type(&ls, "user")[0]["restricted"], true);
    assert_eq!(of_type(&ls, "message").len(), 2);
    // Out of third-party exports.
    let third = ExportOptions { third_party: true };
    let mut out = Vec::new();
    assert!(matches!(
        v.export_user(w.t, Actor::operator(), w.bob, &third, &mut out),
        Err(Error::Restricted { .. })
    ));
    let mut out = Vec::new();
    let s = v
        .export_conversation(w.t, Actor::operator(), w.c, &third, &mut out)
        .unwrap();
    assert_eq!(s.restricted_users_left_out, 1);
    let ls = lines(&out);
    assert!(of_type(&ls, "user")
        .iter()
        .all(|u| u["user"] != w.bob.as_u64()));
    assert!(of_type(&ls, "message")
        .iter()
        .all(|m| m["author"] != w.bob.as_u64()));
    assert_eq!(of_type(&ls, "message").len(), 3);
    // A non-third-party export has them.
    let mut out = Vec::new();
    v.export_conversation(
        w.t,
        Actor::operator(),
        w.c,
        &ExportOptions::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(of_type(&lines(&out), "message").len(), 4);
    // Lifted: back in third-party exports.
    v.restrict_processing(w.t, Actor::admin(w.carol), w.bob, false)
        .unwrap();
    assert!(!v.is_restricted(w.t, w.bob).unwrap());
    let mut out = Vec::new();
    v.export_conversation(w.t, Actor::operator(), w.c, &third, &mut out)
        .unwrap();
    assert_eq!(of_type(&lines(&out), "message").len(), 4);
    let restr: Vec<bool> = v
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            AuditEvent::Restriction { user, on, .. } if user == w.bob => Some(on),
            _ => None,
        })
        .collect();
    assert_eq!(restr, vec![true, false]);
}

#[test]
fn erasure_removes_the_user_from_every_read_path_and_the_exports() {
    let (_d, v, _p) = common::new_vault();
    let w = world(&v);
    v.restrict_processing(w.t, Actor::member(w.bob), w.bob, true)
        .unwrap();
    assert!(matches!(
        v.erase_user(w.t, Actor::member(w.alice), w.bob),
        Err(Error::PermissionDenied(_))
    ));
    let receipt = match v.erase_user(w.t, Actor::member(w.bob), w.bob).unwrap() {
        ShredOutcome::Shredded(r) => r,
        o => panic!("expected a shred, got {o:?}"),
    };
    assert_eq!(receipt.scope, ShredScope::User(w.bob));
    let shredded = |r: Result<(), Error>| {
        assert!(matches!(r, Err(Error::Shredded { .. })), "{r:?}");
    };
    shredded(v.user(w.t, w.bob).map(|_| ()));
    assert!(matches!(v.user_id(w.t, "bob"), Err(Error::NotFound { .. })));
    shredded(v.subject_access(w.t, Actor::operator(), w.bob).map(|_| ()));
    shredded(v.is_restricted(w.t, w.bob).map(|_| ()));
    shredded(v.get(w.t, w.c, 2).map(|_| ()));
    assert_eq!(v.user_conversations(w.t, w.bob).unwrap().count(), 0);
    let bodies: Vec<String> = v
        .messages(w.t, w.c, None, chatvault::Direction::Forward)
        .unwrap()
        .map(|m| m.unwrap().body)
        .collect();
    assert_eq!(bodies.len(), 3);
    assert!(!bodies.iter().any(|b| b == "bob speaks"));
    assert_eq!(v.messages_between(w.t, w.c, 0, 10_000).unwrap().count(), 3);
    let mut out = Vec::new();
    shredded(
        v.export_user(
            w.t,
            Actor::operator(),
            w.bob,
            &ExportOptions::default(),
            &mut out,
        )
        .map(|_| ()),
    );
    for third_party in [false, true] {
        let mut out = Vec::new();
        v.export_tenant(
            w.t,
            Actor::operator(),
            &ExportOptions { third_party },
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        for gone in [
            "bob@example.org",
            "bob speaks",
            r#""external_id":"bob""#,
            "Bob",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        let ls = lines(text.as_bytes());
        assert_eq!(of_type(&ls, "user").len(), 2);
        assert_eq!(of_type(&ls, "message").len(), 3);
    }
    // Again: already erased.
    shredded(v.erase_user(w.t, Actor::operator(), w.bob).map(|_| ()));
    let last = v.audit_entries().unwrap();
    assert!(last.iter().any(|e| e.event
        == AuditEvent::Erasure {
            tenant: w.t,
            user: w.bob,
            receipt: receipt.seq,
        }
        && e.actor == Some(w.bob)
        && e.outcome == AuditOutcome::Done));
}

#[test]
fn erasure_under_a_hold_is_queued_and_carried_out_at_release() {
    let (_d, v, _p) = common::new_vault();
    let w = world(&v);
    let h = v
        .place_hold(
            w.t,
            Actor::admin(w.carol),
            HoldScope::Custodian(w.bob),
            "case 7",
        )
        .unwrap();
    let q = match v.erase_user(w.t, Actor::member(w.bob), w.bob).unwrap() {
        ShredOutcome::Queued(q) => q,
        o => panic!("expected a queued erasure, got {o:?}"),
    };
    assert_eq!(q.by, Some(w.bob));
    // Still there until the hold goes.
    v.user(w.t, w.bob).unwrap();
    v.release_hold(w.t, Actor::admin(w.carol), h.id).unwrap();
    assert!(matches!(v.user(w.t, w.bob), Err(Error::Shredded { .. })));
    let es = v.audit_entries().unwrap();
    let kinds: Vec<(&AuditEvent, &AuditOutcome)> =
        es.iter().map(|e| (&e.event, &e.outcome)).collect();
    assert!(kinds.iter().any(
        |(e, o)| matches!(e, AuditEvent::HoldPlaced { hold, .. } if *hold == h.id)
            && **o == AuditOutcome::Done
    ));
    assert!(kinds.iter().any(
        |(e, o)| matches!(e, AuditEvent::Erasure { receipt, .. } if *receipt == q.seq)
            && **o == AuditOutcome::Queued
    ));
    assert!(kinds.iter().any(|(e, _)| matches!(e,
        AuditEvent::HoldReleased { hold, carried_out, .. } if *hold == h.id && carried_out.len() == 1)));
    assert!(v.verify_audit(None).unwrap().is_intact());
}

#[test]
fn the_audit_trail_records_policy_hold_shred_and_export_with_internal_ids_only() {
    let (_d, v, _p) = common::new_vault();
    let w = world(&v);
    let mut pol = v.tenant_policy(w.t).unwrap();
    pol.members_may_change = true;
    v.set_tenant_policy(w.t, Actor::admin(w.carol), pol)
        .unwrap();
    v.set_conversation_policy(
        w.t,
        w.c,
        Actor::member(w.alice),
        chatvault::PolicyOverride::default(),
        false,
    )
    .unwrap();
    let h = v
        .place_hold(w.t, Actor::operator(), HoldScope::Tenant, "secret reason")
        .unwrap();
    v.release_hold(w.t, Actor::operator(), h.id).unwrap();
    let r = v
        .shred(
            w.t,
            Actor::operator(),
            ShredScope::Window {
                conversation: w.c,
                at_ms: 1000,
            },
        )
        .unwrap();
    let mut out = Vec::new();
    v.export_user(
        w.t,
        Actor::member(w.alice),
        w.alice,
        &ExportOptions::default(),
        &mut out,
    )
    .unwrap();
    // Counted as the `end` record counts: the lines before it.
    let records = lines(&out).len() as u64 - 1;
    // A failed export (write error midway) is recorded as failed.
    struct Broken(usize);
    impl std::io::Write for Broken {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            self.0 -= 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.write(&[]).map(|_| ())
        }
    }
    assert!(matches!(
        v.export_tenant(w.t, Actor::operator(), &ExportOptions::default(), Broken(0)),
        Err(Error::ExportWrite { .. })
    ));
    let es = v.audit_entries().unwrap();
    let evs: Vec<&AuditEvent> = es.iter().map(|e| &e.event).collect();
    assert_eq!(
        evs[..6],
        vec![
            &AuditEvent::PolicyChange {
                tenant: w.t,
                conversation: None
            },
            &AuditEvent::PolicyChange {
                tenant: w.t,
                conversation: Some(w.c)
            },
            &AuditEvent::HoldPlaced {
                tenant: w.t,
                hold: h.id,
                scope: HoldScope::Tenant
            },
            &AuditEvent::HoldReleased {
                tenant: w.t,
                hold: h.id,
                carried_out: vec![]
            },
            &AuditEvent::Shred {
                tenant: w.t,
                scope: ShredScope::Window {
                    conversation: w.c,
                    at_ms: 1000
                },
                receipt: r.seq
            },
            &AuditEvent::Export {
                tenant: w.t,
                scope: ExportScope::User(w.alice),
                third_party: false,
                records
            },
        ]
    );
    assert_eq!(evs.len(), 7);
    assert!(matches!(
        evs[6],
        AuditEvent::Export {
            scope: ExportScope::Tenant,
            third_party: false,
            ..
        }
    ));
    assert_eq!(es[1].actor, Some(w.alice));
    assert!(!es[1].as_admin);
    assert_eq!(es[5].actor, Some(w.alice));
    assert_eq!(
        es[6].outcome,
        AuditOutcome::Failed {
            error: "ExportWrite".into()
        }
    );
    let all = format!("{es:?}");
    assert!(!all.contains("secret reason") && !all.contains("acme") && !all.contains("alice"));
    let rep = v.verify_audit(None).unwrap();
    assert!(rep.is_intact());
    assert_eq!(rep.entries, 7);
    assert_eq!(rep.head, v.audit_head());
}

fn audit_key(seq: u64) -> Vec<u8> {
    let mut k = vec![0x12, 2];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[test]
fn audit_tampering_is_caught_edit_drop_and_cut_off_end() {
    let (_d, v, p) = common::new_vault();
    let w = world(&v);
    for on in [true, false, true, false, true] {
        v.restrict_processing(w.t, Actor::operator(), w.alice, on)
            .unwrap();
    }
    let rep = v.verify_audit(None).unwrap();
    assert!(rep.is_intact());
    assert_eq!(rep.entries, 5);
    let head = rep.head.unwrap();
    let path = v.path().to_path_buf();
    drop(v);
    let raw = |f: &dyn Fn(&rocksdb::DB, &rocksdb::ColumnFamily)| {
        let db = common::open_raw(&path);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        f(&db, meta);
    };
    let check = |want_seq: u64, want: ChainFault, kept: Option<&chatvault::ChainHead>| {
        let v = Vault::open(&path, p.clone(), Default::default()).unwrap();
        let b = v.verify_audit(kept).unwrap().broken.expect("broken");
        assert_eq!((b.seq, b.fault), (want_seq, want), "{b}");
        // The receipts are another chain, untouched.
        assert!(v.verify_receipts(None).unwrap().is_intact());
    };
    // Keep the originals to restore between cases.
    let orig: Vec<Vec<u8>> = {
        let db = common::open_raw(&path);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        (0..5)
            .map(|s| db.get_cf(meta, audit_key(s)).unwrap().unwrap())
            .collect()
    };
    let restore = || {
        raw(&|db, meta| {
            for (s, val) in orig.iter().enumerate() {
                db.put_cf(meta, audit_key(s as u64), val).unwrap();
            }
        })
    };
    // 1. Edit: flip the `on` flag inside entry 2's body.
    raw(&|db, meta| {
        let mut val = orig[2].clone();
        let n = val.len();
        val[n - 33] ^= 1;
        db.put_cf(meta, audit_key(2), val).unwrap();
    });
    check(2, ChainFault::Edited, None);
    restore();
    // 2. Drop entry 1.
    raw(&|db, meta| db.delete_cf(meta, audit_key(1)).unwrap());
    check(1, ChainFault::Missing, None);
    restore();
    // 3. Cut off the end: drop entries 3 and 4; intact without the kept head, caught with it.
    raw(&|db, meta| {
        db.delete_cf(meta, audit_key(4)).unwrap();
        db.delete_cf(meta, audit_key(3)).unwrap();
    });
    {
        let v = Vault::open(&path, p.clone(), Default::default()).unwrap();
        assert!(v.verify_audit(None).unwrap().is_intact());
    }
    check(4, ChainFault::Truncated, Some(&head));
    restore();
    let v = Vault::open(&path, p.clone(), Default::default()).unwrap();
    assert!(v.verify_audit(Some(&head)).unwrap().is_intact());
}

#[test]
fn exporting_a_shredded_conversation_or_tenant_fails_as_shredded_and_is_audited() {
    let (_d, v, _p) = common::new_vault();
    let w = world(&v);
    v.shred(w.t, Actor::operator(), ShredScope::Conversation(w.c))
        .unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        v.export_conversation(
            w.t,
            Actor::operator(),
            w.c,
            &ExportOptions::default(),
            &mut out
        ),
        Err(Error::Shredded { .. })
    ));
    assert!(
        out.is_empty(),
        "nothing written for a shredded conversation"
    );
    // The user's export leaves the shredded conversation out.
    let mut out = Vec::new();
    v.export_user(
        w.t,
        Actor::operator(),
        w.alice,
        &ExportOptions::default(),
        &mut out,
    )
    .unwrap();
    let ls = lines(&out);
    assert!(of_type(&ls, "conversation").is_empty());
    assert!(of_type(&ls, "message").is_empty());
    v.shred(w.t, Actor::operator(), ShredScope::Tenant).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        v.export_tenant(w.t, Actor::operator(), &ExportOptions::default(), &mut out),
        Err(Error::Shredded { .. })
    ));
    let outcomes: Vec<AuditOutcome> = v
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event, AuditEvent::Export { .. }))
        .map(|e| e.outcome)
        .collect();
    let failed = AuditOutcome::Failed {
        error: "Shredded".into(),
    };
    assert_eq!(outcomes, vec![failed.clone(), AuditOutcome::Done, failed]);
}

/// A user who wrote in a conversation without being a member of it (the application appended
/// for them) still finds those messages through access and export: the rights reach every
/// message they wrote, not only their memberships' (found by the model-based test).
#[test]
fn messages_written_outside_ones_memberships_are_in_access_and_export() {
    let (_d, v, _p) = common::new_vault();
    let f = common::fixture(&v, "acme", chatvault::TenantOptions::default());
    let carol = v
        .create_user(f.t, "carol", chatvault::UserProfile::named("Carol"))
        .unwrap();
    v.append(
        f.t,
        f.c,
        chatvault::NewMessage::text(carol, 1_700_000_000_000, "carol, not a member"),
    )
    .unwrap()
    .stored()
    .unwrap();
    let a = v
        .subject_access(f.t, chatvault::Actor::member(carol), carol)
        .unwrap();
    assert_eq!(a.conversations.len(), 1);
    assert_eq!(a.conversations[0].info.id, f.c);
    assert!(a.conversations[0].membership.is_none());
    let mut out = Vec::new();
    v.export_user(
        f.t,
        chatvault::Actor::member(carol),
        carol,
        &chatvault::ExportOptions::default(),
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let msgs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["type"] == "message")
        .collect();
    assert_eq!(msgs.len(), 1, "{text}");
    assert_eq!(msgs[0]["body"], "carol, not a member");
    assert_eq!(msgs[0]["role"], "sent");
}
