//! The rules for policy changes (DESIGN.md, "Retention"): shortening applies to existing
//! messages at once; lengthening or removing the period never brings back an expired message,
//! whether or not a purge has removed it yet. History off stores nothing new and deletes nothing
//! unless asked. Who may change what, and that every change is recorded.

mod common;

use chatvault::{
    Actor, Error, History, NewMessage, Policy, PolicyOverride, Retention, TenantOptions,
    TenantPolicy, Vault,
};
use common::{DAY, HOUR};

const T0: i64 = 1_700_000_000_000;

fn period(ms: i64) -> Retention {
    Retention::period_ms(ms as u64).unwrap()
}

fn conv_retention(v: &Vault, f: &common::Fixture, r: Retention) {
    v.set_conversation_policy(
        f.t,
        f.c,
        Actor::operator(),
        PolicyOverride {
            retention: Some(r),
            history: None,
        },
        false,
    )
    .unwrap();
}

fn visible(v: &Vault, f: &common::Fixture) -> u64 {
    v.message_count(f.t, f.c).unwrap()
}

#[test]
fn shortening_applies_at_once_and_lengthening_never_brings_anything_back() {
    for purge_first in [false, true] {
        let (_d, v, _p, clock) = common::new_vault_with_clock(T0);
        let f = common::fixture(&v, "acme", TenantOptions::default());
        for h in 0..10 {
            v.append(
                f.t,
                f.c,
                NewMessage::text(f.alice, T0 + h * HOUR, format!("h{h}")),
            )
            .unwrap()
            .stored()
            .unwrap();
        }
        clock.set(T0 + 10 * HOUR);
        assert_eq!(visible(&v, &f), 10);
        // Shorten to 5 hours: messages at hours 0..=5 are older than 5 h at once.
        conv_retention(&v, &f, period(5 * HOUR));
        assert_eq!(visible(&v, &f), 4);
        assert!(matches!(v.get(f.t, f.c, 1), Err(Error::Expired { .. })));
        if purge_first {
            assert!(v.purge(Default::default()).unwrap().complete);
        }
        // Lengthen to 30 days: nothing comes back.
        conv_retention(&v, &f, period(30 * DAY));
        assert_eq!(visible(&v, &f), 4, "purged first: {purge_first}");
        // Remove retention altogether: still nothing comes back, also after a restart.
        v.set_conversation_policy(
            f.t,
            f.c,
            Actor::operator(),
            PolicyOverride::default(),
            false,
        )
        .unwrap();
        assert_eq!(visible(&v, &f), 4);
        assert!(matches!(v.get(f.t, f.c, 1), Err(Error::Expired { .. })));
        // The tenant default (forever) changing does not either.
        v.set_tenant_policy(f.t, Actor::operator(), TenantPolicy::default())
            .unwrap();
        assert_eq!(visible(&v, &f), 4);
        // And what was not expired stays readable forever now.
        clock.set(T0 + 400 * DAY);
        assert_eq!(visible(&v, &f), 4);
    }
}

#[test]
fn a_tenant_default_applies_to_conversations_without_an_override() {
    let (_d, v, _p, clock) = common::new_vault_with_clock(T0);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let other = v
        .create_conversation(
            f.t,
            "other",
            chatvault::ConversationKind::Group,
            None,
            &[(f.alice, 0)],
        )
        .unwrap();
    v.append(f.t, f.c, NewMessage::text(f.alice, T0, "a"))
        .unwrap()
        .stored()
        .unwrap();
    v.append(f.t, other, NewMessage::text(f.alice, T0, "b"))
        .unwrap()
        .stored()
        .unwrap();
    conv_retention(&v, &f, Retention::Forever);
    v.set_tenant_policy(
        f.t,
        Actor::operator(),
        TenantPolicy {
            default: Policy {
                retention: period(DAY),
                ..Default::default()
            },
            members_may_change: false,
        },
    )
    .unwrap();
    clock.set(T0 + 2 * DAY);
    assert_eq!(
        v.get(f.t, f.c, 1).unwrap().body,
        "a",
        "the override keeps it forever"
    );
    assert!(matches!(v.get(f.t, other, 1), Err(Error::Expired { .. })));
    let (o, eff) = v.conversation_policy(f.t, other).unwrap();
    assert_eq!(o, PolicyOverride::default());
    assert_eq!(eff.retention, period(DAY));
}

