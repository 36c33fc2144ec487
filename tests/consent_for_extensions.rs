//! Consent for extensions through the library: the registry (scopes asked, organisation-wide
//! consent for organisation-level scopes only), user grants (personal scopes only, default 60
//! days on the vault's clock), and the extension context: reads succeed only within a live
//! grant's scopes and fail at once with `ConsentRequired` when the grant is missing, expired or
//! revoked; a restricted user's data never goes through it; every access and grant is audited;
//! consents are in the user's export and shredded with the user; the registry survives a
//! re-versioning purge of its tenant.

mod common;

use std::collections::BTreeSet;

use chatvault::{
    AccessTarget, Actor, AuditEvent, AuditOutcome, ConsentMissing, ConsentScope, Error,
    ExportOptions, ExtensionSpec, GrantOptions, NewMessage, PurgeOptions, ShredScope,
    TenantOptions, Vault, DEFAULT_CONSENT_MS,
};
use common::{fixture, new_vault_with_clock, Fixture, DAY};

const T0: i64 = 1_700_000_000_000;
const EXT: &str = "com.example.summary";

fn spec(bot: Option<chatvault::UserId>) -> ExtensionSpec {
    ExtensionSpec {
        id: EXT.into(),
        name: "Summary bot".into(),
        scopes: ConsentScope::ALL.into_iter().collect(),
        bot_user: bot,
    }
}

/// alice writes 1, 3; bob writes 2, 4; the extension is registered with organisation-wide
/// consent for reading conversations and posting, and added to the conversation.
fn setup(v: &Vault) -> (Fixture, chatvault::UserId) {
    let f = fixture(v, "acme", TenantOptions::default());
    let bot = v
        .create_user(f.t, "summary-bot", chatvault::UserProfile::named("Bot"))
        .unwrap();
    v.add_member(f.t, f.c, bot, 0).unwrap();
    for (i, who) in [f.alice, f.bob, f.alice, f.bob].into_iter().enumerate() {
        let _ = v
            .append(
                f.t,
                f.c,
                NewMessage::text(who, T0 + i as i64, format!("line {i} ✓")),
            )
            .unwrap();
    }
    v.register_extension(
        f.t,
        Actor::operator(),
        &spec(Some(bot)),
        &[ConsentScope::ReadConversations, ConsentScope::PostMessages],
        &GrantOptions::default(),
    )
    .unwrap();
    v.set_extension_conversation(f.t, Actor::operator(), EXT, f.c, true)
        .unwrap();
    (f, bot)
}

/// alice consents to the extension reading her messages (default expiry).
fn grant_alice(v: &Vault, f: &Fixture) {
    v.grant_consent(
        f.t,
        Actor::member(f.alice),
        f.alice,
        EXT,
        &[ConsentScope::ReadMessages],
        &GrantOptions::default(),
    )
    .unwrap();
}

fn consent_required(r: Result<impl std::fmt::Debug, Error>) -> (ConsentScope, ConsentMissing) {
    match r {
        Err(Error::ConsentRequired { scope, reason, .. }) => (scope, reason),
        other => panic!("expected ConsentRequired, got {other:?}"),
    }
}

