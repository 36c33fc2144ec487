//! Thin wrappers over crate-private parsers and encoders, for the cargo-fuzz targets in
//! `fuzz/` (each target's doc comment says what property it checks).
//!
//! **For fuzzing; not a stable API**: hidden from the docs, and anything here may change or go
//! away without notice. Nothing here is needed to use chatvault. The wrappers call the very
//! functions the engine uses (no copies of parsing logic), so what the fuzzer finds is in the
//! engine.

use std::io::Cursor;
use std::path::Path;

use zeroize::Zeroizing;

use crate::chain::{Chain, ChainHead, ChainId, ChainReport};
use crate::envelope::{RecordHeader, WrapHeader, RECORD_HEADER_LEN};
use crate::error::{Error, Result};
use crate::import::mattermost::MmPostPlace;
use crate::import::slack::SlackRecord;
use crate::import::write_back::MmPlace;
use crate::import::{ExternalRef, ImportError};
use crate::keys::{KeyProvider, SecretKey, StaticKeyProvider};
use crate::shred::{QueuedErasure, ReceiptEvent, ShredReceipt, Tombstone};
use crate::{Attachment, AuditEvent, AuditOutcome, MessageKind, UserId};

// ------------------------------------------------------------------ envelope and keys

/// The 34 header bytes [`crate::envelope::seal_record`] writes for `h`.
pub fn encode_record_header(h: &RecordHeader) -> [u8; RECORD_HEADER_LEN] {
    h.encode()
}

/// The 10 header bytes [`crate::envelope::wrap_key`] writes for `h`.
pub fn encode_wrap_header(h: &WrapHeader) -> [u8; 10] {
    h.encode()
}

/// Whether two keys are the same bytes (never shows them).
pub fn same_key(a: &SecretKey, b: &SecretKey) -> bool {
    a.expose() == b.expose()
}

// ------------------------------------------------------------------ chains

/// A MAC-chained log ([`crate::chain`]) held in memory: entries are built exactly as
/// `Appender::append` writes them and verified by `Chain::verify` (the code behind
/// [`crate::Vault::verify_receipts`] and [`crate::Vault::verify_audit`]).
pub struct TestChain(Chain);

impl TestChain {
    /// An empty chain `id` whose key is derived from `vault_key` as a vault derives it.
    pub fn new(id: ChainId, vault_key: &SecretKey) -> Self {
        TestChain(Chain::new(id, vault_key, None))
    }

