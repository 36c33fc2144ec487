//! On-disk fixtures of every released format (`tests/fixtures/v1/`): a vault written by format
//! version 1, with every record kind, must keep opening and reading the same.
//!
//! Regenerate (only when a new format version is released, into a new directory):
//! `CHATVAULT_WRITE_FIXTURES=1 cargo test --test format_fixtures_still_open -- --ignored`

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault::{
    Attachment, ConversationKind, Direction, ErasurePolicy, MessageKind, NewMessage,
    StaticKeyProvider, TenantOptions, UserProfile, Vault, VaultOptions,
};

/// The fixture's root key. Public on purpose: the fixture holds no secrets.
const FIXTURE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn provider() -> Arc<StaticKeyProvider> {
    Arc::new(StaticKeyProvider::parse_env_value(FIXTURE_KEY).unwrap())
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn write(data: &Path) {
    let v = Vault::create(data, provider(), VaultOptions::default()).unwrap();
    for (name, policy) in [
        ("fixture-default", ErasurePolicy::MessagesUnreadable),
        ("fixture-author-erased", ErasurePolicy::AuthorErased),
    ] {
        let t = v
            .create_tenant(
                name,
                TenantOptions {
                    erasure_policy: policy,
                    ..Default::default()
                },
            )
            .unwrap();
        let a = v
            .create_user(t, "ada", UserProfile::named("Ada Lovelace"))
            .unwrap();
        let b = v.create_user(t, "bob", UserProfile::named("Bob")).unwrap();
        let c = v
            .create_conversation(
                t,
                "room-1",
                ConversationKind::Group,
                Some("Room one"),
                &[(a, 1_000), (b, 2_000)],
            )
            .unwrap();
        v.remove_member(t, c, b, 9_000).unwrap();
        v.append(
            t,
            c,
            NewMessage::text(a, 1_600_000_000_000, "first message"),
        )
        .unwrap()
        .stored()
        .unwrap();
        v.append(
            t,
            c,
            NewMessage {
                author: b,
                sent_at_ms: 1_600_000_001_000,
                body: "reply with ünïcödé 🎉".into(),
                kind: MessageKind::Text,
                reply_to: Some(1),
                also_reply_to: vec![],
                attachments: vec![Attachment {
                    name: "a.pdf".into(),
                    media_type: "application/pdf".into(),
                    size_bytes: 42,
                }],
            },
        )
        .unwrap()
        .stored()
        .unwrap();
        v.append(
            t,
            c,
            NewMessage {
                kind: MessageKind::Action,
                ..NewMessage::text(a, 1_600_086_400_000, "waves")
            },
        )
        .unwrap()
        .stored()
        .unwrap();
        v.edit(t, c, 1, "first message, edited", 1_600_000_002_000)
            .unwrap();
        v.append(
            t,
            c,
            NewMessage::text(b, 1_600_086_500_000, "to be deleted"),
        )
        .unwrap()
        .stored()
        .unwrap();
        v.delete(t, c, 4, 1_600_086_600_000).unwrap();
    }
    v.compact().unwrap();
}

#[test]
#[ignore = "writes the fixture; run only to create a new format's fixture"]
fn write_v1_fixture() {
    if std::env::var_os("CHATVAULT_WRITE_FIXTURES").is_none() {
        panic!("set CHATVAULT_WRITE_FIXTURES=1 to overwrite tests/fixtures/v1");
    }
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    write(&dir);
    for f in common::files_under(&dir) {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        if n.starts_with("LOG") || n == "LOCK" {
            std::fs::remove_file(f).unwrap();
        }
    }
}

#[test]
fn v1_fixture_still_opens_and_reads_the_same() {
    let src = fixture_dir();
    assert!(
        src.join("KEYCHECK").exists(),
        "fixture missing at {}",
        src.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in common::files_under(&src) {
        std::fs::copy(&f, data.join(f.file_name().unwrap())).unwrap();
    }
    let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
    let tenants = v.tenants().unwrap();
    assert_eq!(
        tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["fixture-default", "fixture-author-erased"]
    );
    for t in tenants {
        let t = t.id;
        let a = v.user_id(t, "ada").unwrap();
        let b = v.user_id(t, "bob").unwrap();
        assert_eq!(v.user(t, a).unwrap().profile.display_name, "Ada Lovelace");
        let c = v.conversation_id(t, "room-1").unwrap();
        assert_eq!(
            v.conversation(t, c).unwrap().title.as_deref(),
            Some("Room one")
        );
        let members = v.members(t, c).unwrap();
        assert_eq!(
            members.iter().find(|m| m.user == b).unwrap().left_at_ms,
            Some(9_000)
        );
        let msgs: Vec<_> = v
            .messages(t, c, None, Direction::Forward)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(msgs.len(), 4);
        assert_eq!(
            (msgs[0].body.as_str(), msgs[0].revision),
            ("first message, edited", 1)
        );
        assert_eq!(msgs[1].body, "reply with ünïcödé 🎉");
        assert_eq!(msgs[1].reply_to, Some(1));
        assert_eq!(msgs[1].attachments[0].size_bytes, 42);
        assert_eq!(msgs[2].kind, MessageKind::Action);
        assert_eq!(msgs[3].deleted_at_ms, Some(1_600_086_600_000));
        assert_eq!(v.revisions(t, c, 1).unwrap()[0].body, "first message");
        // New writes continue the fixture's ids.
        assert_eq!(
            v.append(t, c, NewMessage::text(a, 1_700_000_000_000, "new"))
                .unwrap()
                .stored()
                .unwrap(),
            5
        );
    }
}
