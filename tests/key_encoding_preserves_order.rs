//! Property tests of the RocksDB key encoding: byte order equals numeric order, and decoding
//! inverts encoding.

use chatvault::codec::{self, decode_message_key, decode_time_key, message_key, time_key};
use proptest::prelude::*;

proptest! {
    #[test]
    fn message_keys_decode_to_what_was_encoded(t: u64, c: u64, id: u64) {
        prop_assert_eq!(decode_message_key(&message_key(t, c, id)), Some((t, c, id)));
    }

    #[test]
    fn time_keys_decode_to_what_was_encoded(t: u64, c: u64, ms: i64, id: u64) {
        prop_assert_eq!(decode_time_key(&time_key(t, c, ms, id)), Some((t, c, ms, id)));
    }

    #[test]
    fn message_key_order_is_tuple_order(a: (u64, u64, u64), b: (u64, u64, u64)) {
        let ka = message_key(a.0, a.1, a.2);
        let kb = message_key(b.0, b.1, b.2);
        prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
    }

    #[test]
    fn time_key_order_is_tuple_order_including_negative_times(
        a: (u64, u64, i64, u64), b: (u64, u64, i64, u64)
    ) {
        let ka = time_key(a.0, a.1, a.2, a.3);
        let kb = time_key(b.0, b.1, b.2, b.3);
        prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
    }

    #[test]
    fn time_encoding_round_trips(ms: i64) {
        prop_assert_eq!(codec::decode_time(codec::encode_time(ms)), ms);
    }

    #[test]
    fn prefix_successor_bounds_every_extension(prefix in proptest::collection::vec(any::<u8>(), 1..12), ext in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut k = prefix.clone();
        k.extend_from_slice(&ext);
        match codec::prefix_successor(&prefix) {
            Some(up) => { prop_assert!(k < up); prop_assert!(prefix < up); }
            None => prop_assert!(prefix.iter().all(|b| *b == 0xFF)),
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_message_key(&b);
        let _ = decode_time_key(&b);
        let _ = chatvault::envelope::RecordHeader::decode(&b, || "fuzz".into());
        let _ = chatvault::envelope::WrapHeader::decode(&b, || "fuzz".into());
    }
}