    /// Appends entries (time UTC ms, body) and returns their RocksDB `(key, value)` pairs.
    pub fn append(&self, entries: &[(i64, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut app = self.0.appender();
        let out = entries
            .iter()
            .map(|(at, body)| {
                let (k, v, _) = app.build(*at, body);
                (k, v)
            })
            .collect();
        app.commit();
        out
    }

    /// Verifies stored `(key, value)` pairs in key order, with an optional kept head.
    pub fn verify(
        &self,
        entries: &[(Vec<u8>, Vec<u8>)],
        kept: Option<&ChainHead>,
    ) -> Result<ChainReport> {
        self.0.verify(entries.iter().cloned().map(Ok), kept)
    }
}

/// A chain entry's decoded fields without a MAC check: `(seq, at_ms, body, mac)`.
pub fn decode_chain_entry(v: &[u8]) -> Option<(u64, i64, Vec<u8>, [u8; 32])> {
    Chain::decode(v).map(|e| (e.seq, e.at_ms, e.body, e.mac))
}

/// A receipt body as [`crate::Vault::receipts`] decodes it.
pub fn decode_receipt_body(b: &[u8]) -> Option<ReceiptEvent> {
    postcard::from_bytes(b).ok()
}

/// A receipt body as a shred writes it.
pub fn encode_receipt_body(e: &ReceiptEvent) -> Result<Vec<u8>> {
    crate::shred::enc(e, "a receipt")
}

/// A queued erasure (meta `0x13`) as the shred code decodes it.
pub fn decode_queued_erasure(b: &[u8]) -> Option<QueuedErasure> {
    postcard::from_bytes(b).ok()
}

/// A queued erasure as `shred_or_queue` writes it.
pub fn encode_queued_erasure(q: &QueuedErasure) -> Result<Vec<u8>> {
    crate::shred::enc(q, "a queued erasure")
}

/// The fields of an audit body: actor, as admin, event, outcome.
pub type AuditFields = (Option<UserId>, bool, AuditEvent, AuditOutcome);

/// An audit body as [`crate::Vault::audit_entries`] decodes it.
pub fn decode_audit_body(b: &[u8]) -> Option<AuditFields> {
    crate::audit::decode_body(b)
        .ok()
        .map(|a| (a.actor, a.as_admin, a.event, a.outcome))
}

/// An audit body as the vault writes it.
pub fn encode_audit_body(a: &AuditFields) -> Result<Vec<u8>> {
    let body = crate::audit::AuditBody {
        actor: a.0,
        as_admin: a.1,
        event: a.2.clone(),
        outcome: a.3.clone(),
    };
    postcard::to_stdvec(&body).map_err(|e| Error::InvalidInput(e.to_string()))
}

// ------------------------------------------------------------------ files and records

/// This provider's keys as the key file's text (holds the keys: never print it).
pub fn key_file_text(p: &StaticKeyProvider) -> Zeroizing<String> {
    p.to_key_file_text()
}

/// Parses `KEYCHECK` bytes: the vault id and the provider blob.
pub fn decode_keycheck(bytes: &[u8]) -> Result<([u8; 16], Vec<u8>)> {
    crate::keycheck::decode(bytes, || "key-check file (fuzz)".into())
}

/// `KEYCHECK` bytes for a vault id and provider blob.
pub fn encode_keycheck(vault_id: &[u8; 16], blob: &[u8]) -> Result<Vec<u8>> {
    crate::keycheck::encode(vault_id, blob)
}

/// `KEYCHECK` bytes holding `key` wrapped by `provider`, as a vault writes them.
pub fn keycheck_bytes(
    provider: &dyn KeyProvider,
    vault_id: &[u8; 16],
    key: &SecretKey,
) -> Result<Vec<u8>> {
    crate::keycheck::file_bytes(provider, vault_id, key)
}

/// Opens `KEYCHECK` bytes with `provider` as [`crate::Vault::open`] does (decode, then unwrap
/// the vault key); errors as there (`WrongRootKey`, `RootKeyVersionMissing`, `Corrupt`, ...).
pub fn open_keycheck(bytes: &[u8], provider: &dyn KeyProvider) -> Result<SecretKey> {
    let (id, blob) = decode_keycheck(bytes)?;
    crate::keycheck::unwrap_vault_key(Path::new("fuzz"), &id, &blob, provider)
}

/// Decodes a vault format version record (meta `0x1D`): `(format version, written by)`.
pub fn decode_format_record(v: &[u8]) -> Result<(u32, String)> {
    crate::format::FormatRecord::decode(v).map(|r| (r.version, r.written_by))
}

/// Encodes a vault format version record.
pub fn encode_format_record(version: u32, written_by: &str) -> Vec<u8> {
    crate::format::FormatRecord {
        version,
        written_by: written_by.to_string(),
    }
    .encode()
}

/// A shred tombstone (meta `0x10`) of the current layout: its receipt and window.
pub fn decode_tombstone(v: &[u8]) -> Option<(ShredReceipt, Option<(i64, i64)>)> {
    crate::format::decode_tombstone(v).map(|t| (t.receipt, t.window))
}

/// A format-1 tombstone brought to the current layout, as the upgrade does.
pub fn upgrade_tombstone(v: &[u8]) -> Option<(ShredReceipt, Option<(i64, i64)>)> {
    crate::format::upgrade_tombstone(v).map(|t| (t.receipt, t.window))
}

/// A tombstone as a shred writes it.
pub fn encode_tombstone(receipt: &ShredReceipt, window: Option<(i64, i64)>) -> Result<Vec<u8>> {
    crate::shred::enc(
        &Tombstone {
            receipt: receipt.clone(),
            window,
        },
        "a tombstone",
    )
}

// ------------------------------------------------------------------ importers and writers

/// Reads a Slack export zip held in memory as the importer reads it (same walk, same
/// errors), without a vault; entries over `max_entry_bytes` uncompressed are refused. Returns
/// every day-file record parsed, in import order.
pub fn slack_dry_run(
    zip: &[u8],
    max_entry_bytes: u64,
) -> std::result::Result<Vec<SlackRecord>, ImportError> {
    crate::import::slack::dry_run(Cursor::new(zip), "fuzz.zip", max_entry_bytes).map(|d| d.records)
}

/// The JSON of a message as `write_slack_export` writes it (see the writer for the fields).
pub fn slack_message_json(
    ts: &str,
    author: &str,
    sref: Option<&ExternalRef>,
    original: &str,
    kind: MessageKind,
    thread_ts: Option<&str>,
    attachments: &[Attachment],
) -> serde_json::Value {
    crate::import::write_back::slack_message_json(
        ts,
        author,
        sref,
        original,
        kind,
        thread_ts,
        attachments,
    )
}

/// The `message_changed` event `write_slack_export` writes for a later revision.
pub fn slack_change_json(author: &str, ts: &str, body: &str, at_ms: i64) -> serde_json::Value {
    crate::import::write_back::slack_change_json(author, ts, body, at_ms)
}

/// The `message_deleted` event `write_slack_export` writes for a deletion.
pub fn slack_deletion_json(ts: &str, at_ms: i64) -> serde_json::Value {
    crate::import::write_back::slack_deletion_json(ts, at_ms)
}

/// A post or reply as `write_mattermost_export` writes it.
pub fn mm_post_json(
    user: &str,
    body: &str,
    sent_at_ms: i64,
    edited_at_ms: Option<i64>,
    deleted_at_ms: Option<i64>,
    post_type: Option<&str>,
    attachments: &[Attachment],
) -> serde_json::Map<String, serde_json::Value> {
    crate::import::write_back::mm_post_json(
        user,
        body,
        sent_at_ms,
        edited_at_ms,
        deleted_at_ms,
        post_type,
        attachments,
    )
}

/// The line `write_mattermost_export` writes for a post (replies already in `post`) in the
/// conversation an import of `place` created: a channel keeps its team and name; a direct
/// channel's members go through the `members` field the import keeps and the writer splits.
pub fn mm_post_line(
    post: serde_json::Map<String, serde_json::Value>,
    place: &MmPostPlace,
) -> serde_json::Value {
    let place = match place {
        MmPostPlace::Channel { team, channel } => MmPlace::Channel {
            team: team.clone(),
            name: channel.clone(),
        },
        MmPostPlace::Direct { members } => {
            let names: Vec<&str> = members.iter().map(String::as_str).collect();
            MmPlace::Direct {
                members: crate::import::write_back::mm_direct_members(
                    &crate::import::mattermost::direct_members_field(&names),
                ),
                header: None,
            }
        }
    };
    crate::import::write_back::mm_post_line(post, &place)
}

/// The profile the Slack importer keeps of a `users.json` entry.
pub fn slack_profile(u: &serde_json::Value) -> crate::UserProfile {
    crate::import::slack::profile_of(u)
}
