//! Slack exports: the real sample (tests/data/slack, MIT, slack-export-viewer) and exports the
//! tests build (threads, edits, deletions, DMs, group DMs, private channels, bots, files,
//! non-ASCII) import with what a reader needs, import idempotently and resumably, reject
//! malformed input naming the entry (keeping what was imported), and round-trip through
//! `write_slack_export` to the same transcript.

mod common;
mod formats;

use std::path::{Path, PathBuf};

use chatvault::import::{slack, write_back, ImportError, ImportOptions};
use chatvault::{ConversationKind, MessageKind, Vault};
use formats::{assert_same, transcript, write_zip, write_zip_raw, NON_ASCII};
use serde_json::{json, Value};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/slack/testarchive.zip")
}

fn import(v: &Vault, path: &Path) -> Result<chatvault::import::ExternalImportReport, ImportError> {
    slack::import_slack_export(v, path, &ImportOptions::default(), &mut |_| true)
}

fn export_zip(v: &Vault, tenant: &str, path: &Path) -> write_back::FormatExportSummary {
    let t = v.tenant(tenant).unwrap();
    let f = std::fs::File::create(path).unwrap();
    write_back::write_slack_export(v, t, None, f).unwrap()
}

#[test]
fn the_real_sample_imports_with_what_a_reader_needs() {
    let (_d, v, _p) = common::new_vault();
    let r = import(&v, &sample()).unwrap();
    assert!(r.completed);
    assert_eq!(r.tenant, "T0BMHLSRH");
    assert_eq!(r.conversations_created, 2);
    assert_eq!(r.messages_in_export, 158);
    assert_eq!(r.messages_written, 158);
    assert_eq!(r.edits_applied, 1, "{r:?}");
    assert_eq!(r.skipped.get("reactions (not stored)"), Some(&1), "{r:?}");
    let t = v.tenant("T0BMHLSRH").unwrap();
    let tr = transcript(&v, t);
    assert_eq!(tr.messages(), 158);
    let sailor = &tr.conversations["C0JL6CGQ2"];
    assert_eq!(sailor.title.as_deref(), Some("traveling-sailor"));
    assert_eq!(sailor.kind, ConversationKind::Group);
    assert_eq!(sailor.members.len(), 4);
    // A file share keeps its file's metadata.
    let share = sailor
        .messages
        .iter()
        .find(|m| m.attachments.iter().any(|a| a.name == "100_cities.js"))
        .expect("file share");
    assert_eq!(share.attachments[0].media_type, "text/plain");
    assert_eq!(share.attachments[0].size_bytes, 4163);
    assert_eq!(share.author, "U0BMS113R");
    // Bot messages with an empty text keep their attachments' fallback text.
    let enrique = &tr.conversations["C0JGLMMNX"];
    let bot = enrique
        .messages
        .iter()
        .find(|m| m.xref.as_ref().and_then(|x| x.field("subtype")) == Some("bot_message"))
        .expect("bot message");
    assert!(bot.body.contains("new commit"), "{:?}", bot.body);
    assert!(tr.users[&bot.author].fields.contains_key("slack.bot"));
    // The edited message: a revision at its `edited.ts`.
    let edited: Vec<_> = tr
        .conversations
        .values()
        .flat_map(|c| &c.messages)
        .filter(|m| m.edited_at_ms.is_some())
        .collect();
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0].revisions.len(), 1);
    // Exact Slack ids are kept (sealed) for the export back.
    assert_eq!(
        enrique.messages[0].xref.as_ref().map(|x| x.id.as_str()),
        Some("1452837318.000002")
    );
    // No external id, name or body in clear anywhere in the data directory.
    v.flush().unwrap();
    let needles: [&[u8]; 7] = [
        b"traveling-sailor",
        b"C0JL6CGQ2",
        b"U0BMYT2FL",
        b"1452837318.000002",
        b"abilinski",
        b"Harry Potter",
        b"100_cities.js",
    ];
    for f in common::files_under(v.path()) {
        let bytes = std::fs::read(&f).unwrap();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n),
                "{} holds {:?} in clear",
                f.display(),
                String::from_utf8_lossy(n)
            );
        }
    }
    // Profiles are sealed under the user keys; the display name is the real name.
    assert_eq!(tr.users["U0BMYT2FL"].display_name, "Harry Potter");
    assert_eq!(
        tr.users["U0BMYT2FL"]
            .fields
            .get("slack.name")
            .map(String::as_str),
        Some("abilinski")
    );
}

