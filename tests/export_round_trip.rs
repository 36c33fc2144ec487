//! Exports parsed back and compared with what is stored: the bundled IRC sample (a whole
//! tenant, and one user with the messages they wrote and received while a member), its
//! non-ASCII lines, and a conversation of emoji, right-to-left text and combining marks written
//! here, byte for byte. Plus two opt-in tests: the whole IRC corpus (needs ../shared/corpus)
//! and the streaming check on a large conversation.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chatvault::{
    Actor, ConversationKind, Direction, ExportOptions, MessageKind, NewMessage, TenantOptions,
    UserProfile, Vault, EXPORT_FORMAT,
};
use serde_json::Value;

fn parse(buf: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(buf).expect("an export is UTF-8");
    assert!(text.ends_with('\n'), "every record ends with a newline");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every line has exactly the fields `docs/export-schema-v1.json` gives its type: all the
/// required ones, none it does not list.
fn check_schema(ls: &[Value]) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/export-schema-v1.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for l in ls {
        let ty = l["type"].as_str().unwrap();
        let def = &schema["$defs"][ty];
        assert!(def.is_object(), "no schema for {ty}");
        let props = def["properties"].as_object().unwrap();
        let obj = l.as_object().unwrap();
        for k in obj.keys() {
            assert!(props.contains_key(k), "{ty}.{k} is not in the schema");
        }
        for r in def["required"].as_array().unwrap() {
            assert!(obj.contains_key(r.as_str().unwrap()), "{ty} lacks {r}");
        }
        assert_eq!(props["type"]["const"], ty);
    }
}

/// Header first, `end` last with the right counts.
fn check_frame(ls: &[Value], scope: &str) {
    check_schema(ls);
    let h = &ls[0];
    assert_eq!(h["type"], "header");
    assert_eq!(h["format"], EXPORT_FORMAT);
    assert_eq!(h["version"], 1);
    assert_eq!(h["scope"], scope);
    let end = ls.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["records"], ls.len() as u64 - 1);
    let msgs = ls.iter().filter(|l| l["type"] == "message").count() as u64;
    assert_eq!(end["messages"], msgs);
    for l in &ls[1..ls.len() - 1] {
        assert!(
            ["tenant", "user", "consent", "conversation", "message"]
                .contains(&l["type"].as_str().unwrap()),
            "{l}"
        );
    }
}

