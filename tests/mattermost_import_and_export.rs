//! Mattermost bulk exports: the two real-format samples (tests/data/mattermost, Apache-2.0,
//! from zulip's fixtures) with their odd records, and exports the tests build (replies, edits,
//! deletions, direct and group-direct channels, attachments, non-ASCII), import with what a
//! reader needs, idempotently and resumably, reject malformed lines naming the line (keeping
//! what was imported), and round-trip through `write_mattermost_export`.

mod common;
mod formats;

use std::path::{Path, PathBuf};

use chatvault::import::{mattermost, write_back, ImportError, ImportOptions};
use chatvault::{ConversationKind, Vault};
use formats::{assert_same, transcript, NON_ASCII};
use serde_json::{json, Value};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/mattermost")
        .join(name)
}

fn import_as(
    v: &Vault,
    path: &Path,
    tenant: Option<&str>,
) -> Result<chatvault::import::ExternalImportReport, ImportError> {
    let o = ImportOptions {
        tenant: tenant.map(str::to_string),
    };
    mattermost::import_mattermost_export(v, path, &o, &mut |_| true)
}

fn export(v: &Vault, tenant: &str, path: &Path) -> write_back::FormatExportSummary {
    let t = v.tenant(tenant).unwrap();
    let f = std::fs::File::create(path).unwrap();
    write_back::write_mattermost_export(v, t, None, f).unwrap()
}

fn round_trip(v: &Vault, tenant: &str, dir: &Path) {
    let before = transcript(v, v.tenant(tenant).unwrap());
    let out = dir.join(format!("{tenant}.jsonl"));
    let s = export(v, tenant, &out);
    assert_eq!(s.messages as usize, before.messages());
    for (n, l) in std::fs::read_to_string(&out).unwrap().lines().enumerate() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
    }
    let (_d2, v2, _p2) = common::new_vault();
    let r = import_as(&v2, &out, Some(tenant)).unwrap();
    assert_eq!(r.messages_written as usize, before.messages());
    assert_same(&before, &transcript(&v2, v2.tenant(tenant).unwrap()), true);
}

#[test]
fn the_samples_import_with_their_odd_records_kept() {
    let (d, v, _p) = common::new_vault();
    let r = import_as(&v, &sample("export.jsonl"), None).unwrap();
    assert!(r.completed);
    assert_eq!(r.tenant, "gryffindor", "the first team names the tenant");
    assert_eq!(r.conversations_created, 5);
    assert_eq!(r.users_created, 5);
    assert_eq!(r.messages_written, 21, "20 posts and 1 reply: {r:?}");
    assert_eq!(r.skipped.get("reactions (not stored)"), Some(&9), "{r:?}");
    assert_eq!(
        r.skipped.get("custom emoji (not stored)"),
        Some(&2),
        "{r:?}"
    );
    let t = v.tenant("gryffindor").unwrap();
    let tr = transcript(&v, t);
    // The reply stamped before its post: kept, with its link, after it (file order).
    let army = &tr.conversations["gryffindor/dumbledores-army"];
    assert_eq!(army.title.as_deref(), Some("Dumbledores army"));
    assert_eq!(army.messages[0].body, "harry joined the channel.");
    assert_eq!(army.messages[1].body, "The weather is so hot!");
    assert_eq!(army.messages[1].reply_to, Some(1));
    assert!(army.messages[1].sent_at_ms < army.messages[0].sent_at_ms);
    // Snape's post names team gryffindor, but its channel is slytherin's: stored there.
    let sq = &tr.conversations["slytherin/slytherin-quidditch-team"];
    let snape = sq
        .messages
        .iter()
        .find(|m| m.author == "snape")
        .expect("snape's post");
    assert_eq!(
        snape.xref.as_ref().unwrap().field("team"),
        Some("gryffindor")
    );
    // File order is kept inside a channel (not sorted by time).
    let q = &tr.conversations["gryffindor/gryffindor-quidditch-team"];
    assert_eq!(q.messages[0].body, "harry joined the team.");
    assert!(q
        .messages
        .windows(2)
        .any(|w| w[1].sent_at_ms < w[0].sent_at_ms));
    assert_eq!(q.members, vec!["harry".to_string(), "ron".to_string()]);
    assert_eq!(tr.users["ron"].display_name, "Ron Weasley");
    assert_eq!(tr.users["ron"].email.as_deref(), Some("ron@zulip.com"));
    round_trip(&v, "gryffindor", d.path());

    let r = import_as(
        &v,
        &sample("direct_channel.export.jsonl"),
        Some("dm-sample"),
    )
    .unwrap();
    assert_eq!(r.messages_written, 11, "{r:?}");
    assert_eq!(r.conversations_created, 3 + 2 + 1, "{r:?}");
    let tr = transcript(&v, v.tenant("dm-sample").unwrap());
    let pair = &tr.conversations["dm:harry,ron"];
    assert_eq!(pair.kind, ConversationKind::Direct);
    assert_eq!(pair.messages[0].body, "hey harry");
    assert!(pair.messages[0].attachments[0]
        .name
        .ends_with("harry-ron.jpg"));
    let group = &tr.conversations["dm:ginny,harry,ron"];
    assert_eq!(group.kind, ConversationKind::Group);
    assert_eq!(group.messages.len(), 3);
    // Direct posts to a pair with no direct_channel line: the channel is made from them.
    assert_eq!(tr.conversations["dm:harry,voldemort"].messages.len(), 2);
    assert_eq!(tr.users["voldemort"].display_name, "Tom Riddle");
    round_trip(&v, "dm-sample", d.path());
}