#[test]
fn importing_twice_adds_nothing_and_the_sample_round_trips() {
    let (d, v, _p) = common::new_vault();
    import(&v, &sample()).unwrap();
    let t = v.tenant("T0BMHLSRH").unwrap();
    let before = transcript(&v, t);
    let again = import(&v, &sample()).unwrap();
    assert_eq!(again.messages_written, 0);
    assert_eq!(again.messages_already_present, 158);
    assert_eq!(again.edits_applied, 0);
    assert_eq!(again.users_created, 0);
    assert_eq!(again.conversations_created, 0);
    assert_eq!(again.memberships_added, 0);
    assert_same(&before, &transcript(&v, t), true);

    // import -> export -> import: the same transcript, in another vault.
    let zip = d.path().join("back.zip");
    let s = export_zip(&v, "T0BMHLSRH", &zip);
    assert_eq!(s.messages, 158);
    assert_eq!(s.conversations, 2);
    let (_d2, v2, _p2) = common::new_vault();
    let r2 = import(&v2, &zip).unwrap();
    assert_eq!(r2.messages_written, 158);
    let t2 = v2.tenant("T0BMHLSRH").unwrap();
    assert_same(&before, &transcript(&v2, t2), true);
    // And once more: the export of the copy imports into the same again.
    let zip2 = d.path().join("back2.zip");
    export_zip(&v2, "T0BMHLSRH", &zip2);
    let (_d3, v3, _p3) = common::new_vault();
    import(&v3, &zip2).unwrap();
    assert_same(
        &before,
        &transcript(&v3, v3.tenant("T0BMHLSRH").unwrap()),
        true,
    );
}

fn user(id: &str, name: &str, real: &str) -> Value {
    json!({"id": id, "team_id": "TGEN", "name": name, "real_name": real,
           "profile": {"real_name": real, "display_name": name, "email": format!("{name}@example.org")}})
}

fn msg(user: &str, ts: &str, text: &str) -> Value {
    json!({"type": "message", "user": user, "text": text, "ts": ts})
}

