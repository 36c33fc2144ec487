//! Every record kind written through the public API reads back exactly, also after a reopen.

mod common;

use chatvault::{
    Attachment, ConversationKind, Direction, ErasurePolicy, MessageKind, NewMessage, TenantOptions,
    Vault, VaultOptions,
};

#[test]
fn tenants_users_conversations_and_members_round_trip() {
    let (dir, v, p) = common::new_vault();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(v.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data directory is private");
    }
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let t2 = v
        .create_tenant(
            "globex",
            TenantOptions {
                erasure_policy: ErasurePolicy::AuthorErased,
                epoch_ms: 3_600_000,
            },
        )
        .unwrap();

    let check = |v: &Vault| {
        assert_eq!(v.tenant("acme").unwrap(), f.t);
        assert_eq!(v.tenant("globex").unwrap(), t2);
        let ts = v.tenants().unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].name, "acme");
        assert_eq!(ts[0].erasure_policy, ErasurePolicy::MessagesUnreadable);
        assert_eq!(ts[1].name, "globex");
        assert_eq!(ts[1].erasure_policy, ErasurePolicy::AuthorErased);
        assert_eq!(ts[1].epoch_ms, 3_600_000);

        assert_eq!(v.user_id(f.t, "alice@example.org").unwrap(), f.alice);
        let alice = v.user(f.t, f.alice).unwrap();
        assert_eq!(alice.external_id, "alice@example.org");
        assert_eq!(alice.profile.display_name, "Alice Example");

        assert_eq!(v.conversation_id(f.t, "general").unwrap(), f.c);
        let c = v.conversation(f.t, f.c).unwrap();
        assert_eq!(c.external_id, "general");
        assert_eq!(c.kind, ConversationKind::Group);
        assert_eq!(c.title.as_deref(), Some("General"));
        let convs: Vec<_> = v.conversations(f.t).unwrap().map(Result::unwrap).collect();
        assert_eq!(convs, vec![c]);

        let members = v.members(f.t, f.c).unwrap();
        assert_eq!(members.len(), 2);
        assert!(members
            .iter()
            .any(|m| m.user == f.alice && m.left_at_ms.is_none()));
        let bob = members.iter().find(|m| m.user == f.bob).unwrap();
        assert_eq!(bob.left_at_ms, Some(5_000));
        let of_alice: Vec<_> = v
            .user_conversations(f.t, f.alice)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(of_alice, vec![f.c]);
    };
    v.remove_member(f.t, f.c, f.bob, 5_000).unwrap();
    check(&v);
    drop(v);
    let v = Vault::open(dir.path().join("data"), p, VaultOptions::default()).unwrap();
    check(&v);
}

