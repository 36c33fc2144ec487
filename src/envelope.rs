//! Byte formats of sealed records and wrapped keys, and their AAD.
//!
//! Every format starts with a format version byte; an unknown version is refused with
//! [`Error::UnsupportedFormat`], never guessed at. Integers are big-endian.
//!
//! ## Message record (`messages` and `revisions` column families)
//! ```text
//!  0     1      2          6        10           14         22            26          34      46         n-16  n
//!  +-----+------+----------+--------+------------+----------+-------------+-----------+-------+----------+-----+
//!  | fmt | kind | revision | epoch  | epoch key  | author   | author key  | sent_at   | nonce | cipher-  | tag |
//!  | =1  | u8   | u32      | u32    | version u32| iid u64  | version u32 | ms, i64^  | 12 B  | text     | 16 B|
//!  +-----+------+----------+--------+------------+----------+-------------+-----------+-------+----------+-----+
//!  AAD = "chatvault/v1/record" || header[0..34] || RocksDB key (tenant | conv | id [| revision])
//!  i64^ = the time with its sign bit flipped, big-endian (order-preserving, as in the time index)
//! ```
//! `author` and `author key version` are 0 when the tenant's erasure policy keeps messages
//! readable after the author's erasure (the author is then only inside the ciphertext).
//! `sent_at` is in the clear (as it is in the time index) so that retention can be enforced,
//! and expired records dropped by the compaction filter, without decrypting.
//!
//! ## Wrapped key (`keys` column family), for keys wrapped by a parent key in RocksDB
//! ```text
//!  0     1      2          6                10      22             54     70
//!  +-----+------+----------+----------------+-------+--------------+------+
//!  | fmt | kind | version  | parent version | nonce | wrapped key  | tag  |
//!  | =1  | u8   | u32      | u32            | 12 B  | 32 B         | 16 B |
//!  +-----+------+----------+----------------+-------+--------------+------+
//!  AAD = "chatvault/v1/wrap" || header[0..10] || RocksDB key (kind | ids | version)
//! ```
//! A tenant KEK is wrapped by the root key provider instead:
//! `fmt=1 | kind | version u32 | parent version u32 (root key version) | provider blob`,
//! with the provider given the same AAD.
//!
//! ## Sealed metadata (`meta` column family: tenant, conversation, membership, user profile)
//! ```text
//!  0     1      2             6       18          n-16   n
//!  +-----+------+-------------+-------+-----------+------+
//!  | fmt | kind | key version | nonce | ciphertext| tag  |
//!  +-----+------+-------------+-------+-----------+------+
//!  AAD = "chatvault/v1/meta" || header[0..6] || RocksDB key
//! ```

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{open_detached, seal_into, Cipher, KEY_LEN, NONCE_LEN, TAG_LEN};

/// Current format version of every record kind.
pub const FORMAT_VERSION: u8 = 1;

const RECORD_AAD_LABEL: &[u8] = b"chatvault/v1/record";
const WRAP_AAD_LABEL: &[u8] = b"chatvault/v1/wrap";
const META_AAD_LABEL: &[u8] = b"chatvault/v1/meta";

/// Kind byte of a message record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// The current revision of a message.
    Message = 1,
    /// An older revision, in the `revisions` CF.
    Revision = 2,
    /// A deleted message: the payload holds only the deletion time.
    Deleted = 3,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(RecordKind::Message),
            2 => Some(RecordKind::Revision),
            3 => Some(RecordKind::Deleted),
            _ => None,
        }
    }
}

/// Length of the message record header in bytes.
pub const RECORD_HEADER_LEN: usize = 34;

/// The plaintext header of a message record: which keys it is sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Record kind.
    pub kind: RecordKind,
    /// Revision number (0 = original).
    pub revision: u32,
    /// Epoch number (UTC day by default).
    pub epoch: u32,
    /// Version of the epoch key.
    pub epoch_version: u32,
    /// Author iid, or 0 when the author is only inside the ciphertext.
    pub author: u64,
    /// Version of the author's user key, or 0.
    pub author_version: u32,
    /// When the message was sent, UTC ms (the original's time, also for edits).
    pub sent_at_ms: i64,
}

