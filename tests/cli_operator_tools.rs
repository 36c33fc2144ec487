//! The operator commands end to end on the bundled IRC sample: `verify`, `stats`, `ls` and
//! `read` with `--secondary DIR` beside a process that holds the vault open for writing and
//! appends; the lock conflict message for write commands (and the `--secondary` hint for read
//! commands); `checkpoint` and `restore` (exit codes, refusals, a checkpoint taken before a
//! re-versioning purge refused with exit 6, shredded data staying shredded); `compact --tenant
//! [--conversation]`; the `--json` objects of `verify`, `stats`, `purge`, `key rotate-root`,
//! `checkpoint` and `restore` (their keys pinned); exit codes in `--help`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chatvault::{NewMessage, StaticKeyProvider, Vault, VaultOptions};
use common::{keys, set};
use serde_json::Value;

/// The shared CLI helper, with the (stdout, stderr) failures and JSON objects these tests read.
struct Cli(common::Cli);

impl std::ops::Deref for Cli {
    type Target = common::Cli;
    fn deref(&self) -> &common::Cli {
        &self.0
    }
}

impl Cli {
    fn with_sample() -> Cli {
        Cli(common::Cli::with_sample())
    }

    /// Runs, expects exit code `code`, returns (stdout, stderr).
    fn fails_on(&self, data: &Path, args: &[&str], code: i32) -> (String, String) {
        let o = self.run_on(data, args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "chatvault {args:?}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (
            String::from_utf8(o.stdout).expect("utf-8 stdout"),
            String::from_utf8(o.stderr).expect("utf-8 stderr"),
        )
    }

    fn fails(&self, args: &[&str], code: i32) -> (String, String) {
        self.fails_on(&self.data, args, code)
    }
}

