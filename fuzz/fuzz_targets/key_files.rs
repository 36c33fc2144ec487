//! Small files and records that decide whether a vault opens (DESIGN.md §2): the root key
//! file and `CHATVAULT_ROOT_KEY` (`StaticKeyProvider::parse`, `parse_env_value`), the key-check
//! file (`KEYCHECK`), the vault format version record (meta `0x1D`) and shred tombstones (meta
//! `0x10`, both layouts).
//!
//! Properties, on arbitrary bytes (and the same bytes as text, invalid UTF-8 replaced):
//! - nothing panics;
//! - key file / environment value: a value that parses writes back (the key file's text) to a
//!   text that parses to the same versions and keys, and wraps what the first one unwraps; a
//!   rejection's message never quotes a run of 16 or more hex digits of the input (a key is
//!   never echoed);
//! - `KEYCHECK`: bytes that decode are exactly the encoding of what they decode to (nothing
//!   before, after or between is ignored); arbitrary bytes never open (typed error:
//!   `WrongRootKey`, `RootKeyVersionMissing`, `Corrupt`, `UnsupportedFormat`, `KeyProvider`); a
//!   valid file made from the input's vault id and key opens to that key, and with one byte
//!   changed is refused with one of those errors;
//! - format record: what decodes re-encodes to the same bytes when its name is valid UTF-8,
//!   and always to a record that decodes to the same version and (up to 255 bytes) the same
//!   name, cut at a character boundary;
//! - tombstones: what decodes (current layout, or the format-1 layout the upgrade converts)
//!   re-encodes to bytes that decode to the same tombstone; an upgraded one has no receipt
//!   (`seq` = `NO_RECEIPT`); and a format-1 tombstone with a real window (start before end) or
//!   none never also decodes as the current layout (so the upgrade cannot skip it).
//!
//! Framing: the whole input is each of these; for the valid `KEYCHECK`, bytes 0..16 are the
//! vault id, 16..48 the key, 48..50 the position of the changed byte and 50 the XOR value
//! (missing bytes read as 0; 0 means 1).
//!
//! Run: `./dev fuzz key_files --seconds 60` (seeds: fuzz/seeds/key_files).
#![no_main]

use chatvault::fuzzing::{
    decode_format_record, decode_keycheck, decode_tombstone, encode_format_record, encode_keycheck,
    encode_tombstone, key_file_text, keycheck_bytes, open_keycheck, same_key, upgrade_tombstone,
};
use chatvault::{Error, KeyProvider, SecretKey, StaticKeyProvider, NO_RECEIPT};
use libfuzzer_sys::fuzz_target;

fn provider() -> StaticKeyProvider {
    StaticKeyProvider::parse(
        "chatvault-root-key-v1\n\
         2:0202020202020202020202020202020202020202020202020202020202020202\n\
         3:0303030303030303030303030303030303030303030303030303030303030303\n",
    )
    .expect("a valid key file")
}

/// Runs of at least 16 hex digits in `s`.
fn hex_runs(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|r| r.len() >= 16)
        .collect()
}

fn check_provider(input: &str, parsed: Result<StaticKeyProvider, chatvault::ProviderError>) {
    match parsed {
        Ok(p) => {
            let text = key_file_text(&p);
            let again = StaticKeyProvider::parse(&text).expect("the written key file parses");
            assert_eq!(again.versions(), p.versions());
            assert_eq!(*key_file_text(&again), *text);
            let k = SecretKey::from_bytes([9; 32]);
            let blob = p.wrap(&k, b"aad").expect("it wraps");
            assert!(same_key(
                &again.unwrap(&blob, b"aad").expect("it unwraps"),
                &k
            ));
        }
        Err(e) => {
            let msg = e.to_string();
            for run in hex_runs(input) {
                assert!(!msg.contains(run), "the error quotes key material: {msg}");
            }
        }
    }
}

fn open_typed(e: &Error) -> bool {
    matches!(
        e,
        Error::WrongRootKey { .. }
            | Error::RootKeyVersionMissing { .. }
            // A version the provider held once and retired (an old copy): since session 4.
            | Error::RootKeyVersionRetired { .. }
            | Error::Corrupt { .. }
            | Error::UnsupportedFormat { .. }
            | Error::KeyProvider(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    // Root key file and environment value.
    check_provider(&text, StaticKeyProvider::parse(&text));
    check_provider(&text, StaticKeyProvider::parse_env_value(&text));

    // KEYCHECK.
    let p = provider();
    if let Ok((id, blob)) = decode_keycheck(data) {
        assert_eq!(
            encode_keycheck(&id, &blob).expect("a decoded blob fits"),
            data,
            "KEYCHECK bytes that decode are not the encoding of what they decode to"
        );
    }
    match open_keycheck(data, &p) {
        Ok(_) => panic!("arbitrary KEYCHECK bytes opened"),
        Err(e) => assert!(open_typed(&e), "{e:?}"),
    }
    let mut c = [0u8; 51];
    let n = data.len().min(51);
    c[..n].copy_from_slice(&data[..n]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&c[..16]);
    let mut kb = [0u8; 32];
    kb.copy_from_slice(&c[16..48]);
    let key = SecretKey::from_bytes(kb);
    let file = keycheck_bytes(&p, &id, &key).expect("it wraps");
    assert_eq!(decode_keycheck(&file).ok().map(|(i, _)| i), Some(id));
    assert!(same_key(&open_keycheck(&file, &p).expect("it opens"), &key));
    let mut bad = file.clone();
    let pos = u16::from_be_bytes([c[48], c[49]]) as usize % bad.len();
    bad[pos] ^= if c[50] == 0 { 1 } else { c[50] };
    match open_keycheck(&bad, &p) {
        Ok(_) => panic!("a changed KEYCHECK opened (byte {pos})"),
        Err(e) => assert!(open_typed(&e), "{e:?}"),
    }

    // Vault format version record.
    if let Ok((v, by)) = decode_format_record(data) {
        let again = encode_format_record(v, &by);
        if std::str::from_utf8(&data[6..]).is_ok() {
            assert_eq!(again, data);
        }
        let (v2, by2) = decode_format_record(&again).expect("an encoded record decodes");
        assert_eq!(v2, v);
        assert!(by.starts_with(&by2), "{by2:?} is not a prefix of {by:?}");
        if by.len() <= 255 {
            assert_eq!(by2, by);
        }
    }

    // Shred tombstones.
    if let Some((r, w)) = decode_tombstone(data) {
        let again = encode_tombstone(&r, w).expect("it encodes");
        assert_eq!(decode_tombstone(&again), Some((r, w)));
    }
    if let Some((r, w)) = upgrade_tombstone(data) {
        assert_eq!(r.seq, NO_RECEIPT);
        let again = encode_tombstone(&r, w).expect("it encodes");
        assert_eq!(decode_tombstone(&again), Some((r, w)));
        if w.map_or(true, |(s, e)| s < e) {
            assert!(
                decode_tombstone(data).is_none(),
                "a format-1 tombstone also decodes as the current layout"
            );
        }
    }
});