#[test]
fn reads_succeed_only_within_a_live_grant_and_fail_at_once_when_it_expires_or_is_revoked() {
    let (_d, v, _p, clock) = new_vault_with_clock(T0);
    let (f, _) = setup(&v);
    let x = v.extension(f.t, EXT).unwrap();

    // No grant yet: alice's message and profile are refused, and a page withholds everything
    // but the bot-free conversation record.
    let (s, why) = consent_required(x.message(f.c, 1));
    assert_eq!(
        (s, why),
        (ConsentScope::ReadMessages, ConsentMissing::NotGranted)
    );
    consent_required(x.profile(f.alice));
    let page = x.messages(f.c, None, 10).unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.withheld, 4);

    // Alice grants read-messages only, with the default validity (60 days).
    let g = v
        .grant_consent(
            f.t,
            Actor::member(f.alice),
            f.alice,
            EXT,
            &[ConsentScope::ReadMessages],
            &GrantOptions::default(),
        )
        .unwrap();
    assert_eq!(g.expires_at_ms, T0 + DEFAULT_CONSENT_MS as i64);
    assert_eq!(DEFAULT_CONSENT_MS, 60 * DAY as u64);
    assert_eq!(x.message(f.c, 1).unwrap().body, "line 0 ✓");
    let page = x.messages(f.c, None, 10).unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(page.withheld, 2);
    // Bob's message stays refused; alice's profile needs a scope she did not grant.
    consent_required(x.message(f.c, 2));
    let (s, why) = consent_required(x.profile(f.alice));
    assert_eq!(
        (s, why),
        (ConsentScope::ReadProfile, ConsentMissing::ScopeNotGranted)
    );
    // Paging: a limit of one gives the next id to continue from.
    let p1 = x.messages(f.c, None, 1).unwrap();
    assert_eq!(p1.messages.len(), 1);
    let p2 = x.messages(f.c, p1.next, 1).unwrap();
    assert_eq!(p2.messages[0].id, 3);

    // One millisecond before expiry it reads; at expiry it fails at once.
    clock.set(g.expires_at_ms - 1);
    assert!(x.message(f.c, 1).is_ok());
    clock.set(g.expires_at_ms);
    let (_, why) = consent_required(x.message(f.c, 1));
    assert_eq!(
        why,
        ConsentMissing::Expired {
            at_ms: g.expires_at_ms
        }
    );
    assert!(x.messages(f.c, None, 10).unwrap().messages.is_empty());

    // Granted again (now with the profile too), then revoked: refused at once.
    v.grant_consent(
        f.t,
        Actor::operator(),
        f.alice,
        EXT,
        &[ConsentScope::ReadMessages, ConsentScope::ReadProfile],
        &GrantOptions {
            valid_for_ms: DAY as u64,
        },
    )
    .unwrap();
    assert_eq!(
        x.profile(f.alice).unwrap().profile.display_name,
        "Alice Example"
    );
    assert!(v
        .revoke_consent(f.t, Actor::member(f.alice), f.alice, EXT)
        .unwrap());
    let (_, why) = consent_required(x.message(f.c, 1));
    assert_eq!(why, ConsentMissing::NotGranted);
    consent_required(x.profile(f.alice));
    assert!(!v
        .revoke_consent(f.t, Actor::member(f.alice), f.alice, EXT)
        .unwrap());
}

#[test]
fn grants_are_checked_against_scopes_and_who_may_give_them() {
    let (_d, v, _p, _clock) = new_vault_with_clock(T0);
    let (f, bot) = setup(&v);
    // An organisation-level scope is not a user's to grant.
    assert!(matches!(
        v.grant_consent(
            f.t,
            Actor::member(f.alice),
            f.alice,
            EXT,
            &[ConsentScope::PostMessages],
            &GrantOptions::default()
        ),
        Err(Error::InvalidInput(_))
    ));
    // Nobody consents for someone else, not even an admin.
    assert!(matches!(
        v.grant_consent(
            f.t,
            Actor::admin(f.bob),
            f.alice,
            EXT,
            &[ConsentScope::ReadMessages],
            &GrantOptions::default()
        ),
        Err(Error::PermissionDenied(_))
    ));
    // A scope the extension does not ask for cannot be granted.
    v.register_extension(
        f.t,
        Actor::operator(),
        &ExtensionSpec {
            id: "org.example.pager".into(),
            name: "Pager".into(),
            scopes: [ConsentScope::ReadProfile].into_iter().collect(),
            bot_user: None,
        },
        &[],
        &GrantOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        v.grant_consent(
            f.t,
            Actor::member(f.alice),
            f.alice,
            "org.example.pager",
            &[ConsentScope::ReadMessages],
            &GrantOptions::default()
        ),
        Err(Error::InvalidInput(_))
    ));
    // Organisation-wide consent for a personal scope is refused at install time.
    let mut personal = spec(Some(bot));
    personal.id = "com.example.other".into();
    assert!(matches!(
        v.register_extension(
            f.t,
            Actor::operator(),
            &personal,
            &[ConsentScope::ReadMessages],
            &GrantOptions::default()
        ),
        Err(Error::PermissionDenied(_))
    ));
    // Only an admin registers; ids are unique in the tenant.
    assert!(matches!(
        v.register_extension(
            f.t,
            Actor::member(f.alice),
            &personal,
            &[],
            &GrantOptions::default()
        ),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        v.register_extension(
            f.t,
            Actor::operator(),
            &spec(None),
            &[],
            &GrantOptions::default()
        ),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        v.extension(f.t, "no.such.extension"),
        Err(Error::NotFound { .. })
    ));
    // The pager has no organisation-wide grant: listing conversations needs it.
    let pager = v.extension(f.t, "org.example.pager").unwrap();
    assert!(matches!(
        pager.conversations(),
        Err(Error::ConsentRequired { user: None, .. })
    ));
}

