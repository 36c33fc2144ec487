//! `--json` on ls, read, retention, hold, receipts verify, compact and init (shapes pinned);
//! exit codes in every command's --help; and the fresh-eyes findings: `read` notes shredded
//! messages, `hold release` says which queued erasures it carried out, restore refuses a data
//! directory another process holds, the exit-6 message does not blame only shreds, no WARN
//! logs without CHATVAULT_LOG, no progress bar when stderr is piped.

mod common;

use std::process::Command;

use chatvault::{Error, Vault, VaultOptions};
use common::{keys, set, Cli};
use serde_json::Value;

#[test]
fn json_shapes_of_ls_read_retention_hold_receipts_compact_and_init() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = Cli::at(&dir.path().join("data"), &dir.path().join("root.key"));
    let i = fresh.json(&["init", "--json"]);
    assert_eq!(keys(&i), set(&["data", "key_file", "format_version"]));
    assert_eq!(i["format_version"], 2);

    let cli = Cli::with_sample();
    let ls = cli.json(&["ls", "--json"]);
    assert_eq!(keys(&ls), set(&["tenants"]));
    assert_eq!(
        keys(&ls["tenants"][0]),
        set(&["tenant", "tenant_id", "conversations"])
    );
    let ls = cli.json(&["ls", "rust", "--json"]);
    assert_eq!(keys(&ls), set(&["tenant", "tenant_id", "conversations"]));
    assert_eq!(
        keys(&ls["conversations"][0]),
        set(&[
            "conversation",
            "conversation_id",
            "title",
            "visible_messages",
            "last_message_id"
        ])
    );
    assert_eq!(ls["conversations"][0]["visible_messages"], 1200);

    let r = cli.json(&["read", "rust", "rust.0", "--limit", "2", "--json"]);
    assert_eq!(
        keys(&r),
        set(&[
            "tenant",
            "tenant_id",
            "conversation",
            "conversation_id",
            "messages",
            "not_shown"
        ])
    );
    assert_eq!(r["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        keys(&r["messages"][0]),
        set(&[
            "id",
            "author",
            "author_id",
            "sent_at_ms",
            "kind",
            "body",
            "reply_to",
            "also_reply_to",
            "revision",
            "edited_at_ms",
            "deleted_at_ms",
            "attachments"
        ])
    );
    assert_eq!(r["messages"][0]["author"], "talchas");
    assert_eq!(r["not_shown"], serde_json::json!([]));

    let s = cli.json(&["retention", "show", "rust", "rust.0", "--changes", "--json"]);
    assert_eq!(keys(&s), set(&["tenant", "conversation", "changes"]));
    assert_eq!(
        keys(&s["tenant"]),
        set(&[
            "tenant",
            "tenant_id",
            "default",
            "members_may_change",
            "legal_holds"
        ])
    );
    assert_eq!(s["tenant"]["default"]["retention_ms"], "forever");
    assert_eq!(
        keys(&s["conversation"]),
        set(&[
            "conversation",
            "conversation_id",
            "override",
            "effective",
            "visible_messages",
            "last_message_id"
        ])
    );
    let set_r = cli.json(&[
        "retention",
        "set",
        "rust",
        "--retention",
        "36500d",
        "--json",
    ]);
    assert_eq!(
        keys(&set_r),
        set(&["updated", "tenant", "conversation", "newly_expired"])
    );
    assert_eq!(set_r["updated"], "tenant");
    assert_eq!(
        set_r["tenant"]["default"]["retention_ms"],
        36_500u64 * 86_400_000
    );
    let s = cli.json(&["retention", "show", "rust", "--changes", "--json"]);
    assert_eq!(
        keys(&s["changes"][0]),
        set(&[
            "at_ms",
            "by",
            "by_id",
            "as_admin",
            "conversation",
            "conversation_id",
            "change"
        ])
    );

    let h = cli.json(&[
        "hold",
        "add",
        "rust",
        "--custodian",
        "talchas",
        "--reason",
        "case 1",
        "--json",
    ]);
    assert_eq!(
        keys(&h),
        set(&[
            "id",
            "scope",
            "reason",
            "placed_by",
            "placed_by_id",
            "placed_at_ms"
        ])
    );
    assert_eq!(h["scope"]["kind"], "custodian");
    assert_eq!(h["scope"]["custodian"], "talchas");
    let l = cli.json(&["hold", "list", "rust", "--json"]);
    assert_eq!(keys(&l), set(&["tenant", "tenant_id", "holds"]));
    assert_eq!(l["holds"][0], h);
    let rel = cli.json(&["hold", "release", "rust", &h["id"].to_string(), "--json"]);
    assert_eq!(
        keys(&rel),
        set(&[
            "tenant",
            "tenant_id",
            "released",
            "carried_out",
            "key_paths_pending"
        ])
    );
    assert_eq!(rel["carried_out"], serde_json::json!([]));

    let rv = cli.json(&["receipts", "verify", "--json"]);
    assert_eq!(keys(&rv), set(&["intact", "entries", "head", "broken"]));
    assert_eq!(rv["intact"], true);

    let c = cli.json(&["compact", "--json"]);
    assert_eq!(
        keys(&c),
        set(&[
            "scope",
            "tenant",
            "conversation",
            "key_ranges",
            "elapsed_ms"
        ])
    );
    assert_eq!(c["scope"], "vault");
    let c = cli.json(&["compact", "--tenant", "rust", "--json"]);
    assert_eq!(c["scope"], "tenant");
    assert!(c["key_ranges"].as_u64().unwrap() > 0, "{c}");

    // Nothing on stderr when it is piped: no progress bar, no logs.
    for args in [&["verify"][..], &["compact"], &["purge", "--dry-run"]] {
        let o = cli.run(args);
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{args:?}");
    }
}