/// A generated export: a channel with a thread (across two days), an edit event, an edit in
/// the standard shape, a deletion, a join, a bot, a file share and an action; a private
/// channel; a DM; a group DM; every non-ASCII text.
fn generated(dir: &Path) -> PathBuf {
    let mut parent = msg("U1", "1704067200.000100", NON_ASCII[0]);
    parent["thread_ts"] = json!("1704067200.000100");
    let mut reply = msg("U2", "1704067260.000200", NON_ASCII[1]);
    reply["thread_ts"] = json!("1704067200.000100");
    let mut std_edit = msg("U2", "1704067500.000500", "edited in place ✓");
    std_edit["edited"] = json!({"user": "U2", "ts": "1704067999.000000"});
    let day1 = json!([
        parent,
        reply,
        msg("U3", "1704067300.000300", "to be edited"),
        {"type": "message", "subtype": "message_changed", "hidden": true, "ts": "1704067400.000000",
         "message": {"type": "message", "user": "U3", "text": "edited: Zoë ✓", "ts": "1704067300.000300",
                     "edited": {"user": "U3", "ts": "1704067400.000000"}}},
        msg("U1", "1704067350.000350", "to be deleted"),
        {"type": "message", "subtype": "message_deleted", "hidden": true, "ts": "1704067450.000000",
         "deleted_ts": "1704067350.000350"},
        std_edit,
        {"type": "message", "subtype": "channel_join", "user": "U4", "text": "<@U4> has joined the channel",
         "ts": "1704067600.000600"},
        {"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "deploybot", "text": "",
         "ts": "1704067700.000700", "attachments": [{"fallback": "Deployed 🚀 to prod"}]},
        {"type": "message", "subtype": "file_share", "user": "U1", "text": "<@U1> uploaded a file",
         "ts": "1704067800.000800",
         "files": [{"id": "F1", "name": "résumé.pdf", "mimetype": "application/pdf", "size": 1234}]},
        {"type": "message", "subtype": "me_message", "user": "U2", "text": "waves 👋", "ts": "1704067900.000900"},
    ]);
    let mut late_reply = msg("U3", "1704153600.000100", NON_ASCII[2]);
    late_reply["thread_ts"] = json!("1704067200.000100");
    let day2 = json!([
        late_reply,
        {"type": "message", "subtype": "message_replied", "hidden": true, "ts": "1704153601.000000",
         "message": {"type": "message", "user": "U1", "text": NON_ASCII[0], "ts": "1704067200.000100"}},
        msg("U1", "1704153700.000200", NON_ASCII[4]),
    ]);
    let secret = json!([msg("U1", "1704067200.000001", NON_ASCII[3])]);
    let dm = json!([
        msg("U1", "1704067200.000001", NON_ASCII[5]),
        msg("U2", "1704067201.000001", "RTL: \u{202B}مرحبا\u{202C}"),
    ]);
    let mpim = json!([
        msg("U3", "1704240000.000001", "group DM 🎉"),
        msg("U1", "1704240001.000001", "ok"),
    ]);
    let path = dir.join("generated.zip");
    write_zip(
        &path,
        &[
            (
                "users.json",
                json!([
                    user("U1", "alice", "Alice Ä"),
                    user("U2", "bob", "בוב"),
                    user("U3", "zoe", "Zoë"),
                    user("U4", "dan", "Dan"),
                ]),
            ),
            (
                "channels.json",
                json!([{"id": "C1", "name": "general", "created": 1704067000, "creator": "U1",
                        "members": ["U1", "U2", "U3"],
                        "topic": {"value": "Général 🌍", "creator": "U1", "last_set": 1704067000},
                        "purpose": {"value": "", "creator": "", "last_set": 0}}]),
            ),
            (
                "groups.json",
                json!([{"id": "G1", "name": "secret", "created": "1704067000", "members": ["U1", "U2"]}]),
            ),
            (
                "dms.json",
                json!([{"id": "D1", "created": 1704067000, "members": ["U1", "U2"]}]),
            ),
            (
                "mpims.json",
                json!([{"id": "G2", "name": "mpdm-alice--bob--zoe-1", "created": 1704067000,
                        "members": ["U1", "U2", "U3"]}]),
            ),
            ("general/2024-01-01.json", day1),
            ("general/2024-01-02.json", day2),
            ("secret/2024-01-01.json", secret),
            ("D1/2024-01-01.json", dm),
            ("mpdm-alice--bob--zoe-1/2024-01-03.json", mpim),
            ("integration_logs.json", json!([])),
        ],
    );
    path
}

