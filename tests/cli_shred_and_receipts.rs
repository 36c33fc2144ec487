//! The `chatvault shred` and `chatvault receipts` commands end to end on the bundled IRC
//! sample: shred a channel (tenant), reads of it fail with a clear message, the other channel
//! reads back, the receipt chain verifies; a legal hold refuses a shred (exit 4) or queues it;
//! tampering with the chain makes `receipts verify` fail (exit 5) naming the broken entry.

mod common;

use common::Cli;

/// The `head: SEQ:HEX` line of `receipts verify` / `receipts show`.
fn head_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap_or_else(|| panic!("no head in:\n{out}"))
        .to_string()
}

#[test]
fn shred_a_channel_then_verify_and_tamper_with_the_receipts() {
    let cli = Cli::with_sample();
    let first_rust = cli.ok(&["read", "rust", "rust.0", "--limit", "1"]);
    assert!(first_rust.starts_with("#1 2018-05-29T21:20:37Z <talchas>"));

    // No --yes: usage error, nothing changed.
    let e = cli.fails(&["shred", "tenant", "ubuntu"], 2);
    assert!(e.contains("Add --yes to confirm"), "{e}");
    cli.ok(&["read", "ubuntu", "2011-11-13_02", "--limit", "1"]);
    let help = cli.ok(&["shred", "tenant", "--help"]);
    assert!(help.contains("4 under legal hold"), "{help}");

    // A window first (JSON receipt), then the whole channel.
    let j = cli.ok(&[
        "shred",
        "window",
        "ubuntu",
        "2011-11-13_02",
        "--at",
        "2011-11-12T22:00:00Z",
        "--yes",
        "--json",
    ]);
    assert!(j.starts_with(r#"{"outcome":"shredded","seq":0,"#), "{j}");
    assert!(j.contains(r#""scope":{"kind":"window","#), "{j}");
    assert!(j.contains(r#""head":"0:"#), "{j}");
    let out = cli.ok(&["shred", "tenant", "ubuntu", "--yes"]);
    assert!(out.starts_with("shredded tenant ubuntu (#"), "{out}");
    assert!(out.contains("receipt:     seq 1,"), "{out}");
    assert!(out.contains("key ranges:  01"), "{out}");
    assert!(out.contains("chain head:  1:"), "{out}");

    // Reads of the shredded channel fail and say why; the other channel reads back.
    let e = cli.fails(&["read", "ubuntu", "2011-11-13_02"], 1);
    assert!(
        e.contains("no tenant named \"ubuntu\"") && e.contains("shredded"),
        "{e}"
    );
    let e = cli.fails(&["shred", "tenant", "ubuntu", "--yes"], 1);
    assert!(e.contains("no tenant named \"ubuntu\""), "{e}");
    assert_eq!(
        cli.ok(&["read", "rust", "rust.0", "--limit", "1"]),
        first_rust
    );
    let ls = cli.ok(&["ls"]);
    assert!(!ls.contains("ubuntu") && ls.contains("rust"), "{ls}");

    // A legal hold: refused with exit 4, or queued with --queue-if-held.
    let hold = cli.ok(&[
        "hold",
        "add",
        "rust",
        "--custodian",
        "talchas",
        "--reason",
        "matter",
    ]);
    let hold_id = hold.split(' ').nth(3).expect("hold id").to_string();
    let e = cli.fails(&["shred", "user", "rust", "talchas", "--yes"], 4);
    assert!(
        e.contains("under legal hold") && e.contains("nothing was destroyed"),
        "{e}"
    );
    let q = cli.ok(&[
        "shred",
        "user",
        "rust",
        "talchas",
        "--yes",
        "--queue-if-held",
    ]);
    assert!(q.starts_with("queued the erasure of user talchas"), "{q}");
    assert!(q.contains("receipt:     seq 2 (queued)"), "{q}");
    assert_eq!(
        cli.ok(&["read", "rust", "rust.0", "--limit", "1"]),
        first_rust
    );

    let show = cli.ok(&["receipts", "show"]);
    assert_eq!(show.lines().count(), 1 + 3 + 1, "{show}");
    assert!(show.contains("\tshredded tenant #"), "{show}");
    assert!(show.contains("\tqueued the erasure of user #"), "{show}");
    assert!(
        !show.contains("ubuntu") && !show.contains("talchas"),
        "{show}"
    );
    let json = cli.ok(&["receipts", "show", "--json"]);
    assert!(json.starts_with(r#"{"entries":[{"seq":0,"#), "{json}");
    assert!(json.contains(r#""event":"queued""#), "{json}");

    // Released: carried out. Purge: removal receipts.
    cli.ok(&["hold", "release", "rust", &hold_id]);
    let read = cli.ok(&["read", "rust", "rust.0", "--limit", "1"]);
    assert!(!read.contains("<talchas>"), "{read}");
    let purge = cli.ok(&["purge"]);
    assert!(
        purge.contains("removal receipts appended for shred 0, 1, 3"),
        "{purge}"
    );
    let show = cli.ok(&["receipts", "show"]);
    assert!(show.contains("(carries out queued request 2)"), "{show}");
    assert!(
        show.contains("removed from every data file: the records and keys of shred 1"),
        "{show}"
    );

    let ok = cli.ok(&["receipts", "verify"]);
    assert!(ok.starts_with("receipt chain intact: 7 entries"), "{ok}");
    let head = head_of(&ok);
    assert!(head.starts_with("6:"), "{head}");
    assert_eq!(head_of(&show), head);
    let ok = cli.ok(&["receipts", "verify", "--head", &head]);
    assert!(ok.contains("the kept head 6 is in place"), "{ok}");
    let e = cli.fails(&["receipts", "verify", "--head", "6:zz"], 2);
    assert!(e.contains("not a chain head"), "{e}");

    // Tamper: cut the last entry off. Only the kept head catches it.
    let entry = |seq: u64| {
        let mut k = vec![0x12u8, 1];
        k.extend_from_slice(&seq.to_be_bytes());
        k
    };
    {
        let db = common::open_raw(&cli.data);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        db.delete_cf(meta, entry(6)).unwrap();
    }
    cli.ok(&["receipts", "verify"]);
    let e = cli.fails(&["receipts", "verify", "--head", &head], 5);
    assert!(
        e.contains("receipt chain broken at entry 6 (cut off the end)"),
        "{e}"
    );

    // Tamper: edit entry 1 (a byte of its body).
    {
        let db = common::open_raw(&cli.data);
        let meta = db.cf_handle(chatvault::cf::META).unwrap();
        let mut v = db.get_cf(meta, entry(1)).unwrap().unwrap();
        v[52] ^= 0x40;
        db.put_cf(meta, entry(1), v).unwrap();
    }
    let e = cli.fails(&["receipts", "verify"], 5);
    assert!(
        e.contains("receipt chain broken at entry 1 (edited)"),
        "{e}"
    );
    assert!(e.contains("(1 entry verified)"), "{e}");
}
