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
    let to_file = cli.run(&["export", "user", t, nick, "--out", f]);
    assert!(to_file.status.success());
    let said = String::from_utf8_lossy(&to_file.stderr).to_string();
    assert!(
        said.contains(&format!("exported {} records", ls.len() - 1)),
        "{said}"
    );
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
    // Not even as a member: a third party does not learn that the restricted user was there.
    let elgaton = ls[1]["user"].as_u64().unwrap();
    let members = |export: &str| -> Vec<u64> {
        jsonl(export)
            .iter()
            .filter(|l| l["type"] == "conversation")
            .flat_map(|l| l["members"].as_array().unwrap().clone())
            .map(|m| m["user"].as_u64().unwrap())
            .collect()
    };
    assert!(members(&conv).contains(&elgaton));
    assert!(!members(&third).contains(&elgaton));
    cli.ok(&["export", "user", t, nick]);

    // Erasure.
    cli.fails(&["user", "erase", t, nick], 2);
    let out = cli.ok(&["user", "erase", t, nick, "--yes", "--json"]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["outcome"], "shredded");
    let e = cli.fails(&["user", "access", t, nick], 1);
    assert!(e.contains("no user \"elgaton\""), "{e}");
    assert!(
        e.contains("an erased user's name no longer leads to them"),
        "{e}"
    );
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
    // The audit entry counts the records as the `end` record does (lines before it).
    assert_eq!(entries[2]["what"]["records"], ls.last().unwrap()["records"]);
    assert_eq!(
        entries[2]["what"]["records"].as_u64().unwrap(),
        ls.len() as u64 - 1
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

/// The user's message ids in a conversation, from `user access --messages` (role `sent`).
fn sent_ids(access: &str) -> Vec<String> {
    access
        .lines()
        .filter(|l| l.contains("\tsent\t"))
        .map(|l| l.trim_start().split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn consent_for_an_extension_through_the_cli_and_exit_7_when_refused() {
    let cli = Cli::with_sample();
    let (t, nick, conv) = ("ubuntu", "elgaton", "2011-11-13_02");
    let ext = "com.example.summary";
    let ids = sent_ids(&cli.ok(&["user", "access", t, nick, "--messages"]));
    let id = ids[0].as_str();

    // Organisation-wide consent for a personal scope is refused; then registered properly.
    let e = cli.fails(
        &[
            "extension",
            "register",
            t,
            ext,
            "--name",
            "Summary",
            "--scope",
            "read-messages",
            "--org-scope",
            "read-messages",
        ],
        1,
    );
    assert!(e.contains("organisation-level scopes only"), "{e}");
    let out = cli.ok(&[
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
    ]);
    assert!(
        out.contains("registered extension com.example.summary"),
        "{out}"
    );
    cli.ok(&["extension", "add", t, ext, conv]);
    let list = cli.ok(&["extension", "list", t]);
    assert!(
        list.contains("read-messages,read-profile,read-conversations"),
        "{list}"
    );
    assert!(
        list.contains("organisation:   read-conversations until"),
        "{list}"
    );

    // Without consent: exit 7, the message says what to do.
    let e = cli.fails(&["extension", "message", t, ext, conv, id], 7);
    assert!(e.contains("consent required"), "{e}");
    assert!(e.contains("chatvault consent grant"), "{e}");
    assert!(!e.trim().contains("  "), "{e}");
    cli.fails(&["extension", "profile", t, ext, nick], 7);
    let page = cli.ok(&["extension", "read", t, ext, conv, "--limit", "5000"]);
    assert!(page.contains("0 messages handed to"), "{page}");

    // Granted: readable; only elgaton's messages go through.
    let out = cli.ok(&[
        "consent",
        "grant",
        t,
        nick,
        ext,
        "--scope",
        "read-messages",
        "--valid-for",
        "30d",
    ]);
    assert!(
        out.contains("consents to com.example.summary for read-messages until"),
        "{out}"
    );
    let m = cli.ok(&["extension", "message", t, ext, conv, id]);
    assert!(m.starts_with(&format!("{id}\t")), "{m}");
    let page = cli.ok(&["extension", "read", t, ext, conv, "--limit", "5000"]);
    assert!(
        page.contains(&format!(
            "{} handed to",
            if ids.len() == 1 {
                "1 message".to_string()
            } else {
                format!("{} messages", ids.len())
            }
        )),
        "{page}"
    );
    let e = cli.fails(&["extension", "profile", t, ext, nick], 7);
    assert!(e.contains("does not include it"), "{e}");
    let l = cli.ok(&["consent", "list", t, nick]);
    assert!(
        l.contains("com.example.summary (Summary): read-messages granted"),
        "{l}"
    );

    // The consent is in the user's export.
    let export = cli.ok(&["export", "user", t, nick]);
    let consent: Vec<serde_json::Value> = jsonl(&export)
        .into_iter()
        .filter(|l| l["type"] == "consent")
        .collect();
    assert_eq!(consent.len(), 1);
    assert_eq!(consent[0]["extension_id"], ext);

    // Restricted: refused (exit 1, "restricted"), lifted: readable again.
    cli.ok(&["user", "restrict", t, nick, "--on"]);
    let e = cli.fails(&["extension", "message", t, ext, conv, id], 1);
    assert!(e.contains("restricted the processing"), "{e}");
    cli.ok(&["user", "restrict", t, nick, "--off"]);
    cli.ok(&["extension", "message", t, ext, conv, id]);

    // Revoked: refused at once.
    let out = cli.ok(&["consent", "revoke", t, nick, ext]);
    assert!(out.contains("revoked"), "{out}");
    cli.fails(&["extension", "message", t, ext, conv, id], 7);

    // Audited: registration, grants, revocation, each access (allowed and refused).
    let show = cli.ok(&["audit", "show", "--json"]);
    assert!(!show.contains(ext) && !show.contains(nick), "{show}");
    let doc: serde_json::Value = serde_json::from_str(show.trim()).unwrap();
    let entries = doc["entries"].as_array().unwrap();
    let count = |ev: &str| entries.iter().filter(|e| e["what"]["event"] == ev).count();
    assert_eq!(count("extension_registered"), 1);
    assert_eq!(count("consent_granted"), 2); // organisation-wide, then elgaton's
    assert_eq!(count("consent_revoked"), 1);
    assert_eq!(count("extension_access"), 9);
    let refused = entries
        .iter()
        .filter(|e| e["outcome"]["error"] == "ConsentRequired")
        .count();
    assert_eq!(refused, 4);
    let text = cli.ok(&["audit", "show"]);
    assert!(text.contains("\textension #"), "{text}");
    cli.ok(&["audit", "verify"]);

    // Removed: its grants go with it.
    cli.ok(&["extension", "remove", t, ext]);
    let e = cli.fails(&["extension", "message", t, ext, conv, id], 1);
    assert!(e.contains("not found"), "{e}");
    let help = cli.ok(&["extension", "message", "--help"]);
    assert!(help.contains("7 consent required"), "{help}");
}

#[test]
fn an_export_encrypted_with_age_decrypts_from_a_file_and_from_a_pipe() {
    use std::io::Read;
    let cli = Cli::with_sample();
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    let decrypt = |b: &[u8]| -> Vec<u8> {
        let d = age::Decryptor::new(b).unwrap();
        let mut out = Vec::new();
        d.decrypt(std::iter::once(&id as &dyn age::Identity))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    // Piped to standard output.
    let o = cli.run(&[
        "export",
        "conversation",
        "ubuntu",
        "2011-11-13_02",
        "--age-recipient",
        &r,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.starts_with(b"age-encryption.org/v1\n"));
    let plain = decrypt(&o.stdout);
    let ls = jsonl(std::str::from_utf8(&plain).unwrap());
    assert_eq!(ls.last().unwrap()["type"], "end");
    assert!(ls.len() > 1000);
    // A body of the plain export is not in the encrypted one.
    let body = ls
        .iter()
        .filter_map(|l| l["body"].as_str())
        .find(|b| b.len() > 30)
        .unwrap()
        .to_string();
    assert!(!o.stdout.windows(body.len()).any(|w| w == body.as_bytes()));
    // To a file.
    let file = cli.path("conv.jsonl.age");
    let f = file.to_str().unwrap();
    let o = cli.run(&[
        "export",
        "conversation",
        "ubuntu",
        "2011-11-13_02",
        "--age-recipient",
        &r,
        "--out",
        f,
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("encrypted to 1 age recipient"));
    let from_file = decrypt(&std::fs::read(&file).unwrap());
    assert_eq!(
        jsonl(std::str::from_utf8(&from_file).unwrap()).len(),
        ls.len()
    );
    // A bad recipient is bad usage, before the vault is opened.
    let e = cli.fails(
        &["export", "tenant", "ubuntu", "--age-recipient", "age1nope"],
        2,
    );
    assert!(e.contains("not an age X25519 recipient"), "{e}");
}
