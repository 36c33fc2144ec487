//! Model-based test: random sequences of operations (append, edit, delete, tenant and
//! conversation policies, legal holds placed and released, the clock advanced, shreds of every
//! scope with `shred`, `shred_or_queue` and `erase_user`, purge, exports of a conversation, a
//! user and a tenant, restarts, and reads: `get`, pages both ways, `messages_between`,
//! `subject_messages`, `revisions`) run against a vault and against the plain in-memory model
//! of `tests/model/mod.rs`, which says what every call must return, including which error
//! variant; after every operation a sweep reads everything back and compares (see the module
//! docs of `tests/model/mod.rs` for what it covers and leaves out).
//!
//! Default: 48 cases of up to 40 operations (well under a minute in the debug profile).
//! Longer runs: `CHATVAULT_MODEL_CASES=N` (cases) and `CHATVAULT_MODEL_OPS=N` (longest
//! sequence, at most 64), e.g.
//! `CHATVAULT_MODEL_CASES=2000 cargo test --test model_based -- --nocapture`.
//! The same driver runs under libFuzzer: `./dev fuzz model` (`fuzz/fuzz_targets/model.rs`).
//!
//! Every disagreement the model found is a deterministic test below, named after the
//! behaviour, that replays the shortest sequence showing it.

mod model;

use model::{ExportSel, Harness, HoldSel, Op, ShredSel};
use proptest::prelude::*;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hold_sel() -> impl Strategy<Value = HoldSel> {
    prop_oneof![
        Just(HoldSel::Tenant),
        small().prop_map(HoldSel::Conversation),
        small().prop_map(HoldSel::Custodian),
    ]
}

fn shred_sel() -> impl Strategy<Value = ShredSel> {
    prop_oneof![
        1 => Just(ShredSel::Tenant),
        2 => small().prop_map(ShredSel::Conversation),
        3 => small().prop_map(ShredSel::User),
        4 => (small(), any::<u8>()).prop_map(|(c, at)| ShredSel::Window { c, at }),
    ]
}

fn export_sel() -> impl Strategy<Value = ExportSel> {
    prop_oneof![
        any::<u8>().prop_map(ExportSel::Conversation),
        any::<u8>().prop_map(ExportSel::User),
        Just(ExportSel::Tenant),
    ]
}

/// A conversation or user index, weighted towards the first, so that messages pile up.
fn small() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8)]
}

/// Ops weighted towards appends, the clock and policies, so that sequences build up messages
/// and then expire, hold and shred them.
fn op() -> impl Strategy<Value = Op> {
    let b = any::<u8>;
    prop_oneof![
        16 => (b(), small(), small(), b()).prop_map(|(t, c, u, at)| Op::Append { t, c, u, at }),
        3 => (b(), small(), b()).prop_map(|(t, c, m)| Op::Edit { t, c, m }),
        3 => (b(), small(), b()).prop_map(|(t, c, m)| Op::Delete { t, c, m }),
        2 => (b(), any::<bool>(), b(), any::<bool>()).prop_map(|(t, h, r, mm)| Op::TenantPolicy {
            t,
            history_off: h,
            retention: r,
            members_may_change: mm,
        }),
        4 => (b(), small(), b(), b(), any::<bool>(), b()).prop_map(|(t, c, h, r, d, a)| {
            Op::ConvPolicy {
                t,
                c,
                history: h,
                retention: r,
                delete_existing: d,
                actor: a,
            }
        }),
        3 => (b(), hold_sel()).prop_map(|(t, scope)| Op::PlaceHold { t, scope }),
        3 => (b(), b()).prop_map(|(t, h)| Op::ReleaseHold { t, h }),
        6 => b().prop_map(|step| Op::Advance { step }),
        3 => (b(), shred_sel(), any::<bool>()).prop_map(|(t, scope, queue)| Op::Shred {
            t,
            scope,
            queue
        }),
        1 => (b(), b(), b()).prop_map(|(t, u, by)| Op::Erase { t, u, by }),
        1 => Just(Op::Purge),
        2 => (b(), export_sel()).prop_map(|(t, what)| Op::Export { t, what }),
        1 => Just(Op::Restart),
        2 => (b(), small(), b()).prop_map(|(t, c, m)| Op::Get { t, c, m }),
        1 => (b(), b(), b()).prop_map(|(t, c, m)| Op::Foreign { t, c, m }),
        2 => (b(), small(), b(), any::<bool>(), b()).prop_map(|(t, c, from, backward, limit)| {
            Op::Page {
                t,
                c,
                from,
                backward,
                limit,
            }
        }),
        1 => (b(), small(), b(), b()).prop_map(|(t, c, start, len)| Op::Between { t, c, start, len }),
        1 => (b(), b(), small()).prop_map(|(t, u, c)| Op::Subject { t, u, c }),
        2 => (b(), small(), b()).prop_map(|(t, c, m)| Op::Revisions { t, c, m }),
    ]
}