#[test]
fn a_generated_export_keeps_threads_edits_deletions_dms_and_non_ascii_and_round_trips() {
    let (d, v, _p) = common::new_vault();
    let path = generated(d.path());
    let r = import(&v, &path).unwrap();
    assert!(r.completed, "{r:?}");
    assert_eq!(r.tenant, "TGEN");
    assert_eq!(r.conversations_created, 4);
    assert_eq!(r.messages_written, 16, "{r:?}");
    assert_eq!(r.edits_applied, 2, "{r:?}");
    assert_eq!(r.deletions_applied, 1, "{r:?}");
    assert_eq!(r.memberships_added, 3 + 2 + 2 + 3 + 1, "{r:?}");
    assert!(
        r.skipped.keys().any(|k| k.contains("message_replied")),
        "{r:?}"
    );
    let t = v.tenant("TGEN").unwrap();
    let tr = transcript(&v, t);
    let general = &tr.conversations["C1"];
    assert!(
        general.members.contains(&"U4".to_string()),
        "the join is a membership"
    );
    let m = &general.messages;
    assert_eq!(m[0].body, NON_ASCII[0]);
    assert_eq!(m[0].body.as_bytes(), NON_ASCII[0].as_bytes());
    assert_eq!(m[1].reply_to, Some(1), "thread reply");
    assert_eq!(m[1].body, NON_ASCII[1]);
    assert_eq!(m[2].body, "edited: Zoë ✓");
    assert_eq!(
        m[2].revisions,
        vec![("to be edited".to_string(), 1_704_067_300_000)]
    );
    assert_eq!(m[2].edited_at_ms, Some(1_704_067_400_000));
    assert_eq!(m[3].deleted_at_ms, Some(1_704_067_450_000));
    assert_eq!(m[3].body, "");
    assert_eq!(m[4].edited_at_ms, Some(1_704_067_999_000));
    assert_eq!(
        m[5].xref.as_ref().unwrap().field("subtype"),
        Some("channel_join")
    );
    assert_eq!(m[6].body, "Deployed 🚀 to prod");
    assert_eq!(tr.users[&m[6].author].display_name, "deploybot");
    assert_eq!(m[7].attachments[0].name, "résumé.pdf");
    assert_eq!(m[7].attachments[0].size_bytes, 1234);
    assert_eq!(m[8].kind, MessageKind::Action);
    assert_eq!(
        m[9].reply_to,
        Some(1),
        "a reply on the next day keeps its thread"
    );
    assert_eq!(m[9].body.as_bytes(), NON_ASCII[2].as_bytes());
    assert_eq!(tr.conversations["D1"].kind, ConversationKind::Direct);
    assert_eq!(tr.conversations["D1"].messages[0].body, "");
    assert_eq!(tr.conversations["G2"].kind, ConversationKind::Group);
    assert_eq!(tr.conversations["G2"].members.len(), 3);
    assert_eq!(tr.conversations["G1"].title.as_deref(), Some("secret"));
    assert_eq!(tr.users["U2"].display_name, "בוב");

    // Twice: nothing added.
    let again = import(&v, &path).unwrap();
    assert_eq!(
        (
            again.messages_written,
            again.edits_applied,
            again.deletions_applied
        ),
        (0, 0, 0),
        "{again:?}"
    );
    assert_same(&tr, &transcript(&v, t), true);

    // Round trip, revisions and deletions included.
    let zip = d.path().join("back.zip");
    let s = export_zip(&v, "TGEN", &zip);
    assert_eq!(s.changes, 3, "two edits and a deletion: {s:?}");
    let (_d2, v2, _p2) = common::new_vault();
    import(&v2, &zip).unwrap();
    assert_same(&tr, &transcript(&v2, v2.tenant("TGEN").unwrap()), true);

    // One conversation alone.
    let one = d.path().join("one.zip");
    let c = v.conversation_id(t, "D1").unwrap();
    write_back::write_slack_export(&v, t, Some(c), std::fs::File::create(&one).unwrap()).unwrap();
    let (_d3, v3, _p3) = common::new_vault();
    import(&v3, &one).unwrap();
    let tr3 = transcript(&v3, v3.tenant("TGEN").unwrap());
    assert_eq!(tr3.conversations.len(), 1);
    assert_eq!(tr3.conversations["D1"], tr.conversations["D1"]);
}

/// The entries of the generated export, with one replaced.
fn with_entry(src: &Path, dst: &Path, name: &str, bytes: Option<Vec<u8>>) {
    let mut z = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut entries = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let n = f.name().to_string();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut b).unwrap();
        if n == name {
            if let Some(nb) = &bytes {
                entries.push((n, nb.clone()));
            }
        } else {
            entries.push((n, b));
        }
    }
    if !entries.iter().any(|(n, _)| n == name) {
        if let Some(nb) = bytes {
            entries.push((name.to_string(), nb));
        }
    }
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    write_zip_raw(dst, &refs);
}

