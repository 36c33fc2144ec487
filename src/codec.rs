//! RocksDB key encoding. All integers are big-endian and fixed-width, so byte order equals
//! numeric order and a prefix of ids selects a contiguous range. Keys hold internal ids only,
//! never an external name or id (those go through the blind index of [`crate::keys`]).
//!
//! See DESIGN.md, "Column families and keys", for the full table.

/// Internal id of a tenant, conversation or user: allocated from one vault-wide counter.
pub type Iid = u64;

/// Prefix bytes of the `meta` column family.
pub(crate) mod meta {
    /// `0x01 | tenant` → sealed tenant record.
    pub const TENANT: u8 = 0x01;
    /// `0x02 | tenant | conv` → sealed conversation record.
    pub const CONVERSATION: u8 = 0x02;
    /// `0x03 | tenant | conv | user` → sealed membership record.
    pub const MEMBER: u8 = 0x03;
    /// `0x04 | tenant | user | conv` → empty (a user's conversations).
    pub const USER_CONV: u8 = 0x04;
    /// `0x05 | tenant | user` → sealed user profile.
    pub const USER: u8 = 0x05;
    /// `0x06 | blind16(name)` → tenant iid (u64 BE).
    pub const TENANT_DIR: u8 = 0x06;
    /// `0x07 | tenant | 0x01 | blind16(external id)` → conversation iid; `0x02` for users.
    pub const DIR: u8 = 0x07;
    /// `0x08 | tenant | conv` → next message id (u64 LE, merged with max).
    pub const NEXT_MSG_ID: u8 = 0x08;
    /// `0x09` → next internal id (u64 LE, merged with max).
    pub const NEXT_IID: u8 = 0x09;
    /// `0x0A | tenant` → sealed tenant retention policy.
    pub const TENANT_POLICY: u8 = 0x0A;
    /// `0x0B | tenant | conv` → sealed conversation policy override.
    pub const CONV_POLICY: u8 = 0x0B;
    /// `0x0C | tenant | seq` → sealed policy/hold change record.
    pub const POLICY_LOG: u8 = 0x0C;
    /// `0x0D | tenant | hold id` → sealed active legal hold.
    pub const HOLD: u8 = 0x0D;
    /// `0x0E | tenant | conv` → expiry watermark (postcard, not sealed: times only).
    pub const WATERMARK: u8 = 0x0E;
    /// `0x10 | tenant | kind | id | start` → shred tombstone (postcard; internal ids only).
    pub const SHRED: u8 = 0x10;
    /// `0x11 | tenant | conv` → empty: a key path to re-version by the next pass (conv 0: the
    /// tenant KEK only). Written in the same batch as the key destruction.
    pub const REKEY_PENDING: u8 = 0x11;
    /// `0x14` → root key versions to retire (postcard `Vec<u32>`), written with the re-versioning
    /// batch and deleted once the key provider has retired them.
    pub const RETIRE_PENDING: u8 = 0x14;
    /// `0x12 | chain id | seq` → entry of a MAC-chained log ([`crate::chain`]; chain 1: shred
    /// receipts, 2: audit trail). Not sealed (internal ids only), authenticated by HMAC.
    pub const CHAIN: u8 = 0x12;
    /// `0x13 | tenant | seq of its `Queued` receipt` → erasure queued under a legal hold
    /// (postcard; internal ids only).
    pub const ERASURE_QUEUE: u8 = 0x13;
    /// `0x15 | tenant | user` → sealed restriction of processing (under the user key; present
    /// while the restriction is on).
    pub const RESTRICTION: u8 = 0x15;
    /// `0x16 | tenant | user | 8 B` → a user record overwritten by a rectification, awaiting the
    /// purge that removes the old version from the files: the first 16 bytes of the old
    /// record's nonce and ciphertext, each XOR 0xFF (so the marker never matches itself). The
    /// purge verifies by its raw scan that those bytes are gone, then deletes the marker.
    pub const REWRITTEN: u8 = 0x16;
    /// `0x17 | tenant | extension` → sealed extension record (tenant KEK; `consent.rs`).
    pub const EXTENSION: u8 = 0x17;
    /// `0x18 | tenant | extension` → sealed organisation-wide consent grant (tenant KEK).
    pub const ORG_CONSENT: u8 = 0x18;
    /// `0x19 | tenant | user | extension` → sealed consent grant of a user (user key).
    pub const USER_CONSENT: u8 = 0x19;
    /// `0x1B | root version (u32 BE)` → what a key re-versioning pass replaced, awaiting the
    /// purge that removes the old bytes from every file: the last 16 bytes (the AEAD tag) of
    /// each replaced wrapped key or sealed record, concatenated, XOR 0xFF (so the marker never
    /// matches itself). The purge verifies by its raw scan that none is left, then deletes it.
    pub const REPLACED: u8 = 0x1B;
    /// `0x1D` → the vault's format version (`crate::format`): which layout every record
    /// follows; written last by the upgrade at open. `0x1E` is reserved for format work.
    pub const FORMAT: u8 = 0x1D;
    /// `0x0F` → time of the last purge (i64 BE, UTC ms).
    pub const LAST_PURGE: u8 = 0x0F;
    /// `0x1A | tenant | conv` → a data-key rotation of that scope (conv 0: the whole tenant)
    /// whose old key versions are not retired yet (postcard `RotationState`: times, internal
    /// ids and a flag; not sealed). Deleted by the retirement (`rotate.rs`).
    pub const DATA_ROTATION: u8 = 0x1A;
    /// `0x1F | tenant | conversation | HMAC16(source, external message id)` → message id
    /// (u64 BE): the importers' blind index from an external message id (a Slack `ts`, a
    /// Mattermost post's `create_at` and author) to the message, for threads, edits and
    /// idempotent re-imports. The HMAC key is the tenant's directory key, domain
    /// [`DIR_MESSAGE`], over the conversation iid (8 B BE), the source name, a 0 byte and the id.
    pub const EXTERNAL_INDEX: u8 = 0x1F;
    /// `0x20 | tenant | conversation | message id` → sealed external reference (meta kind 17,
    /// under the message's DEK): the source format's ids and fields that chatvault's model has
    /// no place for, kept for exact exports back to that format. Message id 0 holds the
    /// conversation's own reference, under the conversation key (message ids start at 1).
    pub const EXTERNAL_REF: u8 = 0x20;
    /// Directory domain byte of [`EXTERNAL_INDEX`] (the HMAC's domain; not a `0x07` sub-kind).
    pub const DIR_MESSAGE: u8 = 0x03;
    /// Directory sub-kind for conversations.
    pub const DIR_CONV: u8 = 0x01;
    /// Directory sub-kind for users.
    pub const DIR_USER: u8 = 0x02;
}