/// The proptest. `CHATVAULT_MODEL_STATS=1` also prints how often each call gave each
/// outcome (to see that the sequences reach the interesting states).
#[test]
fn every_read_agrees_with_the_model() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: env_or("CHATVAULT_MODEL_CASES", 48),
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    let max_ops = env_or("CHATVAULT_MODEL_OPS", 40).clamp(1, model::MAX_OPS as u32) as usize;
    let r = runner.run(&proptest::collection::vec(op(), 1..=max_ops), |ops| {
        Harness::run(&ops).map_err(TestCaseError::fail)
    });
    if std::env::var_os("CHATVAULT_MODEL_STATS").is_some() {
        eprintln!("{}", model::coverage());
    }
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn byte_encoding_decodes_back_to_the_same_ops() {
    let ops = seed_sequences().concat();
    assert_eq!(
        model::ops_from_bytes(&model::ops_to_bytes(&ops)).len(),
        ops.len().min(model::MAX_OPS)
    );
    for seq in seed_sequences() {
        assert_eq!(model::ops_from_bytes(&model::ops_to_bytes(&seq)), seq);
    }
    // Arbitrary bytes decode (deterministically, bounded) and never panic.
    let junk: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let a = model::ops_from_bytes(&junk);
    assert_eq!(a, model::ops_from_bytes(&junk));
    assert!(a.len() <= model::MAX_OPS);
    assert!(model::ops_from_bytes(&[]).is_empty());
}

#[test]
fn the_fuzz_seed_sequences_agree_with_the_model() {
    for seq in seed_sequences() {
        Harness::run(&seq).unwrap();
    }
}

/// Writes `fuzz/seeds/model/*.bin` from [`seed_sequences`] (run by hand when they change:
/// `cargo test --test model_based -- --ignored write_fuzz_seeds`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/model");
    std::fs::create_dir_all(&dir).unwrap();
    for (n, seq) in seed_sequences().iter().enumerate() {
        std::fs::write(
            dir.join(format!("seed-{n:02}.bin")),
            model::ops_to_bytes(seq),
        )
        .unwrap();
    }
}

/// Small meaningful sequences: the fuzzer's seeds, and a smoke test of the driver.
fn seed_sequences() -> Vec<Vec<Op>> {
    use Op::*;
    let app = |t, c, u, at| Append { t, c, u, at };
    vec![
        // Messages, an edit, a delete, reads and a restart.
        vec![
            app(0, 0, 0, 5),
            app(0, 0, 1, 6),
            Edit { t: 0, c: 0, m: 0 },
            Delete { t: 0, c: 0, m: 1 },
            Page {
                t: 0,
                c: 0,
                from: 0,
                backward: true,
                limit: 1,
            },
            Revisions { t: 0, c: 0, m: 1 },
            Restart,
            Get { t: 0, c: 0, m: 1 },
        ],
        // Retention: a period, the clock past it, a purge, a longer period.
        vec![
            app(0, 1, 0, 3),
            app(0, 1, 1, 5),
            ConvPolicy {
                t: 0,
                c: 1,
                history: 0,
                retention: 3,
                delete_existing: false,
                actor: 0,
            },
            Advance { step: 5 },
            Purge,
            ConvPolicy {
                t: 0,
                c: 1,
                history: 0,
                retention: 1,
                delete_existing: false,
                actor: 0,
            },
            Get { t: 0, c: 1, m: 1 },
        ],
        // A custodian hold keeps one author's messages past their retention; release.
        vec![
            app(1, 0, 0, 5),
            app(1, 0, 1, 5),
            TenantPolicy {
                t: 1,
                history_off: false,
                retention: 1,
                members_may_change: false,
            },
            PlaceHold {
                t: 1,
                scope: HoldSel::Custodian(0),
            },
            Advance { step: 6 },
            Subject { t: 1, u: 0, c: 0 },
            ReleaseHold { t: 1, h: 0 },
            Purge,
        ],
        // Shreds of a window and a user under both erasure policies; an export.
        vec![
            app(0, 2, 2, 5),
            app(0, 2, 1, 0),
            app(1, 2, 2, 5),
            Shred {
                t: 0,
                scope: ShredSel::Window { c: 2, at: 5 },
                queue: false,
            },
            Shred {
                t: 1,
                scope: ShredSel::User(2),
                queue: false,
            },
            Export {
                t: 1,
                what: ExportSel::Tenant,
            },
            Between {
                t: 0,
                c: 2,
                start: 0,
                len: 4,
            },
            Purge,
            Get { t: 0, c: 2, m: 1 },
        ],
        // Erasure queued under a hold, carried out at the release.
        vec![
            app(0, 1, 2, 5),
            PlaceHold {
                t: 0,
                scope: HoldSel::Tenant,
            },
            Shred {
                t: 0,
                scope: ShredSel::User(2),
                queue: false,
            },
            Erase { t: 0, u: 2, by: 3 },
            Shred {
                t: 0,
                scope: ShredSel::Conversation(1),
                queue: true,
            },
            ReleaseHold { t: 0, h: 0 },
            Export {
                t: 0,
                what: ExportSel::User(2),
            },
            Restart,
        ],
        // History off, delete existing, member policy changes, a whole tenant shredded.
        vec![
            app(1, 1, 1, 5),
            TenantPolicy {
                t: 1,
                history_off: false,
                retention: 0,
                members_may_change: true,
            },
            ConvPolicy {
                t: 1,
                c: 1,
                history: 2,
                retention: 0,
                delete_existing: true,
                actor: 2,
            },
            app(1, 1, 1, 5),
            Shred {
                t: 1,
                scope: ShredSel::Tenant,
                queue: false,
            },
            Foreign { t: 0, c: 1, m: 1 },
            Export {
                t: 1,
                what: ExportSel::Conversation(1),
            },
        ],
    ]
}

