//! On-disk fixtures of every released vault format (DESIGN.md §2, "Vault format version"):
//! `tests/fixtures/v1/` (format 1, no format record: upgraded in place at open) and
//! `tests/fixtures/v2/` (format 2, the current one) must keep opening and reading the same;
//! `tests/fixtures/future/` claims a format from the future and must be refused
//! (`tests/vault_format_upgrade_or_refusal.rs`).
//!
//! **Making the fixture of a new format version N** (in the commit that raises
//! `VAULT_FORMAT_VERSION` to N): copy `write_v2_fixture` to `write_vN_fixture` writing into
//! `tests/fixtures/vN`, add what the new format holds, run
//! `CHATVAULT_WRITE_FIXTURES=1 cargo test --test format_fixtures_still_open write_vN_fixture -- --ignored`,
//! add a `vN_fixture_...` test like `v2_fixture_still_opens_and_reads_the_same`, and commit the
//! directory. Never regenerate the fixture of a released format: it stands for the vaults out
//! there. The files are small (a few KiB; RocksDB info logs and `LOCK` are left out).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault::{
    Actor, Attachment, ConversationKind, Direction, ErasurePolicy, Error, MessageKind, NewMessage,
    ShredScope, StaticKeyProvider, TenantOptions, UserProfile, Vault, VaultOptions,
    VAULT_FORMAT_VERSION,
};

/// The fixture's root key. Public on purpose: the fixture holds no secrets.
const FIXTURE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn provider() -> Arc<StaticKeyProvider> {
    Arc::new(StaticKeyProvider::parse_env_value(FIXTURE_KEY).unwrap())
}

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of fixture `name` in a temporary directory (fixtures are never opened in place).
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = fixtures(name);
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
    (tmp, data)
}

/// Removes RocksDB's info logs and lock from a freshly written fixture.
fn strip(dir: &Path) {
    for f in common::files_under(dir) {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        if n.starts_with("LOG") || n == "LOCK" {
            std::fs::remove_file(f).unwrap();
        }
    }
}

/// What format 2 adds to the v1 fixture: a profile with e-mail and free-form fields (meta kind
/// 9), a restriction of processing, a shredded window (tombstone with its receipt), and the
/// audit entries of both.
fn write_v2_extras(v: &Vault) {
    let t = v.tenant("fixture-default").unwrap();
    let mut profile = UserProfile::named("Cleo");
    profile.email = Some("cleo@example.org".into());
    profile.fields.insert("team".into(), "ops".into());
    let cleo = v.create_user(t, "cleo", profile).unwrap();
    let c = v
        .create_conversation(t, "room-2", ConversationKind::Group, None, &[(cleo, 0)])
        .unwrap();
    v.append(
        t,
        c,
        NewMessage::text(cleo, 1_600_000_000_000, "shredded soon"),
    )
    .unwrap()
    .stored()
    .unwrap();
    v.append(
        t,
        c,
        NewMessage::text(cleo, 1_600_100_000_000, "next day, stays"),
    )
    .unwrap()
    .stored()
    .unwrap();
    v.restrict_processing(t, Actor::operator(), cleo, true)
        .unwrap();
    v.shred(
        t,
        Actor::operator(),
        ShredScope::Window {
            conversation: c,
            at_ms: 1_600_000_000_000,
        },
    )
    .unwrap();
}

fn check_v2_extras(v: &Vault) {
    let t = v.tenant("fixture-default").unwrap();
    let cleo = v.user_id(t, "cleo").unwrap();
    let p = v.user(t, cleo).unwrap().profile;
    assert_eq!(p.email.as_deref(), Some("cleo@example.org"));
    assert_eq!(p.fields["team"], "ops");
    assert!(v.is_restricted(t, cleo).unwrap());
    let c = v.conversation_id(t, "room-2").unwrap();
    assert!(matches!(v.get(t, c, 1), Err(Error::Shredded { .. })));
    assert_eq!(v.get(t, c, 2).unwrap().body, "next day, stays");
    assert!(v.verify_receipts(None).unwrap().broken.is_none());
    assert!(v.verify_audit(None).unwrap().broken.is_none());
}

#[test]
#[ignore = "writes the fixture; run only to create a new format's fixture"]
fn write_v2_fixture() {
    if std::env::var_os("CHATVAULT_WRITE_FIXTURES").is_none() {
        panic!("set CHATVAULT_WRITE_FIXTURES=1 to overwrite tests/fixtures/v2");
    }
    let dir = fixtures("v2");
    let _ = std::fs::remove_dir_all(&dir);
    write(&dir);
    {
        let v = Vault::open(&dir, provider(), VaultOptions::default()).unwrap();
        assert_eq!(v.format_version().unwrap(), 2);
        write_v2_extras(&v);
        v.compact().unwrap();
    }
    strip(&dir);
}

/// The format record of a vault from the future: format 999, written by "chatvault 99.0.0"
/// (layout: DESIGN.md §2, "Vault format version").
pub fn future_format_record() -> Vec<u8> {
    let by = b"chatvault 99.0.0";
    let mut v = vec![1u8];
    v.extend_from_slice(&999u32.to_be_bytes());
    v.push(by.len() as u8);
    v.extend_from_slice(by);
    v
}

#[test]
#[ignore = "writes the fixture; run only to re-create the future-format fixture"]
fn write_future_fixture() {
    if std::env::var_os("CHATVAULT_WRITE_FIXTURES").is_none() {
        panic!("set CHATVAULT_WRITE_FIXTURES=1 to overwrite tests/fixtures/future");
    }
    let dir = fixtures("future");
    let _ = std::fs::remove_dir_all(&dir);
    write(&dir);
    {
        let db = common::open_raw(&dir);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        db.put_cf(&meta, [0x1D], future_format_record()).unwrap();
        db.flush_cf(&meta).unwrap();
    }
    strip(&dir);
}

/// The records of the v1 fixture (written by format 1's builds; the v2 and future fixtures
/// start from the same).
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
fn v1_fixture_still_opens_and_reads_the_same() {
    let (_tmp, data) = copy_fixture("v1");
    let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
    assert_eq!(v.upgraded_from(), Some(1), "format 1 is upgraded at open");
    assert_eq!(v.format_version().unwrap(), VAULT_FORMAT_VERSION);
    check_fixture(&v);
}

#[test]
fn v2_fixture_still_opens_and_reads_the_same() {
    let (_tmp, data) = copy_fixture("v2");
    let v = Vault::open(&data, provider(), VaultOptions::default()).unwrap();
    assert_eq!(v.upgraded_from(), None, "format 2 needs no upgrade");
    assert_eq!(v.format_version().unwrap(), 2);
    check_v2_extras(&v);
    check_fixture(&v);
}

/// What `write` stored reads back exactly; a new message continues the ids.
fn check_fixture(v: &Vault) {
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
