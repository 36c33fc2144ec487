//! `Vault::verify` and `chatvault verify`: a clean vault verifies, with expired and shredded
//! records counted (not failed); a flipped bit in a record, a missing time-index entry and a
//! tampered wrapped key are each caught and named by id.

mod common;

use std::sync::Arc;

use chatvault::{
    Actor, NewMessage, ShredScope, StaticKeyProvider, TenantOptions, Vault, VaultOptions,
};
use common::DAY;

const D1: i64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY;
const D2: i64 = D1 + DAY;

struct W {
    _d: tempfile::TempDir,
    data: std::path::PathBuf,
    key: std::path::PathBuf,
    p: Arc<StaticKeyProvider>,
    f: common::Fixture,
}

/// acme/general: alice on D1 (3 messages, one edited), bob on D2 (2 messages).
fn world() -> (W, Vault) {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let key = d.path().join("root.key");
    let p = Arc::new(StaticKeyProvider::create_key_file(&key).unwrap());
    let v = Vault::create(&data, p.clone(), VaultOptions::default()).unwrap();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    for n in 0..3 {
        v.append(f.t, f.c, NewMessage::text(f.alice, D1 + n, format!("a{n}")))
            .unwrap()
            .stored()
            .unwrap();
    }
    for n in 0..2 {
        v.append(f.t, f.c, NewMessage::text(f.bob, D2 + n, format!("b{n}")))
            .unwrap()
            .stored()
            .unwrap();
    }
    v.edit(f.t, f.c, 1, "a0 edited", D1 + 50).unwrap();
    (
        W {
            _d: d,
            data,
            key,
            p,
            f,
        },
        v,
    )
}

fn cli_verify(w: &W) -> (Option<i32>, String) {
    common::Cli::at(&w.data, &w.key).out(&["verify"])
}

#[test]
fn a_clean_vault_verifies_and_counts_shredded_records_apart() {
    let (w, v) = world();
    let r = v.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
    let n = &r.conversations[&(w.f.t, w.f.c)];
    assert_eq!((n.ok, n.failed), (6, 0), "5 messages + 1 revision");
    assert_eq!(r.index_ok, 5);
    assert!(
        r.keys_ok >= 6,
        "KEK, 2 users, conversation, 2 epochs: {}",
        r.keys_ok
    );

    v.shred(
        w.f.t,
        Actor::operator(),
        ShredScope::Window {
            conversation: w.f.c,
            at_ms: D1,
        },
    )
    .unwrap();
    let r = v.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.failures);
    let n = &r.conversations[&(w.f.t, w.f.c)];
    assert_eq!((n.ok, n.shredded_awaiting_purge, n.failed), (2, 4, 0));
    drop(v);
    let (code, out) = cli_verify(&w);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(
            "acme/general: 2 ok, 0 expired awaiting purge, 4 shredded awaiting purge, 0 failed"
        ),
        "{out}"
    );
}

#[test]
fn a_flipped_bit_a_missing_index_entry_and_a_tampered_key_are_each_caught() {
    let (w, v) = world();
    let (t, c) = (w.f.t.as_u64(), w.f.c.as_u64());
    drop(v);
    {
        let db = common::open_raw(&w.data);
        // A bit flipped in the ciphertext of message 2.
        let mcf = db.cf_handle(chatvault::cf::MESSAGES).unwrap();
        let k = chatvault::codec::message_key(t, c, 2);
        let mut val = db.get_cf(mcf, &k).unwrap().unwrap();
        let last = val.len() - 20;
        val[last] ^= 0x01;
        db.put_cf(mcf, &k, &val).unwrap();
        // Message 1's current record cut short: corrupt, not just unauthentic.
        let k1 = chatvault::codec::message_key(t, c, 1);
        let val = db.get_cf(mcf, &k1).unwrap().unwrap();
        db.put_cf(mcf, &k1, &val[..10]).unwrap();
        // Message 3's time-index entry removed.
        let icf = db.cf_handle(chatvault::cf::TIME_INDEX).unwrap();
        db.delete_cf(icf, chatvault::codec::time_key(t, c, D1 + 2, 3))
            .unwrap();
        // The D2 epoch key's wrapped bytes altered.
        let kcf = db.cf_handle(chatvault::cf::KEYS).unwrap();
        let ek = ek_of(t, c);
        let mut val = db.get_cf(kcf, &ek).unwrap().unwrap();
        val[30] ^= 0x80;
        db.put_cf(kcf, &ek, &val).unwrap();
    }
    let v = Vault::open(&w.data, w.p.clone(), VaultOptions::default()).unwrap();
    let r = v.verify().unwrap();
    let whats: Vec<&str> = r.failures.iter().map(|f| f.what.as_str()).collect();
    assert!(
        whats.contains(&format!("message {t}/{c}/2").as_str()),
        "{whats:?}"
    );
    assert!(
        whats.contains(&format!("time index entry {t}/{c}/3").as_str()),
        "{whats:?}"
    );
    assert!(
        whats.contains(&format!("wrapped key {}", hex::encode(ek_of(t, c))).as_str()),
        "{whats:?}"
    );
    // Bob's D2 messages cannot be opened with a tampered epoch key: failed, not "shredded".
    assert!(
        whats.contains(&format!("message {t}/{c}/5").as_str()),
        "{whats:?}"
    );
    // The truncated record is named, and its failure does not tell to run `chatvault verify`
    // (this is that run).
    let truncated = r
        .failures
        .iter()
        .find(|f| f.what == format!("message {t}/{c}/1"))
        .unwrap_or_else(|| panic!("{:?}", r.failures));
    assert!(truncated.error.starts_with("corrupt "), "{truncated:?}");
    assert!(
        !truncated.error.contains("chatvault verify"),
        "{truncated:?}"
    );
    // Nothing prints plaintext.
    let all = format!("{:?}", r.failures);
    assert!(!all.contains("a1") && !all.contains("b0"), "{all}");
    drop(v);
    let (code, out) = cli_verify(&w);
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains(&format!("FAILED message {t}/{c}/2")), "{out}");
}

/// Where the D2 epoch key (version 1) of conversation `c` is stored.
fn ek_of(t: u64, c: u64) -> Vec<u8> {
    chatvault::codec::KeyBuf::tag(0x03)
        .u64(t)
        .u64(c)
        .u32((D2 / DAY) as u32)
        .u32(1)
        .into_vec()
}

#[test]
fn a_damaged_data_file_is_a_failure_in_the_report_not_an_error() {
    let (w, v) = world();
    v.flush().unwrap();
    drop(v);
    // One byte of the first data block of every SST file flipped: RocksDB's block checksums
    // catch it when verify reads the block.
    let mut damaged = 0;
    for f in common::files_under(&w.data) {
        if f.extension().is_some_and(|e| e == "sst") {
            let mut b = std::fs::read(&f).unwrap();
            if b.len() > 200 {
                b[40] ^= 0x20;
                std::fs::write(&f, b).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0);
    let v = match Vault::open(&w.data, w.p.clone(), VaultOptions::default()) {
        Ok(v) => v,
        // Opening may already read a damaged block (that is a clear error too).
        Err(e) => {
            assert!(e.to_string().to_lowercase().contains("corrupt"), "{e}");
            return;
        }
    };
    let r = v.verify().unwrap();
    assert!(!r.is_ok());
    assert!(
        r.failures
            .iter()
            .any(|f| f.what.starts_with("column family") && f.error.contains("not checked")),
        "{:?}",
        r.failures
    );
}