// ------------------------------------------------------------------ findings, as regression tests

mod regressions {
    use super::model::{Harness, T0};
    use chatvault::{Actor, Direction, Error, NewMessage, ShredScope};

    fn shredded<T: std::fmt::Debug>(r: chatvault::Result<T>) -> bool {
        matches!(r, Err(Error::Shredded { .. }))
    }

    /// Found by the model: `members` of a shredded conversation (or of any conversation of a
    /// shredded tenant) failed with `NotFound` (the conversation key is gone) instead of
    /// `Shredded`, and so did `subject_messages`, whose docs say `Shredded`.
    #[test]
    fn members_of_a_shredded_conversation_or_tenant_are_shredded() {
        let h = Harness::new().unwrap();
        let v = h.vault();
        let (t, c, u) = (h.tenant(0), h.conv(0, 1), h.user(0, 0));
        v.shred(t, Actor::operator(), ShredScope::Conversation(c))
            .unwrap();
        assert!(shredded(v.members(t, c)));
        assert!(shredded(
            v.subject_messages(t, Actor::member(u), u, c).map(|_| ())
        ));
        assert_eq!(
            v.members(t, h.conv(0, 0)).unwrap().len(),
            2,
            "other conversations read"
        );
        let t1 = h.tenant(1);
        v.shred(t1, Actor::operator(), ShredScope::Tenant).unwrap();
        assert!(shredded(v.members(t1, h.conv(1, 0))));
    }

    /// Found by the model: `message_count` of a shredded conversation or tenant answered
    /// `Ok(0)` where every listing of it fails with `Shredded`.
    #[test]
    fn message_count_of_a_shredded_conversation_or_tenant_is_shredded() {
        let h = Harness::new().unwrap();
        let v = h.vault();
        let (t, c) = (h.tenant(0), h.conv(0, 2));
        v.append(t, c, NewMessage::text(h.user(0, 2), T0, "hi"))
            .unwrap()
            .stored()
            .unwrap();
        assert_eq!(v.message_count(t, c).unwrap(), 1);
        v.shred(t, Actor::operator(), ShredScope::Conversation(c))
            .unwrap();
        assert!(shredded(v.message_count(t, c)));
        let t1 = h.tenant(1);
        v.shred(t1, Actor::operator(), ShredScope::Tenant).unwrap();
        assert!(shredded(v.message_count(t1, h.conv(1, 0))));
    }

    /// Found by the model: `page(.., limit = 0)` returned every message instead of at most 0
    /// (and `next` the first one).
    #[test]
    fn a_page_of_limit_zero_holds_no_message_and_points_at_the_first() {
        let h = Harness::new().unwrap();
        let v = h.vault();
        let (t, c) = (h.tenant(0), h.conv(0, 0));
        for n in 0..3 {
            v.append(t, c, NewMessage::text(h.user(0, 0), T0 + n, "hi"))
                .unwrap()
                .stored()
                .unwrap();
        }
        let p = v.page(t, c, None, Direction::Forward, 0).unwrap();
        assert_eq!((p.messages.len(), p.next), (0, Some(1)));
        let p = v.page(t, c, Some(2), Direction::Backward, 0).unwrap();
        assert_eq!((p.messages.len(), p.next), (0, Some(2)));
        let p = v.page(t, c, Some(4), Direction::Forward, 0).unwrap();
        assert_eq!((p.messages.len(), p.next), (0, None));
    }

