//! The MAC-chained logs (shred receipts, chain 1; audit trail, chain 2; DESIGN.md §7,
//! "Receipts", and §8, "Audit trail") and the bodies stored in them.
//!
//! Properties:
//! 1. Arbitrary bytes stored as entry 0 never verify and never panic: the report names entry 0
//!    as `Malformed` (it does not decode) or `Edited` (its MAC does not match).
//! 2. A valid chain built from the input's bodies verifies intact, with the head of its last
//!    entry; and each change the input picks is reported at the right entry with the right
//!    `ChainFault`: any byte of entry i changed -> `Edited` at i (`Malformed` for its version
//!    byte); entry i cut short -> `Malformed` or `Edited` at i; entry i dropped (not the last)
//!    -> `Missing` at i; entries i and j swapped -> `Reordered` at i; the last entry cut off
//!    the end, given the kept head -> `Truncated`; a kept head with another MAC ->
//!    `HeadMismatch`.
//! 3. Body decoding (postcard) of arbitrary bytes never panics: a receipt (`ReceiptEvent`), an
//!    audit body, a queued erasure; what decodes re-encodes to bytes that decode to the same
//!    value.
//! 4. A kept head as text (`SEQ:HEX`, `ChainHead::from_str`) that parses prints as text that
//!    parses to the same head.
//!
//! Framing: byte 0 the chain (odd: receipts, even: audit), byte 1 which entry to change, byte 2
//! how (mod 6: flip, cut short, drop, swap, cut off the end, other head), bytes 3..5 the byte
//! position (u16 BE), byte 5 the XOR value (0 means 1); the rest, split at 0x00 bytes, gives
//! the bodies of up to 8 entries. Properties 1, 3 and 4 read the whole input.
//!
//! Run: `./dev fuzz chain_entry --seconds 60` (seeds: fuzz/seeds/chain_entry).
#![no_main]

use chatvault::fuzzing::{
    decode_audit_body, decode_chain_entry, decode_queued_erasure, decode_receipt_body,
    encode_audit_body, encode_queued_erasure, encode_receipt_body, TestChain,
};
use chatvault::{ChainFault, ChainHead, ChainId, SecretKey};
use libfuzzer_sys::fuzz_target;

/// Bytes before an entry's body: version, seq, time, previous MAC.
const HEADER_LEN: usize = 1 + 8 + 8 + 32;
const MAC_LEN: usize = 32;

fn key(id: ChainId, seq: u64) -> Vec<u8> {
    let mut k = vec![0x12, id as u8];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fuzz_target!(|data: &[u8]| {
    let id = if data.first().is_some_and(|b| b % 2 == 0) {
        ChainId::Audit
    } else {
        ChainId::Receipts
    };
    let chain = TestChain::new(id, &SecretKey::from_bytes([0x5a; 32]));

    // 1. Arbitrary bytes as entry 0.
    let r = chain
        .verify(&[(key(id, 0), data.to_vec())], None)
        .expect("no read errors");
    let b = r.broken.as_ref().expect("arbitrary bytes never verify");
    assert_eq!((b.seq, r.entries, r.head), (0, 0, None));
    let decodes = decode_chain_entry(data).is_some();
    assert_eq!(
        b.fault,
        if decodes {
            ChainFault::Edited
        } else {
            ChainFault::Malformed
        }
    );

    // 3. Bodies.
    if let Some(e) = decode_receipt_body(data) {
        let again = encode_receipt_body(&e).expect("it encodes");
        assert_eq!(decode_receipt_body(&again), Some(e));
    }
    if let Some(a) = decode_audit_body(data) {
        let again = encode_audit_body(&a).expect("it encodes");
        assert_eq!(decode_audit_body(&again), Some(a));
    }
    if let Some(q) = decode_queued_erasure(data) {
        let again = encode_queued_erasure(&q).expect("it encodes");
        assert_eq!(decode_queued_erasure(&again), Some(q));
    }

    // 4. Kept heads as text.
    let text = String::from_utf8_lossy(data);
    if let Ok(h) = text.parse::<ChainHead>() {
        assert_eq!(h.to_string().parse::<ChainHead>().ok(), Some(h));
    }

    // 2. A valid chain, then one change.
    let mut c = [0u8; 6];
    let n = data.len().min(6);
    c[..n].copy_from_slice(&data[..n]);
    let bodies: Vec<(i64, Vec<u8>)> = data[n..]
        .split(|b| *b == 0)
        .take(8)
        .enumerate()
        .map(|(i, b)| (1_700_000_000_000 + i as i64 * 1000, b.to_vec()))
        .collect();
    let entries = chain.append(&bodies);
    let count = entries.len();
    let r = chain.verify(&entries, None).expect("no read errors");
    assert!(r.is_intact(), "{:?}", r.broken);
    assert_eq!(r.entries, count as u64);
    let head = r.head.expect("at least one entry");
    assert_eq!(head.seq, count as u64 - 1);
    assert!(chain
        .verify(&entries, Some(&head))
        .expect("reads")
        .is_intact());

    let i = c[1] as usize % count;
    let pos = u16::from_be_bytes([c[3], c[4]]) as usize;
    let xor = if c[5] == 0 { 1 } else { c[5] };
    let mut x = entries.clone();
    let mut kept = None;
    let (want_seq, want) = match c[2] % 6 {
        0 => {
            let v = &mut x[i].1;
            let p = pos % v.len();
            v[p] ^= xor;
            (
                i,
                if p == 0 {
                    vec![ChainFault::Malformed]
                } else {
                    vec![ChainFault::Edited]
                },
            )
        }
        1 => {
            let v = &mut x[i].1;
            v.truncate(pos % v.len());
            let fault = if v.len() < HEADER_LEN + MAC_LEN {
                ChainFault::Malformed
            } else {
                ChainFault::Edited
            };
            (i, vec![fault])
        }
        2 if i + 1 < count => {
            x.remove(i);
            (i, vec![ChainFault::Missing])
        }
        3 if count >= 2 => {
            let j = (i + 1 + pos % (count - 1)) % count;
            let (lo, hi) = (i.min(j), i.max(j));
            let (a, b) = (x[lo].1.clone(), x[hi].1.clone());
            x[lo].1 = b;
            x[hi].1 = a;
            (lo, vec![ChainFault::Reordered])
        }
        4 => {
            x.pop();
            kept = Some(head);
            (count - 1, vec![ChainFault::Truncated])
        }
        _ => {
            let mut other = head;
            other.mac[pos % MAC_LEN] ^= xor;
            kept = Some(other);
            (count - 1, vec![ChainFault::HeadMismatch])
        }
    };
    let r = chain.verify(&x, kept.as_ref()).expect("no read errors");
    let b = r.broken.expect("a changed chain never verifies");
    // An entry changed into another authentic entry (the fuzzer can learn a MAC from the
    // comparison it watches, as no attacker without the key can) is not a fault of its own: the
    // next entry's link is.
    if c[2] % 6 < 2
        && b.seq == want_seq as u64 + 1
        && b.fault == ChainFault::BrokenLink
        && chain
            .verify(&x[..=want_seq], None)
            .expect("reads")
            .is_intact()
    {
        return;
    }
    assert_eq!(b.seq, want_seq as u64, "{b}");
    assert!(want.contains(&b.fault), "{b}, expected {want:?}");
});