impl RecordHeader {
    pub(crate) fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0] = FORMAT_VERSION;
        h[1] = self.kind as u8;
        h[2..6].copy_from_slice(&self.revision.to_be_bytes());
        h[6..10].copy_from_slice(&self.epoch.to_be_bytes());
        h[10..14].copy_from_slice(&self.epoch_version.to_be_bytes());
        h[14..22].copy_from_slice(&self.author.to_be_bytes());
        h[22..26].copy_from_slice(&self.author_version.to_be_bytes());
        h[26..34].copy_from_slice(&crate::codec::encode_time(self.sent_at_ms).to_be_bytes());
        h
    }

    /// Parses the header of a stored record.
    pub fn decode(value: &[u8], what: impl Fn() -> String) -> Result<Self> {
        if value.is_empty() {
            return Err(Error::corrupt(what(), "empty value"));
        }
        if value[0] != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                what: "message record",
                found: value[0],
                supported: FORMAT_VERSION,
            });
        }
        if value.len() < RECORD_HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(Error::corrupt(
                what(),
                format!("{} bytes is shorter than the smallest record", value.len()),
            ));
        }
        let kind = RecordKind::from_u8(value[1])
            .ok_or_else(|| Error::corrupt(what(), format!("unknown record kind {}", value[1])))?;
        let be32 =
            |i: usize| u32::from_be_bytes([value[i], value[i + 1], value[i + 2], value[i + 3]]);
        let mut author = [0u8; 8];
        author.copy_from_slice(&value[14..22]);
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&value[26..34]);
        Ok(RecordHeader {
            kind,
            revision: be32(2),
            epoch: be32(6),
            epoch_version: be32(10),
            author: u64::from_be_bytes(author),
            author_version: be32(22),
            sent_at_ms: crate::codec::decode_time(u64::from_be_bytes(sent)),
        })
    }
}

fn aad(label: &[u8], header: &[u8], place: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(label.len() + header.len() + place.len());
    a.extend_from_slice(label);
    a.extend_from_slice(header);
    a.extend_from_slice(place);
    a
}

/// Seals a message record: `header || nonce || ciphertext || tag`, bound to `place` (its
/// RocksDB key).
pub fn seal_record(
    cipher: &Cipher,
    header: &RecordHeader,
    place: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let h = header.encode();
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&h);
    seal_into(
        cipher,
        &aad(RECORD_AAD_LABEL, &h, place),
        plaintext,
        &mut out,
    )
    .map_err(|_| Error::InvalidInput("record too large to seal".into()))?;
    Ok(out)
}

/// Opens a message record whose header was already decoded.
pub fn open_record(
    cipher: &Cipher,
    value: &[u8],
    place: &[u8],
    what: impl Fn() -> String,
) -> Result<Zeroizing<Vec<u8>>> {
    let (h, sealed) = value.split_at(RECORD_HEADER_LEN.min(value.len()));
    open_detached(cipher, &aad(RECORD_AAD_LABEL, h, place), sealed)
        .map_err(|_| Error::Authentication { what: what() })
}

