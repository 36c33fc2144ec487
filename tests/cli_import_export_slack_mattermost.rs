//! The CLI of `import slack`, `import mattermost`, `import irc --json` and
//! `export --format slack|mattermost`: summaries (text and `--json`), errors that name the
//! entry, and round trips through the commands.

mod common;

use std::path::{Path, PathBuf};

use common::Cli;
use serde_json::Value;

fn data(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
        .to_str()
        .unwrap()
        .to_string()
}

fn fresh() -> (tempfile::TempDir, Cli) {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::at(&dir.path().join("data"), &dir.path().join("root.key"));
    cli.ok(&["init"]);
    (dir, cli)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn slack_import_summary_json_idempotency_and_export_round_trip() {
    let (dir, cli) = fresh();
    let zip = data("slack/testarchive.zip");
    let out = cli.ok(&["import", "slack", &zip]);
    assert!(out.contains("into tenant T0BMHLSRH"), "{out}");
    assert!(out.contains("158 messages written"), "{out}");
    assert!(out.contains("skipped 1: reactions (not stored)"), "{out}");
    let j = json(&cli.ok(&["import", "slack", "--json", &zip]));
    assert_eq!(j["messages_written"], 0);
    assert_eq!(j["messages_already_present"], 158);
    assert_eq!(j["completed"], true);

    let back: PathBuf = dir.path().join("back.zip");
    let err = cli.fails(&["export", "--format", "slack", "tenant", "T0BMHLSRH"], 2);
    assert!(err.contains("--out"), "{err}");
    cli.ok(&[
        "export",
        "--format",
        "slack",
        "tenant",
        "T0BMHLSRH",
        "--out",
        back.to_str().unwrap(),
    ]);
    let (_d2, cli2) = fresh();
    let j = json(&cli2.ok(&["import", "slack", "--json", back.to_str().unwrap()]));
    assert_eq!(j["messages_written"], 158);
    assert_eq!(j["edits_applied"], 1);
    // Both vaults read the same.
    let read = |c: &Cli| c.ok(&["read", "T0BMHLSRH", "C0JL6CGQ2"]);
    assert_eq!(read(&cli), read(&cli2));
}

#[test]
fn mattermost_import_and_export_to_standard_output() {
    let (dir, cli) = fresh();
    let f = data("mattermost/export.jsonl");
    let out = cli.ok(&["import", "mattermost", &f]);
    assert!(out.contains("into tenant gryffindor"), "{out}");
    assert!(out.contains("21 messages written"), "{out}");
    assert!(
        out.contains("skipped 2: custom emoji (not stored)"),
        "{out}"
    );
    let jsonl = cli.ok(&["export", "tenant", "gryffindor", "--format", "mattermost"]);
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "version");
    let path = dir.path().join("back.jsonl");
    std::fs::write(&path, &jsonl).unwrap();
    let (_d2, cli2) = fresh();
    let j = json(&cli2.ok(&["import", "mattermost", "--json", path.to_str().unwrap()]));
    assert_eq!(j["messages_written"], 21);
    let read = |c: &Cli| c.ok(&["read", "gryffindor", "gryffindor/dumbledores-army"]);
    assert_eq!(read(&cli), read(&cli2));
    // One conversation.
    let one = cli.ok(&[
        "export",
        "--format",
        "mattermost",
        "conversation",
        "gryffindor",
        "gryffindor/dumbledores-army",
    ]);
    assert_eq!(
        one.lines().filter(|l| l.contains("\"post\"")).count(),
        4,
        "{one}"
    );
}

#[test]
fn malformed_input_fails_naming_the_line_and_irc_has_json() {
    let (dir, cli) = fresh();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"version\",\"version\":1}\n{not json\n").unwrap();
    let err = cli.fails(&["import", "mattermost", bad.to_str().unwrap()], 1);
    assert!(
        err.contains("bad.jsonl, line 2") && err.contains("run the same import again"),
        "{err}"
    );
    let notzip = dir.path().join("not.zip");
    std::fs::write(&notzip, "PK\u{3}\u{4} truncated").unwrap();
    let err = cli.fails(&["import", "slack", notzip.to_str().unwrap()], 1);
    assert!(
        err.contains("not.zip") && err.contains("zip archive"),
        "{err}"
    );
    let err = cli.fails(&["import", "slack", "/nonexistent/x.zip"], 1);
    assert!(err.contains("no such file"), "{err}");
    let j = json(&cli.ok(&["import", "irc", "--json", &data("irc")]));
    assert_eq!(j["source"], "irc");
    assert_eq!(j["messages_written"], 2420);
    assert_eq!(j["files"], 2);
}

#[test]
fn export_format_flag_mistakes_are_usage_errors() {
    let (_dir, cli) = fresh();
    cli.ok(&["import", "slack", &data("slack/testarchive.zip")]);
    let e = cli.fails(&["export", "--format", "slack", "tenant", "T0BMHLSRH"], 2);
    assert!(e.contains("--out FILE.zip"), "{e}");
    let e = cli.fails(
        &[
            "export",
            "--format",
            "mattermost",
            "user",
            "T0BMHLSRH",
            "U0BMS113R",
        ],
        2,
    );
    assert!(e.contains("not a user"), "{e}");
    let e = cli.fails(
        &[
            "export",
            "--format",
            "mattermost",
            "tenant",
            "T0BMHLSRH",
            "--third-party",
        ],
        2,
    );
    assert!(e.contains("--third-party"), "{e}");
}