/// Compares a `message` record with the stored message.
fn check_message(v: &Vault, t: chatvault::TenantId, c: chatvault::ConversationId, l: &Value) {
    let id = l["id"].as_u64().unwrap();
    let m = v.get(t, c, id).unwrap();
    assert_eq!(l["body"].as_str().unwrap().as_bytes(), m.body.as_bytes());
    assert_eq!(l["author"], m.author.as_u64());
    assert_eq!(l["sent_at_ms"], m.sent_at_ms);
    assert_eq!(
        l["kind"],
        match m.kind {
            MessageKind::Text => "text",
            MessageKind::Action => "action",
        }
    );
    assert_eq!(l["reply_to"].as_u64(), m.reply_to);
    let also: Vec<u64> = l["also_reply_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(also, m.also_reply_to);
    assert_eq!(l["revision"], m.revision);
    assert_eq!(l["deleted_at_ms"].as_i64(), m.deleted_at_ms);
}

#[test]
fn irc_sample_tenant_and_user_exports_read_back_as_stored() {
    let (_d, v, _p) = common::new_vault();
    common::import_and_verify(&v, &common::sample_dir());
    let t = v.tenant("ubuntu").unwrap();
    let c = v.conversation_id(t, "2011-11-13_02").unwrap();

    let mut buf = Vec::new();
    let s = v
        .export_tenant(t, Actor::operator(), &ExportOptions::default(), &mut buf)
        .unwrap();
    let ls = parse(&buf);
    check_frame(&ls, "tenant");
    // The summary (and so the CLI and the audit entry) counts what the `end` record counts.
    assert_eq!(s.records, ls.len() as u64 - 1);
    assert_eq!(ls.last().unwrap()["records"], s.records);
    assert_eq!(ls[1]["type"], "tenant");
    assert_eq!(ls[1]["name"], "ubuntu");
    let stored: u64 = v.messages(t, c, None, Direction::Forward).unwrap().count() as u64;
    let msgs: Vec<&Value> = ls.iter().filter(|l| l["type"] == "message").collect();
    assert_eq!(msgs.len() as u64, stored);
    let mut non_ascii = 0;
    for l in &msgs {
        check_message(&v, t, c, l);
        let body = l["body"].as_str().unwrap();
        if !body.is_ascii() {
            non_ascii += 1;
            // Written as is: every non-ASCII character appears verbatim in the file.
            let text = std::str::from_utf8(&buf).unwrap();
            for ch in body.chars().filter(|c| !c.is_ascii()) {
                assert!(text.contains(ch), "{ch:?} escaped");
            }
        }
    }
    assert!(non_ascii >= 4, "the sample's non-ASCII lines: {non_ascii}");
    // Every user, with the external id (nick) stored.
    for u in ls.iter().filter(|l| l["type"] == "user") {
        let info = v
            .user(t, v.user_id(t, u["external_id"].as_str().unwrap()).unwrap())
            .unwrap();
        assert_eq!(u["user"], info.id.as_u64());
        assert_eq!(u["display_name"], info.profile.display_name.as_str());
    }

    // One user: what they wrote, and what they received while a member (the import makes
    // each nick a member from their first line).
    let nick = "ubottu";
    let u = v.user_id(t, nick).unwrap();
    let mut buf = Vec::new();
    v.export_user(t, Actor::member(u), u, &ExportOptions::default(), &mut buf)
        .unwrap();
    let ls = parse(&buf);
    check_frame(&ls, "user");
    assert_eq!(ls[1]["type"], "user");
    assert_eq!(ls[1]["external_id"], nick);
    let conv = ls.iter().find(|l| l["type"] == "conversation").unwrap();
    let joined = conv["members"][0]["joined_at_ms"].as_i64().unwrap();
    assert_eq!(conv["members"].as_array().unwrap().len(), 1);
    let mut want = BTreeMap::new();
    for m in v.messages(t, c, None, Direction::Forward).unwrap() {
        let m = m.unwrap();
        if m.author == u {
            want.insert(m.id, "sent");
        } else if m.sent_at_ms >= joined {
            want.insert(m.id, "received");
        }
    }
    let got: BTreeMap<u64, &str> = ls
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|l| {
            check_message(&v, t, c, l);
            (l["id"].as_u64().unwrap(), l["role"].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, want);
    assert!(got.values().any(|r| *r == "sent"));
    assert!(
        got.len() < msgs.len(),
        "messages before joining are left out"
    );
}

#[test]
fn emoji_right_to_left_and_combining_marks_round_trip_byte_for_byte() {
    let (_d, v, _p) = common::new_vault();
    let t = v
        .create_tenant("ünïcode", TenantOptions::default())
        .unwrap();
    let mut prof = UserProfile::named("Zoë 👩🏽‍💻");
    prof.email = Some("zoë@exämple.org".into());
    prof.fields.insert("città".into(), "Zürich \u{200F}".into());
    let u = v.create_user(t, "zoe", prof.clone()).unwrap();
    let bodies = [
        "👩🏽‍💻 family: 👨‍👩‍👧‍👦, flags: 🇯🇵🇫🇷",
        "שלום עולם — مرحبا بالعالم",
        "e\u{301} a\u{308}\u{332} Z\u{335}\u{327}\u{34e}",
        "\u{202E}reversed\u{202C} and \u{2028} line separator \u{FEFF}",
        "quotes \" backslash \\ tab \t newline \n bell \u{7}",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 \u{10FFFF}",
    ];
    let c = v
        .create_conversation(
            t,
            "ü-conv",
            ConversationKind::Direct,
            Some("تجربة"),
            &[(u, 0)],
        )
        .unwrap();
    for (n, b) in bodies.iter().enumerate() {
        let _ = v
            .append(t, c, NewMessage::text(u, 1000 + n as i64, *b))
            .unwrap();
    }
    let mut buf = Vec::new();
    v.export_conversation(t, Actor::operator(), c, &ExportOptions::default(), &mut buf)
        .unwrap();
    let ls = parse(&buf);
    check_frame(&ls, "conversation");
    let text = std::str::from_utf8(&buf).unwrap();
    let got: Vec<&str> = ls
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|l| l["body"].as_str().unwrap())
        .collect();
    assert_eq!(got, bodies);
    // Only what JSON requires is escaped: the raw bytes of each body that has no quote,
    // backslash or control character are in the file as they are.
    for b in &bodies[..4] {
        assert!(text.contains(b), "{b:?} was escaped");
    }
    assert!(text.contains(r#"quotes \" backslash \\ tab \t newline \n bell \u0007"#));
    assert!(!text.contains("\\u2028") && !text.contains("\\ud83d"));
    let user = ls.iter().find(|l| l["type"] == "user").unwrap();
    assert_eq!(user["display_name"], prof.display_name.as_str());
    assert_eq!(user["email"], "zoë@exämple.org");
    assert_eq!(user["fields"]["città"], "Zürich \u{200F}");
    let conv = ls.iter().find(|l| l["type"] == "conversation").unwrap();
    assert_eq!(conv["title"], "تجربة");
    assert!(text.contains("تجربة") && text.contains("Zoë 👩🏽‍💻"));
    let ids: BTreeSet<u64> = ls
        .iter()
        .filter(|l| l["type"] == "message")
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), bodies.len());
}

/// Opt-in (`-- --ignored`, needs `../shared/corpus/irc-disentanglement` or
/// `CHATVAULT_CORPUS`; fails loudly without it): the whole IRC corpus imported, every channel
/// exported as a tenant, every line parsed back and compared with what is stored, its non-ASCII
/// lines written verbatim.
#[test]
#[ignore = "opt-in: needs ../shared/corpus (the IRC disentanglement corpus)"]
fn the_irc_corpus_exports_and_reads_back_as_stored() {
    let corpus = std::env::var_os("CHATVAULT_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/corpus/irc-disentanglement")
        });
    assert!(
        corpus.join("ubuntu/dev").is_dir() && corpus.join("new-domains").is_dir(),
        "corpus not found at {} (expected ubuntu/dev and new-domains); set CHATVAULT_CORPUS",
        corpus.display()
    );
    let (_d, v, _p) = common::new_vault();
    for part in ["ubuntu/dev", "new-domains"] {
        common::import_and_verify(&v, &corpus.join(part));
    }
    let (mut total, mut non_ascii) = (0u64, 0u64);
    for tenant in v.tenants().unwrap() {
        let t = tenant.id;
        let mut buf = Vec::new();
        let s = v
            .export_tenant(t, Actor::operator(), &ExportOptions::default(), &mut buf)
            .unwrap();
        let ls = parse(&buf);
        check_frame(&ls, "tenant");
        let text = std::str::from_utf8(&buf).unwrap();
        let mut stored = 0u64;
        let mut convs = BTreeMap::new();
        for c in v.conversations(t).unwrap() {
            let c = c.unwrap().id;
            convs.insert(c.as_u64(), c);
            stored += v.messages(t, c, None, Direction::Forward).unwrap().count() as u64;
        }
        assert_eq!(s.messages, stored, "tenant {}", tenant.name);
        for l in ls.iter().filter(|l| l["type"] == "message") {
            let c = convs[&l["conversation"].as_u64().unwrap()];
            check_message(&v, t, c, l);
            let body = l["body"].as_str().unwrap();
            if !body.is_ascii() {
                non_ascii += 1;
                // Escaped only as JSON requires (quote, backslash, controls): each non-ASCII
                // character is in the file as it is.
                let esc = serde_json::to_string(body).unwrap();
                assert!(text.contains(&esc[1..esc.len() - 1]), "{body:?} escaped");
                for ch in body.chars().filter(|c| !c.is_ascii() && !c.is_control()) {
                    assert!(text.contains(ch), "{ch:?} escaped");
                }
            }
        }
        total += s.messages;
    }
    println!("exported {total} messages of the corpus; {non_ascii} non-ASCII lines verbatim");
    assert!(total > 25_000, "{total}");
    assert!(non_ascii > 0);
}

