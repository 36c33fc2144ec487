//! The Mattermost bulk export importer's parse layer (`chatvault::import::mattermost`:
//! `lines`, `parse_line`) and its round trip through the Mattermost writer's formatting
//! (`write_back`'s post lines).
//!
//! Properties, on an arbitrary JSON Lines file read line by line as the importer reads it
//! (up to the first rejected line, where the importer stops; line 1 must be the version line,
//! and a blank line 1 is rejected):
//! - nothing panics; a rejection is `ImportError::Malformed` naming the file and `line N` (N
//!   the 1-based line number);
//! - round trip: a post (`post` or `direct_post`, with its replies) written back as
//!   `write_mattermost_export` writes what the importer stores of it and parsed again gives
//!   the same post, less what is not stored (reactions, counted) and what a deletion removes
//!   (a deleted post's text, attachments and edit time); a direct channel's members go
//!   through the `members` field the importer keeps and the writer splits;
//! - a direct channel's external id (`direct_channel_id`) names exactly its set of members:
//!   `dm:` and the sorted, deduplicated usernames, which split back into that set.
//!
//! Framing: the input is the export file (JSON Lines; line 1 must be the version line).
//!
//! Run: `./dev fuzz mattermost_export --seconds 60` (seeds: fuzz/seeds/mattermost_export,
//! from zulip's Mattermost fixtures, Apache-2.0).
#![no_main]

use chatvault::fuzzing::{mm_post_json, mm_post_line};
use chatvault::import::mattermost::{
    direct_channel_id, lines, parse_line, MmPost, MmPostBody, MmPostPlace, MmRecord,
};
use chatvault::import::ImportError;
use chatvault::Attachment;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FILE: &str = "export.jsonl";

/// What the vault holds of a post or reply, as the writer sees it.
fn stored(b: &MmPostBody) -> MmPostBody {
    let mut b = b.clone();
    b.reactions = 0;
    if b.delete_at.is_some() {
        b.message.clear();
        b.attachments.clear();
        b.edit_at = None;
    }
    b
}

fn written(b: &MmPostBody) -> serde_json::Map<String, Value> {
    let attachments: Vec<Attachment> = b
        .attachments
        .iter()
        .map(|p| Attachment {
            name: p.clone(),
            media_type: String::new(),
            size_bytes: 0,
        })
        .collect();
    mm_post_json(
        &b.user,
        &b.message,
        b.create_at,
        b.edit_at,
        b.delete_at,
        b.post_type.as_deref(),
        &attachments,
    )
}

fn check_members(members: &[String]) {
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let id = direct_channel_id(&names);
    let mut want = names.clone();
    want.sort_unstable();
    want.dedup();
    let back: Vec<&str> = id
        .strip_prefix("dm:")
        .expect("a direct channel id starts with dm:")
        .split(',')
        .collect();
    assert_eq!(back, want, "{id:?} does not name the members {members:?}");
}

fn round_trip(p: &MmPost) {
    let want = MmPost {
        place: p.place.clone(),
        root: stored(&p.root),
        replies: p.replies.iter().map(stored).collect(),
    };
    let mut post = written(&want.root);
    if !want.replies.is_empty() {
        post.insert(
            "replies".into(),
            Value::Array(
                want.replies
                    .iter()
                    .map(|r| Value::Object(written(r)))
                    .collect(),
            ),
        );
    }
    let line = mm_post_line(post, &want.place);
    let bytes = format!("{line}\n");
    match parse_line(FILE, 2, bytes.as_bytes()) {
        Ok(Some(MmRecord::Post(back))) => assert_eq!(back, want, "written back as {bytes}"),
        other => panic!("written back as {bytes}, parsed as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    for (n, line) in lines(data) {
        match parse_line(FILE, n, line) {
            Ok(None) => assert!(n > 1, "a blank line 1 passed for the version line"),
            Ok(Some(r)) => {
                assert!(
                    n > 1 || r == MmRecord::Version,
                    "line 1 is the version line"
                );
                match &r {
                    MmRecord::Post(p) => {
                        if let MmPostPlace::Direct { members } = &p.place {
                            check_members(members);
                        }
                        round_trip(p);
                    }
                    MmRecord::DirectChannel { members, .. } => check_members(members),
                    MmRecord::Team { name, .. } => assert!(!name.is_empty()),
                    MmRecord::User { username, .. } => assert!(!username.is_empty()),
                    _ => {}
                }
            }
            Err(e) => {
                match &e {
                    ImportError::Malformed { file, entry, .. } => {
                        assert_eq!(
                            (file.as_str(), entry.as_str()),
                            (FILE, format!("line {n}").as_str())
                        )
                    }
                    other => panic!("not a Malformed error: {other:?}"),
                }
                return;
            }
        }
    }
});
