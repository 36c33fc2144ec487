//! Legal holds, each scope (tenant, conversation, custodian) against each deletion path
//! (retention expiry, purge, an author's delete, deleting a conversation's history): nothing in
//! scope expires or is deleted while the hold applies; releasing it lets retention resume at once;
//! a hold placed after a message expired does not bring it back.

mod common;

use chatvault::{
    Actor, ConversationKind, Error, HoldScope, NewMessage, PolicyOverride, Retention,
    TenantOptions, Vault,
};
use common::{DAY, HOUR};

const T0: i64 = 1_700_000_000_000;

struct Setup {
    _d: tempfile::TempDir,
    v: Vault,
    clock: std::sync::Arc<chatvault::FakeClock>,
    f: common::Fixture,
    other: chatvault::ConversationId,
}

/// Two conversations with a 1-day retention; alice and bob each wrote one message in each.
fn setup() -> Setup {
    let (d, v, _p, clock) = common::new_vault_with_clock(T0);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let other = v
        .create_conversation(
            f.t,
            "other",
            ConversationKind::Group,
            None,
            &[(f.alice, 0), (f.bob, 0)],
        )
        .unwrap();
    for c in [f.c, other] {
        let r = PolicyOverride {
            retention: Some(Retention::period_ms(DAY as u64).unwrap()),
            history: None,
        };
        v.set_conversation_policy(f.t, c, Actor::operator(), r, false)
            .unwrap();
        v.append(f.t, c, NewMessage::text(f.alice, T0, "alice"))
            .unwrap()
            .stored()
            .unwrap();
        v.append(f.t, c, NewMessage::text(f.bob, T0, "bob"))
            .unwrap()
            .stored()
            .unwrap();
    }
    Setup {
        _d: d,
        v,
        clock,
        f,
        other,
    }
}

fn visible(s: &Setup, c: chatvault::ConversationId) -> Vec<String> {
    s.v.messages(s.f.t, c, None, chatvault::Direction::Forward)
        .unwrap()
        .map(|m| m.unwrap().body)
        .collect()
}

#[test]
fn each_hold_scope_stops_expiry_and_purge_for_exactly_its_scope() {
    let scopes = |s: &Setup| {
        vec![
            (
                HoldScope::Tenant,
                vec!["alice", "bob"],
                vec!["alice", "bob"],
            ),
            (HoldScope::Conversation(s.f.c), vec!["alice", "bob"], vec![]),
            (
                HoldScope::Custodian(s.f.alice),
                vec!["alice"],
                vec!["alice"],
            ),
        ]
    };
    for n in 0..3 {
        let s = setup();
        let (scope, in_c, in_other) = scopes(&s).remove(n);
        let hold =
            s.v.place_hold(s.f.t, Actor::operator(), scope, "matter 42")
                .unwrap();
        assert_eq!(s.v.holds(s.f.t).unwrap(), vec![hold.clone()]);
        s.clock.set(T0 + 2 * DAY);
        assert_eq!(visible(&s, s.f.c), in_c, "{scope:?}");
        assert_eq!(visible(&s, s.other), in_other, "{scope:?}");
        // Purge removes only what is not held, and the held messages survive it.
        let r = s.v.purge(Default::default()).unwrap();
        assert!(r.complete);
        assert_eq!(visible(&s, s.f.c), in_c, "{scope:?} after purge");
        assert_eq!(visible(&s, s.other), in_other, "{scope:?} after purge");
        // Releasing the hold lets retention resume at once.
        s.v.release_hold(s.f.t, Actor::operator(), hold.id).unwrap();
        assert!(visible(&s, s.f.c).is_empty());
        assert!(visible(&s, s.other).is_empty());
        assert!(s.v.purge(Default::default()).unwrap().complete);
        assert!(s.v.holds(s.f.t).unwrap().is_empty());
    }
}

