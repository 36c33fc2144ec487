//! A MAC-chained, append-only log in the `meta` column family: each entry carries the MAC of the
//! entry before it and its own MAC under a key held under the root key, so that an entry edited,
//! dropped, reordered or (given the last head an operator kept) cut off the end is detected, and
//! the first broken entry named.
//!
//! Used for shred receipts ([`ChainId::Receipts`]) and the audit trail ([`ChainId::Audit`],
//! `audit.rs`). Bodies are typed by the caller (postcard) and hold internal ids only, never a name or
//! an external id: the log is not sealed, only authenticated.
//!
//! Format (DESIGN.md §7, "Receipts (chained MACs)"):
//!
//! ```text
//! key   = 0x12 | chain id (1 B) | seq (u64 BE)             seq from 0, contiguous
//! value = version (1 B, = 1) | seq (u64 BE) | time (UTC ms, i64 sign-flipped BE)
//!         | previous entry's MAC (32 B; zeros for seq 0) | body (postcard) | MAC (32 B)
//! MAC   = HMAC-SHA256(chain key, "chatvault/v1/chain" || chain id || value bytes before the MAC)
//! chain key = HKDF(vault key, "chatvault/v1/chain-key" || chain id)
//! ```
//!
//! The vault key is the one the root key wraps in the key-check file, so whoever lacks the root
//! key cannot forge an entry. Appends are serialized by a mutex held from the moment an entry is
//! built until the WriteBatch that carries it (with the operation it records) is written, so the
//! entry and the operation land atomically and seqs have no holes.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use parking_lot::{Mutex, MutexGuard};
use rocksdb::WriteBatch;
use sha2::Sha256;

use crate::codec::{self, be64, KeyBuf};
use crate::error::{Error, Result};
use crate::keys::{self, labels, SecretKey};

/// Format version of a chain entry.
pub const ENTRY_VERSION: u8 = 1;
/// Length of an entry MAC (HMAC-SHA256), bytes.
pub const MAC_LEN: usize = 32;
/// Bytes before the body: version, seq, time, previous MAC.
const HEADER_LEN: usize = 1 + 8 + 8 + MAC_LEN;

/// Which chain. The id is part of every entry's RocksDB key, of its MAC, and of its chain key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChainId {
    /// Shred receipts (queued, carried out, removed from disk).
    Receipts = 1,
    /// The audit trail (exports, rectifications, restrictions, erasures, shreds, policy and hold
    /// changes).
    Audit = 2,
}

impl ChainId {
    /// The id byte.
    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// The position and MAC of one entry: what an operator keeps to detect later that entries were
/// cut off the end. Displayed and parsed as `SEQ:HEX` (the MAC in 64 lowercase hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHead {
    /// The entry's sequence number (from 0).
    pub seq: u64,
    /// Its MAC.
    pub mac: [u8; MAC_LEN],
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.mac))
    }
}