#[test]
fn importing_twice_adds_nothing() {
    let (_d, v, _p) = common::new_vault();
    for f in ["export.jsonl", "direct_channel.export.jsonl"] {
        import_as(&v, &sample(f), Some(f)).unwrap();
        let t = v.tenant(f).unwrap();
        let before = transcript(&v, t);
        let again = import_as(&v, &sample(f), Some(f)).unwrap();
        assert_eq!(again.messages_written, 0, "{f}");
        assert_eq!(
            again.messages_already_present as usize,
            before.messages(),
            "{f}"
        );
        assert_eq!(
            (
                again.users_created,
                again.conversations_created,
                again.memberships_added
            ),
            (0, 0, 0),
            "{f}"
        );
        assert_same(&before, &transcript(&v, t), true);
    }
}

fn lines(v: &[Value]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

/// A generated export: posts with replies (one stamped before its post), edits, deletions,
/// direct and group-direct channels, attachments, every non-ASCII text.
fn generated() -> Vec<Value> {
    let user = |name: &str, first: &str, chans: &[&str]| {
        json!({"type": "user", "user": {"username": name, "email": format!("{name}@example.org"),
               "first_name": first, "last_name": "", "roles": "system_user", "locale": "fr",
               "teams": [{"name": "acme", "roles": "team_user",
                          "channels": chans.iter().map(|c| json!({"name": c, "roles": "channel_user"})).collect::<Vec<_>>()}]}})
    };
    vec![
        json!({"type": "version", "version": 1}),
        json!({"type": "team", "team": {"name": "acme", "display_name": "Acmé 🏭", "type": "O"}}),
        json!({"type": "channel", "channel": {"team": "acme", "name": "town-square", "display_name": "Town Square", "type": "O", "header": "", "purpose": "everyone"}}),
        json!({"type": "channel", "channel": {"team": "acme", "name": "secret", "display_name": "סודי", "type": "P"}}),
        user("alice", "Alice", &["town-square", "secret"]),
        user("bob", "Bøb", &["town-square"]),
        user("zoe", "Zoë", &["town-square", "secret"]),
        json!({"type": "post", "post": {"team": "acme", "channel": "town-square", "user": "alice",
               "message": NON_ASCII[0], "create_at": 1_704_067_200_000i64,
               "replies": [
                   {"user": "bob", "message": NON_ASCII[1], "create_at": 1_704_067_260_000i64, "edit_at": 1_704_067_300_000i64},
                   {"user": "zoe", "message": "before its post", "create_at": 1_704_067_100_000i64},
               ],
               "reactions": [{"user": "bob", "create_at": 1_704_067_201_000i64, "emoji_name": "smile"}]}}),
        json!({"type": "post", "post": {"team": "acme", "channel": "town-square", "user": "bob",
               "message": "edited ✓", "create_at": 1_704_067_400_000i64, "edit_at": 1_704_067_500_000i64}}),
        json!({"type": "post", "post": {"team": "acme", "channel": "town-square", "user": "zoe",
               "message": "", "create_at": 1_704_067_600_000i64, "delete_at": 1_704_067_700_000i64}}),
        json!({"type": "post", "post": {"team": "acme", "channel": "secret", "user": "alice",
               "message": NON_ASCII[2], "create_at": 1_704_067_800_000i64,
               "attachments": [{"path": "data/files/plan 📎.pdf"}], "type": "custom_type"}}),
        json!({"type": "direct_channel", "direct_channel": {"members": ["bob", "alice"], "header": "dm"}}),
        json!({"type": "direct_post", "direct_post": {"channel_members": ["bob", "alice"], "user": "bob",
               "message": NON_ASCII[3], "create_at": 1_704_153_600_000i64,
               "replies": [{"user": "alice", "message": NON_ASCII[4], "create_at": 1_704_153_700_000i64}]}}),
        json!({"type": "direct_channel", "direct_channel": {"members": ["alice", "bob", "zoe"]}}),
        json!({"type": "direct_post", "direct_post": {"channel_members": ["alice", "bob", "zoe"], "user": "zoe",
               "message": NON_ASCII[5], "create_at": 1_704_240_000_000i64}}),
        json!({"type": "emoji", "emoji": {"name": "party", "image": "emoji/party.png"}}),
    ]
}

#[test]
fn a_generated_export_keeps_replies_edits_deletions_and_direct_channels_and_round_trips() {
    let (d, v, _p) = common::new_vault();
    let path = d.path().join("gen.jsonl");
    std::fs::write(&path, lines(&generated())).unwrap();
    let r = import_as(&v, &path, None).unwrap();
    assert_eq!(r.tenant, "acme");
    assert_eq!(r.messages_written, 9, "{r:?}");
    assert_eq!(r.edits_applied, 2, "{r:?}");
    assert_eq!(r.deletions_applied, 1, "{r:?}");
    let tr = transcript(&v, v.tenant("acme").unwrap());
    let ts = &tr.conversations["acme/town-square"].messages;
    assert_eq!(ts[0].body.as_bytes(), NON_ASCII[0].as_bytes());
    assert_eq!(ts[1].reply_to, Some(1));
    assert_eq!(ts[1].edited_at_ms, Some(1_704_067_300_000));
    assert_eq!(ts[2].reply_to, Some(1));
    assert_eq!(ts[2].sent_at_ms, 1_704_067_100_000);
    assert_eq!(ts[3].edited_at_ms, Some(1_704_067_500_000));
    assert_eq!(ts[4].deleted_at_ms, Some(1_704_067_700_000));
    let secret = &tr.conversations["acme/secret"];
    assert_eq!(secret.title.as_deref(), Some("סודי"));
    assert_eq!(
        secret.messages[0].attachments[0].name,
        "data/files/plan 📎.pdf"
    );
    assert_eq!(
        tr.conversations["dm:alice,bob"].kind,
        ConversationKind::Direct
    );
    assert_eq!(
        tr.conversations["dm:alice,bob"].messages[1].reply_to,
        Some(1)
    );
    assert_eq!(
        tr.conversations["dm:alice,bob,zoe"].kind,
        ConversationKind::Group
    );
    assert_eq!(tr.users["bob"].display_name, "Bøb");
    let again = import_as(&v, &path, None).unwrap();
    assert_eq!(
        (
            again.messages_written,
            again.edits_applied,
            again.deletions_applied
        ),
        (0, 0, 0)
    );
    round_trip(&v, "acme", d.path());
}

#[test]
fn malformed_lines_are_named_and_what_was_imported_stays() {
    let (d, v, _p) = common::new_vault();
    let good = generated();
    let path = d.path().join("bad.jsonl");
    // Bad JSON on line 10 (the third post): the lines before it are imported.
    let mut text = lines(&good[..9]);
    text.push_str("{\"type\":\"post\",\"post\":{\"team\":\"acme\",oops}}\n");
    text.push_str(&lines(&good[10..]));
    std::fs::write(&path, &text).unwrap();
    let e = import_as(&v, &path, None).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, ImportError::Malformed { .. }), "{s}");
    assert!(
        s.contains("bad.jsonl") && s.contains("line 10") && s.contains("JSON"),
        "{s}"
    );
    let t = v.tenant("acme").unwrap();
    let c = v.conversation_id(t, "acme/town-square").unwrap();
    assert_eq!(
        v.last_message_id(t, c).unwrap(),
        4,
        "the posts before line 10 stay"
    );
    // Fixed: continues; ends as a clean import.
    std::fs::write(&path, lines(&good)).unwrap();
    let r = import_as(&v, &path, None).unwrap();
    assert_eq!(
        (r.messages_already_present, r.messages_written),
        (4, 5),
        "{r:?}"
    );
    let (_d2, clean, _p2) = common::new_vault();
    import_as(&clean, &path, None).unwrap();
    assert_same(
        &transcript(&clean, clean.tenant("acme").unwrap()),
        &transcript(&v, t),
        true,
    );

    let (_d3, v3, _p3) = common::new_vault();
    let case = |name: &str, body: String| {
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        import_as(&v3, &p, Some(name)).unwrap_err().to_string()
    };
    let mut unknown = good.clone();
    unknown[8]["post"]["user"] = json!("mallory");
    let s = case("unknown.jsonl", lines(&unknown));
    assert!(
        s.contains("unknown.jsonl, line 9") && s.contains("\"mallory\""),
        "{s}"
    );
    let mut missing = good.clone();
    missing[8]["post"]["channel"] = json!("nowhere");
    let s = case("missing.jsonl", lines(&missing));
    assert!(s.contains("line 9") && s.contains("\"nowhere\""), "{s}");
    let s = case("noversion.jsonl", lines(&good[1..]));
    assert!(s.contains("line 1") && s.contains("version"), "{s}");
    let mut member = good.clone();
    member[5]["user"]["teams"][0]["channels"][0]["name"] = json!("ghost");
    let s = case("member.jsonl", lines(&member));
    assert!(s.contains("line 6") && s.contains("\"ghost\""), "{s}");
}