/// Length of a wrapped key value in bytes.
pub const WRAPPED_KEY_LEN: usize = 10 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Header of a wrapped key: `fmt | kind | version | parent version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapHeader {
    /// Key kind (one of [`crate::codec`]'s `keys::*` bytes).
    pub kind: u8,
    /// Version of the wrapped key.
    pub version: u32,
    /// Version of the key that wraps it (the root key version for tenant KEKs).
    pub parent_version: u32,
}

impl WrapHeader {
    pub(crate) fn encode(&self) -> [u8; 10] {
        let mut h = [0u8; 10];
        h[0] = FORMAT_VERSION;
        h[1] = self.kind;
        h[2..6].copy_from_slice(&self.version.to_be_bytes());
        h[6..10].copy_from_slice(&self.parent_version.to_be_bytes());
        h
    }

    /// Parses the header of a wrapped key.
    pub fn decode(value: &[u8], what: impl Fn() -> String) -> Result<Self> {
        if value.is_empty() {
            return Err(Error::corrupt(what(), "empty wrapped key"));
        }
        if value[0] != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                what: "wrapped key",
                found: value[0],
                supported: FORMAT_VERSION,
            });
        }
        if value.len() < 10 {
            return Err(Error::corrupt(what(), "truncated wrapped key"));
        }
        Ok(WrapHeader {
            kind: value[1],
            version: u32::from_be_bytes([value[2], value[3], value[4], value[5]]),
            parent_version: u32::from_be_bytes([value[6], value[7], value[8], value[9]]),
        })
    }

    /// The AAD a wrap of this header at `place` is bound to.
    pub fn aad(&self, place: &[u8]) -> Vec<u8> {
        aad(WRAP_AAD_LABEL, &self.encode(), place)
    }

    /// Prefixes a provider blob with this header (tenant KEKs).
    pub fn with_blob(&self, blob: &[u8]) -> Vec<u8> {
        let mut v = self.encode().to_vec();
        v.extend_from_slice(blob);
        v
    }
}

/// Wraps `key` under `parent` (AES-256-GCM-SIV), bound to `place`.
pub fn wrap_key(
    parent: &Cipher,
    header: &WrapHeader,
    place: &[u8],
    key: &crate::keys::SecretKey,
) -> Result<Vec<u8>> {
    let h = header.encode();
    let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
    out.extend_from_slice(&h);
    seal_into(parent, &header.aad(place), key.expose(), &mut out)
        .map_err(|_| Error::InvalidInput("key too large to wrap".into()))?;
    Ok(out)
}

/// Unwraps a key wrapped by [`wrap_key`].
pub fn unwrap_key(
    parent: &Cipher,
    value: &[u8],
    place: &[u8],
    what: impl Fn() -> String,
) -> Result<(WrapHeader, crate::keys::SecretKey)> {
    let header = WrapHeader::decode(value, &what)?;
    if value.len() != WRAPPED_KEY_LEN {
        return Err(Error::corrupt(
            what(),
            format!(
                "wrapped key is {} bytes, expected {WRAPPED_KEY_LEN}",
                value.len()
            ),
        ));
    }
    let pt = open_detached(parent, &header.aad(place), &value[10..])
        .map_err(|_| Error::Authentication { what: what() })?;
    let key = crate::keys::key_from_plaintext(&pt)
        .ok_or_else(|| Error::corrupt(what(), "wrapped key has the wrong length"))?;
    Ok((header, key))
}

/// Kind byte of sealed metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MetaKind {
    /// Tenant record, under the tenant KEK.
    Tenant = 1,
    /// Conversation record, under the conversation key.
    Conversation = 2,
    /// Membership record, under the conversation key.
    Member = 3,
    /// User profile, under the user key.
    User = 4,
    /// Tenant retention policy, under the tenant KEK.
    TenantPolicy = 5,
    /// Conversation policy override, under the tenant KEK.
    ConvPolicy = 6,
    /// Policy or hold change record, under the tenant KEK.
    PolicyLog = 7,
    /// Legal hold, under the tenant KEK.
    Hold = 8,
    /// User record with the full profile (e-mail, phone, free-form fields), under the user key.
    /// Replaces [`MetaKind::User`] at the same place; both are read.
    UserV2 = 9,
    /// Restriction of processing of a user, under the user key.
    Restriction = 10,
    /// Extension record (id, name, scopes, conversations), under the tenant KEK.
    Extension = 11,
    /// Organisation-wide consent grant of an extension, under the tenant KEK.
    OrgConsent = 12,
    /// A user's consent grant for an extension, under the user key.
    UserConsent = 13,
    /// An importer's external reference of a message or conversation (the source format's
    /// ids and extra fields), under the conversation key.
    ExternalRef = 17,
}

impl MetaKind {
    /// The kind with this byte, if any.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => MetaKind::Tenant,
            2 => MetaKind::Conversation,
            3 => MetaKind::Member,
            4 => MetaKind::User,
            5 => MetaKind::TenantPolicy,
            6 => MetaKind::ConvPolicy,
            7 => MetaKind::PolicyLog,
            8 => MetaKind::Hold,
            9 => MetaKind::UserV2,
            10 => MetaKind::Restriction,
            11 => MetaKind::Extension,
            12 => MetaKind::OrgConsent,
            13 => MetaKind::UserConsent,
            17 => MetaKind::ExternalRef,
            _ => return None,
        })
    }
}

/// Seals a metadata record under `cipher` (key version `key_version`), bound to `place`.
pub fn seal_meta(
    cipher: &Cipher,
    kind: MetaKind,
    key_version: u32,
    place: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut h = [0u8; 6];
    h[0] = FORMAT_VERSION;
    h[1] = kind as u8;
    h[2..6].copy_from_slice(&key_version.to_be_bytes());
    let mut out = Vec::with_capacity(6 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&h);
    seal_into(cipher, &aad(META_AAD_LABEL, &h, place), plaintext, &mut out)
        .map_err(|_| Error::InvalidInput("record too large to seal".into()))?;
    Ok(out)
}

/// Reads the key version of sealed metadata, checking its format version and kind.
pub fn meta_key_version(value: &[u8], kind: MetaKind, what: impl Fn() -> String) -> Result<u32> {
    if value.is_empty() {
        return Err(Error::corrupt(what(), "empty record"));
    }
    if value[0] != FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            what: "metadata record",
            found: value[0],
            supported: FORMAT_VERSION,
        });
    }
    if value.len() < 6 + NONCE_LEN + TAG_LEN {
        return Err(Error::corrupt(what(), "truncated record"));
    }
    if value[1] != kind as u8 {
        return Err(Error::corrupt(
            what(),
            format!("record kind {} where {} was expected", value[1], kind as u8),
        ));
    }
    Ok(u32::from_be_bytes([value[2], value[3], value[4], value[5]]))
}

/// Opens sealed metadata.
pub fn open_meta(
    cipher: &Cipher,
    value: &[u8],
    kind: MetaKind,
    place: &[u8],
    what: impl Fn() -> String,
) -> Result<Zeroizing<Vec<u8>>> {
    meta_key_version(value, kind, &what)?;
    open_detached(
        cipher,
        &aad(META_AAD_LABEL, &value[..6], place),
        &value[6..],
    )
    .map_err(|_| Error::Authentication { what: what() })
}
