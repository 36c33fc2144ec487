//! A full disk gives a typed `Storage` error, loses nothing already acknowledged, and the vault
//! works again once space is freed (reopen at worst). Runs on a small tmpfs, so it needs root
//! (CI runs as root); elsewhere it says it was skipped.

mod common;

use std::path::Path;
use std::process::Command;

use chatvault::{Error, NewMessage, TenantOptions, Vault, VaultOptions};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs(dir))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn disk_full_is_a_typed_error_and_the_vault_recovers() {
    let Some(fs) = Tmpfs::mount("24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = fs.path().join("data");
    let p = common::provider();
    let v = Vault::create(&data, p.clone(), VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    // Fill the disk with 1 MiB files, then free 2 MiB: the vault runs out of space soon, and
    // deleting the rest of the files later "fixes the cause".
    let mut fillers = Vec::new();
    for n in 0.. {
        let path = fs.path().join(format!("filler-{n}"));
        if std::fs::write(&path, vec![0u8; 1 << 20]).is_err() {
            let _ = std::fs::remove_file(&path);
            break;
        }
        fillers.push(path);
    }
    for path in fillers.drain(..2.min(fillers.len())) {
        std::fs::remove_file(path).unwrap();
    }

    let body = "z".repeat(4000);
    let mut acked = Vec::new();
    let mut failure = None;
    for i in 0..10_000i64 {
        match v.append(
            f.t,
            f.c,
            NewMessage::text(f.alice, 1_000 + i, format!("{i} {body}")),
        ) {
            Ok(a) => acked.push((a.stored().unwrap(), i)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if i % 100 == 99 {
            if let Err(e) = v.flush() {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("the disk never filled up");
    eprintln!("after {} acknowledged appends: {e}", acked.len());
    assert!(
        matches!(e, Error::Storage { .. }),
        "expected a Storage error, got {e:?}"
    );
    assert!(
        e.is_retryable(),
        "a full disk is retryable once space is freed: {e}"
    );
    assert!(
        e.to_string().contains("free space") || e.to_string().contains("I/O"),
        "{e}"
    );
    assert!(!acked.is_empty());

    // Free space; reopen (RocksDB may have stopped writes after a background error).
    for path in fillers {
        std::fs::remove_file(path).unwrap();
    }
    drop(v);
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    for (id, i) in &acked {
        let m = v.get(f.t, f.c, *id).unwrap();
        assert!(
            m.body.starts_with(&format!("{i} ")),
            "message {id} lost or wrong"
        );
    }
    let next = v
        .append(
            f.t,
            f.c,
            NewMessage::text(f.alice, 99_999, "after recovery"),
        )
        .unwrap()
        .stored()
        .unwrap();
    assert!(next > acked.last().unwrap().0);
    assert_eq!(v.get(f.t, f.c, next).unwrap().body, "after recovery");
}