/// Regression (found while factoring the parse layer out for the fuzz target
/// `mattermost_export`): a line that is not JSON (or not UTF-8) after posts still in the
/// importer's batch dropped those posts, although the error says that what was imported before
/// it stays.
#[test]
fn posts_still_batched_before_a_bad_json_line_are_kept() {
    let (d, v, _p) = common::new_vault();
    let good = generated();
    let post = |n: i64| {
        json!({"type": "post", "post": {"team": "acme", "channel": "town-square", "user": "alice",
               "message": format!("post {n}"), "create_at": 1_704_067_200_000i64 + n}})
    };
    for (name, bad) in [
        ("json.jsonl", b"{\"type\":\"post\",oops}\n".to_vec()),
        (
            "utf8.jsonl",
            b"{\"type\":\"emoji\",\"x\":\"\xff\"}\n".to_vec(),
        ),
    ] {
        let mut text = lines(&good[..5]).into_bytes();
        text.extend_from_slice(lines(&[post(1), post(2)]).as_bytes());
        text.extend_from_slice(&bad);
        let path = d.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let e = import_as(&v, &path, Some(name)).unwrap_err();
        assert!(e.to_string().contains("line 8"), "{e}");
        let t = v.tenant(name).unwrap();
        let c = v.conversation_id(t, "acme/town-square").unwrap();
        assert_eq!(
            v.last_message_id(t, c).unwrap(),
            2,
            "{name}: the two posts stay"
        );
    }
}

