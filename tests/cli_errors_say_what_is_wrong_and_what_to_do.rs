//! The `chatvault` binary's errors: each names what is wrong and what to do, exits non-zero and
//! leaves nothing half-done behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

struct Cli {
    dir: tempfile::TempDir,
    data: PathBuf,
    key: PathBuf,
}

impl Cli {
    /// A temporary directory; no vault yet.
    fn new() -> Cli {
        let dir = tempfile::tempdir().expect("tempdir");
        Cli {
            data: dir.path().join("data"),
            key: dir.path().join("root.key"),
            dir,
        }
    }

    /// A new, empty vault.
    fn init() -> Cli {
        let cli = Cli::new();
        cli.ok(&["init"]);
        cli
    }

    /// The binary with no CHATVAULT_* variable set, run in the temporary directory.
    fn bare(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_chatvault"));
        c.current_dir(self.dir.path())
            .env_remove("CHATVAULT_ROOT_KEY")
            .env_remove("CHATVAULT_DATA")
            .env_remove("CHATVAULT_KEY_FILE")
            .env_remove("CHATVAULT_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.bare()
            .args(args)
            .arg("--data")
            .arg(&self.data)
            .arg("--key-file")
            .arg(&self.key)
            .output()
            .expect("run chatvault")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "chatvault {args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).expect("utf-8")
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Expects exit code 1 and returns stderr.
fn fails(o: Output) -> String {
    fails_with(o, 1)
}

/// Expects exit code `code` (2: bad usage) and returns stderr.
fn fails_with(o: Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let e = stderr(&o);
    assert!(e.starts_with("error: "), "{e}");
    e
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/irc")
}

fn hex_key(key_file: &Path) -> String {
    let text = std::fs::read_to_string(key_file).expect("key file");
    text.lines()
        .find_map(|l| l.strip_prefix("1:"))
        .expect("key line")
        .to_string()
}

#[test]
fn unknown_tenants_conversations_users_and_holds_are_named_in_a_sentence() {
    let cli = Cli::init();
    let e = fails(cli.run(&["ls", "nope"]));
    assert!(
        e.contains("no tenant named \"nope\" in this vault (`chatvault ls` lists the tenants)"),
        "{e}"
    );
    assert!(!e.contains("caused by"), "{e}");
    cli.ok(&[
        "import",
        "irc",
        sample().join("new-domains").to_str().expect("utf-8"),
    ]);
    let e = fails(cli.run(&["read", "rust", "nope"]));
    assert!(
        e.contains("tenant \"rust\" has no conversation \"nope\""),
        "{e}"
    );
    let e = fails(cli.run(&["retention", "show", "nope"]));
    assert!(e.contains("no tenant named \"nope\""), "{e}");
    let e = fails(cli.run(&[
        "hold",
        "add",
        "rust",
        "--custodian",
        "nobody",
        "--reason",
        "x",
    ]));
    assert!(e.contains("tenant \"rust\" has no user \"nobody\""), "{e}");
    let e = fails(cli.run(&["hold", "release", "rust", "12345"]));
    assert!(e.contains("tenant \"rust\" has no legal hold 12345"), "{e}");
}

#[test]
fn a_vault_held_by_another_process_is_reported_as_such_with_the_library_call_to_use() {
    let cli = Cli::init();
    let provider = Arc::new(chatvault::StaticKeyProvider::from_file(&cli.key).expect("key"));
    let held = chatvault::Vault::open(&cli.data, provider, chatvault::VaultOptions::default())
        .expect("open in the test process");
    let e = fails(cli.run(&["purge"]));
    assert!(e.contains("is held by another process"), "{e}");
    assert!(e.contains("Vault::purge"), "{e}");
    assert!(!e.contains("full disk"), "{e}");
    let e = fails(cli.run(&["retention", "set", "x", "--retention", "1d"]));
    assert!(e.contains("Vault::set_tenant_policy"), "{e}");
    drop(held);
    cli.ok(&["purge"]);
}

#[test]
fn a_second_open_in_the_same_process_is_not_called_a_full_disk() {
    let cli = Cli::init();
    let open = || {
        let p = Arc::new(chatvault::StaticKeyProvider::from_file(&cli.key).expect("key"));
        chatvault::Vault::open(&cli.data, p, chatvault::VaultOptions::default())
    };
    let _held = open().expect("first open");
    // A second open in the same process meets RocksDB's lock too.
    let e = open().expect_err("second open").to_string();
    assert!(
        e.contains("this process already has this vault open"),
        "{e}"
    );
    assert!(!e.contains("full disk"), "{e}");
}

#[test]
fn a_key_file_inside_the_data_directory_is_refused_by_every_command() {
    let cli = Cli::new();
    let inside = cli.data.join("root.key");
    let o = cli
        .bare()
        .args(["init", "--data"])
        .arg(&cli.data)
        .arg("--key-file")
        .arg(&inside)
        .output()
        .expect("run");
    let e = fails(o);
    assert!(e.contains("is inside the data directory"), "{e}");
    assert!(!cli.data.exists(), "a failed init leaves nothing behind");

    let cli = Cli::init();
    let inside = cli.data.join("copy.key");
    std::fs::copy(&cli.key, &inside).expect("copy");
    for args in [&["ls"][..], &["stats"], &["purge", "--dry-run"]] {
        let o = cli
            .bare()
            .args(args)
            .arg("--data")
            .arg(&cli.data)
            .arg("--key-file")
            .arg(&inside)
            .output()
            .expect("run");
        let e = fails(o);
        assert!(e.contains("is inside the data directory"), "{args:?}: {e}");
    }
}

#[test]
fn init_checks_everything_before_creating_anything() {
    let cli = Cli::new();
    std::fs::write(&cli.key, "precious").expect("write");
    let e = fails(cli.run(&["init"]));
    assert!(
        e.contains("refusing to overwrite the existing key file"),
        "{e}"
    );
    assert!(!cli.data.exists(), "no empty data directory left behind");
    assert_eq!(std::fs::read_to_string(&cli.key).expect("read"), "precious");

    let o = cli
        .bare()
        .args(["init", "--data"])
        .arg(&cli.data)
        .output()
        .expect("run");
    let e = fails_with(o, 2);
    assert!(e.contains("init needs --key-file"), "{e}");
    assert!(!cli.data.exists());

    let cli = Cli::init();
    std::fs::remove_file(&cli.key).expect("rm");
    let e = fails(cli.run(&["init"]));
    assert!(e.contains("already holds a vault"), "{e}");
    assert!(!cli.key.exists(), "no key file written for a refused init");
}

#[test]
fn root_key_errors_name_chatvault_root_key_and_the_key_file() {
    let cli = Cli::init();
    let run_env = |value: &str, with_file: bool| {
        let mut c = cli.bare();
        c.args(["ls", "--data"]).arg(&cli.data);
        if with_file {
            c.arg("--key-file").arg(&cli.key);
        }
        c.env("CHATVAULT_ROOT_KEY", value).output().expect("run")
    };
    let e = fails(run_env(&"g".repeat(64), false));
    assert!(
        e.contains("CHATVAULT_ROOT_KEY is not a valid root key"),
        "{e}"
    );
    assert!(!e.contains("version 1"), "{e}");
    assert!(!e.contains("key line"), "{e}");
    let e = fails(run_env("not-a-key", false));
    assert!(e.contains("CHATVAULT_ROOT_KEY"), "{e}");

    // Both given: an error that says which two.
    let e = fails(run_env(&hex_key(&cli.key), true));
    assert!(e.contains("both CHATVAULT_ROOT_KEY and a key file"), "{e}");

    // The variable alone works; an empty variable counts as unset.
    let o = run_env(&hex_key(&cli.key), false);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_env("", true);
    assert!(o.status.success(), "{}", stderr(&o));

    // A directory as --key-file.
    let o = cli
        .bare()
        .args(["ls", "--data"])
        .arg(&cli.data)
        .arg("--key-file")
        .arg(cli.dir.path())
        .output()
        .expect("run");
    let e = fails(o);
    assert!(e.contains("is a directory"), "{e}");
    assert!(!e.contains("chmod"), "{e}");
}

#[test]
fn a_missing_vault_or_import_path_is_one_clear_sentence() {
    let cli = Cli::new();
    let e = fails(cli.run(&["ls"]));
    assert!(e.contains("no vault at"), "{e}");
    assert!(e.contains("chatvault init"), "{e}");
    std::fs::create_dir(&cli.data).expect("mkdir");
    let e = fails(cli.run(&["stats"]));
    assert!(
        e.contains("(no KEYCHECK file): create one with `chatvault init`"),
        "{e}"
    );

    let cli = Cli::init();
    let e = fails(cli.run(&["import", "irc", "does-not-exist"]));
    assert!(
        e.contains("does-not-exist: no such file or directory"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "said once: {e}");
}

#[test]
fn import_reports_paths_conflicts_and_what_was_imported_before_a_failure() {
    let cli = Cli::init();
    let logs = cli.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    // A good file, then (in path order) a broken one.
    let orig = sample().join("new-domains/rust.0.ascii.txt");
    std::fs::copy(&orig, logs.join("rust.0.ascii.txt")).expect("copy");
    std::fs::write(
        logs.join("rust.1.ascii.txt"),
        "rust 2018-05-29 [21:20:37] <a> hi\nbroken\n",
    )
    .expect("write");
    let o = cli.run(&["import", "irc", logs.to_str().expect("utf-8")]);
    let e = fails(o);
    let bad = logs.join("rust.1.ascii.txt");
    assert!(
        e.contains(&format!("{}:2:", bad.display())),
        "full path: {e}"
    );
    assert!(!e.contains("teach"), "{e}");
    assert!(e.contains("not all-or-nothing"), "{e}");
    assert!(e.contains("the 1 file before it was imported"), "{e}");
    assert!(e.contains("rust.0.ascii.txt"), "{e}");

    // The same name with a changed message in the middle: a conflict naming the message and
    // line, and nothing written.
    let text = std::fs::read_to_string(&orig).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[99] = lines[99].replacen('>', "> CHANGED", 1);
    let changed = cli.dir.path().join("changed");
    std::fs::create_dir(&changed).expect("mkdir");
    std::fs::write(changed.join("rust.0.ascii.txt"), lines.join("\n") + "\n").expect("write");
    let e = fails(cli.run(&["import", "irc", changed.to_str().expect("utf-8")]));
    assert!(
        e.contains("message 100 differs from line 100 of the file in body"),
        "{e}"
    );
    assert!(e.contains("--tenant"), "{e}");
    assert!(!e.contains("already present"), "{e}");
    // ... and --tenant imports it apart.
    let out = cli.ok(&[
        "import",
        "irc",
        "--tenant",
        "rust-copy",
        changed.to_str().expect("utf-8"),
    ]);
    assert!(out.contains("imported 1 file in"), "{out}");
    assert!(out.contains("1200 messages written"), "{out}");
    let ls = cli.ok(&["ls"]);
    assert!(ls.contains("rust-copy\t1 conversation\n"), "{ls}");
}

#[test]
fn the_import_summary_counts_system_lines_and_plurals_are_right() {
    let cli = Cli::init();
    let out = cli.ok(&[
        "import",
        "irc",
        sample().join("ubuntu").to_str().expect("utf-8"),
    ]);
    assert!(
        out.contains("1250 lines = 1220 messages + 30 system lines (joins, parts"),
        "{out}"
    );
    assert!(out.contains("imported 1 file in"), "{out}");
    let again = cli.ok(&[
        "import",
        "irc",
        sample().join("ubuntu").to_str().expect("utf-8"),
    ]);
    assert!(
        again.contains("0 messages written, 1220 already in the vault"),
        "{again}"
    );
    assert!(!again.contains("messages/s"), "{again}");
    let stats = cli.ok(&["stats"]);
    assert!(stats.contains(" 1 conversation "), "{stats}");
    assert!(!stats.contains("1 conversations"), "{stats}");
}

#[test]
fn writing_to_a_full_output_says_the_output_failed() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let cli = Cli::init();
    cli.ok(&[
        "import",
        "irc",
        sample().join("ubuntu").to_str().expect("utf-8"),
    ]);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = cli
        .bare()
        .args(["read", "ubuntu", "2011-11-13_02", "--data"])
        .arg(&cli.data)
        .arg("--key-file")
        .arg(&cli.key)
        .stdout(full)
        .output()
        .expect("run");
    let e = fails(o);
    assert!(e.contains("writing the output failed"), "{e}");
}

#[test]
fn purge_on_an_empty_vault_and_bad_retention_values() {
    let cli = Cli::init();
    let out = cli.ok(&["purge"]);
    assert!(out.contains("nothing has expired"), "{out}");
    cli.ok(&[
        "import",
        "irc",
        sample().join("new-domains").to_str().expect("utf-8"),
    ]);
    // Below one minute is bad usage (exit 2, like a malformed duration), caught before the
    // vault is opened.
    let e = fails_with(
        cli.run(&["retention", "set", "rust", "--retention", "10s"]),
        2,
    );
    assert!(
        e.contains("shorter than one minute") && e.contains("at least"),
        "{e}"
    );
    let e = fails(cli.run(&["retention", "set", "rust"]));
    assert!(e.contains("nothing to change"), "{e}");
    let o = cli.run(&["retention", "set", "rust", "--retention", "soon"]);
    assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    assert_eq!(
        cli.ok(&["ls", "rust"]),
        "rust.0\t1200 messages\t(last message id 1200)\t#rust rust.0\n"
    );
}

#[test]
fn a_bare_hex_root_key_after_a_rotation_is_told_which_version_the_vault_needs() {
    let cli = Cli::init();
    cli.ok(&["key", "rotate-root"]);
    let text = std::fs::read_to_string(&cli.key).expect("key file");
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("2:"))
        .expect("version 2 line")
        .to_string();
    let run_env = |value: &str| {
        cli.bare()
            .args(["ls", "--data"])
            .arg(&cli.data)
            .env("CHATVAULT_ROOT_KEY", value)
            .output()
            .expect("run")
    };
    // The right key, but bare hex is read as version 1: the message names version 2 and the
    // VERSION:HEX form, not "wrong root key".
    let e = fails(run_env(&v2));
    assert!(e.contains("needs root key version 2"), "{e}");
    assert!(e.contains("it holds version(s) 1"), "{e}");
    assert!(e.contains("CHATVAULT_ROOT_KEY=2:"), "{e}");
    assert!(
        e.starts_with("error: the vault at"),
        "no extra context line: {e}"
    );
    // Given with its version, it opens.
    let o = run_env(&format!("2:{v2}"));
    assert!(o.status.success(), "{}", stderr(&o));
}