#[test]
fn malformed_exports_name_the_entry_and_keep_what_was_imported() {
    let (d, v, _p) = common::new_vault();
    let good = generated(d.path());

    // Truncated archive.
    let bytes = std::fs::read(&good).unwrap();
    let cut = d.path().join("truncated.zip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = import(&v, &cut).unwrap_err().to_string();
    assert!(
        e.contains("truncated.zip") && e.contains("zip archive"),
        "{e}"
    );
    assert!(v.tenant("TGEN").is_err(), "nothing was written");

    // Bad JSON on line 3 of the second day: the first day stays imported.
    let bad = d.path().join("bad.zip");
    with_entry(
        &good,
        &bad,
        "general/2024-01-02.json",
        Some(b"[\n  {\"type\": \"message\", \"user\": \"U1\",\n  \"ts\": oops}\n]".to_vec()),
    );
    let e = import(&v, &bad).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, ImportError::Malformed { .. }), "{s}");
    assert!(
        s.contains("bad.zip: general/2024-01-02.json") && s.contains("line 3"),
        "{s}"
    );
    let t = v.tenant("TGEN").unwrap();
    let c = v.conversation_id(t, "C1").unwrap();
    assert_eq!(v.last_message_id(t, c).unwrap(), 9, "the first day stays");
    // Fixed: the import continues and ends where a clean import does.
    let r = import(&v, &good).unwrap();
    assert_eq!(r.messages_already_present, 9);
    assert_eq!(r.messages_written, 7);
    let (_d2, clean, _p2) = common::new_vault();
    import(&clean, &good).unwrap();
    assert_same(
        &transcript(&clean, clean.tenant("TGEN").unwrap()),
        &transcript(&v, t),
        true,
    );

    // An unknown user, a folder without a conversation, a message without ts.
    let (_d3, v3, _p3) = common::new_vault();
    let unknown = d.path().join("unknown.zip");
    with_entry(
        &good,
        &unknown,
        "secret/2024-01-01.json",
        Some(serde_json::to_vec(&json!([msg("U9", "1704067200.000001", "who?")])).unwrap()),
    );
    let s = import(&v3, &unknown).unwrap_err().to_string();
    assert!(
        s.contains("secret/2024-01-01.json")
            && s.contains("entry 1 (ts 1704067200.000001)")
            && s.contains("\"U9\""),
        "{s}"
    );
    let orphan = d.path().join("orphan.zip");
    with_entry(
        &good,
        &orphan,
        "random/2024-01-01.json",
        Some(serde_json::to_vec(&json!([msg("U1", "1704067200.000001", "hi")])).unwrap()),
    );
    let s = import(&v3, &orphan).unwrap_err().to_string();
    assert!(
        s.contains("\"random\"") && s.contains("channels.json"),
        "{s}"
    );
    let no_ts = d.path().join("nots.zip");
    with_entry(
        &good,
        &no_ts,
        "D1/2024-01-01.json",
        Some(serde_json::to_vec(&json!([{"type": "message", "user": "U1", "text": "x"}])).unwrap()),
    );
    let s = import(&v3, &no_ts).unwrap_err().to_string();
    assert!(
        s.contains("D1/2024-01-01.json") && s.contains("\"ts\""),
        "{s}"
    );
    let no_users = d.path().join("nousers.zip");
    with_entry(&good, &no_users, "users.json", None);
    let s = import(&v3, &no_users).unwrap_err().to_string();
    assert!(s.contains("users.json"), "{s}");
}

