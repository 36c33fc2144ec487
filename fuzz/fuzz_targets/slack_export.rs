//! The Slack export importer's parse layer (`chatvault::import::slack`: `parse_message`,
//! `parse_conversation`, `user_id_of`, the zip walk) and its round trip through the Slack
//! writer's formatting (`write_back`'s message, `message_changed` and `message_deleted`
//! records).
//!
//! Properties:
//! - nothing panics; a rejection is `ImportError::Malformed` naming the file (for a zip, the
//!   archive and the entry) and the entry (`entry N`, 1-based, for a day file's record);
//! - round trip: a record accepted as a message, written back as `write_slack_export` writes
//!   the message the importer stores (its `ts`, author, external reference fields, text,
//!   kind, thread, attachments) and parsed again, gives the same message, less what the
//!   importer does not store in the message (reactions, counted; `edited`, which becomes a
//!   revision: written back as a `message_changed` event that parses to the same edit); an
//!   edit or deletion event written back parses to the same event;
//! - `ts`: a `ts` the importer accepts is not negative and the writer's `ts` for its time
//!   parses back to it;
//! - a conversation list entry: its folder is its id for a DM or a nameless conversation, else
//!   its name; its `created` time is not negative.
//!
//! Framing: an input starting with `PK` is a Slack export zip (read in memory, entries up to
//! 1 MiB); any other input is one JSON value: an array is a day file (each element a record)
//! and also a `users.json` and each conversation list; an object is one record.
//!
//! Run: `./dev fuzz slack_export --seconds 60` (seeds: fuzz/seeds/slack_export, from the
//! slack-export-viewer test archive, MIT).
#![no_main]

use chatvault::fuzzing::{slack_change_json, slack_deletion_json, slack_message_json};
use chatvault::import::slack::{
    parse_conversation, parse_message, ts_to_ms, user_id_of, SlackAuthor, SlackRecord,
    CONVERSATION_LISTS, SOURCE,
};
use chatvault::import::write_back::ms_to_ts;
use chatvault::import::{ExternalRef, ImportError};
use chatvault::ConversationKind;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FILE: &str = "folder/2016-01-15.json";

fn malformed(e: &ImportError, file: &str, entry: Option<&str>) {
    match e {
        ImportError::Malformed {
            file: f, entry: en, ..
        } => {
            assert!(f.starts_with(file), "{e}");
            if let Some(want) = entry {
                assert!(
                    en == want || en.starts_with(&format!("{want} ")),
                    "{en:?} is not {want:?}"
                );
            }
        }
        other => panic!("not a Malformed error: {other:?}"),
    }
}

/// The record parsed back from what the writer writes for `r`.
fn round_trip(r: &SlackRecord) {
    match r {
        SlackRecord::Skipped(_) => {}
        SlackRecord::Edit {
            target,
            body,
            at_ms,
        } => {
            let v = slack_change_json("U0", target, body, *at_ms);
            assert_eq!(parse_message(FILE, 0, &v).ok().as_ref(), Some(r), "{v}");
        }
        SlackRecord::Delete { target, at_ms } => {
            let v = slack_deletion_json(target, *at_ms);
            assert_eq!(parse_message(FILE, 0, &v).ok().as_ref(), Some(r), "{v}");
        }
        SlackRecord::Message(m) => {
            assert!(m.sent_at_ms >= 0);
            for seq in [0, 999] {
                assert_eq!(ts_to_ms(&ms_to_ts(m.sent_at_ms, seq)), Some(m.sent_at_ms));
            }
            // What the importer stores: the message (author by external id), its reference.
            let xref = ExternalRef {
                source: SOURCE.into(),
                id: m.ts.clone(),
                fields: m.fields.clone(),
            };
            let author = match &m.author {
                SlackAuthor::User(u) => u.as_str(),
                SlackAuthor::Bot { bot_id, .. } => bot_id.as_str(),
            };
            let thread_ts = xref.field("thread_ts");
            let v = slack_message_json(
                &m.ts,
                author,
                Some(&xref),
                &m.body,
                m.kind,
                thread_ts,
                &m.attachments,
            );
            let mut want = m.clone();
            want.reactions = 0;
            want.edited_at_ms = None;
            match parse_message(FILE, 0, &v) {
                Ok(SlackRecord::Message(back)) => {
                    assert_eq!(back, want, "written back as {v}")
                }
                other => panic!("written back as {v}, parsed as {other:?}"),
            }
            if let Some(at) = m.edited_at_ms {
                let v = slack_change_json(author, &m.ts, &m.body, at);
                let edit = SlackRecord::Edit {
                    target: m.ts.clone(),
                    body: m.body.clone(),
                    at_ms: at,
                };
                assert_eq!(parse_message(FILE, 0, &v).ok(), Some(edit), "{v}");
            }
        }
    }
}

fn record(n: usize, v: &Value) {
    match parse_message(FILE, n, v) {
        Ok(r) => round_trip(&r),
        Err(e) => malformed(&e, FILE, Some(&format!("entry {}", n + 1))),
    }
}

fn list(items: &[Value]) {
    for (n, v) in items.iter().enumerate() {
        record(n, v);
        match user_id_of("users.json", n, v) {
            Ok(id) => assert!(!id.is_empty()),
            Err(e) => malformed(&e, "users.json", Some(&format!("entry {}", n + 1))),
        }
        let _ = chatvault::fuzzing::slack_profile(v);
        for (file, ctype) in CONVERSATION_LISTS {
            match parse_conversation(file, ctype, n, v) {
                Ok(c) => {
                    assert!(!c.id.is_empty() && c.created_ms >= 0);
                    let by_id = ctype == "dm" || c.name.is_none();
                    assert_eq!(
                        &c.folder,
                        if by_id {
                            &c.id
                        } else {
                            c.name.as_ref().unwrap()
                        }
                    );
                    assert_eq!(c.kind == ConversationKind::Direct, ctype == "dm");
                    assert_eq!(c.fields.get("type").map(String::as_str), Some(ctype));
                }
                Err(e) => malformed(&e, file, Some(&format!("entry {}", n + 1))),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PK") {
        match chatvault::fuzzing::slack_dry_run(data, 1 << 20) {
            Ok(records) => records.iter().for_each(round_trip),
            Err(e) => malformed(&e, "fuzz.zip", None),
        }
        return;
    }
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match &v {
        Value::Array(items) => list(items),
        other => record(0, other),
    }
});