#[test]
fn organisation_scopes_need_the_install_grant_and_the_conversation() {
    let (_d, v, _p, clock) = new_vault_with_clock(T0);
    let (f, bot) = setup(&v);
    let x = v.extension(f.t, EXT).unwrap();
    let convs = x.conversations().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(
        x.conversation(f.c).unwrap().title.as_deref(),
        Some("General")
    );
    let id = x
        .post(f.c, T0 + 10, "summary: 4 lines")
        .unwrap()
        .stored()
        .unwrap();
    assert_eq!(v.get(f.t, f.c, id).unwrap().author, bot);

    // Not added to another conversation: refused.
    let other = v
        .create_conversation(
            f.t,
            "random",
            chatvault::ConversationKind::Group,
            None,
            &[(f.alice, 0)],
        )
        .unwrap();
    assert!(matches!(
        x.conversation(other),
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        x.post(other, T0, "hi"),
        Err(Error::PermissionDenied(_))
    ));
    // Detached: refused at once.
    v.set_extension_conversation(f.t, Actor::operator(), EXT, f.c, false)
        .unwrap();
    assert!(x.conversations().unwrap().is_empty());
    assert!(matches!(x.message(f.c, 1), Err(Error::PermissionDenied(_))));
    v.set_extension_conversation(f.t, Actor::operator(), EXT, f.c, true)
        .unwrap();

    // The organisation-wide grant expires like any other (default 60 days).
    clock.set(T0 + DEFAULT_CONSENT_MS as i64);
    assert!(matches!(
        x.conversations(),
        Err(Error::ConsentRequired {
            reason: ConsentMissing::Expired { .. },
            ..
        })
    ));
    clock.set(T0);
    assert!(v.revoke_org_consent(f.t, Actor::operator(), EXT).unwrap());
    assert!(matches!(
        x.post(f.c, T0, "x"),
        Err(Error::ConsentRequired {
            reason: ConsentMissing::NotGranted,
            ..
        })
    ));

    // Removing the extension removes every grant and refuses its context.
    grant_alice(&v, &f);
    assert_eq!(v.remove_extension(f.t, Actor::operator(), EXT).unwrap(), 1);
    assert!(matches!(x.message(f.c, 1), Err(Error::NotFound { .. })));
    assert!(v
        .consents(f.t, Actor::member(f.alice), f.alice)
        .unwrap()
        .is_empty());
    assert!(v.extensions(f.t).unwrap().is_empty());
}

#[test]
fn a_restricted_users_data_never_goes_through_an_extension() {
    let (_d, v, _p, _clock) = new_vault_with_clock(T0);
    let (f, _) = setup(&v);
    let x = v.extension(f.t, EXT).unwrap();
    v.grant_consent(
        f.t,
        Actor::member(f.alice),
        f.alice,
        EXT,
        &[ConsentScope::ReadMessages, ConsentScope::ReadProfile],
        &GrantOptions::default(),
    )
    .unwrap();
    assert!(x.message(f.c, 1).is_ok());
    v.restrict_processing(f.t, Actor::member(f.alice), f.alice, true)
        .unwrap();
    assert!(matches!(x.message(f.c, 1), Err(Error::Restricted { .. })));
    assert!(matches!(x.profile(f.alice), Err(Error::Restricted { .. })));
    let page = x.messages(f.c, None, 10).unwrap();
    assert!(page.messages.is_empty());
    assert_eq!(page.withheld, 4);
    // The user and admins still read it.
    assert!(v.get(f.t, f.c, 1).is_ok());
    v.restrict_processing(f.t, Actor::member(f.alice), f.alice, false)
        .unwrap();
    assert!(x.message(f.c, 1).is_ok());
}

