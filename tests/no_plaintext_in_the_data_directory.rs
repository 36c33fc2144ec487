//! No message body, nick, conversation id or tenant name of the input (at least 8 bytes long)
//! appears in any file of the data directory: SST, WAL, MANIFEST, OPTIONS, LOG, KEYCHECK.

mod common;

use aho_corasick::AhoCorasick;
use chatvault::import::{self, irc};

fn needles() -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for f in import::irc_log_files(&common::sample_dir()).unwrap() {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let log = irc::parse_log(&name, &text, None).unwrap();
        out.insert(log.conversation.clone());
        out.insert(log.channel.clone());
        for m in log.messages {
            out.insert(m.body);
            out.insert(m.nick);
        }
    }
    out.into_iter().filter(|s| s.len() >= 8).collect()
}

fn scan(dir: &std::path::Path, ac: &AhoCorasick, needles: &[String]) -> (usize, u64) {
    let mut bytes = 0;
    let files = common::files_under(dir);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        bytes += data.len() as u64;
        if let Some(m) = ac.find(&data) {
            panic!(
                "plaintext {:?} found in {} at byte {}",
                needles[m.pattern().as_usize()],
                f.display(),
                m.start()
            );
        }
    }
    (files.len(), bytes)
}

#[test]
fn imported_sample_leaves_no_plaintext_in_any_file() {
    let needles = needles();
    assert!(needles.len() > 1000, "only {} needles", needles.len());
    let ac = AhoCorasick::new(&needles).unwrap();

    // Positive control: the scanner does find the needles in the input.
    let input = std::fs::read(common::sample_dir().join("ubuntu/2011-11-13_02.raw.txt")).unwrap();
    assert!(ac.find(&input).is_some());

    let (d, v, _p) = common::new_vault();
    for f in import::irc_log_files(&common::sample_dir()).unwrap() {
        import::import_irc_file(&v, &f, |_| true).unwrap();
    }
    let data = d.path().join("data");
    // While open: the data is in the WAL and memtables.
    let (files, bytes) = scan(&data, &ac, &needles);
    assert!(
        files >= 5 && bytes > 100_000,
        "{files} files, {bytes} bytes: was anything written?"
    );
    // After flush and compaction: the data is in SST files.
    v.compact().unwrap();
    drop(v);
    let (_, bytes_after) = scan(&data, &ac, &needles);
    assert!(bytes_after > 100_000);
}
