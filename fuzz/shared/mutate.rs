//! The mutations of a sealed value and of the RocksDB key it is bound to, shared by the
//! `record_envelope` and `wrapped_key` targets: each 4-byte step is `op, position (u16 BE),
//! byte`; op mod 4: XOR a byte of the value, insert a byte, cut the value short, XOR a byte of
//! the key.

/// `sealed` and `place` after every step of `muts`.
pub fn mutate(sealed: &[u8], place: &[u8], muts: &[[u8; 4]]) -> (Vec<u8>, Vec<u8>) {
    let (mut v, mut p) = (sealed.to_vec(), place.to_vec());
    for m in muts {
        let pos = u16::from_be_bytes([m[1], m[2]]) as usize;
        match m[0] % 4 {
            0 if !v.is_empty() => {
                let i = pos % v.len();
                v[i] ^= m[3];
            }
            1 => v.insert(pos % (v.len() + 1), m[3]),
            2 => v.truncate(pos % (v.len() + 1)),
            3 if !p.is_empty() => {
                let i = pos % p.len();
                p[i] ^= m[3];
            }
            _ => {}
        }
    }
    (v, p)
}
