//! Message records and sealed metadata (DESIGN.md §2, "Message record", "Sealed metadata").
//!
//! Properties:
//! 1. `RecordHeader::decode` of the whole input never panics, and when it decodes, encoding
//!    the header gives back the input's first 34 bytes (decode∘encode = id on headers);
//!    `meta_key_version` never panics and, when it accepts, reads bytes 2..6 of a value of the
//!    kind asked for.
//! 2. A record sealed under a fixed key, with its bytes (or its place, the RocksDB key bound by
//!    the AAD) then mutated as the input says, either opens to exactly the original plaintext,
//!    and then the bytes and place are the original ones, or fails with a typed error
//!    (`Authentication`, `Corrupt`, `UnsupportedFormat`): never a wrong plaintext, never a
//!    panic. The unmutated record always opens, and never under another key. The same for
//!    sealed metadata (`seal_meta`, `open_meta`).
//!
//! Framing: bytes 0..40 set the header and place (missing bytes read as 0): 0 kind, 1..5
//! revision, 5..9 epoch, 9..13 epoch key version, 13..21 author, 21..25 author key version,
//! 25..33 sent_at (i64 BE), 33 number of mutations (mod 8), 34..40 tenant, conversation and
//! message id (2 bytes each); then 4 bytes per mutation (op, position u16 BE, value): op mod 4
//! = 0 XOR the byte at position with value, 1 insert value at position, 2 truncate at
//! position, 3 XOR a byte of the place; the rest is the plaintext (at most 64 KiB).
//!
//! Run: `./dev fuzz record_envelope --seconds 60` (seeds: fuzz/seeds/record_envelope).
#![no_main]

use chatvault::envelope::{
    self, meta_key_version, open_meta, open_record, seal_meta, seal_record, MetaKind, RecordHeader,
    RecordKind,
};
use chatvault::{codec, Error, SecretKey};
use libfuzzer_sys::fuzz_target;

#[path = "../shared/mutate.rs"]
mod shared_mutate;
use shared_mutate::mutate;

const CONTROL: usize = 40;

fn typed(e: &Error) -> bool {
    matches!(
        e,
        Error::Authentication { .. } | Error::Corrupt { .. } | Error::UnsupportedFormat { .. }
    )
}

fuzz_target!(|data: &[u8]| {
    // 1. Arbitrary bytes as a stored value.
    if let Ok(h) = RecordHeader::decode(data, String::new) {
        assert_eq!(
            &chatvault::fuzzing::encode_record_header(&h)[..],
            &data[..envelope::RECORD_HEADER_LEN]
        );
    }
    for b in 0..=20u8 {
        if let Some(kind) = MetaKind::from_u8(b) {
            assert_eq!(kind as u8, b);
            if let Ok(v) = meta_key_version(data, kind, String::new) {
                assert_eq!(data[1], b);
                assert_eq!(v, u32::from_be_bytes([data[2], data[3], data[4], data[5]]));
            }
        }
    }

    // 2. Seal, mutate, open.
    let mut c = [0u8; CONTROL];
    let n = data.len().min(CONTROL);
    c[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let be32 = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
    let be64 = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&c[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let header = RecordHeader {
        kind: [
            RecordKind::Message,
            RecordKind::Revision,
            RecordKind::Deleted,
        ][c[0] as usize % 3],
        revision: be32(1),
        epoch: be32(5),
        epoch_version: be32(9),
        author: be64(13),
        author_version: be32(21),
        sent_at_ms: be64(25) as i64,
    };
    let n_muts = (c[33] % 8) as usize;
    let id = |i: usize| u64::from(u16::from_be_bytes([c[i], c[i + 1]]));
    let place = codec::message_key(id(34), id(36), id(38));
    let muts: Vec<[u8; 4]> = rest
        .chunks_exact(4)
        .take(n_muts)
        .map(|m| [m[0], m[1], m[2], m[3]])
        .collect();
    let plaintext = &rest[(muts.len() * 4).min(rest.len())..];
    let plaintext = &plaintext[..plaintext.len().min(64 << 10)];

    let key = SecretKey::from_bytes([0x42; 32]);
    let cipher = key.cipher();
    let other = SecretKey::from_bytes([0x43; 32]).cipher();
    let sealed = seal_record(&cipher, &header, &place, plaintext).expect("sealing never fails");
    assert_eq!(
        RecordHeader::decode(&sealed, String::new).ok(),
        Some(header)
    );
    assert_eq!(
        &open_record(&cipher, &sealed, &place, String::new).expect("the record opens")[..],
        plaintext
    );
    assert!(open_record(&other, &sealed, &place, String::new).is_err());

    let (v, p) = mutate(&sealed, &place, &muts);
    // The read path: decode the header (to pick the key), then open.
    let opened = RecordHeader::decode(&v, String::new)
        .and_then(|_| open_record(&cipher, &v, &p, String::new));
    match opened {
        Ok(pt) => {
            assert_eq!(
                &pt[..],
                plaintext,
                "a mutated record opened to another plaintext"
            );
            assert_eq!(v, sealed, "a mutated record opened");
            assert_eq!(p, place, "a record opened at another place");
        }
        Err(e) => assert!(typed(&e), "untyped error {e:?}"),
    }

    // The same for sealed metadata.
    let kind = MetaKind::from_u8(c[0] % 18).unwrap_or(MetaKind::Tenant);
    let meta_place = [&[0x02u8][..], &place[..16]].concat();
    let sealed = seal_meta(&cipher, kind, header.epoch_version, &meta_place, plaintext)
        .expect("sealing never fails");
    assert_eq!(
        meta_key_version(&sealed, kind, String::new).ok(),
        Some(header.epoch_version)
    );
    assert_eq!(
        &open_meta(&cipher, &sealed, kind, &meta_place, String::new).expect("it opens")[..],
        plaintext
    );
    assert!(open_meta(&other, &sealed, kind, &meta_place, String::new).is_err());
    let (v, p) = mutate(&sealed, &meta_place, &muts);
    match open_meta(&cipher, &v, kind, &p, String::new) {
        Ok(pt) => {
            assert_eq!(&pt[..], plaintext);
            assert_eq!((v, p), (sealed, meta_place));
        }
        Err(e) => assert!(typed(&e), "untyped error {e:?}"),
    }
});
