//! Opt-in acceptance test over the full corpus in `../shared/corpus/irc-disentanglement`:
//! imports all of `ubuntu/dev` and `new-domains`, reads every conversation back and checks it
//! is exact; then shreds one channel with the CLI, purges, and checks that it is gone from every
//! file while the others read back exactly. Run with `./dev acceptance` (or `cargo test --test corpus_acceptance -- --ignored
//! --nocapture`). It fails loudly when the corpus is missing; it never passes without it.
//! Set CHATVAULT_CORPUS to use another location.

mod common;

use std::path::PathBuf;

fn corpus() -> PathBuf {
    let p = std::env::var_os("CHATVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/irc-disentanglement")
        });
    assert!(
        p.join("ubuntu/dev").is_dir() && p.join("new-domains").is_dir(),
        "corpus not found at {} (expected ubuntu/dev and new-domains); set CHATVAULT_CORPUS",
        p.display()
    );
    p
}

#[test]
#[ignore = "opt-in: needs ../shared/corpus; run ./dev acceptance"]
fn ubuntu_dev_and_new_domains_import_and_read_back_exactly() {
    let corpus = corpus();
    let (_d, v, _p) = common::new_vault();
    let mut files = 0;
    let mut msgs = 0;
    let mut secs = 0.0;
    for part in ["ubuntu/dev", "new-domains"] {
        let (f, m, s) = common::import_and_verify(&v, &corpus.join(part));
        println!(
            "{part}: {f} files, {m} messages imported in {s:.2} s ({:.0} messages/s)",
            m as f64 / s
        );
        files += f;
        msgs += m;
        secs += s;
    }
    println!(
        "total: {files} files, {msgs} messages in {secs:.2} s ({:.0} messages/s)",
        msgs as f64 / secs
    );
    assert_eq!(files, 22);
    assert!(msgs > 25_000, "{msgs} messages");
}

