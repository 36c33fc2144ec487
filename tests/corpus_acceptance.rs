//! Opt-in acceptance test over the full corpus in `../shared/corpus/irc-disentanglement`:
//! imports all of `ubuntu/dev` and `new-domains`, reads every conversation back and checks it
//! is exact. Run with `./dev acceptance` (or `cargo test --test corpus_acceptance -- --ignored
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
