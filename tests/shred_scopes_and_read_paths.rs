//! Crypto-shredding of each scope (tenant, conversation, user, window) against each read path:
//! data in scope gives `Shredded` (also after a restart), listings leave out a shredded window's
//! or author's messages and fail for a shredded conversation or tenant, appends into a shredded
//! scope fail, data out of scope reads as before; a legal hold refuses the shred; after a purge no
//! file holds the shredded records or the destroyed wrapped keys.

mod common;

use aho_corasick::AhoCorasick;
use chatvault::{
    cf, Actor, ConversationId, Direction, ErasurePolicy, Error, HoldScope, NewMessage, ShredScope,
    TenantId, TenantOptions, UserId, Vault,
};
use common::DAY;

const D1: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY; // a UTC day boundary
const D2: i64 = D1 + DAY;

struct World {
    _d: tempfile::TempDir,
    data: std::path::PathBuf,
    p: std::sync::Arc<chatvault::StaticKeyProvider>,
    v: Vault,
    t: TenantId,
    c1: ConversationId,
    c2: ConversationId,
    alice: UserId,
    bob: UserId,
    other: common::Fixture,
}

/// Tenant "acme": c1 with alice and bob writing on two days, c2 with one message each.
/// Tenant "globex": out of scope.
fn world(policy: ErasurePolicy) -> World {
    let (d, v, p) = common::new_vault();
    let f = common::fixture(
        &v,
        "acme",
        TenantOptions {
            erasure_policy: policy,
            ..Default::default()
        },
    );
    let c2 = v
        .create_conversation(f.t, "c2", chatvault::ConversationKind::Group, None, &[])
        .unwrap();
    for day in [D1, D2] {
        v.append(
            f.t,
            f.c,
            NewMessage::text(f.alice, day + 10, format!("alice {day}")),
        )
        .unwrap()
        .stored()
        .unwrap();
        v.append(
            f.t,
            f.c,
            NewMessage::text(f.bob, day + 20, format!("bob {day}")),
        )
        .unwrap()
        .stored()
        .unwrap();
    }
    v.append(f.t, c2, NewMessage::text(f.alice, D1, "alice c2"))
        .unwrap()
        .stored()
        .unwrap();
    v.append(f.t, c2, NewMessage::text(f.bob, D1, "bob c2"))
        .unwrap()
        .stored()
        .unwrap();
    let other = common::fixture(&v, "globex", TenantOptions::default());
    v.append(
        other.t,
        other.c,
        NewMessage::text(other.alice, D1, "globex"),
    )
    .unwrap()
    .stored()
    .unwrap();
    World {
        data: d.path().join("data"),
        _d: d,
        p,
        v,
        t: f.t,
        c1: f.c,
        c2,
        alice: f.alice,
        bob: f.bob,
        other,
    }
}

fn bodies(v: &Vault, t: TenantId, c: ConversationId) -> Result<Vec<String>, Error> {
    v.messages(t, c, None, Direction::Forward)?
        .map(|m| m.map(|m| m.body))
        .collect()
}

fn shredded<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Shredded { .. }))
}

fn reopen(w: World) -> World {
    let World {
        _d,
        data,
        p,
        v,
        t,
        c1,
        c2,
        alice,
        bob,
        other,
    } = w;
    drop(v);
    let v = Vault::open(&data, p.clone(), Default::default()).unwrap();
    World {
        _d,
        data,
        p,
        v,
        t,
        c1,
        c2,
        alice,
        bob,
        other,
    }
}

fn out_of_scope_intact(w: &World) {
    assert_eq!(bodies(&w.v, w.other.t, w.other.c).unwrap(), vec!["globex"]);
}

