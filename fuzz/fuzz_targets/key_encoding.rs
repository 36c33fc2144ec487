//! RocksDB key encoding (DESIGN.md §3, `src/codec.rs`).
//!
//! Properties:
//! 1. decode∘encode = id: `decode_message_key`, `decode_revision_key` and `decode_time_key` of
//!    the whole input never panic, accept exactly the inputs of their length (24, 28, 32
//!    bytes), and re-encoding what they decode gives the input back; `decode_time` inverts
//!    `encode_time` for every `i64`.
//! 2. Order: for two `(tenant, conversation, time, id)` tuples derived from the input, the byte
//!    order of their `time_key`s is the tuple order with time compared as a signed `i64` (UTC
//!    ms, negative before positive); likewise `message_key` (tenant, conversation, id) and
//!    `revision_key` (tenant, conversation, id, revision), and `encode_time` alone.
//! 3. `prefix_successor(p)` is greater than every key starting with `p` and does not start
//!    with `p` itself (`None` only for an all-0xFF prefix).
//!
//! Framing: bytes 0..32 tuple A (tenant, conversation, time as i64, id; u64 BE each), byte 32 a
//! selector, bytes 33..65 raw tuple B (missing bytes read as 0). Selector bits 0-3: take B's
//! tenant, conversation, time, id from A (so that tuples share prefixes); bit 4: B's time is
//! A's plus the low byte of B's raw time as an i8 (times that differ by a little, across 0);
//! bits 5-7 and the input length choose the prefix length for property 3. Revisions are the
//! low 32 bits of the times.
//!
//! Run: `./dev fuzz key_encoding --seconds 60` (seeds: fuzz/seeds/key_encoding).
#![no_main]

use chatvault::codec::{
    decode_message_key, decode_revision_key, decode_time, decode_time_key, encode_time,
    message_key, prefix_successor, revision_key, time_key,
};
use libfuzzer_sys::fuzz_target;

type Tuple = (u64, u64, i64, u64);

fn tuple(b: &[u8]) -> Tuple {
    let f = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i..i + 8]);
        u64::from_be_bytes(x)
    };
    (f(0), f(8), f(16) as i64, f(24))
}

fuzz_target!(|data: &[u8]| {
    // 1. Decoders.
    match decode_message_key(data) {
        Some((t, c, id)) => assert_eq!(message_key(t, c, id), data),
        None => assert_ne!(data.len(), 24),
    }
    match decode_revision_key(data) {
        Some((t, c, id, r)) => assert_eq!(revision_key(t, c, id, r), data),
        None => assert_ne!(data.len(), 28),
    }
    match decode_time_key(data) {
        Some((t, c, ms, id)) => assert_eq!(time_key(t, c, ms, id), data),
        None => assert_ne!(data.len(), 32),
    }

    // 2. Order.
    let mut buf = [0u8; 65];
    let n = data.len().min(65);
    buf[..n].copy_from_slice(&data[..n]);
    let a = tuple(&buf[0..32]);
    let sel = buf[32];
    let raw = tuple(&buf[33..65]);
    let b: Tuple = (
        if sel & 1 != 0 { a.0 } else { raw.0 },
        if sel & 2 != 0 { a.1 } else { raw.1 },
        if sel & 16 != 0 {
            a.2.wrapping_add(i64::from(raw.2 as u8 as i8))
        } else if sel & 4 != 0 {
            a.2
        } else {
            raw.2
        },
        if sel & 8 != 0 { a.3 } else { raw.3 },
    );
    for x in [a.2, b.2] {
        assert_eq!(decode_time(encode_time(x)), x);
    }
    assert_eq!(encode_time(a.2).cmp(&encode_time(b.2)), a.2.cmp(&b.2));
    let (ka, kb) = (time_key(a.0, a.1, a.2, a.3), time_key(b.0, b.1, b.2, b.3));
    assert_eq!(ka.cmp(&kb), a.cmp(&b), "time keys of {a:?} and {b:?}");
    assert_eq!(decode_time_key(&ka), Some(a));
    assert_eq!(
        message_key(a.0, a.1, a.3).cmp(&message_key(b.0, b.1, b.3)),
        (a.0, a.1, a.3).cmp(&(b.0, b.1, b.3))
    );
    let (ra, rb) = (a.2 as u32, b.2 as u32);
    assert_eq!(
        revision_key(a.0, a.1, a.3, ra).cmp(&revision_key(b.0, b.1, b.3, rb)),
        (a.0, a.1, a.3, ra).cmp(&(b.0, b.1, b.3, rb))
    );
    // A message's revisions sort after its own key and before the next message's.
    let m = message_key(a.0, a.1, a.3);
    assert!(revision_key(a.0, a.1, a.3, ra) > m);

    // 3. Prefix successors, of a prefix of A's time key.
    let plen = (usize::from(sel >> 5) * 5 + data.len()) % 33;
    let prefix = &ka[..plen];
    match prefix_successor(prefix) {
        Some(s) => {
            assert!(!s.starts_with(prefix));
            assert!(s.as_slice() > prefix);
            for k in [&ka, &kb, &m] {
                if k.starts_with(prefix) {
                    assert!(
                        k.as_slice() < s.as_slice(),
                        "{k:?} >= successor of {prefix:?}"
                    );
                }
            }
        }
        None => assert!(prefix.iter().all(|b| *b == 0xFF)),
    }
});