impl FromStr for ChainHead {
    type Err = Error;
    /// Parses `SEQ:HEX`. Errors: [`Error::InvalidInput`] saying what is wrong.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "{s:?} is not a chain head ({why}); write SEQ:HEX as printed by `chatvault \
                 receipts verify`, e.g. 7:{}",
                "0".repeat(2 * MAC_LEN)
            ))
        };
        let (seq, mac) = s.trim().split_once(':').ok_or_else(|| bad("no ':'"))?;
        let seq = seq.parse::<u64>().map_err(|_| bad("SEQ is not a number"))?;
        let bytes = hex::decode(mac).map_err(|_| bad("HEX is not hexadecimal"))?;
        let mac: [u8; MAC_LEN] = bytes
            .try_into()
            .map_err(|_| bad("HEX is not 64 hex digits"))?;
        Ok(ChainHead { seq, mac })
    }
}

/// One stored entry, decoded but with its body still in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub body: Vec<u8>,
    pub mac: [u8; MAC_LEN],
}

/// What is wrong with the first broken entry of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainFault {
    /// The entry's MAC does not match its contents: it was edited (or forged without the key).
    Edited,
    /// The entry is missing: a later entry exists, so it was dropped.
    Missing,
    /// The entry stored at this place says it is another entry: entries were reordered, moved
    /// or renumbered.
    Reordered,
    /// The entry's previous-MAC link is not the MAC of the entry before it (an entry before it
    /// was replaced by another validly MAC'd one, or the chain was spliced).
    BrokenLink,
    /// The kept head's entry is not there: entries were cut off the end of the chain.
    Truncated,
    /// The kept head's entry exists but has another MAC: the chain was rewritten from there, or
    /// the head belongs to another vault.
    HeadMismatch,
    /// The entry cannot be decoded (too short, unknown version, bad key).
    Malformed,
}

impl fmt::Display for ChainFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChainFault::Edited => "edited",
            ChainFault::Missing => "dropped",
            ChainFault::Reordered => "reordered",
            ChainFault::BrokenLink => "broken link",
            ChainFault::Truncated => "cut off the end",
            ChainFault::HeadMismatch => "differs from the kept head",
            ChainFault::Malformed => "malformed",
        })
    }
}

/// The first broken entry found by a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The sequence number of the first broken (or missing) entry.
    pub seq: u64,
    /// What is wrong with it.
    pub fault: ChainFault,
    /// A sentence saying what was found.
    pub detail: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {} ({}): {}", self.seq, self.fault, self.detail)
    }
}

/// The result of verifying a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Which chain.
    pub chain: ChainId,
    /// Entries verified before the first break (all of them when intact).
    pub entries: u64,
    /// The head of the chain: its last entry when intact (the one to keep), else the last entry
    /// verified before the break. `None` when no entry verified (empty chain, or entry 0
    /// broken).
    pub head: Option<ChainHead>,
    /// The first broken entry, `None` when the chain is intact.
    pub broken: Option<ChainBreak>,
}

impl ChainReport {
    /// Whether every entry verified (and the kept head, if given, matched).
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// Where the next entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tip {
    next_seq: u64,
    prev_mac: [u8; MAC_LEN],
}

impl Tip {
    const EMPTY: Tip = Tip {
        next_seq: 0,
        prev_mac: [0; MAC_LEN],
    };
}

/// One chain of a vault: its key and its tip.
pub(crate) struct Chain {
    id: ChainId,
    key: SecretKey,
    tip: Mutex<Tip>,
}

/// RocksDB key prefix of a chain's entries: `0x12 | chain id`.
pub(crate) fn prefix(id: ChainId) -> Vec<u8> {
    vec![codec::meta::CHAIN, id.byte()]
}

/// RocksDB key of entry `seq`.
pub(crate) fn entry_key(id: ChainId, seq: u64) -> Vec<u8> {
    KeyBuf::tag(codec::meta::CHAIN)
        .u8(id.byte())
        .u64(seq)
        .into_vec()
}

impl Chain {
    /// The chain `id` of a vault, its key derived from the vault key, its tip read from its
    /// last stored entry (`last`: that entry's RocksDB key and value, if any).
    pub(crate) fn new(id: ChainId, vault_key: &SecretKey, last: Option<(&[u8], &[u8])>) -> Chain {
        let key = keys::derive_key(&[vault_key], labels::CHAIN_KEY, &[id.byte()]);
        let tip = match last {
            None => Tip::EMPTY,
            // Continue after the last stored entry whatever its state: a damaged entry is for
            // `verify` to report, not a reason to refuse to open the vault.
            Some((k, v)) => Tip {
                next_seq: k.get(2..10).and_then(be64).unwrap_or(0).saturating_add(1),
                prev_mac: v
                    .len()
                    .checked_sub(MAC_LEN)
                    .and_then(|s| v.get(s..))
                    .and_then(|m| m.try_into().ok())
                    .unwrap_or([0; MAC_LEN]),
            },
        };
        Chain {
            id,
            key,
            tip: Mutex::new(tip),
        }
    }

    /// Which chain.
    pub(crate) fn id(&self) -> ChainId {
        self.id
    }

    /// The last entry's head, from memory (`None`: empty chain).
    pub(crate) fn head(&self) -> Option<ChainHead> {
        let t = *self.tip.lock();
        t.next_seq.checked_sub(1).map(|seq| ChainHead {
            seq,
            mac: t.prev_mac,
        })
    }

    /// Starts appending: holds the chain's lock until the returned appender is committed (after
    /// its batch was written) or dropped (the batch was not written: nothing changes).
    pub(crate) fn appender(&self) -> Appender<'_> {
        let guard = self.tip.lock();
        let pending = *guard;
        Appender {
            chain: self,
            guard,
            pending,
        }
    }

    fn mac(&self, before_mac: &[u8]) -> [u8; MAC_LEN] {
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose()) {
            Ok(m) => m,
            Err(_) => keys::unreachable_hmac(),
        };
        m.update(labels::CHAIN_MAC);
        m.update(&[self.id.byte()]);
        m.update(before_mac);
        m.finalize().into_bytes().into()
    }

    /// Decodes a stored value (no MAC check). `None` if malformed.
    pub(crate) fn decode(v: &[u8]) -> Option<RawEntry> {
        if v.len() < HEADER_LEN + MAC_LEN || v[0] != ENTRY_VERSION {
            return None;
        }
        let n = v.len() - MAC_LEN;
        Some(RawEntry {
            seq: be64(&v[1..9])?,
            at_ms: codec::decode_time(be64(&v[9..17])?),
            body: v[HEADER_LEN..n].to_vec(),
            mac: v[n..].try_into().ok()?,
        })
    }

    /// Verifies the chain from entry 0 given its stored `(key, value)` pairs in key order, and,
    /// if given, the head an operator kept. Errors only for failures to read (`entries`).
    pub(crate) fn verify(
        &self,
        entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
        kept: Option<&ChainHead>,
    ) -> Result<ChainReport> {
        let mut expected = 0u64;
        let mut prev = [0u8; MAC_LEN];
        let mut kept_mac_seen: Option<[u8; MAC_LEN]> = None;
        let mut report = ChainReport {
            chain: self.id,
            entries: 0,
            head: None,
            broken: None,
        };
        let brk = |seq, fault, detail: String| Some(ChainBreak { seq, fault, detail });
        for kv in entries {
            let (k, v) = kv?;
            let Some(kseq) = k.strip_prefix(prefix(self.id).as_slice()).and_then(be64) else {
                report.broken = brk(
                    expected,
                    ChainFault::Malformed,
                    format!(
                        "a stored key is not a chain entry key ({})",
                        hex::encode(&k)
                    ),
                );
                return Ok(report);
            };
            if kseq != expected {
                report.broken = brk(
                    expected,
                    ChainFault::Missing,
                    format!("it is missing, but entry {kseq} follows: it was dropped"),
                );
                return Ok(report);
            }
            let Some(e) = Self::decode(&v) else {
                report.broken = brk(
                    kseq,
                    ChainFault::Malformed,
                    format!(
                        "its value cannot be decoded ({} bytes, version {:?})",
                        v.len(),
                        v.first()
                    ),
                );
                return Ok(report);
            };
            let mac = self.mac(&v[..v.len() - MAC_LEN]);
            // Constant time: how long the comparison takes says nothing of how much matched.
            if !bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], &e.mac[..])) {
                report.broken = brk(
                    kseq,
                    ChainFault::Edited,
                    "its MAC does not match its contents: it was edited".into(),
                );
                return Ok(report);
            }
            if e.seq != kseq {
                report.broken = brk(
                    kseq,
                    ChainFault::Reordered,
                    format!(
                        "its place holds entry {} (authentic, but out of place): entries were \
                         reordered, moved or renumbered",
                        e.seq
                    ),
                );
                return Ok(report);
            }
            if v[17..HEADER_LEN] != prev {
                report.broken = brk(
                    kseq,
                    ChainFault::BrokenLink,
                    format!(
                        "its link to the previous entry is not the MAC of entry {}: an entry \
                         before it was replaced or the chain was spliced",
                        kseq.wrapping_sub(1)
                    ),
                );
                return Ok(report);
            }
            if kept.is_some_and(|h| h.seq == kseq) {
                kept_mac_seen = Some(mac);
            }
            prev = mac;
            expected += 1;
            report.entries = expected;
            report.head = Some(ChainHead { seq: kseq, mac });
        }
        if let Some(h) = kept {
            match kept_mac_seen {
                None => {
                    report.broken = brk(
                        h.seq,
                        ChainFault::Truncated,
                        match expected.checked_sub(1) {
                            Some(last) => format!(
                                "the kept head's entry is gone (the chain now ends at entry \
                                 {last}): entries were cut off the end"
                            ),
                            None => "the kept head's entry is gone (the chain is now empty): \
                                     entries were cut off the end"
                                .into(),
                        },
                    );
                }
                Some(m) if m != h.mac => {
                    report.broken = brk(
                        h.seq,
                        ChainFault::HeadMismatch,
                        "the entry at the kept head has another MAC: the chain was rewritten \
                         from there, or the head is from another vault"
                            .into(),
                    );
                }
                Some(_) => {}
            }
        }
        Ok(report)
    }
}

/// Appends entries to a chain inside one WriteBatch; see [`Chain::appender`].
pub(crate) struct Appender<'a> {
    chain: &'a Chain,
    guard: MutexGuard<'a, Tip>,
    pending: Tip,
}

impl Appender<'_> {
    /// Puts the next entry (time `at_ms`, UTC ms; `body` in postcard) in `batch` and returns its
    /// head. It becomes the chain's tip only when [`Appender::commit`] is called.
    pub(crate) fn append(
        &mut self,
        batch: &mut WriteBatch,
        meta: &impl rocksdb::AsColumnFamilyRef,
        at_ms: i64,
        body: &[u8],
    ) -> ChainHead {
        let (key, value, head) = self.build(at_ms, body);
        batch.put_cf(meta, key, value);
        head
    }

    /// The next entry's RocksDB key and value; advances the pending tip.
    pub(crate) fn build(&mut self, at_ms: i64, body: &[u8]) -> (Vec<u8>, Vec<u8>, ChainHead) {
        let seq = self.pending.next_seq;
        let mut v = Vec::with_capacity(HEADER_LEN + body.len() + MAC_LEN);
        v.push(ENTRY_VERSION);
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&codec::encode_time(at_ms).to_be_bytes());
        v.extend_from_slice(&self.pending.prev_mac);
        v.extend_from_slice(body);
        let mac = self.chain.mac(&v);
        v.extend_from_slice(&mac);
        self.pending = Tip {
            next_seq: seq.saturating_add(1),
            prev_mac: mac,
        };
        (entry_key(self.chain.id, seq), v, ChainHead { seq, mac })
    }

    /// Call after the batch holding the appended entries was written.
    pub(crate) fn commit(mut self) {
        *self.guard = self.pending;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Chain {
        Chain::new(ChainId::Receipts, &SecretKey::from_bytes([7; 32]), None)
    }

    /// `n` stored entries, as `append` writes them.
    fn entries(c: &Chain, n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut a = c.appender();
        let out = (0..n)
            .map(|i| {
                let (k, v, h) = a.build(1000 + i as i64, &[i as u8; 3]);
                assert_eq!(h.seq, i);
                (k, v)
            })
            .collect();
        a.commit();
        out
    }

    fn verify(c: &Chain, e: &[(Vec<u8>, Vec<u8>)], kept: Option<&ChainHead>) -> ChainReport {
        c.verify(e.iter().cloned().map(Ok), kept).unwrap()
    }

    #[test]
    fn intact_edited_dropped_reordered_truncated() {
        let c = chain();
        let e = entries(&c, 5);
        let r = verify(&c, &e, None);
        assert!(r.is_intact());
        assert_eq!(r.entries, 5);
        let head = r.head.unwrap();
        assert_eq!(head, c.head().unwrap());
        assert!(verify(&c, &e, Some(&head)).is_intact());

        let mut x = e.clone();
        x[2].1[HEADER_LEN] ^= 1;
        let b = verify(&c, &x, None).broken.unwrap();
        assert_eq!((b.seq, b.fault), (2, ChainFault::Edited));

        let mut x = e.clone();
        x.remove(1);
        let b = verify(&c, &x, None).broken.unwrap();
        assert_eq!((b.seq, b.fault), (1, ChainFault::Missing));

        let mut x = e.clone();
        let (v3, v4) = (x[3].1.clone(), x[4].1.clone());
        x[3].1 = v4;
        x[4].1 = v3;
        let b = verify(&c, &x, None).broken.unwrap();
        assert_eq!((b.seq, b.fault), (3, ChainFault::Reordered));

        let x = e[..3].to_vec();
        assert!(verify(&c, &x, None).is_intact());
        let b = verify(&c, &x, Some(&head)).broken.unwrap();
        assert_eq!((b.seq, b.fault), (4, ChainFault::Truncated));

        let other = ChainHead {
            seq: 4,
            mac: [1; 32],
        };
        let b = verify(&c, &e, Some(&other)).broken.unwrap();
        assert_eq!((b.seq, b.fault), (4, ChainFault::HeadMismatch));
    }

    #[test]
    fn head_text_round_trips() {
        let h = ChainHead {
            seq: 12,
            mac: [0xab; 32],
        };
        assert_eq!(h.to_string().parse::<ChainHead>().unwrap(), h);
        assert!("12".parse::<ChainHead>().is_err());
        assert!("x:00".parse::<ChainHead>().is_err());
        assert!("1:abcd".parse::<ChainHead>().is_err());
    }
}