#[test]
fn a_shredded_window_is_unreadable_and_the_rest_reads_as_before() {
    let mut w = world(ErasurePolicy::MessagesUnreadable);
    let r =
        w.v.shred(
            w.t,
            Actor::operator(),
            ShredScope::Window {
                conversation: w.c1,
                at_ms: D1 + 5,
            },
        )
        .unwrap();
    assert_eq!(r.key_ranges.len(), 1);
    for _ in 0..2 {
        // The same window again (any time inside it): already shredded.
        assert!(shredded(w.v.shred(
            w.t,
            Actor::operator(),
            ShredScope::Window {
                conversation: w.c1,
                at_ms: D1 + 99,
            },
        )));
        assert!(shredded(w.v.get(w.t, w.c1, 1)));
        assert!(shredded(w.v.get(w.t, w.c1, 2)));
        assert_eq!(w.v.get(w.t, w.c1, 3).unwrap().body, format!("alice {D2}"));
        // Counts leave the shredded window out too, before any purge.
        assert_eq!(w.v.message_count(w.t, w.c1).unwrap(), 2);
        assert_eq!(
            bodies(&w.v, w.t, w.c1).unwrap(),
            vec![format!("alice {D2}"), format!("bob {D2}")]
        );
        let page = w.v.page(w.t, w.c1, None, Direction::Backward, 10).unwrap();
        assert_eq!(page.messages.len(), 2);
        let by_time: Vec<_> =
            w.v.messages_between(w.t, w.c1, D1, D2 + DAY)
                .unwrap()
                .map(|m| m.unwrap().id)
                .collect();
        assert_eq!(by_time, vec![3, 4]);
        assert_eq!(
            bodies(&w.v, w.t, w.c2).unwrap().len(),
            2,
            "other conversation untouched"
        );
        assert!(shredded(w.v.append(
            w.t,
            w.c1,
            NewMessage::text(w.alice, D1 + 99, "late")
        )));
        out_of_scope_intact(&w);
        w = reopen(w);
    }
    assert_eq!(
        w.v.append(w.t, w.c1, NewMessage::text(w.alice, D2 + DAY, "new day"))
            .unwrap()
            .stored(),
        Some(5)
    );
}

#[test]
fn a_shredded_conversation_fails_every_read_and_append() {
    let mut w = world(ErasurePolicy::MessagesUnreadable);
    w.v.shred(w.t, Actor::operator(), ShredScope::Conversation(w.c1))
        .unwrap();
    for _ in 0..2 {
        assert!(shredded(w.v.get(w.t, w.c1, 1)));
        assert!(shredded(
            w.v.messages(w.t, w.c1, None, Direction::Forward)
                .map(|_| ())
        ));
        assert!(shredded(w.v.page(w.t, w.c1, None, Direction::Forward, 5)));
        assert!(shredded(w.v.conversation(w.t, w.c1)));
        assert!(shredded(w.v.append(
            w.t,
            w.c1,
            NewMessage::text(w.alice, D2, "x")
        )));
        assert!(matches!(
            w.v.conversation_id(w.t, "general"),
            Err(Error::NotFound { .. })
        ));
        let convs: Vec<_> =
            w.v.conversations(w.t)
                .unwrap()
                .map(|c| c.unwrap().id)
                .collect();
        assert_eq!(convs, vec![w.c2]);
        let of_alice: Vec<_> =
            w.v.user_conversations(w.t, w.alice)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        assert!(!of_alice.contains(&w.c1), "{of_alice:?}");
        assert_eq!(bodies(&w.v, w.t, w.c2).unwrap().len(), 2);
        out_of_scope_intact(&w);
        w = reopen(w);
    }
}

#[test]
fn a_shredded_user_under_the_default_policy_takes_their_messages_along() {
    let mut w = world(ErasurePolicy::MessagesUnreadable);
    w.v.shred(w.t, Actor::operator(), ShredScope::User(w.alice))
        .unwrap();
    for _ in 0..2 {
        assert!(shredded(w.v.user(w.t, w.alice)));
        assert!(
            matches!(
                w.v.user_id(w.t, "alice@example.org"),
                Err(Error::NotFound { .. })
            ),
            "no link from name to id"
        );
        assert!(shredded(w.v.get(w.t, w.c1, 1)));
        assert_eq!(w.v.get(w.t, w.c1, 2).unwrap().body, format!("bob {D1}"));
        assert_eq!(
            bodies(&w.v, w.t, w.c1).unwrap(),
            vec![format!("bob {D1}"), format!("bob {D2}")]
        );
        assert_eq!(bodies(&w.v, w.t, w.c2).unwrap(), vec!["bob c2"]);
        assert!(w
            .v
            .user_conversations(w.t, w.alice)
            .unwrap()
            .next()
            .is_none());
        assert!(shredded(w.v.append(
            w.t,
            w.c1,
            NewMessage::text(w.alice, D2, "x")
        )));
        assert_eq!(w.v.user(w.t, w.bob).unwrap().external_id, "bob@example.org");
        out_of_scope_intact(&w);
        w = reopen(w);
    }
}

#[test]
fn a_shredded_user_under_author_erased_leaves_their_messages_readable() {
    let mut w = world(ErasurePolicy::AuthorErased);
    w.v.shred(w.t, Actor::operator(), ShredScope::User(w.alice))
        .unwrap();
    for _ in 0..2 {
        assert!(shredded(w.v.user(w.t, w.alice)));
        let m = w.v.get(w.t, w.c1, 1).unwrap();
        assert_eq!((m.author, m.body.clone()), (w.alice, format!("alice {D1}")));
        assert_eq!(bodies(&w.v, w.t, w.c1).unwrap().len(), 4);
        assert!(shredded(w.v.append(
            w.t,
            w.c1,
            NewMessage::text(w.alice, D2, "x")
        )));
        w = reopen(w);
    }
}