#[test]
fn lookups_of_unknown_names_are_not_found() {
    let (_d, v, _p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    assert!(matches!(
        v.tenant("nope"),
        Err(chatvault::Error::NotFound { .. })
    ));
    assert!(matches!(
        v.user_id(f.t, "nope"),
        Err(chatvault::Error::NotFound { .. })
    ));
    assert!(matches!(
        v.conversation_id(f.t, "nope"),
        Err(chatvault::Error::NotFound { .. })
    ));
    assert!(matches!(
        v.get(f.t, f.c, 1),
        Err(chatvault::Error::NotFound { .. })
    ));
    assert!(matches!(
        v.create_tenant("acme", TenantOptions::default()),
        Err(chatvault::Error::AlreadyExists { .. })
    ));
}

#[test]
fn messages_of_every_shape_round_trip_under_both_erasure_policies() {
    for policy in [
        ErasurePolicy::MessagesUnreadable,
        ErasurePolicy::AuthorErased,
    ] {
        let (dir, v, p) = common::new_vault();
        let f = common::fixture(
            &v,
            "acme",
            TenantOptions {
                erasure_policy: policy,
                ..Default::default()
            },
        );
        let day = 86_400_000i64;
        let inputs = vec![
            NewMessage::text(f.alice, 1_700_000_000_000, "hello"),
            NewMessage {
                author: f.bob,
                sent_at_ms: 1_700_000_000_500,
                body: "héllo 👋🏽 مرحبا e\u{301}".into(),
                kind: MessageKind::Text,
                reply_to: Some(1),
                also_reply_to: vec![],
                attachments: vec![Attachment {
                    name: "cat.png".into(),
                    media_type: "image/png".into(),
                    size_bytes: 12345,
                }],
            },
            NewMessage {
                kind: MessageKind::Action,
                ..NewMessage::text(f.alice, 1_700_000_000_000 + day, "waves")
            },
            NewMessage::text(f.bob, 1_700_000_000_000 + 2 * day, ""),
        ];
        let mut ids = Vec::new();
        for m in &inputs {
            ids.push(v.append(f.t, f.c, m.clone()).unwrap().stored().unwrap());
        }
        assert_eq!(ids, vec![1, 2, 3, 4]);

        let check = |v: &Vault| {
            for (id, m) in ids.iter().zip(&inputs) {
                let got = v.get(f.t, f.c, *id).unwrap();
                assert_eq!(got.id, *id);
                assert_eq!(got.author, m.author);
                assert_eq!(got.sent_at_ms, m.sent_at_ms);
                assert_eq!(got.body, m.body);
                assert_eq!(got.kind, m.kind);
                assert_eq!(got.reply_to, m.reply_to);
                assert_eq!(got.attachments, m.attachments);
                assert_eq!(got.revision, 0);
            }
            let fwd: Vec<_> = v
                .messages(f.t, f.c, None, Direction::Forward)
                .unwrap()
                .map(|m| m.unwrap().id)
                .collect();
            assert_eq!(fwd, vec![1, 2, 3, 4]);
            let back: Vec<_> = v
                .messages(f.t, f.c, Some(3), Direction::Backward)
                .unwrap()
                .map(|m| m.unwrap().id)
                .collect();
            assert_eq!(back, vec![3, 2, 1]);
            let page = v.page(f.t, f.c, None, Direction::Forward, 3).unwrap();
            assert_eq!(
                page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            assert_eq!(page.next, Some(4));
            let page = v.page(f.t, f.c, Some(4), Direction::Forward, 3).unwrap();
            assert_eq!(page.messages.len(), 1);
            assert_eq!(page.next, None);
            let by_time: Vec<_> = v
                .messages_between(f.t, f.c, 1_700_000_000_000, 1_700_000_000_000 + day + 1)
                .unwrap()
                .map(|m| m.unwrap().id)
                .collect();
            assert_eq!(by_time, vec![1, 2, 3]);
        };
        check(&v);
        drop(v);
        let v = Vault::open(dir.path().join("data"), p, VaultOptions::default()).unwrap();
        check(&v);
    }
}

#[test]
fn edits_keep_revisions_and_deletion_removes_body_and_revisions() {
    let (_d, v, _p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let id = v
        .append(f.t, f.c, NewMessage::text(f.alice, 1_000_000, "first"))
        .unwrap()
        .stored()
        .unwrap();
    assert_eq!(v.edit(f.t, f.c, id, "second", 2_000_000).unwrap(), 1);
    assert_eq!(v.edit(f.t, f.c, id, "third", 3_000_000).unwrap(), 2);
    let m = v.get(f.t, f.c, id).unwrap();
    assert_eq!(
        (m.body.as_str(), m.revision, m.edited_at_ms),
        ("third", 2, Some(3_000_000))
    );
    assert_eq!(
        m.sent_at_ms, 1_000_000,
        "an edit keeps the message's time and epoch"
    );
    let revs = v.revisions(f.t, f.c, id).unwrap();
    assert_eq!(
        revs.iter()
            .map(|r| (r.revision, r.body.as_str(), r.written_at_ms))
            .collect::<Vec<_>>(),
        vec![(0, "first", 1_000_000), (1, "second", 2_000_000)]
    );

    v.delete(f.t, f.c, id, 4_000_000).unwrap();
    let m = v.get(f.t, f.c, id).unwrap();
    assert_eq!(m.deleted_at_ms, Some(4_000_000));
    assert_eq!(m.body, "");
    assert!(v.revisions(f.t, f.c, id).unwrap().is_empty());
    assert!(v.edit(f.t, f.c, id, "again", 5_000_000).is_err());
    // The next id is not reused after deleting the newest message.
    assert_eq!(
        v.append(f.t, f.c, NewMessage::text(f.alice, 5_000_000, "next"))
            .unwrap()
            .stored()
            .unwrap(),
        id + 1
    );
}

#[test]
fn oversized_bodies_and_times_before_1970_are_refused() {
    let (_d, v, _p) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let big = "x".repeat(64 * 1024 + 1);
    match v.append(f.t, f.c, NewMessage::text(f.alice, 0, big)) {
        Err(chatvault::Error::MessageTooLarge { size, limit }) => {
            assert_eq!((size, limit), (64 * 1024 + 1, 64 * 1024))
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert!(v
        .append(
            f.t,
            f.c,
            NewMessage::text(f.alice, 0, "x".repeat(64 * 1024))
        )
        .is_ok());
    assert!(matches!(
        v.append(f.t, f.c, NewMessage::text(f.alice, -1, "x")),
        Err(chatvault::Error::InvalidInput(_))
    ));
    // Unknown author.
    let other = v.create_tenant("other", TenantOptions::default()).unwrap();
    let stranger = v.create_user(other, "s", Default::default()).unwrap();
    assert!(v
        .append(f.t, f.c, NewMessage::text(stranger, 0, "x"))
        .is_err());
}
