//! RFC 8452 appendix C.2 (AEAD_AES_256_GCM_SIV) known-answer vectors, through chatvault's own
//! sealing wrapper (the same code path records use, with the nonce fixed).

use chatvault::keys::{open_for_kat, seal_with_nonce_for_kat};
use chatvault::SecretKey;

struct Kat {
    key: &'static str,
    nonce: &'static str,
    aad: &'static str,
    plaintext: &'static str,
    result: &'static str,
}

const KATS: &[Kat] = &[
    Kat {
        key: "0100000000000000000000000000000000000000000000000000000000000000",
        nonce: "030000000000000000000000",
        aad: "",
        plaintext: "",
        result: "07f5f4169bbf55a8400cd47ea6fd400f",
    },
    Kat {
        key: "0100000000000000000000000000000000000000000000000000000000000000",
        nonce: "030000000000000000000000",
        aad: "",
        plaintext: "0100000000000000",
        result: "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28",
    },
    Kat {
        key: "0100000000000000000000000000000000000000000000000000000000000000",
        nonce: "030000000000000000000000",
        aad: "",
        plaintext: "010000000000000000000000",
        result: "9aab2aeb3faa0a34aea8e2b18ca50da9ae6559e48fd10f6e5c9ca17e",
    },
    Kat {
        key: "0100000000000000000000000000000000000000000000000000000000000000",
        nonce: "030000000000000000000000",
        aad: "",
        plaintext: "01000000000000000000000000000000",
        result: "85a01b63025ba19b7fd3ddfc033b3e76c9eac6fa700942702e90862383c6c366",
    },
];

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn rfc8452_appendix_c2_vectors_seal_and_open() {
    for (n, k) in KATS.iter().chain(extra_kats().iter()).enumerate() {
        let key = SecretKey::from_bytes(unhex(k.key).try_into().unwrap());
        let nonce: [u8; 12] = unhex(k.nonce).try_into().unwrap();
        let sealed =
            seal_with_nonce_for_kat(&key, &nonce, &unhex(k.aad), &unhex(k.plaintext)).unwrap();
        assert_eq!(&sealed[..12], &nonce, "vector {n}: nonce prefix");
        assert_eq!(
            hex::encode(&sealed[12..]),
            k.result,
            "vector {n}: ciphertext || tag"
        );
        let opened = open_for_kat(&key, &unhex(k.aad), &sealed).unwrap();
        assert_eq!(opened, unhex(k.plaintext), "vector {n}: open");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert!(
            open_for_kat(&key, &unhex(k.aad), &bad).is_none(),
            "vector {n}: tampered tag"
        );
    }
}

fn extra_kats() -> Vec<Kat> {
    // More RFC 8452 C.2 vectors: with AAD, and with other keys and nonces.
    vec![
        Kat {
            key: "0100000000000000000000000000000000000000000000000000000000000000",
            nonce: "030000000000000000000000",
            aad: "01",
            plaintext: "0200000000000000",
            result: "1de22967237a813291213f267e3b452f02d01ae33e4ec854",
        },
        Kat {
            key: "0100000000000000000000000000000000000000000000000000000000000000",
            nonce: "030000000000000000000000",
            aad: "01",
            plaintext: "020000000000000000000000",
            result: "163d6f9cc1b346cd453a2e4cc1a4a19ae800941ccdc57cc8413c277f",
        },
        Kat {
            key: "0100000000000000000000000000000000000000000000000000000000000000",
            nonce: "030000000000000000000000",
            aad: "01",
            plaintext: "02000000000000000000000000000000",
            result: "c91545823cc24f17dbb0e9e807d5ec17b292d28ff61189e8e49f3875ef91aff7",
        },
        Kat {
            key: "e66021d5eb8e4f4066d4adb9c33560e4f46e44bb3da0015c94f7088736864200",
            nonce: "e0eaf5284d884a0e77d31646",
            aad: "",
            plaintext: "",
            result: "169fbb2fbf389a995f6390af22228a62",
        },
        Kat {
            key: "bae8e37fc83441b16034566b7a806c46bb91c3c5aedb64a6c590bc84d1a5e269",
            nonce: "e4b47801afc0577e34699b9e",
            aad: "4fbdc66f14",
            plaintext: "671fdd",
            result: "0eaccb93da9bb81333aee0c785b240d319719d",
        },
        Kat {
            key: "6545fc880c94a95198874296d5cc1fd161320b6920ce07787f86743b275d1ab3",
            nonce: "2f6d1f0434d8848c1177441f",
            aad: "6787f3ea22c127aaf195",
            plaintext: "195495860f04",
            result: "a254dad4f3f96b62b84dc40c84636a5ec12020ec8c2c",
        },
    ]
}
