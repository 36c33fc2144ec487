//! `chatvault user access|rectify|restrict|erase`, `chatvault export` and `chatvault audit`
//! end to end on the bundled IRC sample: one user walked through access, rectification,
//! export, restriction and erasure; the audit trail lists each step (field names, no values)
//! and `audit verify` catches tampering (exit 5).

mod common;

use common::Cli;

fn jsonl(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn one_user_through_access_rectification_export_restriction_and_erasure() {
    let cli = Cli::with_sample();
    let (t, nick) = ("ubuntu", "elgaton");

    // Access.
    let out = cli.ok(&["user", "access", t, nick, "--messages"]);
    assert!(out.contains("display name:  elgaton"), "{out}");
    assert!(out.contains("e-mail:        -"), "{out}");
    assert!(out.contains("processing:    not restricted"), "{out}");
    assert!(out.contains("2011-11-13_02"), "{out}");
    assert!(
        out.contains("\tsent\t") && out.contains("\treceived\t"),
        "{out}"
    );

    // Rectification.
    let out = cli.ok(&[
        "user",
        "rectify",
        t,
        nick,
        "--email",
        "elgaton@old.example",
        "--set-field",
        "team=Núcleo",
    ]);
    assert!(out.contains("rectified email, fields.team"), "{out}");
    cli.ok(&["user", "rectify", t, nick, "--email", "elgaton@new.example"]);
    let out = cli.ok(&["user", "access", t, nick]);
    assert!(out.contains("e-mail:        elgaton@new.example"), "{out}");
    assert!(out.contains("field team: Núcleo"), "{out}");

    // Export, to standard output (piped: no progress bar) and to a file.
    let o = cli.run(&["export", "user", t, nick]);
    assert!(o.status.success());
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ls = jsonl(std::str::from_utf8(&o.stdout).unwrap());
    assert_eq!(ls[0]["type"], "header");
    assert_eq!(ls[1]["email"], "elgaton@new.example");
    assert_eq!(ls[1]["fields"]["team"], "Núcleo");
    assert_eq!(ls.last().unwrap()["type"], "end");
    let n_msgs = ls.iter().filter(|l| l["type"] == "message").count();
    assert!(n_msgs > 10);
    let file = cli.path("elgaton.jsonl");
    let f = file.to_str().unwrap();
    cli.ok(&["export", "user", t, nick, "--out", f]);
    assert_eq!(std::fs::read(&file).unwrap().len(), o.stdout.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let e = cli.fails(&["export", "user", t, nick, "--out", f], 1);
    assert!(e.contains("already exists"), "{e}");
    let conv = cli.ok(&["export", "conversation", t, "2011-11-13_02"]);
    assert!(jsonl(&conv).len() > 1000);
    let ten = cli.ok(&["export", "tenant", t]);
    assert_eq!(jsonl(&ten)[1]["type"], "tenant");

    // Restriction: out of third-party exports, still in the user's own.
    cli.ok(&["user", "restrict", t, nick, "--on"]);
    let out = cli.ok(&["user", "access", t, nick]);
    assert!(out.contains("processing:    restricted since"), "{out}");
    let e = cli.fails(&["export", "user", t, nick, "--third-party"], 1);
    assert!(e.contains("restricted the processing"), "{e}");
    let third = cli.ok(&[
        "export",
        "conversation",
        t,
        "2011-11-13_02",
        "--third-party",
    ]);
    assert!(!third.contains("\"external_id\":\"elgaton\""));
    assert!(conv.contains("\"external_id\":\"elgaton\""));
    cli.ok(&["export", "user", t, nick]);

    // Erasure.
    cli.fails(&["user", "erase", t, nick], 2);
    let out = cli.ok(&["user", "erase", t, nick, "--yes", "--json"]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["outcome"], "shredded");
    let e = cli.fails(&["user", "access", t, nick], 1);
    assert!(e.contains("no user \"elgaton\""), "{e}");
    let e = cli.fails(&["export", "user", t, nick], 1);
    assert!(e.contains("no user"), "{e}");
    let after = cli.ok(&["export", "conversation", t, "2011-11-13_02"]);
    assert!(!after.contains("elgaton@new.example"));
    assert!(!after.contains("\"external_id\":\"elgaton\""));

    // The audit trail: every step, field names and no values.
    let show = cli.ok(&["audit", "show", "--json"]);
    assert!(!show.contains("elgaton"), "{show}");
    assert!(!show.contains("example"), "{show}");
    assert!(!show.contains("Núcleo"), "{show}");
    let doc: serde_json::Value = serde_json::from_str(show.trim()).unwrap();
    let events: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec![
            "rectification",
            "rectification",
            "export",
            "export",
            "export",
            "export",
            "restriction",
            "export",
            "export",
            "export",
            "erasure",
            "export",
        ],
        "{show}"
    );
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(
        entries[0]["what"]["fields"],
        serde_json::json!(["email", "fields.team"])
    );
    assert_eq!(entries[7]["outcome"]["status"], "failed");
    assert_eq!(entries[7]["outcome"]["error"], "Restricted");
    let text = cli.ok(&["audit", "show"]);
    assert!(text.contains("rectified email of user #"), "{text}");
    let v = cli.ok(&["audit", "verify"]);
    assert!(v.starts_with("audit trail intact: 12 entries"), "{v}");
    let head = v
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()
        .to_string();
    cli.ok(&["audit", "verify", "--head", &head]);

    // Tampering: an entry edited, then the end cut off with the kept head.
    let key = |seq: u64| {
        let mut k = vec![0x12, 2];
        k.extend_from_slice(&seq.to_be_bytes());
        k
    };
    let orig = {
        let db = common::open_raw(&cli.data);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        let orig = db.get_cf(meta, key(3)).unwrap().unwrap();
        let mut x = orig.clone();
        x[60] ^= 0x40;
        db.put_cf(meta, key(3), x).unwrap();
        orig
    };
    let e = cli.fails(&["audit", "verify"], 5);
    assert!(e.contains("audit trail broken at entry 3 (edited)"), "{e}");
    {
        let db = common::open_raw(&cli.data);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        db.put_cf(meta, key(3), orig).unwrap();
        db.delete_cf(meta, key(11)).unwrap();
    }
    cli.ok(&["audit", "verify"]);
    let e = cli.fails(&["audit", "verify", "--head", &head], 5);
    assert!(
        e.contains("audit trail broken at entry 11 (cut off the end)"),
        "{e}"
    );
    // The receipts are another chain: intact.
    cli.ok(&["receipts", "verify"]);
}
