//! `--json` on `user access|rectify|restrict`, `export` (summary on stdout, the export in
//! --out), `audit verify`, `key retire-root`, `extension ...` and `consent ...`: one JSON
//! object on stdout, internal ids as numbers, exit codes as without --json.

mod common;

use common::{keys, set, Cli};
use serde_json::Value;

#[test]
fn json_of_user_export_audit_verify_and_retire_root() {
    let cli = Cli::with_sample();
    let (t, nick) = ("ubuntu", "elgaton");

    let a = cli.json(&["user", "access", t, nick, "--messages", "--json"]);
    assert_eq!(
        keys(&a),
        set(&[
            "tenant",
            "tenant_id",
            "user",
            "user_id",
            "display_name",
            "email",
            "phone",
            "fields",
            "restricted_since_ms",
            "consents",
            "conversations",
        ])
    );
    assert_eq!(a["user"], nick);
    assert_eq!(a["display_name"], nick);
    assert!(a["user_id"].is_u64() && a["tenant_id"].is_u64());
    assert!(a["email"].is_null() && a["restricted_since_ms"].is_null());
    let c = &a["conversations"][0];
    assert_eq!(
        keys(c),
        set(&[
            "conversation",
            "conversation_id",
            "joined_at_ms",
            "left_at_ms",
            "messages"
        ])
    );
    assert!(c["conversation_id"].is_u64());
    let msgs: Vec<&Value> = a["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["messages"].as_array().unwrap())
        .collect();
    assert!(msgs.iter().any(|m| m["role"] == "sent"));
    assert!(msgs.iter().any(|m| m["role"] == "received"));
    assert_eq!(
        keys(msgs[0]),
        set(&["id", "sent_at_ms", "role", "author_id", "body"])
    );
    assert!(msgs[0]["sent_at_ms"].as_i64().unwrap() > 1_300_000_000_000);
    let plain = cli.json(&["user", "access", t, nick, "--json"]);
    assert!(plain["conversations"][0]["messages"].is_null());

    let r = cli.json(&[
        "user",
        "rectify",
        t,
        nick,
        "--email",
        "e@new.example",
        "--json",
    ]);
    assert_eq!(
        keys(&r),
        set(&["tenant", "tenant_id", "user", "user_id", "changed"])
    );
    assert_eq!(r["changed"], serde_json::json!(["email"]));
    assert_eq!(r["user_id"], a["user_id"]);
    let r = cli.json(&[
        "user",
        "rectify",
        t,
        nick,
        "--email",
        "e@new.example",
        "--json",
    ]);
    assert_eq!(r["changed"], serde_json::json!([]));

    // Export: the summary on stdout, the export in --out; --json without --out is exit 2.
    let e = cli.fails(&["export", "user", t, nick, "--json"], 2);
    assert!(e.contains("--out"), "{e}");
    let f = cli.path("elgaton.jsonl");
    let s = cli.json(&[
        "export",
        "user",
        t,
        nick,
        "--json",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert_eq!(
        keys(&s),
        set(&[
            "scope",
            "tenant",
            "tenant_id",
            "user",
            "user_id",
            "conversation",
            "conversation_id",
            "file",
            "records",
            "messages",
            "users",
            "conversations",
            "consents",
            "restricted_users_left_out",
            "encrypted",
            "third_party",
        ])
    );
    assert_eq!(s["scope"], "user");
    assert_eq!(s["user_id"], a["user_id"]);
    let lines = std::fs::read_to_string(&f).unwrap().lines().count() as u64;
    assert_eq!(s["records"].as_u64().unwrap() + 1, lines);
    assert!(s["messages"].as_u64().unwrap() > 0);
    let f = cli.path("conv.jsonl");
    let s = cli.json(&[
        "export",
        "conversation",
        t,
        "2011-11-13_02",
        "--json",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert_eq!(s["scope"], "conversation");
    assert!(s["conversation_id"].is_u64() && s["user_id"].is_null());
    let f = cli.path("slack.zip");
    cli.fails(
        &[
            "export",
            "tenant",
            t,
            "--format",
            "slack",
            "--json",
            "--out",
            f.to_str().unwrap(),
        ],
        2,
    );

    let r = cli.json(&["user", "restrict", t, nick, "--on", "--json"]);
    assert_eq!(
        keys(&r),
        set(&["tenant", "tenant_id", "user", "user_id", "restricted"])
    );
    assert_eq!(r["restricted"], true);
    let a = cli.json(&["user", "access", t, nick, "--json"]);
    assert!(a["restricted_since_ms"].is_i64());
    let r = cli.json(&["user", "restrict", t, nick, "--off", "--json"]);
    assert_eq!(r["restricted"], false);

    let v = cli.json(&["audit", "verify", "--json"]);
    assert_eq!(keys(&v), set(&["intact", "entries", "head", "broken"]));
    assert_eq!(v["intact"], true);
    assert!(v["broken"].is_null());
    assert!(v["entries"].as_u64().unwrap() >= 4);
    let head = v["head"].as_str().unwrap().to_string();
    let v = cli.json(&["audit", "verify", "--head", &head, "--json"]);
    assert_eq!(v["head"], head.as_str());

    cli.ok(&["key", "rotate-root"]);
    let k = cli.json(&["key", "retire-root", "1", "--json"]);
    assert_eq!(keys(&k), set(&["retired_root_version"]));
    assert_eq!(k["retired_root_version"], 1);
    // An error is text on stderr and the same exit code.
    let e = cli.fails(&["key", "retire-root", "1", "--json"], 1);
    assert!(!e.trim_start().starts_with('{'), "{e}");
}

#[test]
fn json_of_extension_and_consent() {
    let cli = Cli::with_sample();
    let (t, nick, conv) = ("ubuntu", "elgaton", "2011-11-13_02");
    let ext = "com.example.summary";

    let r = cli.json(&[
        "extension",
        "register",
        t,
        ext,
        "--name",
        "Summary",
        "--scope",
        "read-messages",
        "--scope",
        "read-profile",
        "--scope",
        "read-conversations",
        "--org-scope",
        "read-conversations",
        "--org-valid-for",
        "1d",
        "--json",
    ]);
    assert_eq!(
        keys(&r),
        set(&[
            "tenant",
            "tenant_id",
            "extension",
            "extension_id",
            "name",
            "scopes",
            "org_scopes",
            "org_valid_for_ms",
            "bot_user_id",
        ])
    );
    assert!(r["extension_id"].is_u64());
    assert_eq!(r["org_valid_for_ms"], 86_400_000);
    assert_eq!(r["org_scopes"], serde_json::json!(["read-conversations"]));

    let a = cli.json(&["extension", "add", t, ext, conv, "--json"]);
    assert_eq!(a["added"], true);
    assert!(a["conversation_id"].is_u64());
    let l = cli.json(&["extension", "list", t, "--json"]);
    assert_eq!(keys(&l), set(&["tenant", "tenant_id", "extensions"]));
    let e = &l["extensions"][0];
    assert_eq!(
        keys(e),
        set(&[
            "extension",
            "extension_id",
            "name",
            "scopes",
            "conversation_ids",
            "bot_user_id",
            "registered_at_ms",
            "org_grant",
        ])
    );
    assert_eq!(e["extension_id"], r["extension_id"]);
    assert_eq!(
        e["conversation_ids"],
        serde_json::json!([a["conversation_id"]])
    );
    assert_eq!(e["org_grant"]["live"], true);

    // Refused without consent: exit 7 with --json too, the error as text on stderr.
    let err = cli.fails(&["extension", "profile", t, ext, nick, "--json"], 7);
    assert!(err.contains("consent required"), "{err}");
    let p = cli.json(&["extension", "read", t, ext, conv, "--json"]);
    assert_eq!(p["messages"], serde_json::json!([]));

    let g = cli.json(&[
        "consent",
        "grant",
        t,
        nick,
        ext,
        "--scope",
        "read-messages",
        "--scope",
        "read-profile",
        "--valid-for",
        "30d",
        "--json",
    ]);
    assert_eq!(
        keys(&g),
        set(&[
            "tenant",
            "tenant_id",
            "user",
            "user_id",
            "extension",
            "extension_id",
            "scopes",
            "granted_at_ms",
            "expires_at_ms",
        ])
    );
    assert_eq!(
        g["expires_at_ms"].as_i64().unwrap() - g["granted_at_ms"].as_i64().unwrap(),
        30 * 86_400_000
    );
    let c = cli.json(&["consent", "list", t, nick, "--json"]);
    assert_eq!(c["consents"][0]["extension"], ext);
    assert_eq!(c["consents"][0]["live"], true);

    let p = cli.json(&[
        "extension",
        "read",
        t,
        ext,
        conv,
        "--limit",
        "5000",
        "--json",
    ]);
    assert_eq!(
        keys(&p),
        set(&[
            "tenant",
            "tenant_id",
            "extension",
            "conversation",
            "conversation_id",
            "messages",
            "withheld",
            "next",
        ])
    );
    let msgs = p["messages"].as_array().unwrap();
    assert!(!msgs.is_empty());
    assert!(msgs.iter().all(|m| m["author_id"] == g["user_id"]));
    let id = msgs[0]["id"].as_u64().unwrap().to_string();
    let m = cli.json(&["extension", "message", t, ext, conv, &id, "--json"]);
    assert_eq!(m["message"], msgs[0].clone());
    let pr = cli.json(&["extension", "profile", t, ext, nick, "--json"]);
    assert_eq!(pr["display_name"], nick);
    assert_eq!(pr["user_id"], g["user_id"]);

    let rv = cli.json(&["consent", "revoke", t, nick, ext, "--json"]);
    assert_eq!(rv["revoked"], true);
    let rv = cli.json(&["consent", "revoke", t, nick, ext, "--json"]);
    assert_eq!(rv["revoked"], false);
    let d = cli.json(&["extension", "detach", t, ext, conv, "--json"]);
    assert_eq!(d["added"], false);
    let rm = cli.json(&["extension", "remove", t, ext, "--json"]);
    assert_eq!(
        keys(&rm),
        set(&["tenant", "tenant_id", "extension", "user_consents_removed"])
    );
    let l = cli.json(&["extension", "list", t, "--json"]);
    assert_eq!(l["extensions"], serde_json::json!([]));
}
