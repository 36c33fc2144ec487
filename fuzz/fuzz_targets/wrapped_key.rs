//! Wrapped keys (DESIGN.md §2, "Wrapped key") and the root key provider's blob.
//!
//! Properties:
//! 1. `WrapHeader::decode` of the whole input never panics; when it decodes, encoding the
//!    header gives back the input's first 10 bytes. `StaticKeyProvider::unwrap` of the whole
//!    input (as a provider blob) never panics and never succeeds (the fuzzer cannot forge a
//!    tag); `unwrap_key` of it never succeeds either.
//! 2. Round trip: a key wrapped under a fixed parent key (`wrap_key`) or by the root key
//!    provider (`StaticKeyProvider::wrap`, and the tenant-KEK value `header || blob` as the
//!    vault writes it) unwraps to the same header and key bytes.
//! 3. Tampering: the wrapped value (or its place, the RocksDB key in the AAD) mutated as the
//!    input says either unwraps to the same key and is then the unmutated value, or is rejected
//!    with a typed error (`Authentication`, `Corrupt`, `UnsupportedFormat`; provider:
//!    `Authentication`, `Malformed`, `UnknownVersion`).
//!
//! Framing: bytes 0..42 (missing bytes read as 0): 0 kind, 1..5 version, 5..9 parent version,
//! 9..41 the key, 41 number of mutations (mod 8); then 4 bytes per mutation (op, position u16
//! BE, value), as in `record_envelope` (op mod 4: XOR, insert, truncate, XOR a byte of the
//! place); the rest is the place (at most 64 bytes; e.g. `0x02 | tenant | conv | version`).
//!
//! Run: `./dev fuzz wrapped_key --seconds 60` (seeds: fuzz/seeds/wrapped_key).
#![no_main]

use chatvault::envelope::{unwrap_key, wrap_key, WrapHeader, WRAPPED_KEY_LEN};
use chatvault::fuzzing::{encode_wrap_header, same_key};
use chatvault::{Error, KeyProvider, ProviderError, SecretKey, StaticKeyProvider};
use libfuzzer_sys::fuzz_target;

#[path = "../shared/mutate.rs"]
mod shared_mutate;
use shared_mutate::mutate;

const CONTROL: usize = 42;

fn typed(e: &Error) -> bool {
    matches!(
        e,
        Error::Authentication { .. } | Error::Corrupt { .. } | Error::UnsupportedFormat { .. }
    )
}

fn provider_typed(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Authentication
            | ProviderError::Malformed(_)
            | ProviderError::UnknownVersion(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let parent = SecretKey::from_bytes([0x17; 32]).cipher();
    // Two root key versions, so that blobs may name either (or neither).
    let provider = StaticKeyProvider::parse(
        "chatvault-root-key-v1\n\
         1:0101010101010101010101010101010101010101010101010101010101010101\n\
         2:0202020202020202020202020202020202020202020202020202020202020202\n",
    )
    .expect("a valid key file");

    // 1. Arbitrary bytes.
    if let Ok(h) = WrapHeader::decode(data, String::new) {
        assert_eq!(&encode_wrap_header(&h)[..], &data[..10]);
    }
    match provider.unwrap(data, b"place") {
        Ok(_) => panic!("an arbitrary provider blob unwrapped"),
        Err(e) => assert!(provider_typed(&e), "{e:?}"),
    }
    if let Ok(_) = unwrap_key(&parent, data, b"place", String::new) {
        panic!("an arbitrary wrapped key unwrapped");
    }

    // 2. Round trips.
    let mut c = [0u8; CONTROL];
    let n = data.len().min(CONTROL);
    c[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];
    let be32 = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
    let header = WrapHeader {
        kind: c[0],
        version: be32(1),
        parent_version: be32(5),
    };
    let mut kb = [0u8; 32];
    kb.copy_from_slice(&c[9..41]);
    let key = SecretKey::from_bytes(kb);
    let muts: Vec<[u8; 4]> = rest
        .chunks_exact(4)
        .take((c[41] % 8) as usize)
        .map(|m| [m[0], m[1], m[2], m[3]])
        .collect();
    let place = &rest[(muts.len() * 4).min(rest.len())..];
    let place = &place[..place.len().min(64)];

    let wrapped = wrap_key(&parent, &header, place, &key).expect("wrapping never fails");
    assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
    let (h, k) = unwrap_key(&parent, &wrapped, place, String::new).expect("it unwraps");
    assert_eq!(h, header);
    assert!(same_key(&k, &key));

    let aad = header.aad(place);
    let blob = provider.wrap(&key, &aad).expect("wrapping never fails");
    assert!(same_key(
        &provider.unwrap(&blob, &aad).expect("it unwraps"),
        &key
    ));
    let kek_value = header.with_blob(&blob);
    assert_eq!(
        WrapHeader::decode(&kek_value, String::new).ok(),
        Some(header)
    );

    // 3. Tampering.
    let (v, p) = mutate(&wrapped, place, &muts);
    match unwrap_key(&parent, &v, &p, String::new) {
        Ok((h2, k2)) => {
            assert_eq!((h2, &v[..], &p[..]), (header, &wrapped[..], place));
            assert!(same_key(&k2, &key));
        }
        Err(e) => assert!(typed(&e), "untyped error {e:?}"),
    }
    // The tenant KEK as the vault reads it: header, then the provider's blob under the
    // header's AAD at the (possibly mutated) place.
    let (v, p) = mutate(&kek_value, place, &muts);
    let opened = WrapHeader::decode(&v, String::new).map(|h2| {
        (
            h2,
            provider.unwrap(v.get(10..).unwrap_or_default(), &h2.aad(&p)),
        )
    });
    match opened {
        Ok((h2, Ok(k2))) => {
            assert_eq!((h2, &v[..], &p[..]), (header, &kek_value[..], place));
            assert!(same_key(&k2, &key));
        }
        Ok((_, Err(e))) => assert!(provider_typed(&e), "{e:?}"),
        Err(e) => assert!(typed(&e), "untyped error {e:?}"),
    }
});