/// Prefix bytes of the `keys` column family (wrapped keys).
pub(crate) mod keys {
    /// `0x01 | tenant | version` → tenant KEK wrapped by the root key provider.
    pub const TENANT_KEK: u8 = 0x01;
    /// `0x02 | tenant | conv | version` → conversation key wrapped by the tenant KEK.
    pub const CONVERSATION: u8 = 0x02;
    /// `0x03 | tenant | conv | epoch | version` → epoch key wrapped by the conversation key.
    pub const EPOCH: u8 = 0x03;
    /// `0x04 | tenant | user | version` → user key wrapped by the tenant KEK.
    pub const USER: u8 = 0x04;
    /// `0x05 | tenant | version` → the tenant's directory (blind index) key, wrapped by the
    /// tenant KEK. Written when the tenant KEK first gets a new version; before that the
    /// directory key is derived from the tenant KEK (DESIGN.md §7).
    pub const INDEX: u8 = 0x05;
}

/// Incremental key builder.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyBuf(pub Vec<u8>);

impl KeyBuf {
    /// Starts a key with a prefix byte.
    pub fn tag(tag: u8) -> Self {
        let mut v = Vec::with_capacity(33);
        v.push(tag);
        KeyBuf(v)
    }
    /// Starts an empty key (message keys have no prefix byte: they have a column family).
    pub fn new() -> Self {
        KeyBuf(Vec::with_capacity(32))
    }
    /// Appends a u64, big-endian.
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a u32, big-endian.
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a byte.
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    /// Appends raw bytes.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Appends an i64 time in a form whose byte order is numeric order (sign bit flipped).
    pub fn time(self, ms: i64) -> Self {
        self.u64(encode_time(ms))
    }
    /// The bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

/// `i64` → `u64` preserving order (flip the sign bit).
pub fn encode_time(ms: i64) -> u64 {
    (ms as u64) ^ (1u64 << 63)
}

/// Inverse of [`encode_time`].
pub fn decode_time(v: u64) -> i64 {
    (v ^ (1u64 << 63)) as i64
}

/// Key of a message record in the `messages` CF: `tenant | conv | id` (24 bytes).
pub fn message_key(tenant: Iid, conv: Iid, id: u64) -> Vec<u8> {
    KeyBuf::new().u64(tenant).u64(conv).u64(id).into_vec()
}

/// Key of an old revision in the `revisions` CF: `tenant | conv | id | revision` (28 bytes).
pub fn revision_key(tenant: Iid, conv: Iid, id: u64, revision: u32) -> Vec<u8> {
    KeyBuf::new()
        .u64(tenant)
        .u64(conv)
        .u64(id)
        .u32(revision)
        .into_vec()
}

/// Key of a time-index entry in the `time_index` CF: `tenant | conv | time | id` (32 bytes).
pub fn time_key(tenant: Iid, conv: Iid, sent_at_ms: i64, id: u64) -> Vec<u8> {
    KeyBuf::new()
        .u64(tenant)
        .u64(conv)
        .time(sent_at_ms)
        .u64(id)
        .into_vec()
}

/// Decodes a message key. `None` if it is not 24 bytes.
pub fn decode_message_key(k: &[u8]) -> Option<(Iid, Iid, u64)> {
    if k.len() != 24 {
        return None;
    }
    Some((be64(&k[0..8])?, be64(&k[8..16])?, be64(&k[16..24])?))
}

/// Decodes a time-index key. `None` if it is not 32 bytes.
pub fn decode_time_key(k: &[u8]) -> Option<(Iid, Iid, i64, u64)> {
    if k.len() != 32 {
        return None;
    }
    Some((
        be64(&k[0..8])?,
        be64(&k[8..16])?,
        decode_time(be64(&k[16..24])?),
        be64(&k[24..32])?,
    ))
}

/// Decodes a revision key (`tenant | conv | id | revision`). `None` if it is not 28 bytes.
pub fn decode_revision_key(k: &[u8]) -> Option<(Iid, Iid, u64, u32)> {
    if k.len() != 28 {
        return None;
    }
    Some((
        be64(&k[0..8])?,
        be64(&k[8..16])?,
        be64(&k[16..24])?,
        be32(&k[24..28])?,
    ))
}

/// Reads a big-endian u64 from exactly 8 bytes.
pub fn be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Reads a big-endian u32 from exactly 4 bytes.
pub fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

/// The smallest key greater than every key starting with `prefix` (for iterate bounds).
/// `None` if the prefix is all 0xFF (no upper bound needed).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut v = prefix.to_vec();
    while let Some(last) = v.pop() {
        if last != 0xFF {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

/// Merge operator of the `meta` CF (registered as `chatvault.max_u64.v1`; tools that open the
/// RocksDB database directly must register it too). Merge operator for counters: values are u64 little-endian; the result is the maximum. So a
/// counter never goes backwards, whatever order concurrent writers' batches land in.
pub fn merge_max_u64(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let read = |b: &[u8]| -> u64 { b.try_into().map(u64::from_le_bytes).unwrap_or(0) };
    let mut max = existing.map(read).unwrap_or(0);
    for op in operands {
        max = max.max(read(op));
    }
    Some(max.to_le_bytes().to_vec())
}

/// Reads a counter value written by [`merge_max_u64`].
pub(crate) fn read_counter(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_le_bytes)
}