/// The shredding issue's acceptance: on the imported corpus, `chatvault shred tenant rust`
/// followed by `chatvault purge` leaves that channel unreadable and absent from every file of
/// the data directory (its plaintext, its ciphertexts and its wrapped keys), while the other
/// channels read back exactly (a re-import verifies every stored message against its file).
#[test]
#[ignore = "opt-in: needs ../shared/corpus; run ./dev acceptance"]
fn shredding_one_channel_then_purge_leaves_it_nowhere_and_the_others_exact() {
    use std::sync::Arc;

    use chatvault::{StaticKeyProvider, Vault, VaultOptions};

    let corpus = corpus();
    let d = tempfile::tempdir().unwrap();
    let (data, key) = (d.path().join("data"), d.path().join("root.key"));
    let c = common::Cli::at(&data, &key);
    let cli = |args: &[&str]| c.out(args);
    let (code, out) = cli(&["init"]);
    assert_eq!(code, Some(0), "{out}");
    let dirs = [corpus.join("ubuntu/dev"), corpus.join("new-domains")];
    for dir in &dirs {
        let (code, out) = cli(&["import", "irc", dir.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{out}");
    }

    // What the rust channel left in the vault: its plaintext lines, its records' bytes and its
    // wrapped keys.
    let mut needles: Vec<Vec<u8>> = Vec::new();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in &dirs {
        files.extend(chatvault::import::irc_log_files(dir).unwrap());
    }
    let (rust_files, other_files): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| {
        f.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("rust."))
    });
    assert!(!rust_files.is_empty() && !other_files.is_empty());
    for f in &rust_files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let log =
            chatvault::import::irc::parse_log(name, &std::fs::read_to_string(f).unwrap(), None)
                .unwrap();
        assert_eq!(log.channel, "rust");
        // Bodies long enough not to occur by chance in other channels' (encrypted) files.
        needles.extend(
            log.messages
                .iter()
                .filter(|m| m.body.len() >= 24)
                .map(|m| m.body.as_bytes().to_vec()),
        );
    }
    let plaintext_needles = needles.len();
    let t = {
        let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
        let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
        v.tenant("rust").unwrap().as_u64()
    };
    {
        let db = common::open_raw(&data);
        for (cf, prefix) in [
            (chatvault::cf::MESSAGES, t.to_be_bytes().to_vec()),
            (
                chatvault::cf::KEYS,
                [&[0x01u8][..], &t.to_be_bytes()].concat(),
            ),
            (
                chatvault::cf::KEYS,
                [&[0x02u8][..], &t.to_be_bytes()].concat(),
            ),
            (
                chatvault::cf::KEYS,
                [&[0x03u8][..], &t.to_be_bytes()].concat(),
            ),
            (
                chatvault::cf::KEYS,
                [&[0x04u8][..], &t.to_be_bytes()].concat(),
            ),
        ] {
            let h = db.cf_handle(cf).unwrap();
            for kv in db.prefix_iterator_cf(h, &prefix) {
                let (k, v) = kv.unwrap();
                if !k.starts_with(&prefix) {
                    break;
                }
                needles.push(v.to_vec());
            }
        }
    }
    println!(
        "rust: {} files, {plaintext_needles} plaintext lines and {} stored values to look for",
        rust_files.len(),
        needles.len() - plaintext_needles
    );
    let ac = aho_corasick::AhoCorasick::new(&needles).unwrap();
    let found_in_files = || -> usize {
        common::files_under(&data)
            .iter()
            .map(|f| ac.find_iter(&std::fs::read(f).unwrap()).count())
            .sum()
    };
    assert!(
        found_in_files() > 0,
        "before the shred the records are on disk"
    );

    let started = std::time::Instant::now();
    let (code, out) = cli(&["shred", "tenant", "rust", "--yes"]);
    assert_eq!(code, Some(0), "{out}");
    println!("shred tenant rust: {:?}\n{out}", started.elapsed());
    let started = std::time::Instant::now();
    let (code, out) = cli(&["purge"]);
    assert_eq!(code, Some(0), "{out}");
    println!("purge: {:?}\n{out}", started.elapsed());
    assert_eq!(found_in_files(), 0, "rust's bytes are gone from every file");
    let (code, out) = cli(&["read", "rust", "rust.0"]);
    assert_ne!(code, Some(0), "{out}");
    let (code, out) = cli(&["verify"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cli(&["receipts", "verify"]);
    assert_eq!(code, Some(0), "{out}");

    // The other channels, exactly: a re-import checks every stored message against its file
    // and writes nothing.
    let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    let mut checked = 0;
    for f in &other_files {
        let r = chatvault::import::import_irc_file(&v, f, |_| true).unwrap();
        assert!(r.completed && r.messages_written == 0, "{r:?}");
        checked += r.messages_already_present;
    }
    println!(
        "{} other files, {checked} messages read back exactly",
        other_files.len()
    );
    assert!(checked > 20_000, "{checked}");
}

/// The operator tools issue's acceptance for root keys: on the imported corpus, `chatvault key
/// rotate-root` then `verify` reports every tenant KEK under the new root version and every
/// record readable, and the old version can then be retired (after which everything still reads
/// back exactly).
#[test]
#[ignore = "opt-in: needs ../shared/corpus; run ./dev acceptance"]
fn root_key_rotation_then_verify_and_retire_on_the_corpus() {
    use std::sync::Arc;

    use chatvault::{StaticKeyProvider, Vault, VaultOptions};

    let corpus = corpus();
    let d = tempfile::tempdir().unwrap();
    let (data, key) = (d.path().join("data"), d.path().join("root.key"));
    let cli = common::Cli::at(&data, &key);
    cli.ok(&["init"]);
    let dirs = [corpus.join("ubuntu/dev"), corpus.join("new-domains")];
    for dir in &dirs {
        cli.ok(&["import", "irc", dir.to_str().unwrap()]);
    }
    let out = cli.ok(&["key", "rotate-root"]);
    println!("{out}");
    assert!(out.contains("version 2 is current"), "{out}");
    let stats = {
        let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
        let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
        let s = v.key_stats().unwrap();
        let r = v.verify().unwrap();
        assert!(r.is_ok(), "{:?}", r.failures);
        let fine: u64 = r.conversations.values().map(|c| c.ok).sum();
        let failed: u64 = r.conversations.values().map(|c| c.failed).sum();
        println!(
            "verify: {fine} records ok, {failed} failed, {} keys",
            r.keys_ok
        );
        assert!(fine > 25_000 && failed == 0);
        s
    };
    assert_eq!(stats.root_key_version, 2);
    assert_eq!(stats.tenant_keks_under_old_root, 0, "{stats:?}");
    assert!(stats.tenant_keks > 0);
    cli.ok(&["verify"]);
    cli.ok(&["key", "retire-root", "1"]);
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        !text.lines().any(|l| l.starts_with("1:")),
        "version 1 retired"
    );
    cli.ok(&["verify"]);
    // Everything reads back exactly after the retirement.
    let p = Arc::new(StaticKeyProvider::from_file(&key).unwrap());
    let v = Vault::open(&data, p, VaultOptions::default()).unwrap();
    for dir in &dirs {
        for f in chatvault::import::irc_log_files(dir).unwrap() {
            let r = chatvault::import::import_irc_file(&v, &f, |_| true).unwrap();
            assert!(r.completed && r.messages_written == 0, "{r:?}");
        }
    }
}