#[test]
fn every_access_grant_and_revocation_is_audited_without_personal_data() {
    let (_d, v, _p, _clock) = new_vault_with_clock(T0);
    let (f, _) = setup(&v);
    let x = v.extension(f.t, EXT).unwrap();
    let _ = x.message(f.c, 1); // refused
    grant_alice(&v, &f);
    x.message(f.c, 1).unwrap(); // allowed
    x.messages(f.c, None, 10).unwrap();
    v.revoke_consent(f.t, Actor::member(f.alice), f.alice, EXT)
        .unwrap();
    let entries = v.audit_entries().unwrap();
    let ext = x.id();
    let events: Vec<(&AuditEvent, &AuditOutcome)> =
        entries.iter().map(|e| (&e.event, &e.outcome)).collect();
    assert!(events.iter().any(|(e, _)| matches!(e,
        AuditEvent::ExtensionRegistered { extension, .. } if *extension == ext)));
    assert!(events.iter().any(|(e, _)| matches!(e,
        AuditEvent::ConsentGranted { user: None, scopes, .. }
            if scopes == &[ConsentScope::ReadConversations, ConsentScope::PostMessages])));
    let accesses: Vec<_> = events
        .iter()
        .filter(|(e, _)| matches!(e, AuditEvent::ExtensionAccess { .. }))
        .collect();
    assert_eq!(accesses.len(), 3);
    assert_eq!(
        accesses[0].1,
        &AuditOutcome::Failed {
            error: "ConsentRequired".into()
        }
    );
    assert!(matches!(accesses[1], (AuditEvent::ExtensionAccess {
        target: AccessTarget::Message(c, 1), returned: 1, .. }, AuditOutcome::Done) if *c == f.c));
    assert!(matches!(
        accesses[2].0,
        AuditEvent::ExtensionAccess {
            returned: 2,
            withheld: 2,
            ..
        }
    ));
    assert!(events.iter().any(|(e, _)| matches!(e,
        AuditEvent::ConsentGranted { user: Some(u), .. } if *u == f.alice)));
    assert!(events.iter().any(|(e, _)| matches!(e,
        AuditEvent::ConsentRevoked { user: Some(u), .. } if *u == f.alice)));
    assert!(v.verify_audit(None).unwrap().broken.is_none());
    // No name, id or body of the extension or the users is in the trail.
    for e in &entries {
        let dbg = format!("{e:?}");
        for s in [EXT, "Summary bot", "line 0", "Alice"] {
            assert!(!dbg.contains(s), "{dbg}");
        }
    }
}