    /// Found by the model: under `AuthorErased` an erased author's messages stay readable,
    /// but editing or deleting one failed with `NotFound` (naming the author, while `get`
    /// returns the message). Writing as an erased user is `Shredded`, as for appends.
    #[test]
    fn editing_or_deleting_an_erased_authors_message_is_shredded() {
        let h = Harness::new().unwrap();
        let v = h.vault();
        let (t, c, u) = (h.tenant(1), h.conv(1, 0), h.user(1, 0));
        let id = v
            .append(t, c, NewMessage::text(u, T0, "hi"))
            .unwrap()
            .stored()
            .unwrap();
        v.erase_user(t, Actor::operator(), u).unwrap();
        assert_eq!(
            v.get(t, c, id).unwrap().body,
            "hi",
            "AuthorErased: still readable"
        );
        assert!(shredded(v.edit(t, c, id, "changed", T0 + 1)));
        assert!(shredded(v.delete(t, c, id, T0 + 1)));
        assert!(shredded(v.append(t, c, NewMessage::text(u, T0, "again"))));
        assert_eq!(v.get(t, c, id).unwrap().body, "hi", "nothing written");
    }
}

mod regressions_get {
    use super::model::Harness;
    use chatvault::{Actor, Error, ShredScope};

    /// Found by the model: after a conversation's shred, `get` of id 0 answered `NotFound`
    /// while every other id (handed out or not) answers `Shredded`.
    #[test]
    fn every_id_of_a_shredded_conversation_is_shredded_id_zero_included() {
        let h = Harness::new().unwrap();
        let v = h.vault();
        let (t, c) = (h.tenant(0), h.conv(0, 0));
        assert!(matches!(v.get(t, c, 0), Err(Error::NotFound { .. })));
        v.shred(t, Actor::operator(), ShredScope::Conversation(c))
            .unwrap();
        for id in [0, 1, 99] {
            assert!(
                matches!(v.get(t, c, id), Err(Error::Shredded { .. })),
                "id {id}"
            );
        }
    }
}

mod regressions_open {
    use super::model::{Harness, T0};
    use chatvault::{
        Actor, Error, NewMessage, Policy, PolicyOverride, Retention, ShredScope, TenantPolicy,
    };

    /// Found by the model: a vault in which a tenant with a retention policy (tenant default
    /// or conversation override, sealed under the tenant KEK) had been shredded could not be
    /// opened again: loading the policies at open asked for the destroyed KEK (`NotFound`).
    #[test]
    fn a_vault_with_a_shredded_tenant_that_had_policies_opens_again() {
        let mut h = Harness::new().unwrap();
        let (t, t1, op) = (h.tenant(0), h.tenant(1), Actor::operator());
        let day = Retention::Period { ms: 86_400_000 };
        {
            let v = h.vault();
            let default = Policy {
                retention: day,
                ..Default::default()
            };
            v.set_tenant_policy(
                t,
                op,
                TenantPolicy {
                    default,
                    members_may_change: true,
                },
            )
            .unwrap();
            let ov = PolicyOverride {
                retention: Some(Retention::Forever),
                history: None,
            };
            v.set_conversation_policy(t, h.conv(0, 1), op, ov, false)
                .unwrap();
            v.set_tenant_policy(
                t1,
                op,
                TenantPolicy {
                    default,
                    members_may_change: false,
                },
            )
            .unwrap();
            v.append(t1, h.conv(1, 0), NewMessage::text(h.user(1, 0), T0, "kept"))
                .unwrap()
                .stored()
                .unwrap();
            v.shred(t, op, ShredScope::Tenant).unwrap();
        }
        h.apply(&super::model::Op::Restart).unwrap();
        let v = h.vault();
        assert!(matches!(v.tenant_policy(t), Err(Error::Shredded { .. })));
        assert_eq!(v.tenant_policy(t1).unwrap().default.retention, day);
        assert_eq!(v.get(t1, h.conv(1, 0), 1).unwrap().body, "kept");
        assert_eq!(v.tenants().unwrap().len(), 1);
    }

    /// Found by the model: `messages` and `messages_between` of another tenant's conversation
    /// answered an empty listing where `get` answers `NotFound`.
    #[test]
    fn listing_another_tenants_conversation_is_not_found() {
        let h = Harness::new().unwrap();
        let v = h.vault();
        let (t0, other) = (h.tenant(0), h.conv(1, 0));
        let e = v
            .messages(t0, other, None, chatvault::Direction::Forward)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, chatvault::Error::NotFound { .. }), "{e:?}");
        let e = v
            .messages_between(t0, other, 0, i64::MAX)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(e, chatvault::Error::NotFound { .. }), "{e:?}");
        assert!(v
            .messages(t0, h.conv(0, 0), None, chatvault::Direction::Forward)
            .is_ok());
    }
}