/// Regression (fuzz target `mattermost_export`): a direct channel's external id joins its
/// members' usernames with `,`, and the writer splits the kept member list at `,`, so a
/// username with a `,` made two direct channels one (`a` + `b,c` and `a,b` + `c` are both
/// `dm:a,b,c`) and did not export back. Mattermost's usernames never hold a `,`: such a user
/// or member is refused, naming the line.
#[test]
fn a_username_with_a_comma_is_refused() {
    let (d, v, _p) = common::new_vault();
    let user = |name: &str| json!({"type": "user", "user": {"username": name, "teams": []}});
    let dm = |members: &[&str], by: &str, t: i64| {
        json!({"type": "direct_post", "direct_post": {"channel_members": members, "user": by,
               "message": format!("from {by}"), "create_at": t}})
    };
    let mut file = vec![
        json!({"type": "version", "version": 1}),
        user("a"),
        user("c"),
    ];
    file.push(user("b,c"));
    file.push(user("a,b"));
    file.push(dm(&["a", "b,c"], "a", 1_704_067_200_000));
    file.push(dm(&["a,b", "c"], "c", 1_704_067_300_000));
    let path = d.path().join("comma.jsonl");
    std::fs::write(&path, lines(&file)).unwrap();
    let e = import_as(&v, &path, Some("comma")).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, ImportError::Malformed { .. }), "{s}");
    assert!(
        s.contains("line 4") && s.contains("\"b,c\"") && s.contains("','"),
        "{s}"
    );

    // A member with a `,` in a direct channel or post is refused too.
    for (n, bad) in [
        json!({"type": "direct_channel", "direct_channel": {"members": ["a", "x,y"]}}),
        dm(&["a", "x,y"], "a", 1_704_067_200_000),
    ]
    .into_iter()
    .enumerate()
    {
        let path = d.path().join(format!("member{n}.jsonl"));
        let file = [json!({"type": "version", "version": 1}), user("a"), bad];
        std::fs::write(&path, lines(&file)).unwrap();
        let s = import_as(&v, &path, Some("comma")).unwrap_err().to_string();
        assert!(s.contains("line 3") && s.contains("\"x,y\""), "{s}");
    }
}