#[test]
fn retention_periods_under_a_minute_are_refused() {
    let (_d, v, _p, _c) = common::new_vault_with_clock(T0);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    assert!(Retention::period_ms(59_999).is_err());
    let r = v.set_conversation_policy(
        f.t,
        f.c,
        Actor::operator(),
        PolicyOverride {
            retention: Some(Retention::Period { ms: 1_000 }),
            history: None,
        },
        false,
    );
    assert!(matches!(r, Err(Error::InvalidInput(_))));
}

#[test]
fn history_off_stores_nothing_new_and_deletes_nothing_unless_asked() {
    let (_d, v, _p, clock) = common::new_vault_with_clock(T0);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    v.append(f.t, f.c, NewMessage::text(f.alice, T0, "kept"))
        .unwrap()
        .stored()
        .unwrap();
    let off = PolicyOverride {
        history: Some(History::Off),
        retention: None,
    };
    v.set_conversation_policy(f.t, f.c, Actor::operator(), off, false)
        .unwrap();
    let r = v
        .append(f.t, f.c, NewMessage::text(f.alice, T0 + 1, "live only"))
        .unwrap();
    assert_eq!(
        r,
        chatvault::Appended::NotStored(chatvault::NotStoredReason::HistoryOff)
    );
    assert_eq!(v.message_count(f.t, f.c).unwrap(), 1);
    assert_eq!(v.get(f.t, f.c, 1).unwrap().body, "kept");
    // Back on: appends are stored again, and no id was spent on the unstored message.
    let on = PolicyOverride {
        history: Some(History::On),
        retention: None,
    };
    v.set_conversation_policy(f.t, f.c, Actor::operator(), on, false)
        .unwrap();
    assert_eq!(
        v.append(f.t, f.c, NewMessage::text(f.alice, T0 + 2, "again"))
            .unwrap()
            .stored(),
        Some(2)
    );
    // Off again, asking for deletion: everything stored so far goes at once.
    clock.set(T0 + 10);
    v.set_conversation_policy(f.t, f.c, Actor::operator(), off, true)
        .unwrap();
    assert_eq!(v.message_count(f.t, f.c).unwrap(), 0);
    assert!(matches!(v.get(f.t, f.c, 1), Err(Error::Expired { .. })));
    let r = v.purge(Default::default()).unwrap();
    assert!(r.complete);
    assert_eq!(r.conversations[0].expired_messages, 2);
}

#[test]
fn only_admins_or_members_when_allowed_may_change_policies_and_every_change_is_recorded() {
    let (_d, v, _p, clock) = common::new_vault_with_clock(T0);
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let outsider = v.create_user(f.t, "eve", Default::default()).unwrap();
    let o = PolicyOverride {
        retention: Some(period(7 * DAY)),
        history: None,
    };
    let member = Actor::member(f.alice);
    assert!(matches!(
        v.set_conversation_policy(f.t, f.c, member, o, false),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        v.set_tenant_policy(f.t, member, TenantPolicy::default()),
        Err(Error::PermissionDenied(_))
    ));
    clock.set(T0 + 5);
    v.set_tenant_policy(
        f.t,
        Actor::admin(f.bob),
        TenantPolicy {
            members_may_change: true,
            ..Default::default()
        },
    )
    .unwrap();
    clock.set(T0 + 9);
    v.set_conversation_policy(f.t, f.c, member, o, false)
        .unwrap();
    assert!(matches!(
        v.set_conversation_policy(f.t, f.c, Actor::member(outsider), o, false),
        Err(Error::PermissionDenied(_))
    ));
    let log = v.policy_changes(f.t).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (
            log[0].by,
            log[0].as_admin,
            log[0].at_ms,
            log[0].conversation
        ),
        (Some(f.bob), true, T0 + 5, None)
    );
    assert_eq!(
        (
            log[1].by,
            log[1].as_admin,
            log[1].at_ms,
            log[1].conversation
        ),
        (Some(f.alice), false, T0 + 9, Some(f.c))
    );
    assert!(log[1].change.contains("retention"), "{}", log[1].change);
}