#[test]
fn read_only_commands_run_beside_a_writer_and_write_commands_refuse() {
    let cli = Cli::with_sample();
    let sec = cli.path("secondary");
    let sec_s = sec.to_str().unwrap();
    // This test process holds the vault open for writing and keeps appending.
    let p = Arc::new(StaticKeyProvider::from_file(&cli.key).unwrap());
    let v = Vault::open(&cli.data, p, VaultOptions::default()).unwrap();
    let t = v.tenant("ubuntu").unwrap();
    let c = v.conversation_id(t, "2011-11-13_02").unwrap();
    let author = v.user_id(t, "ubottu").unwrap_or_else(|_| {
        v.create_user(t, "writer", chatvault::UserProfile::default())
            .unwrap()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (v, stop, acked) = (v.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut n = 0i64;
            while !stop.load(Ordering::SeqCst) {
                v.append(
                    t,
                    c,
                    NewMessage::text(author, 1_321_150_000_000 + n, format!("live {n}")),
                )
                .unwrap()
                .stored()
                .unwrap();
                n += 1;
                acked.store(n as u64, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = acked.load(Ordering::SeqCst);
    assert!(before > 0);

    // verify --secondary: works while the writer holds the lock, and sees its messages.
    let j = cli.json(&["verify", "--secondary", sec_s, "--json"]);
    assert_eq!(j["ok"], Value::Bool(true), "{j}");
    assert_eq!(j["secondary"], Value::Bool(true));
    let ubuntu = j["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["tenant"] == "ubuntu")
        .unwrap()
        .clone();
    assert!(
        ubuntu["ok"].as_u64().unwrap() >= 1220 + before,
        "the secondary caught up: {ubuntu}"
    );
    let out = cli.ok(&["verify", "--secondary", sec_s]);
    assert!(out.contains("verify: everything authenticated"), "{out}");
    let out = cli.ok(&["ls", "--secondary", sec_s]);
    assert!(out.contains("ubuntu\t1 conversation"), "{out}");
    let out = cli.ok(&[
        "read",
        "--secondary",
        sec_s,
        "ubuntu",
        "2011-11-13_02",
        "--from",
        "1221",
        "--limit",
        "1",
    ]);
    assert!(out.contains("live 0"), "{out}");
    let s = cli.json(&["stats", "--secondary", sec_s, "--json"]);
    assert_eq!(s["secondary"], Value::Bool(true));

    // Without --secondary a read command refuses, naming the option.
    let (_, err) = cli.fails(&["verify"], 1);
    assert!(err.contains("held by another process"), "{err}");
    assert!(err.contains("--secondary DIR"), "{err}");
    // Write commands refuse with the lock message (no --secondary hint: they cannot run so).
    for args in [
        &["purge"][..],
        &["shred", "tenant", "rust", "--yes"][..],
        &["checkpoint", cli.path("cp").to_str().unwrap()][..],
        &["compact", "--tenant", "rust"][..],
        &["key", "rotate-root"][..],
    ] {
        let (_, err) = cli.fails(args, 1);
        assert!(
            err.contains("is held by another process, probably the backend that serves it"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("through the library: Vault::"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("--secondary"), "{args:?}: {err}");
    }
    // --secondary is not an option of write commands.
    let (_, err) = cli.fails(&["purge", "--secondary", sec_s], 2);
    assert!(err.contains("--secondary"), "{err}");
    assert!(!cli.path("cp").exists());

    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let total = acked.load(Ordering::SeqCst);
    drop(v);
    // Once the writer is gone every command runs, and nothing it wrote is lost.
    let j = cli.json(&["verify", "--json"]);
    assert_eq!(j["ok"], Value::Bool(true));
    let out = cli.ok(&["ls", "ubuntu"]);
    assert!(
        out.contains(&format!("{} messages", 1220 + total)),
        "{out} (expected {})",
        1220 + total
    );
}

#[test]
fn checkpoint_and_restore_through_the_cli() {
    let cli = Cli::with_sample();
    let cp = cli.path("cp");
    let cp_s = cp.to_str().unwrap();
    let j = cli.json(&["checkpoint", cp_s, "--json"]);
    assert_eq!(
        keys(&j),
        set(&["checkpoint", "data", "elapsed_ms", "root_key_version"])
    );
    assert_eq!(j["root_key_version"], 1);
    // A second checkpoint into the same (now non-empty) directory is refused.
    let (_, err) = cli.fails(&["checkpoint", cp_s], 1);
    assert!(
        err.contains("a checkpoint needs a new or empty directory"),
        "{err}"
    );
    // Inside the data directory: refused.
    let inside = cli.data.join("cp");
    let (_, err) = cli.fails(&["checkpoint", inside.to_str().unwrap()], 1);
    assert!(err.contains("inside the vault's data directory"), "{err}");

    // Restore: a new directory; its listing and reads equal the original's.
    let r1 = cli.path("r1");
    let out = cli.ok_on(&r1, &["restore", cp_s]);
    assert!(out.starts_with(&format!("restored {cp_s} into ")), "{out}");
    assert!(
        out.contains("2 tenant KEKs unwrapped (root key version 1), 2 tenants readable"),
        "{out}"
    );
    assert_eq!(cli.ok_on(&r1, &["ls", "ubuntu"]), cli.ok(&["ls", "ubuntu"]));
    let read = ["read", "rust", "rust.0", "--from", "100", "--limit", "20"];
    assert_eq!(cli.ok_on(&r1, &read), cli.ok(&read));
    // Into the same (now non-empty) directory: refused, exit 1.
    let (_, err) = cli.fails_on(&r1, &["restore", cp_s], 1);
    assert!(
        err.contains("a restore needs a new or empty directory"),
        "{err}"
    );
    assert!(err.contains("nothing was written there"), "{err}");
    // Something that is not a checkpoint: refused, nothing created.
    let not = cli.path("not-a-checkpoint");
    std::fs::create_dir(&not).unwrap();
    let r2 = cli.path("r2");
    let (_, err) = cli.fails_on(&r2, &["restore", not.to_str().unwrap()], 1);
    assert!(
        err.contains("is not a chatvault checkpoint (no KEYCHECK file)"),
        "{err}"
    );
    assert!(!r2.exists());
    // --json shape.
    let r3 = cli.path("r3");
    let o = cli.ok_on(&r3, &["restore", cp_s, "--json"]);
    let j: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(
        keys(&j),
        set(&[
            "checkpoint",
            "data",
            "files_copied",
            "bytes_copied",
            "tenant_keks",
            "tenants",
            "root_key_version"
        ])
    );
    assert_eq!(
        (j["tenant_keks"].as_u64(), j["tenants"].as_u64()),
        (Some(2), Some(2))
    );
}

/// Restoring `cp` into a new directory is refused with exit 6: it needs root key version 1.
fn assert_restore_refused(cli: &Cli, cp: &std::path::Path) {
    let target = cli.path("refused");
    let (_, err) = cli.fails_on(&target, &["restore", cp.to_str().unwrap()], 6);
    assert!(
        err.contains("needs root key version 1, which the key file no longer holds (it holds 2)"),
        "{err}"
    );
    assert!(
        err.contains("re-versioned the keys and retired version 1"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!target.exists());
}

#[test]
fn restore_after_a_shred_never_brings_it_back() {
    let cli = Cli::with_sample();
    let before = cli.path("cp-before-shred");
    cli.ok(&["checkpoint", before.to_str().unwrap()]);
    let out = cli.ok(&["shred", "tenant", "rust", "--yes"]);
    assert!(
        out.contains("old copies:  keys re-versioned: checkpoints and backups taken before this shred no longer open"),
        "{out}"
    );
    // The shred itself re-versioned the keys: no purge is needed for the checkpoint taken
    // before it to be refused, with exit 6, saying which root key version it needs and why.
    assert_restore_refused(&cli, &before);

    // Taken after the shred (no purge yet): restores; the tenant stays shredded.
    let after_shred = cli.path("cp-after-shred");
    cli.ok(&["checkpoint", after_shred.to_str().unwrap()]);
    let r = cli.path("r-after-shred");
    cli.ok_on(&r, &["restore", after_shred.to_str().unwrap()]);
    let (_, err) = cli.fails_on(&r, &["ls", "rust"], 1);
    assert!(err.contains("no tenant named \"rust\""), "{err}");
    assert!(cli
        .ok_on(&r, &["verify"])
        .contains("everything authenticated"));

    // The purge has no key path left to re-version (--json shape pinned).
    let j = cli.json(&["purge", "--json"]);
    assert_eq!(
        keys(&j),
        set(&[
            "dry_run",
            "complete",
            "attempts",
            "remaining_records",
            "files_scanned",
            "expired_records",
            "key_paths_pending",
            "conversations",
            "rekey",
            "old_copies_exposed",
            "removed_shreds"
        ])
    );
    assert_eq!(j["complete"], Value::Bool(true));
    assert_eq!(j["rekey"], Value::Null);
    assert_eq!(j["key_paths_pending"], serde_json::json!(0));
    assert_eq!(
        keys(&j["conversations"][0]),
        set(&[
            "tenant",
            "tenant_id",
            "conversation",
            "conversation_id",
            "expired_messages",
            "expired_revisions",
            "expired_index_entries",
            "epoch_keys_destroyed"
        ])
    );
    assert_restore_refused(&cli, &before);

    // Taken after the purge: restores, still without the shredded tenant.
    let after = cli.path("cp-after-purge");
    cli.ok(&["checkpoint", after.to_str().unwrap()]);
    let r = cli.path("r-after-purge");
    let out = cli.ok_on(&r, &["restore", after.to_str().unwrap()]);
    assert!(
        out.contains("1 tenant KEK unwrapped (root key version 2), 1 tenant readable"),
        "{out}"
    );
    assert_eq!(cli.ok_on(&r, &["ls"]), "ubuntu\t1 conversation\n");
}

/// With the root key in CHATVAULT_ROOT_KEY (which cannot get new versions), `shred` destroys
/// the keys and says that old copies still open what it destroyed, in text and in --json.
#[test]
fn shred_says_when_old_copies_stay_exposed() {
    let cli = Cli::with_sample();
    let run = |args: &[&str]| {
        let o = cli.run_with_env_key(args, &[]);
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    let out = run(&["shred", "user", "ubuntu", "elgaton", "--yes"]);
    assert!(
        out.contains("old copies:  NOT re-versioned yet (1 key path(s) pending): a checkpoint or backup taken before this shred still opens what it destroyed"),
        "{out}"
    );
    let j: Value = serde_json::from_str(&run(&[
        "shred",
        "conversation",
        "rust",
        "rust.0",
        "--yes",
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["outcome"], "shredded");
    assert_eq!(j["key_paths_pending"], serde_json::json!(2));
    assert_eq!(j["old_copies_reversioned"], Value::Bool(false));
    // With the key file, the next command's open re-versions both paths.
    let j = cli.json(&["stats", "--json"]);
    assert_eq!(
        j["keys"]["key_paths_pending_reversioning"],
        serde_json::json!(0)
    );
}

#[test]
fn stats_verify_rotate_and_compact_output() {
    let cli = Cli::with_sample();
    let s = cli.json(&["stats", "--json"]);
    assert_eq!(
        keys(&s),
        set(&[
            "tenants",
            "total",
            "keys",
            "column_families",
            "data_dir_bytes",
            "cached_keys",
            "secondary",
            "format_version"
        ])
    );
    assert_eq!(s["format_version"], 2);
    assert_eq!(
        keys(&s["tenants"][0]),
        set(&[
            "tenant",
            "tenant_id",
            "conversations",
            "messages",
            "message_ids_issued",
            "records",
            "records_current",
            "records_older_versions",
            "records_key_destroyed",
            "current_fraction"
        ])
    );
    assert_eq!(s["tenants"][0]["current_fraction"], 1.0);
    assert_eq!(
        keys(&s["keys"]),
        set(&[
            "tenant_keks",
            "conversation_keys",
            "epoch_keys",
            "user_keys",
            "directory_keys",
            "shred_tombstones",
            "key_paths_pending_reversioning",
            "queued_erasures",
            "data_key_rotations_pending",
            "root_key_version",
            "tenant_keks_under_old_root"
        ])
    );
    assert_eq!(s["keys"]["tenant_keks"], 2);
    assert_eq!(s["keys"]["user_keys"], 286);
    assert_eq!(s["total"]["messages"], 2420);
    let cfs: Vec<_> = s["column_families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cfs, ["meta", "keys", "messages", "revisions", "time_index"]);
    assert_eq!(
        keys(&s["column_families"][0]),
        set(&[
            "name",
            "estimated_keys",
            "sst_bytes",
            "live_data_bytes",
            "dead_bytes",
            "memtable_bytes"
        ])
    );
    let text = cli.ok(&["stats"]);
    assert!(
        text.contains("keys: 2 tenant KEKs, 2 conversation keys"),
        "{text}"
    );
    assert!(
        text.contains("key versions rust: 1200 of 1200 readable records sealed under the current key versions (100.0%)"),
        "{text}"
    );
    assert!(text.contains("live(est)   dead(est)"), "{text}");

    let v = cli.json(&["verify", "--json"]);
    assert_eq!(
        keys(&v),
        set(&[
            "ok",
            "keys_ok",
            "meta_ok",
            "meta_shredded",
            "index_ok",
            "conversations",
            "tenants",
            "failures",
            "secondary"
        ])
    );
    assert_eq!(v["failures"], serde_json::json!([]));

    let r = cli.json(&["key", "rotate-root", "--json"]);
    assert_eq!(
        keys(&r),
        set(&[
            "root_version",
            "retired_root_versions",
            "tenant_keks_rewrapped",
            "tenant_keks_reversioned",
            "conversation_keys_reversioned",
            "keys_rewrapped",
            "meta_resealed",
            "elapsed_ms"
        ])
    );
    assert_eq!(
        (
            r["root_version"].as_u64(),
            r["tenant_keks_rewrapped"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let s = cli.json(&["stats", "--json"]);
    assert_eq!(s["keys"]["root_key_version"], 2);
    assert_eq!(s["keys"]["tenant_keks_under_old_root"], 0);

    let out = cli.ok(&[
        "compact",
        "--tenant",
        "ubuntu",
        "--conversation",
        "2011-11-13_02",
    ]);
    assert!(
        out.starts_with("compacted conversation 2011-11-13_02 of tenant ubuntu ("),
        "{out}"
    );
    let out = cli.ok(&["compact", "--tenant", "rust"]);
    assert!(out.starts_with("compacted tenant rust ("), "{out}");
    let (_, err) = cli.fails(&["compact", "--conversation", "x"], 2);
    assert!(err.contains("--tenant"), "{err}");
    let (_, err) = cli.fails(&["compact", "--tenant", "nope"], 1);
    assert!(err.contains("no tenant named \"nope\""), "{err}");
    assert!(cli.ok(&["verify"]).contains("everything authenticated"));
}

#[test]
fn every_operator_command_documents_its_exit_codes() {
    for cmd in [
        &["verify"][..],
        &["stats"][..],
        &["purge"][..],
        &["compact"][..],
        &["checkpoint"][..],
        &["restore"][..],
        &["key", "rotate-root"][..],
        &["key", "retire-root"][..],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_chatvault"))
            .args(cmd)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8(o.stdout).unwrap();
        assert!(help.contains("Exit codes: 0 "), "{cmd:?}:\n{help}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args(["restore", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8(o.stdout)
        .unwrap()
        .contains("6 the checkpoint needs a root key version"));
}