#[test]
fn a_hold_placed_after_expiry_does_not_bring_messages_back() {
    let s = setup();
    s.clock.set(T0 + DAY + HOUR);
    assert!(visible(&s, s.f.c).is_empty());
    for scope in [
        HoldScope::Tenant,
        HoldScope::Conversation(s.f.c),
        HoldScope::Custodian(s.f.alice),
    ] {
        s.v.place_hold(s.f.t, Actor::operator(), scope, "late")
            .unwrap();
        assert!(visible(&s, s.f.c).is_empty(), "{scope:?}");
        assert!(matches!(
            s.v.get(s.f.t, s.f.c, 1),
            Err(Error::Expired { .. })
        ));
    }
}

#[test]
fn an_authors_delete_under_hold_is_shown_but_the_original_is_kept_until_release() {
    let s = setup();
    let (t, c) = (s.f.t, s.f.c);
    s.v.edit(t, c, 1, "alice, edited", T0 + 1).unwrap();
    let hold =
        s.v.place_hold(t, Actor::operator(), HoldScope::Custodian(s.f.alice), "x")
            .unwrap();
    s.v.delete(t, c, 1, T0 + 2).unwrap();
    // Readers see the deletion as usual.
    let m = s.v.get(t, c, 1).unwrap();
    assert_eq!((m.body.as_str(), m.deleted_at_ms), ("", Some(T0 + 2)));
    assert!(s.v.revisions(t, c, 1).unwrap().is_empty());
    // The held original and its revisions are still stored (counted below the read path).
    assert_eq!(
        revision_records(&s.v),
        2,
        "original and first edit kept under hold"
    );
    s.v.release_hold(t, Actor::operator(), hold.id).unwrap();
    assert_eq!(
        revision_records(&s.v),
        0,
        "released: the deleted message's revisions go"
    );
    // Without a hold, a delete removes revisions at once.
    s.v.edit(t, c, 2, "bob, edited", T0 + 3).unwrap();
    assert_eq!(revision_records(&s.v), 1);
    s.v.delete(t, c, 2, T0 + 4).unwrap();
    assert_eq!(revision_records(&s.v), 0);
}

/// Revision records visible to RocksDB (through a raw read of the column family).
fn revision_records(v: &Vault) -> usize {
    v.debug_count_records(chatvault::cf::REVISIONS).unwrap()
}

#[test]
fn deleting_a_conversations_history_under_any_hold_fails_and_changes_nothing() {
    let s = setup();
    let off = PolicyOverride {
        history: Some(chatvault::History::Off),
        retention: None,
    };
    for scope in [
        HoldScope::Tenant,
        HoldScope::Conversation(s.f.c),
        HoldScope::Custodian(s.f.bob),
    ] {
        let h =
            s.v.place_hold(s.f.t, Actor::operator(), scope, "x")
                .unwrap();
        let r =
            s.v.set_conversation_policy(s.f.t, s.f.c, Actor::operator(), off, true);
        assert!(
            matches!(r, Err(Error::LegalHold { .. })),
            "{scope:?}: {r:?}"
        );
        assert_eq!(visible(&s, s.f.c).len(), 2);
        s.v.release_hold(s.f.t, Actor::operator(), h.id).unwrap();
    }
}

#[test]
fn only_admins_place_and_release_holds() {
    let s = setup();
    let r =
        s.v.place_hold(s.f.t, Actor::member(s.f.alice), HoldScope::Tenant, "x");
    assert!(matches!(r, Err(Error::PermissionDenied(_))));
    let h =
        s.v.place_hold(s.f.t, Actor::admin(s.f.bob), HoldScope::Tenant, "x")
            .unwrap();
    assert_eq!(h.placed_by, Some(s.f.bob));
    assert!(matches!(
        s.v.release_hold(s.f.t, Actor::member(s.f.alice), h.id),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        s.v.release_hold(s.f.t, Actor::operator(), 999_999),
        Err(Error::NotFound { .. })
    ));
    let log = s.v.policy_changes(s.f.t).unwrap();
    assert!(log
        .iter()
        .any(|c| c.change.contains("placed") && c.by == Some(s.f.bob)));
}
