//! The main job on the bundled real IRC sample: import, read back exactly, re-import without
//! duplicates, resume a stopped import, refuse a conflicting file.

mod common;

use chatvault::import::{self, ImportError};
use chatvault::Direction;

#[test]
fn bundled_sample_imports_and_reads_back_byte_for_byte() {
    let (_d, v, _p) = common::new_vault();
    let (files, msgs, _) = common::import_and_verify(&v, &common::sample_dir());
    assert_eq!(files, 2);
    assert!(msgs > 2000, "only {msgs} messages");
    let tenants: Vec<_> = v.tenants().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(
        tenants,
        vec!["rust".to_string(), "ubuntu".to_string()],
        "one tenant per channel, in import order"
    );
}

#[test]
fn importing_the_same_files_twice_writes_nothing_new() {
    let (_d, v, _p) = common::new_vault();
    let files = import::irc_log_files(&common::sample_dir()).unwrap();
    let mut first = 0;
    for f in &files {
        first += import::import_irc_file(&v, f, |_| true)
            .unwrap()
            .messages_written;
    }
    for f in &files {
        let r = import::import_irc_file(&v, f, |_| true).unwrap();
        assert_eq!(r.messages_written, 0);
        assert_eq!(r.users_created, 0);
        assert_eq!(r.messages_already_present, r.messages_in_file);
        assert!(r.completed);
    }
    let t = v.tenant("ubuntu").unwrap();
    let c = v.conversation_id(t, "2011-11-13_02").unwrap();
    let n = v.messages(t, c, None, Direction::Forward).unwrap().count() as u64;
    let rust = v.tenant("rust").unwrap();
    let rc = v.conversation_id(rust, "rust.0").unwrap();
    let m = v
        .messages(rust, rc, None, Direction::Forward)
        .unwrap()
        .count() as u64;
    assert_eq!(n + m, first);
}

#[test]
fn an_import_stopped_half_way_runs_again_to_completion() {
    let (_d, v, _p) = common::new_vault();
    let file = common::sample_dir().join("ubuntu/2011-11-13_02.raw.txt");
    let r = import::import_irc_file(&v, &file, |written| written < 600).unwrap();
    assert!(!r.completed);
    assert_eq!(r.messages_written, 2 * import::IMPORT_BATCH as u64);
    let r = import::import_irc_file(&v, &file, |_| true).unwrap();
    assert!(r.completed);
    assert_eq!(r.messages_already_present, 2 * import::IMPORT_BATCH as u64);
    // The result is exactly as if it had run in one go.
    common::import_and_verify(&v, &common::sample_dir());
}

#[test]
fn a_different_file_under_an_imported_name_is_a_conflict_and_writes_nothing() {
    let (d, v, _p) = common::new_vault();
    let orig = common::sample_dir().join("new-domains/rust.0.ascii.txt");
    import::import_irc_file(&v, &orig, |_| true).unwrap();
    let t = v.tenant("rust").unwrap();
    let c = v.conversation_id(t, "rust.0").unwrap();
    let before = v.last_message_id(t, c).unwrap();

    // Same name, one more line, and an earlier line changed.
    let text = std::fs::read_to_string(&orig).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last = lines.len() - 1;
    lines[last] = lines[last].replacen('>', "> CHANGED", 1);
    lines.push(lines[last].clone());
    let other = d.path().join("rust.0.ascii.txt");
    std::fs::write(&other, lines.join("\n") + "\n").unwrap();
    match import::import_irc_file(&v, &other, |_| true) {
        Err(ImportError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(v.last_message_id(t, c).unwrap(), before);
}

#[test]
fn a_malformed_line_is_a_typed_error_naming_the_line() {
    let (d, v, _p) = common::new_vault();
    let f = d.path().join("2011-11-13_02.raw.txt");
    std::fs::write(&f, "[02:00] <alice> hi\nthis is not an irc line\n").unwrap();
    match import::import_irc_file(&v, &f, |_| true) {
        Err(ImportError::Parse(e)) => assert!(e.to_string().contains('2'), "{e}"),
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(v.tenants().unwrap().is_empty(), "nothing was written");
}