/// Opt-in (`-- --ignored`): a conversation of 200 000 messages (`CHATVAULT_EXPORT_MESSAGES=N`
/// for another size; `scripts/bench-report --only export-memory` runs it at 1 000 000) exports
/// with bounded memory. The export holds one message at a time and a 64 KiB buffer; the check
/// is that the process's peak resident memory grows by far less than the export's size while it
/// runs. It prints one `export-memory:` line with the figures (a debug-profile build).
#[test]
#[ignore = "slow: appends 200k messages (about a minute in a debug build; 1M: about 5 minutes)"]
fn a_large_conversation_exports_with_bounded_memory() {
    fn status_kib(field: &str) -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::create(
        dir.path().join("data"),
        common::provider(),
        chatvault::VaultOptions {
            block_cache_bytes: 8 << 20,
            key_cache_entries: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    let t = v.create_tenant("big", TenantOptions::default()).unwrap();
    let u = v.create_user(t, "u", UserProfile::named("U")).unwrap();
    let c = v
        .create_conversation(t, "c", ConversationKind::Group, None, &[(u, 0)])
        .unwrap();
    let n: usize = std::env::var("CHATVAULT_EXPORT_MESSAGES")
        .ok()
        .map(|s| s.parse().expect("CHATVAULT_EXPORT_MESSAGES is a number"))
        .unwrap_or(200_000);
    let body = "x".repeat(200);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let msgs: Vec<NewMessage> = chunk
            .iter()
            .map(|i| NewMessage::text(u, 1_700_000_000_000 + *i as i64, body.clone()))
            .collect();
        let _ = v.append_batch(t, c, &msgs).unwrap();
    }
    v.flush().unwrap();
    // Reset the peak (VmHWM) to the current resident size (Linux: clear_refs 5), so that the
    // peak measured is the export's, not the appends'.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let mut out = Count(0);
    let started = std::time::Instant::now();
    let s = v
        .export_conversation(t, Actor::operator(), c, &ExportOptions::default(), &mut out)
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    let grew = peak.saturating_sub(before);
    assert_eq!(s.messages, n as u64);
    eprintln!("exported {} bytes; peak RSS grew by {grew} KiB", out.0);
    // Read by scripts/bench-report (section export-memory).
    println!(
        "export-memory: messages={n} bytes={} rss_before_kib={before} peak_kib={peak} \
         peak_growth_kib={grew} export_s={secs:.1}",
        out.0
    );
    assert!(out.0 > 40 << 20, "the export is {} bytes", out.0);
    assert!(
        grew * 1024 < out.0 / 4,
        "peak memory grew by {grew} KiB for a {} byte export",
        out.0
    );
}