#[test]
fn an_import_stopped_part_way_continues_where_it_stopped() {
    let (d, v, _p) = common::new_vault();
    let day: Vec<Value> = (0..1200)
        .map(|i| {
            let mut m = msg(
                if i % 3 == 0 { "U1" } else { "U2" },
                &format!("{}.{:06}", 1_704_067_200 + i, i),
                &format!("message {i} {}", NON_ASCII[i as usize % 5]),
            );
            if i % 10 == 5 {
                m["thread_ts"] = json!(format!("{}.{:06}", 1_704_067_200 + i - 5, i - 5));
            }
            m
        })
        .collect();
    let path = d.path().join("big.zip");
    write_zip(
        &path,
        &[
            (
                "users.json",
                json!([user("U1", "alice", "Alice"), user("U2", "bob", "Bob")]),
            ),
            (
                "channels.json",
                json!([{"id": "C1", "name": "general", "members": ["U1", "U2"]}]),
            ),
            ("general/2024-01-01.json", Value::Array(day)),
        ],
    );
    let mut calls = 0;
    let r = slack::import_slack_export(&v, &path, &ImportOptions::default(), &mut |_| {
        calls += 1;
        false
    })
    .unwrap();
    assert!(!r.completed);
    assert_eq!(calls, 1);
    assert_eq!(r.messages_written, chatvault::import::IMPORT_BATCH as u64);
    let r = import(&v, &path).unwrap();
    assert!(r.completed);
    assert_eq!(
        r.messages_already_present,
        chatvault::import::IMPORT_BATCH as u64
    );
    assert_eq!(
        r.messages_written,
        1200 - chatvault::import::IMPORT_BATCH as u64
    );
    let (_d2, clean, _p2) = common::new_vault();
    import(&clean, &path).unwrap();
    let t = v.tenant("TGEN").unwrap();
    let tr = transcript(&v, t);
    assert_eq!(tr.messages(), 1200);
    assert_eq!(tr.conversations["C1"].messages[5].reply_to, Some(1));
    assert_same(
        &transcript(&clean, clean.tenant("TGEN").unwrap()),
        &tr,
        true,
    );
}

/// Opt-in (`cargo test --test slack_import_and_export -- --ignored`): the shared corpus's
/// Slack archive imports and round-trips like the copy in tests/data.
#[test]
#[ignore = "needs ../shared/corpus"]
fn the_shared_corpus_archive_round_trips() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/slack-export-viewer-testarchive/testarchive.zip");
    assert!(
        p.exists(),
        "the corpus is missing: {} (see PROVENANCE.md)",
        p.display()
    );
    let (d, v, _p) = common::new_vault();
    import(&v, &p).unwrap();
    let tr = transcript(&v, v.tenant("T0BMHLSRH").unwrap());
    let (_d2, copy, _p2) = common::new_vault();
    import(&copy, &sample()).unwrap();
    assert_same(
        &tr,
        &transcript(&copy, copy.tenant("T0BMHLSRH").unwrap()),
        true,
    );
    let zip = d.path().join("back.zip");
    export_zip(&v, "T0BMHLSRH", &zip);
    let (_d3, v3, _p3) = common::new_vault();
    import(&v3, &zip).unwrap();
    assert_same(&tr, &transcript(&v3, v3.tenant("T0BMHLSRH").unwrap()), true);
}

