//! RustCrypto `aes-gcm-siv` and `aws-lc-rs` implement the same RFC 8452 AES-256-GCM-SIV: what
//! one seals the other opens, and with the same key, nonce and AAD both give the same bytes. Both
//! are checked against chatvault's own sealing wrapper (the code path records use, whichever
//! backend it is built with), so either can be chatvault's backend and records sealed by one
//! stay readable by the other. `benches/aead.rs` measures them (BENCHMARKS.md).

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::Aes256GcmSiv;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};
use chatvault::keys::{open_for_kat, seal_with_nonce_for_kat, NONCE_LEN, TAG_LEN};
use chatvault::SecretKey;

/// A small deterministic generator, so that failures reproduce.
struct Gen(u64);
impl Gen {
    fn byte(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u8
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.byte())
    }
    fn vec(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// `nonce || ciphertext || tag` with aws-lc-rs, the layout chatvault stores.
fn aws_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, key).unwrap());
    let mut buf = pt.to_vec();
    let tag = k
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut buf,
        )
        .unwrap();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out.extend_from_slice(tag.as_ref());
    out
}

fn aws_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, key).unwrap());
    let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().unwrap();
    let mut buf = sealed[NONCE_LEN..].to_vec();
    let pt = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?;
    Some(pt.to_vec())
}

/// `nonce || ciphertext || tag` with RustCrypto directly.
fn rustcrypto_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let c = Aes256GcmSiv::new(key.into());
    let mut out = nonce.to_vec();
    out.extend(c.encrypt(nonce.into(), Payload { msg: pt, aad }).unwrap());
    out
}

fn rustcrypto_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let c = Aes256GcmSiv::new(key.into());
    c.decrypt(
        sealed[..NONCE_LEN].into(),
        Payload {
            msg: &sealed[NONCE_LEN..],
            aad,
        },
    )
    .ok()
}

const SIZES: &[usize] = &[
    0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 300, 490, 4096, 65_536,
];

#[test]
fn what_one_backend_seals_the_other_opens_and_the_bytes_are_equal() {
    let mut g = Gen(0x00c0_ffee);
    for &size in SIZES {
        for aad_len in [0usize, 69, 77] {
            let key: [u8; 32] = g.bytes();
            let nonce: [u8; NONCE_LEN] = g.bytes();
            let aad = g.vec(aad_len);
            let pt = g.vec(size);
            let sk = SecretKey::from_bytes(key);

            let by_chatvault = seal_with_nonce_for_kat(&sk, &nonce, &aad, &pt).unwrap();
            let by_rustcrypto = rustcrypto_seal(&key, &nonce, &aad, &pt);
            let by_aws = aws_seal(&key, &nonce, &aad, &pt);
            assert_eq!(by_chatvault.len(), NONCE_LEN + size + TAG_LEN);
            assert_eq!(by_rustcrypto, by_aws, "size {size}, aad {aad_len}");
            assert_eq!(by_chatvault, by_aws, "size {size}, aad {aad_len}");

            for sealed in [&by_rustcrypto, &by_aws] {
                assert_eq!(open_for_kat(&sk, &aad, sealed).as_deref(), Some(&pt[..]));
            }
            assert_eq!(
                aws_open(&key, &aad, &by_rustcrypto).as_deref(),
                Some(&pt[..])
            );
            assert_eq!(
                rustcrypto_open(&key, &aad, &by_aws).as_deref(),
                Some(&pt[..])
            );
        }
    }
}

#[test]
fn both_backends_refuse_what_the_other_sealed_once_altered() {
    let mut g = Gen(7);
    let key: [u8; 32] = g.bytes();
    let sk = SecretKey::from_bytes(key);
    let (nonce, aad, pt) = (g.bytes::<NONCE_LEN>(), g.vec(69), g.vec(120));
    let sealed = seal_with_nonce_for_kat(&sk, &nonce, &aad, &pt).unwrap();
    for i in [0, NONCE_LEN, NONCE_LEN + 60, sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert_eq!(aws_open(&key, &aad, &bad), None, "byte {i}");
        assert_eq!(rustcrypto_open(&key, &aad, &bad), None, "byte {i}");
        assert_eq!(open_for_kat(&sk, &aad, &bad), None, "byte {i}");
    }
    let mut other_aad = aad.clone();
    other_aad[0] ^= 1;
    assert_eq!(aws_open(&key, &other_aad, &sealed), None);
    let by_aws = aws_seal(&key, &nonce, &aad, &pt);
    assert_eq!(open_for_kat(&sk, &other_aad, &by_aws), None);
}

/// RFC 8452 appendix C.2, first vector with a plaintext, through aws-lc-rs.
#[test]
fn aws_lc_rs_gives_the_rfc_8452_answer() {
    let mut key = [0u8; 32];
    key[0] = 1;
    let mut nonce = [0u8; NONCE_LEN];
    nonce[0] = 3;
    let pt = [1u8, 0, 0, 0, 0, 0, 0, 0];
    let out = aws_seal(&key, &nonce, &[], &pt);
    assert_eq!(
        hex::encode(&out[NONCE_LEN..]),
        "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28"
    );
}
