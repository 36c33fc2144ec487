//! The `chatvault` binary end to end on the bundled IRC sample: init, import, retention, purge,
//! legal holds. Every message of the sample is from 2011 (ubuntu) or 2018 (rust), so a one-day
//! retention expires all of them; nothing here depends on timing.

mod common;

use std::process::Command;

use common::Cli;

/// `ls TENANT` line of a conversation: (visible messages, last message id).
fn ls_counts(cli: &Cli, tenant: &str, conversation: &str) -> (u64, u64) {
    let out = cli.ok(&["ls", tenant]);
    let line = out
        .lines()
        .find(|l| l.split('\t').next() == Some(conversation))
        .unwrap_or_else(|| panic!("no line for {conversation} in:\n{out}"));
    let fields: Vec<&str> = line.split('\t').collect();
    let visible = fields[1]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    let last = fields[2]
        .trim_start_matches("(last message id ")
        .trim_end_matches(')')
        .parse()
        .unwrap_or_else(|_| panic!("bad line {line:?}"));
    (visible, last)
}

/// `stats` line of a tenant: visible messages.
fn stats_messages(cli: &Cli, tenant: &str) -> u64 {
    let out = cli.ok(&["stats"]);
    let line = out
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["tenant", tenant]))
        .unwrap_or_else(|| panic!("no stats line for {tenant} in:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == "messages" || *w == "message")
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    words[i - 1].parse().expect("count")
}

#[test]
fn a_one_day_retention_then_purge_empties_ubuntu_and_leaves_rust_intact() {
    let cli = Cli::with_sample();
    assert_eq!(ls_counts(&cli, "ubuntu", "2011-11-13_02"), (1220, 1220));
    assert_eq!(stats_messages(&cli, "ubuntu"), 1220);

    let out = cli.ok(&["retention", "set", "ubuntu", "--retention", "1d"]);
    assert!(out.contains("retention 1 day"), "{out}");
    assert!(out.contains("1220 messages are now expired"), "{out}");
    // Hidden at once, before any purge; the id counter stays.
    assert_eq!(ls_counts(&cli, "ubuntu", "2011-11-13_02"), (0, 1220));

    let show = cli.ok(&["retention", "show", "ubuntu", "2011-11-13_02", "--changes"]);
    assert!(
        show.contains("effective policy:    history on, retention 1 day"),
        "{show}"
    );
    assert!(show.contains("retention=86400000 ms"), "{show}");

    // A dry run counts and changes nothing: the same again, and then the real purge finds it.
    let dry = cli.ok(&["purge", "--dry-run"]);
    assert!(
        dry.contains("ubuntu/2011-11-13_02: would remove 1220 expired or shredded messages"),
        "{dry}"
    );
    assert!(dry.contains("dry run: nothing was changed"), "{dry}");
    assert!(!dry.contains("rust/"), "{dry}");
    assert_eq!(cli.ok(&["purge", "--dry-run"]), dry);

    let purge = cli.ok(&["purge"]);
    assert!(
        purge.contains("ubuntu/2011-11-13_02: removed 1220 expired or shredded messages"),
        "{purge}"
    );
    assert!(purge.contains("purge complete"), "{purge}");
    assert_eq!(ls_counts(&cli, "ubuntu", "2011-11-13_02"), (0, 1220));
    assert_eq!(stats_messages(&cli, "ubuntu"), 0);
    assert_eq!(stats_messages(&cli, "rust"), 1200);
    assert_eq!(ls_counts(&cli, "rust", "rust.0"), (1200, 1200));
    let read = cli.ok(&["read", "rust", "rust.0", "--limit", "1"]);
    assert!(
        read.starts_with("#1 2018-05-29T21:20:37Z <talchas>"),
        "{read}"
    );

    // Nothing left to purge.
    let again = cli.ok(&["purge"]);
    assert!(again.contains("nothing has expired"), "{again}");
    // Importing the sample again writes nothing back.
    let out = cli.ok(&[
        "import",
        "irc",
        common::sample_dir().to_str().expect("utf-8"),
    ]);
    assert!(out.contains("0 messages written"), "{out}");
    assert_eq!(ls_counts(&cli, "ubuntu", "2011-11-13_02"), (0, 1220));
}

#[test]
fn a_legal_hold_keeps_messages_past_their_retention_until_released() {
    let cli = Cli::with_sample();
    let out = cli.ok(&[
        "hold",
        "add",
        "rust",
        "--tenant-wide",
        "--reason",
        "matter 42",
    ]);
    let id = out
        .strip_prefix("placed legal hold ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let list = cli.ok(&["hold", "list", "rust"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&format!("{id}\t")) && l.ends_with("\tmatter 42")),
        "{list}"
    );

    cli.ok(&["retention", "set", "rust", "--retention", "1d"]);
    assert_eq!(ls_counts(&cli, "rust", "rust.0"), (1200, 1200));
    let purge = cli.ok(&["purge"]);
    assert!(
        !purge.contains("rust/"),
        "held messages are not purged:\n{purge}"
    );
    assert_eq!(stats_messages(&cli, "rust"), 1200);

    let out = cli.ok(&["hold", "release", "rust", &id]);
    assert!(out.contains(&format!("released legal hold {id}")), "{out}");
    assert_eq!(ls_counts(&cli, "rust", "rust.0"), (0, 1200));
    let purge = cli.ok(&["purge"]);
    assert!(
        purge.contains("rust/rust.0: removed 1200 expired or shredded messages"),
        "{purge}"
    );
    assert_eq!(stats_messages(&cli, "rust"), 0);
    assert_eq!(
        stats_messages(&cli, "ubuntu"),
        1220,
        "other tenants untouched"
    );
    let list = cli.ok(&["hold", "list", "rust"]);
    assert!(list.contains("no legal holds on tenant rust"), "{list}");
}

#[test]
fn conversation_overrides_and_delete_existing() {
    let cli = Cli::with_sample();
    // A conversation override wins over the tenant default; `default` follows it again.
    cli.ok(&["retention", "set", "rust", "rust.0", "--retention", "1w"]);
    let show = cli.ok(&["retention", "show", "rust", "rust.0"]);
    assert!(
        show.contains("override:            history (tenant default), retention 7 days"),
        "{show}"
    );
    assert_eq!(ls_counts(&cli, "rust", "rust.0"), (0, 1200));
    let out = cli.ok(&[
        "retention",
        "set",
        "rust",
        "rust.0",
        "--retention",
        "default",
    ]);
    assert!(
        out.contains("effective policy:    history on, retention forever"),
        "{out}"
    );
    // What expired stays expired.
    assert_eq!(ls_counts(&cli, "rust", "rust.0"), (0, 1200));

    // History off alone deletes nothing; --delete-existing does, unless a hold covers it.
    cli.ok(&[
        "retention",
        "set",
        "ubuntu",
        "2011-11-13_02",
        "--history",
        "off",
    ]);
    assert_eq!(ls_counts(&cli, "ubuntu", "2011-11-13_02"), (1220, 1220));
    cli.ok(&[
        "hold",
        "add",
        "ubuntu",
        "--conversation",
        "2011-11-13_02",
        "--reason",
        "r",
    ]);
    let o = cli.run(&[
        "retention",
        "set",
        "ubuntu",
        "2011-11-13_02",
        "--delete-existing",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("legal hold covers conversation"), "{err}");
    assert_eq!(ls_counts(&cli, "ubuntu", "2011-11-13_02"), (1220, 1220));
}

#[test]
fn purge_re_versions_the_key_file_and_refuses_to_pretend_with_an_env_root_key() {
    let cli = Cli::with_sample();
    cli.ok(&["retention", "set", "ubuntu", "--retention", "1d"]);
    let key_text = std::fs::read_to_string(&cli.key).expect("key file");
    let key_line = key_text
        .lines()
        .find(|l| l.starts_with("1:"))
        .expect("version 1 line")
        .to_string();

    // With the root key in CHATVAULT_ROOT_KEY the records go, but the key path cannot get a new
    // root version: exit 3, saying why, and nothing claimed about old copies.
    let o = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args(["purge", "--data"])
        .arg(&cli.data)
        .env("CHATVAULT_ROOT_KEY", &key_line)
        .env_remove("CHATVAULT_KEY_FILE")
        .env_remove("CHATVAULT_DATA")
        .output()
        .expect("run chatvault");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("could still be opened") && stderr.contains("CHATVAULT_ROOT_KEY"),
        "{stderr}"
    );

    // With the key file: the pending paths are re-versioned (by the open, which the purge
    // reports), version 1 is retired from the file, and the vault opens with the rewritten file.
    let out = cli.ok(&["purge"]);
    assert!(
        out.contains("key paths re-versioned") && out.contains("root key now version 2"),
        "{out}"
    );
    assert_eq!(stats_messages(&cli, "ubuntu"), 0);
    let key_text = std::fs::read_to_string(&cli.key).expect("key file");
    assert!(
        !key_text.contains(&key_line),
        "version 1 is gone from the key file"
    );
    assert!(
        key_text.lines().any(|l| l.starts_with("2:")),
        "{}",
        key_text.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cli.key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the rewritten key file stays private");
    }
    assert_eq!(stats_messages(&cli, "rust"), 2_420 - 1_220);
    let again = cli.ok(&["purge"]);
    assert!(!again.contains("re-versioned"), "{again}");
}