#[test]
fn external_references_survive_a_purge_and_are_shredded_with_their_messages() {
    let (d, v, _p) = common::new_vault();
    import(&v, &sample()).unwrap();
    let t = v.tenant("T0BMHLSRH").unwrap();
    let r = v.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
    let before = transcript(&v, t);
    // Shred one day of traveling-sailor (its first: the joins): the shred re-versions the
    // conversation's key and seals its external references again (the old version is deleted,
    // so the reads below would fail if one were left under it); then purge.
    let c = v.conversation_id(t, "C0JL6CGQ2").unwrap();
    let first = &before.conversations["C0JL6CGQ2"].messages[0];
    let day = |ms: i64| ms.div_euclid(86_400_000);
    v.shred(
        t,
        chatvault::Actor::operator(),
        chatvault::ShredScope::Window {
            conversation: c,
            at_ms: first.sent_at_ms,
        },
    )
    .unwrap();
    assert_eq!(v.key_paths_pending().unwrap(), 0);
    let p = v.purge(chatvault::PurgeOptions::default()).unwrap();
    assert!(p.complete, "{p:?}");
    let r = v.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
    // The messages of other days keep their Slack ids, and the export leaves the shredded
    // day out.
    let last = before.conversations["C0JL6CGQ2"].messages.last().unwrap();
    assert_eq!(
        v.external_ref(t, c, last.id).unwrap().map(|x| x.id),
        last.xref.as_ref().map(|x| x.id.clone())
    );
    // Shredding a user makes the references of their messages unreadable with the messages.
    let hermione = before.conversations["C0JGLMMNX"]
        .messages
        .iter()
        .find(|m| m.author == "U0BMS113R")
        .expect("a message by U0BMS113R");
    let e = v.conversation_id(t, "C0JGLMMNX").unwrap();
    assert!(v.external_ref(t, e, hermione.id).unwrap().is_some());
    let u = v.user_id(t, "U0BMS113R").unwrap();
    v.shred(
        t,
        chatvault::Actor::operator(),
        chatvault::ShredScope::User(u),
    )
    .unwrap();
    assert!(v.external_ref(t, e, hermione.id).is_err());
    let hers: u64 = before
        .conversations
        .iter()
        .flat_map(|(id, c)| c.messages.iter().map(move |m| (id, m)))
        .filter(|(id, m)| {
            m.author == "U0BMS113R"
                && !(id.as_str() == "C0JL6CGQ2" && day(m.sent_at_ms) == day(first.sent_at_ms))
        })
        .count() as u64;
    let zip = d.path().join("after.zip");
    let s = export_zip(&v, "T0BMHLSRH", &zip);
    let shredded = before.conversations["C0JL6CGQ2"]
        .messages
        .iter()
        .filter(|m| day(m.sent_at_ms) == day(first.sent_at_ms))
        .count() as u64;
    assert!(shredded > 0);
    assert_eq!(s.messages, 158 - shredded - hers, "{s:?}");
}

#[test]
fn verify_catches_a_tampered_external_reference() {
    let (d, v, p) = common::new_vault();
    import(&v, &sample()).unwrap();
    let before = v.verify().unwrap();
    assert!(before.is_ok());
    let path = v.path().to_path_buf();
    drop(v);
    // Flip one byte of the ciphertext of one message's external reference (meta 0x20, id != 0).
    {
        let db = common::open_raw(&path);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        let (k, mut val) = db
            .iterator_cf(&meta, rocksdb::IteratorMode::Start)
            .map(|kv| kv.unwrap())
            .find(|(k, _)| k[0] == 0x20 && k.len() == 25 && k[17..25] != [0u8; 8])
            .expect("a message's external reference");
        let n = val.len() - 20;
        val[n] ^= 1;
        db.put_cf(&meta, k, val).unwrap();
    }
    let v = Vault::open(&path, p, chatvault::VaultOptions::default()).unwrap();
    let after = v.verify().unwrap();
    assert_eq!(after.failures.len(), 1, "{:?}", after.failures);
    assert_eq!(after.meta_ok + 1, before.meta_ok);
    drop(d);
}

#[test]
fn external_references_follow_their_messages_through_a_data_key_rotation_and_reseal() {
    let (d, v, _p) = common::new_vault();
    import(&v, &sample()).unwrap();
    let t = v.tenant("T0BMHLSRH").unwrap();
    let before = transcript(&v, t);
    let op = chatvault::Actor::operator();
    // New epoch, user and conversation keys for the whole tenant; every record (and with it
    // each message's external reference, sealed under its DEK) sealed again; old versions
    // deleted.
    v.rotate_data_keys(t, None, op).unwrap();
    let r = v
        .reseal(t, None, &chatvault::ResealOptions::default(), |_| {})
        .unwrap();
    assert!(r.resealed >= 158, "{r:?}");
    assert!(r.retired.is_some(), "{r:?}");
    let vr = v.verify().unwrap();
    assert!(vr.is_ok(), "{:?}", vr.failures);
    // Every message still has its Slack ts, and the export back gives the same transcript.
    assert_same(&before, &transcript(&v, t), true);
    let zip = d.path().join("rotated.zip");
    assert_eq!(export_zip(&v, "T0BMHLSRH", &zip).messages, 158);
    let (_d2, v2, _p2) = common::new_vault();
    import(&v2, &zip).unwrap();
    assert_same(
        &before,
        &transcript(&v2, v2.tenant("T0BMHLSRH").unwrap()),
        true,
    );
}