/// Regression (found writing the fuzz target `mattermost_export`): a blank first line was
/// skipped before the version check, so a file without the version line was read.
#[test]
fn a_blank_first_line_is_no_version_line() {
    let (d, v, _p) = common::new_vault();
    let path = d.path().join("blank.jsonl");
    std::fs::write(&path, format!("\n{}", lines(&generated()[1..]))).unwrap();
    let s = import_as(&v, &path, Some("blank")).unwrap_err().to_string();
    assert!(
        s.contains("blank.jsonl, line 1") && s.contains("version"),
        "{s}"
    );
}

/// Opt-in (`cargo test --test mattermost_import_and_export -- --ignored`): the shared corpus's
/// files import and round-trip like the copies in tests/data.
#[test]
#[ignore = "needs ../shared/corpus"]
fn the_shared_corpus_files_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/mattermost-bulk-export");
    assert!(
        dir.exists(),
        "the corpus is missing: {} (see PROVENANCE.md)",
        dir.display()
    );
    for f in ["export.jsonl", "direct_channel.export.jsonl"] {
        let (d, v, _p) = common::new_vault();
        import_as(&v, &dir.join(f), Some("corpus")).unwrap();
        import_as(&v, &sample(f), Some("copy")).unwrap();
        assert_same(
            &transcript(&v, v.tenant("corpus").unwrap()),
            &transcript(&v, v.tenant("copy").unwrap()),
            true,
        );
        round_trip(&v, "corpus", d.path());
    }
}

/// A tenant from another source (the IRC sample: minute precision, so one author often posts
/// several times with the same `create_at`) goes to Mattermost and back without losing a
/// message: every (author, time, body) comes back.
#[test]
fn an_irc_tenant_goes_to_mattermost_and_back_without_losing_messages() {
    let (d, v, _p) = common::new_vault();
    for f in chatvault::import::irc_log_files(&common::sample_dir()).unwrap() {
        chatvault::import::import_irc_file(&v, &f, |_| true).unwrap();
    }
    let t = v.tenants().unwrap()[0].name.clone();
    let out = d.path().join("irc.jsonl");
    export(&v, &t, &out);
    let (_d2, v2, _p2) = common::new_vault();
    let r = import_as(&v2, &out, Some(&t)).unwrap();
    assert!(r.skipped.is_empty(), "{r:?}");
    let all = |v: &Vault| {
        let tr = transcript(v, v.tenant(&t).unwrap());
        let mut m: Vec<(String, i64, String)> = tr
            .conversations
            .values()
            .flat_map(|c| &c.messages)
            .map(|m| (m.author.clone(), m.sent_at_ms, m.body.clone()))
            .collect();
        m.sort();
        m
    };
    let (a, b) = (all(&v), all(&v2));
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    assert_eq!(a, b);
}