#[test]
fn hold_release_and_read_say_what_happened_to_shredded_messages() {
    let cli = Cli::with_sample();
    let first = cli.json(&["read", "rust", "rust.0", "--limit", "40", "--json"]);
    let other = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["author"].as_str().unwrap().to_string())
        .find(|a| a != "talchas")
        .expect("another author");
    // Two holds, one erasure queued under each.
    let mut holds = Vec::new();
    for nick in ["talchas", other.as_str()] {
        let h = cli.json(&[
            "hold",
            "add",
            "rust",
            "--custodian",
            nick,
            "--reason",
            "matter",
            "--json",
        ]);
        holds.push(h["id"].to_string());
        let q = cli.ok(&["shred", "user", "rust", nick, "--yes", "--queue-if-held"]);
        assert!(q.starts_with("queued the erasure"), "{q}");
    }
    let out = cli.ok(&["hold", "release", "rust", &holds[0]]);
    assert!(
        out.contains("carried out 1 erasure queued under it"),
        "{out}"
    );
    assert!(out.contains("shredded user "), "{out}");
    assert!(out.contains("run `chatvault purge`"), "{out}");
    let rel = cli.json(&["hold", "release", "rust", &holds[1], "--json"]);
    let done = rel["carried_out"].as_array().unwrap();
    assert_eq!(done.len(), 1, "{rel}");
    assert_eq!(
        keys(&done[0]),
        set(&["seq", "queued_seq", "scope", "at_ms", "key_ranges"])
    );
    assert_eq!(done[0]["scope"]["kind"], "user");

    // talchas wrote message 1: read says it was shredded, instead of starting silently at 2.
    let text = cli.ok(&["read", "rust", "rust.0", "--limit", "3"]);
    let line1 = text.lines().next().unwrap();
    assert!(
        line1.starts_with("#1") && line1.contains("shredded: their keys were destroyed"),
        "{text}"
    );
    assert!(!text.contains("<talchas>"), "{text}");
    let r = cli.json(&["read", "rust", "rust.0", "--limit", "3", "--json"]);
    assert_eq!(r["not_shown"][0]["from"], 1);
    assert_eq!(r["not_shown"][0]["reason"], "shredded");
    assert_eq!(r["messages"].as_array().unwrap().len(), 3);
    // Backward from the end: the same notes, newest first; counts add up.
    let r = cli.json(&["read", "rust", "rust.0", "--backward", "--json"]);
    let shown = r["messages"].as_array().unwrap().len() as u64;
    let hidden: u64 = r["not_shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(shown + hidden, 1200, "every id is shown or explained");

    // A shred and a purge whose root key cannot get new versions warn in the library; the CLI
    // says it in its output or error (exit 3) and prints no WARN log line on stderr.
    let with_env_key = |args: &[&str]| cli.run_with_env_key(args, &[]);
    let o = with_env_key(&["shred", "conversation", "ubuntu", "2011-11-13_02", "--yes"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("old copies:  NOT re-versioned yet"), "{out}");
    assert!(!err.contains("WARN"), "{err}");
    let o = with_env_key(&["purge"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.starts_with("error: purge incomplete"), "{err}");
    assert!(!err.contains("WARN"), "{err}");
}

#[test]
fn restore_refuses_a_data_directory_that_a_process_holds_open() {
    let (dir, v, p) = common::new_vault();
    common::fixture(&v, "acme", chatvault::TenantOptions::default());
    let target = dir.path().join("restored");
    match Vault::restore(v.path(), &target, p.clone(), VaultOptions::default()) {
        Err(Error::InvalidInput(m)) => {
            assert!(
                m.contains("holds open for writing, not a checkpoint"),
                "{m}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!target.exists(), "nothing written");
    // The same directory once no process holds it (a cold copy) restores.
    let data = v.path().to_path_buf();
    drop(v);
    Vault::restore(&data, &target, p, VaultOptions::default()).unwrap();
}

#[test]
fn the_retired_root_key_message_covers_expiry_as_well_as_shreds() {
    let e = Error::RootKeyVersionRetired {
        path: "/backups/cp".into(),
        needed: 1,
        held: "2".into(),
    };
    let m = e.to_string();
    assert!(
        m.contains("shredded, erased, or days whose every message expired under retention"),
        "{m}"
    );
}

#[test]
fn every_command_documents_its_exit_codes_including_8() {
    let cmds: &[&[&str]] = &[
        &["init"],
        &["ls"],
        &["read"],
        &["stats"],
        &["compact"],
        &["checkpoint"],
        &["restore"],
        &["retention", "show"],
        &["retention", "set"],
        &["hold", "add"],
        &["hold", "release"],
        &["hold", "list"],
        &["purge"],
        &["key", "rotate-root"],
        &["key", "retire-root"],
        &["verify"],
        &["shred", "tenant"],
        &["shred", "user"],
        &["receipts", "show"],
        &["receipts", "verify"],
        &["import", "irc"],
        &["export", "user"],
        &["user", "access"],
        &["audit", "verify"],
    ];
    for cmd in cmds {
        let o = Command::new(env!("CARGO_BIN_EXE_chatvault"))
            .args(*cmd)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(o.stdout).unwrap();
        assert!(help.contains("Exit codes: 0 "), "{cmd:?}:\n{help}");
        assert!(
            help.contains("8 the vault's format version cannot be used"),
            "{cmd:?}:\n{help}"
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    for code in [
        "3 purge incomplete",
        "6 the checkpoint",
        "7 consent required",
        "8 the vault",
    ] {
        assert!(help.contains(code), "{code}:\n{help}");
    }
}

/// Fresh-eyes findings of session 3, fixed: a failure under --json is also a JSON object on
/// stdout; an empty CHATVAULT_KEY_FILE counts as unset; no root key at all is bad usage (exit
/// 2, as for `init`); a queued erasure names the hold to release.
#[test]
fn json_failures_empty_key_file_variable_and_missing_key() {
    let cli = Cli::with_sample();
    // A failure under --json: the text on stderr, and {"error", "exit_code"} on stdout.
    let o = cli.run(&["ls", "nosuchtenant", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    let j: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(keys(&j), set(&["error", "exit_code"]));
    assert_eq!(j["exit_code"], 1);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(j["error"].as_str().unwrap()),
        "the same message: {err} / {j}"
    );
    // Without --json, stdout stays empty.
    let o = cli.run(&["ls", "nosuchtenant"]);
    assert!(o.stdout.is_empty());

    // CHATVAULT_KEY_FILE="" beside CHATVAULT_ROOT_KEY: no "both are given" error.
    let o = cli.run_with_env_key(&["ls"], &[("CHATVAULT_KEY_FILE", "")]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    // No key at all: exit 2 (bad usage), saying how to give one.
    let o = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args(["ls", "--data"])
        .arg(&cli.data)
        .env_remove("CHATVAULT_ROOT_KEY")
        .env("CHATVAULT_KEY_FILE", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no root key: pass --key-file FILE"));

    // A queued erasure names the command that releases its hold.
    let hold = cli.json(&[
        "hold",
        "add",
        "rust",
        "--custodian",
        "talchas",
        "--reason",
        "case",
        "--json",
    ]);
    let id = hold["id"].as_u64().unwrap();
    let out = cli.ok(&[
        "shred",
        "user",
        "rust",
        "talchas",
        "--yes",
        "--queue-if-held",
    ]);
    assert!(
        out.contains(&format!(
            "legal hold {id} covers it, so nothing is destroyed yet; it is carried out when \
             that hold is released (`chatvault hold release rust {id}`)"
        )),
        "{out}"
    );
}

/// Slack conversations are named by channel id; `ls` shows their titles, and a title given
/// where an id is wanted is answered with the id.
#[test]
fn a_slack_channel_name_leads_to_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::at(&dir.path().join("data"), &dir.path().join("root.key"));
    cli.ok(&["init"]);
    let zip = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/slack"),
    )
    .unwrap()
    .map(|e| e.unwrap().path())
    .find(|p| p.extension().is_some_and(|x| x == "zip"))
    .unwrap();
    cli.ok(&["import", "slack", zip.to_str().unwrap()]);
    let tenant = cli.ok(&["ls"]).split('\t').next().unwrap().to_string();
    let ls = cli.ok(&["ls", &tenant]);
    let line = ls.lines().next().unwrap();
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), 4, "id, count, last id, title: {ls}");
    let (id, title) = (cols[0], cols[3]);
    let err = cli.fails(&["read", &tenant, title], 1);
    assert!(
        err.contains(&format!(
            "no conversation with the id \"{title}\", but one is titled so: give the id ({id})"
        )),
        "{err}"
    );
}

/// Fresh-eyes findings of this session: a usage error under --json is one JSON object too
/// (exit 2); `#N` names a tenant, conversation or user by the internal id that receipts print;
/// opening an old copy whose root key version a shred retired says so (exit 6), not "wrong
/// key".
#[test]
fn usage_errors_under_json_internal_ids_and_old_copies() {
    let cli = Cli::with_sample();
    let o = cli.run(&["ls", "--json", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8(o.stdout).unwrap();
    let j: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(j["exit_code"], 2);
    assert!(j["error"].as_str().unwrap().contains("--bogus"), "{j}");
    // --help stays text.
    let o = cli.run(&["ls", "--json", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8(o.stdout).unwrap().starts_with("List"));

    // `#N`, from --json ids.
    let ls = cli.json(&["ls", "rust", "--json"]);
    let (t, c) = (
        ls["tenant_id"].as_u64().unwrap(),
        ls["conversations"][0]["conversation_id"].as_u64().unwrap(),
    );
    let cp = cli.path("cp");
    cli.ok(&["checkpoint", cp.to_str().unwrap()]);
    let j = cli.json(&[
        "shred",
        "conversation",
        &format!("#{t}"),
        &format!("#{c}"),
        "--yes",
        "--json",
    ]);
    assert_eq!(j["scope"]["kind"], "conversation");
    let e = cli.fails(&["read", "rust", &format!("#{}", c + 1000)], 1);
    assert!(
        e.contains(&format!("has no conversation #{}", c + 1000)),
        "{e}"
    );

    // The checkpoint from before the shred, opened in place: the retired version is named.
    let o = cli.run_on(&cp, &["ls"]);
    assert_eq!(o.status.code(), Some(6));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("needs root key version 1"), "{err}");
}