#[test]
fn consents_are_in_the_users_export_and_are_shredded_with_the_user() {
    let (_d, v, _p, clock) = new_vault_with_clock(T0);
    let (f, _) = setup(&v);
    v.grant_consent(
        f.t,
        Actor::member(f.alice),
        f.alice,
        EXT,
        &[ConsentScope::ReadMessages, ConsentScope::ReadProfile],
        &GrantOptions::default(),
    )
    .unwrap();
    clock.set(T0 + 5);
    let mut out = Vec::new();
    let sum = v
        .export_user(
            f.t,
            Actor::member(f.alice),
            f.alice,
            &ExportOptions::default(),
            &mut out,
        )
        .unwrap();
    let lines: Vec<serde_json::Value> = std::str::from_utf8(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let consents: Vec<_> = lines.iter().filter(|l| l["type"] == "consent").collect();
    assert_eq!(consents.len(), 1);
    assert_eq!(sum.consents, 1);
    let c = consents[0];
    assert_eq!(c["extension_id"], EXT);
    assert_eq!(c["extension_name"], "Summary bot");
    assert_eq!(
        c["scopes"],
        serde_json::json!(["read-messages", "read-profile"])
    );
    assert_eq!(c["granted_at_ms"], T0);
    assert_eq!(c["expires_at_ms"], T0 + DEFAULT_CONSENT_MS as i64);
    assert_eq!(c["live"], true);
    assert_eq!(c["user"], f.alice.as_u64());

    // Erasure shreds the grants with the user: nothing under 0x19 t u is left.
    let x = v.extension(f.t, EXT).unwrap();
    v.erase_user(f.t, Actor::member(f.alice), f.alice).unwrap();
    assert!(matches!(x.profile(f.alice), Err(Error::Shredded { .. })));
    assert!(matches!(
        v.consents(f.t, Actor::operator(), f.alice),
        Err(Error::Shredded { .. })
    ));
    let report = v.verify().unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
}

#[test]
fn the_registry_and_grants_survive_a_shred_and_purge_of_another_conversation() {
    let (_d, v, _p, _clock) = new_vault_with_clock(T0);
    let (f, _) = setup(&v);
    grant_alice(&v, &f);
    let other = v
        .create_conversation(
            f.t,
            "doomed",
            chatvault::ConversationKind::Group,
            None,
            &[(f.bob, 0)],
        )
        .unwrap();
    let _ = v
        .append(f.t, other, NewMessage::text(f.bob, T0, "bye"))
        .unwrap();
    // The shred re-versions the tenant KEK: the registry (sealed under it) is sealed again.
    v.shred(f.t, Actor::operator(), ShredScope::Conversation(other))
        .unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    assert!(v.rekey().unwrap().is_none(), "nothing left for a pass");
    let report = v.purge(PurgeOptions::default()).unwrap();
    assert!(report.complete, "{report:?}");
    // The tenant record, the extension record and the organisation-wide grant were sealed
    // again under the new KEK version (the old one is deleted): they still open.
    let info = v.extension_info(f.t, EXT).unwrap();
    assert_eq!(info.conversations, BTreeSet::from([f.c]));
    assert!(info.org_grant.is_some());
    let x = v.extension(f.t, EXT).unwrap();
    assert_eq!(x.message(f.c, 1).unwrap().body, "line 0 ✓");
    assert_eq!(x.conversations().unwrap().len(), 1);
    assert!(v.verify().unwrap().failures.is_empty());
    // And after reopening the vault.
    let path = v.path().to_path_buf();
    drop((x, v));
    let v = Vault::open(&path, _p.clone(), common::options(&_clock)).unwrap();
    let x = v.extension(f.t, EXT).unwrap();
    assert_eq!(x.message(f.c, 3).unwrap().body, "line 2 ✓");
}

#[test]
fn grants_and_the_registry_survive_tenant_kek_and_data_key_rotation() {
    let (_d, v, _p, _clock) = new_vault_with_clock(T0);
    let (f, _) = setup(&v);
    grant_alice(&v, &f);
    // A new KEK value (the registry is sealed under it), then new user keys (alice's grant is
    // sealed under hers), every record sealed again and the old versions deleted.
    v.rotate_tenant_kek(f.t, Actor::operator()).unwrap();
    v.rotate_data_keys(f.t, None, Actor::operator()).unwrap();
    let r = v
        .reseal(f.t, None, &chatvault::ResealOptions::default(), |_| {})
        .unwrap();
    assert!(r.retired.is_some(), "{r:?}");
    assert!(v.verify().unwrap().failures.is_empty());
    let grants = v.consents(f.t, Actor::member(f.alice), f.alice).unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let x = v.extension(f.t, EXT).unwrap();
    assert_eq!(x.message(f.c, 1).unwrap().body, "line 0 ✓");
    // bob gave no consent: his message is still withheld.
    assert!(matches!(
        consent_required(x.message(f.c, 2)),
        (ConsentScope::ReadMessages, _)
    ));
}

/// An extension registered without a personal scope is refused it with a message that says so
/// (register it with the scope, then the user grants it), not one asking for the
/// organisation's consent, which personal scopes never take; a user's missing grant names the
/// user.
#[test]
fn a_personal_scope_the_extension_does_not_ask_for_is_refused_with_the_right_advice() {
    let (_d, v, _p, _clock) = new_vault_with_clock(T0);
    let f = fixture(&v, "acme", TenantOptions::default());
    let _ = v
        .append(f.t, f.c, NewMessage::text(f.alice, T0, "hello"))
        .unwrap();
    let mut s = spec(None);
    s.scopes = [ConsentScope::ReadMessages].into_iter().collect();
    v.register_extension(f.t, Actor::operator(), &s, &[], &GrantOptions::default())
        .unwrap();
    let x = v.extension(f.t, EXT).unwrap();
    let e = x.profile(f.alice).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("does not ask for read-profile, a personal scope that users grant"),
        "{m}"
    );
    assert!(!m.contains("organisation"), "{m}");
    v.set_extension_conversation(f.t, Actor::operator(), EXT, f.c, true)
        .unwrap();
    let m = x.message(f.c, 1).unwrap_err().to_string();
    assert!(
        m.contains(&format!("needs user {}'s consent", f.alice)),
        "{m}"
    );
}
