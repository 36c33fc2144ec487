//! Exports encrypted to age recipients (`AgeOutput`, the `age` feature): the file decrypts with
//! the age crate's `Decryptor` and an X25519 identity (any one of several recipients) to the
//! same bytes as the plain export, none of the plaintext is in it, a truncated file does not
//! decrypt, and bad recipients are refused before anything is written.
#![cfg(feature = "age")]

mod common;

use std::io::Read;

use chatvault::{Actor, AgeOutput, Error, ExportOptions};

fn decrypt(buf: &[u8], id: &age::x25519::Identity) -> Result<Vec<u8>, String> {
    let d = age::Decryptor::new(buf).map_err(|e| e.to_string())?;
    let mut r = d
        .decrypt(std::iter::once(id as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn an_encrypted_export_decrypts_to_the_same_records_and_holds_no_plaintext() {
    let (_d, v, _p, _clock) = common::new_vault_with_clock(1_700_000_000_000);
    common::import_and_verify(&v, &common::sample_dir());
    let t = v.tenant("ubuntu").unwrap();
    let u = v.user_id(t, "elgaton").unwrap();

    let mut plain = Vec::new();
    v.export_user(
        t,
        Actor::member(u),
        u,
        &ExportOptions::default(),
        &mut plain,
    )
    .unwrap();
    let alice = age::x25519::Identity::generate();
    let bob = age::x25519::Identity::generate();
    let recipients = [alice.to_public().to_string(), bob.to_public().to_string()];
    let mut out = AgeOutput::new(&recipients, Vec::new()).unwrap();
    let s = v
        .export_user(t, Actor::member(u), u, &ExportOptions::default(), &mut out)
        .unwrap();
    let sealed = out.finish().unwrap();
    assert!(s.messages > 10);

    // Either recipient decrypts it, to exactly the plain export (same clock, same records).
    assert_eq!(decrypt(&sealed, &alice).unwrap(), plain);
    assert_eq!(decrypt(&sealed, &bob).unwrap(), plain);
    assert!(decrypt(&sealed, &age::x25519::Identity::generate()).is_err());
    let text = std::str::from_utf8(&plain).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["type"], "end");

    // None of the plaintext is in the file: no nick, no line of 12 bytes or more.
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    let needles: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["body"].as_str())
        .filter(|b| b.len() >= 12)
        .chain(["elgaton", "chatvault-export", "\"type\""])
        .collect();
    assert!(needles.len() > 10);
    let ac = aho_corasick::AhoCorasick::new(&needles).unwrap();
    assert!(
        ac.find(&sealed).is_none(),
        "plaintext in the encrypted export"
    );

    // Cut short (no final chunk), it does not decrypt.
    assert!(decrypt(&sealed[..sealed.len() - 20], &alice).is_err());
}

#[test]
fn bad_recipients_are_refused_before_anything_is_written() {
    let mut out = Vec::new();
    let none: [&str; 0] = [];
    assert!(matches!(
        AgeOutput::new(&none, &mut out),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        AgeOutput::new(&["age1notakey"], &mut out),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        AgeOutput::new(&["ssh-ed25519 AAAA"], &mut out),
        Err(Error::InvalidInput(_))
    ));
    assert!(out.is_empty());
}
