//! Decoding arbitrary bytes as a record header, a wrapped-key header or a RocksDB key never
//! panics. Run: `cargo +nightly fuzz run record_header` (from the repository root).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chatvault::envelope::RecordHeader::decode(data, || String::new());
    let _ = chatvault::envelope::WrapHeader::decode(data, || String::new());
    if let Some((t, c, id)) = chatvault::codec::decode_message_key(data) {
        assert_eq!(chatvault::codec::message_key(t, c, id), data);
    }
    if let Some((t, c, ms, id)) = chatvault::codec::decode_time_key(data) {
        assert_eq!(chatvault::codec::time_key(t, c, ms, id), data);
    }
});