#[test]
fn a_shredded_tenant_is_gone_and_other_tenants_are_not() {
    let mut w = world(ErasurePolicy::MessagesUnreadable);
    w.v.shred(w.t, Actor::operator(), ShredScope::Tenant)
        .unwrap();
    for _ in 0..2 {
        assert!(shredded(w.v.get(w.t, w.c1, 1)));
        assert!(shredded(w.v.conversations(w.t).map(|_| ())));
        assert!(shredded(w.v.user_conversations(w.t, w.alice).map(|_| ())));
        assert!(shredded(w.v.append(
            w.t,
            w.c2,
            NewMessage::text(w.bob, D2, "x")
        )));
        assert!(matches!(w.v.tenant("acme"), Err(Error::NotFound { .. })));
        let names: Vec<_> = w.v.tenants().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["globex"]);
        out_of_scope_intact(&w);
        w = reopen(w);
    }
    assert!(shredded(w.v.shred(
        w.t,
        Actor::operator(),
        ShredScope::Tenant
    )));
}

#[test]
fn a_legal_hold_over_any_part_of_the_scope_refuses_the_shred_and_destroys_nothing() {
    let w = world(ErasurePolicy::MessagesUnreadable);
    let cases = [
        (HoldScope::Tenant, ShredScope::Conversation(w.c1)),
        (
            HoldScope::Conversation(w.c1),
            ShredScope::Window {
                conversation: w.c1,
                at_ms: D1,
            },
        ),
        (HoldScope::Custodian(w.alice), ShredScope::User(w.alice)),
        (HoldScope::Custodian(w.bob), ShredScope::Tenant),
        (HoldScope::Custodian(w.bob), ShredScope::Conversation(w.c1)),
    ];
    for (hold, scope) in cases {
        let h = w.v.place_hold(w.t, Actor::operator(), hold, "x").unwrap();
        assert!(
            matches!(
                w.v.shred(w.t, Actor::operator(), scope),
                Err(Error::LegalHold { .. })
            ),
            "{hold:?} {scope:?}"
        );
        assert_eq!(bodies(&w.v, w.t, w.c1).unwrap().len(), 4);
        w.v.release_hold(w.t, Actor::operator(), h.id).unwrap();
    }
    assert!(matches!(
        w.v.shred(w.t, Actor::member(w.alice), ShredScope::User(w.alice)),
        Err(Error::PermissionDenied(_))
    ));
}

#[test]
fn after_a_purge_no_file_holds_the_shredded_records_or_the_destroyed_keys() {
    let w = world(ErasurePolicy::MessagesUnreadable);
    let (t, c1) = (w.t.as_u64(), w.c1.as_u64());
    let World {
        _d,
        data,
        p,
        v,
        t: tid,
        c1: cid,
        ..
    } = w;
    v.flush().unwrap();
    drop(v);
    // Needles: the shredded conversation's records and its wrapped keys, as stored.
    let mut needles: Vec<Vec<u8>> = Vec::new();
    {
        let db = common::open_raw(&data);
        let mut prefix = t.to_be_bytes().to_vec();
        prefix.extend_from_slice(&c1.to_be_bytes());
        for kv in db.prefix_iterator_cf(db.cf_handle(cf::MESSAGES).unwrap(), &prefix) {
            let (k, v) = kv.unwrap();
            if k.starts_with(&prefix) {
                needles.push(v[34..50].to_vec());
            }
        }
        for tag in [0x02u8, 0x03] {
            let mut kp = vec![tag];
            kp.extend_from_slice(&prefix);
            for kv in db.prefix_iterator_cf(db.cf_handle(cf::KEYS).unwrap(), &kp) {
                let (k, v) = kv.unwrap();
                if k.starts_with(&kp) {
                    needles.push(v.to_vec());
                }
            }
        }
    }
    assert_eq!(
        needles.len(),
        4 + 1 + 2,
        "4 records, 1 conversation key, 2 epoch keys"
    );
    let ac = AhoCorasick::new(&needles).unwrap();
    let found = |dir: &std::path::Path| -> usize {
        common::files_under(dir)
            .iter()
            .map(|f| ac.find_iter(&std::fs::read(f).unwrap_or_default()).count())
            .sum()
    };
    assert!(found(&data) >= needles.len());
    let v = Vault::open(&data, p.clone(), Default::default()).unwrap();
    v.shred(tid, Actor::operator(), ShredScope::Conversation(cid))
        .unwrap();
    let r = v.purge(Default::default()).unwrap();
    assert!(r.complete, "{r:?}");
    drop(v);
    assert_eq!(
        found(&data),
        0,
        "no SST, WAL, MANIFEST or LOG holds a shredded record or key"
    );
}
