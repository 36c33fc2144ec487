//! # chatvault
//!
//! An embeddable storage engine that keeps chat transcripts encrypted at rest on RocksDB, so a
//! chat backend can honour data-protection law (access, rectification, export, restriction,
//! erasure) by construction.
//!
//! - **Envelope encryption per tenant.** A root key held by a [`KeyProvider`] (a key file by
//!   default) wraps one KEK per tenant; each tenant KEK wraps a key per conversation and a key
//!   per user; each conversation key wraps a key per epoch (UTC day by default). A message's
//!   DEK is derived with HKDF-SHA256 (RFC 5869) from its epoch key and, by default, its author's
//!   key. Records are sealed with AES-256-GCM-SIV (RFC 8452) under a fresh random 96-bit nonce,
//!   and their AAD binds them to their place, so a record moved or swapped fails to open.
//! - **No plaintext on disk.** RocksDB keys hold internal ids only; names go through an HMAC
//!   blind index; bodies, names and profiles exist only sealed.
//! - **Retention and legal holds.** Per-tenant defaults and per-conversation overrides (history
//!   off, a retention period), legal holds by tenant, conversation or custodian; expired messages
//!   are hidden by every read from the instant they expire (on an injectable UTC [`Clock`]) and
//!   removed from every file by [`Vault::purge`], which verifies the result by a raw scan.
//! - **Crypto-shredding.** Every key is its own wrapped record with a version, so
//!   [`Vault::shred`] destroys exactly the keys of a tenant, conversation, user or day window
//!   and the data under them becomes unreadable; each shred leaves a receipt in a MAC-chained
//!   log ([`Vault::verify_receipts`]); under a legal hold an erasure can be queued
//!   ([`Vault::shred_or_queue`]) until the hold is released.
//! - **Data-subject rights.** Access ([`Vault::subject_access`], [`Vault::subject_messages`]),
//!   rectification ([`Vault::rectify_profile`]), export as JSON Lines ([`Vault::export_user`],
//!   [`Vault::export_conversation`], [`Vault::export_tenant`]; schema in
//!   `docs/export-schema-v1.json`), restriction of processing ([`Vault::restrict_processing`],
//!   [`Vault::is_restricted`]) and erasure ([`Vault::erase_user`]), each recorded in an audit
//!   trail chained like the receipts ([`Vault::audit_entries`], [`Vault::verify_audit`]).
//! - **Consent for extensions.** A registry of extensions and the scopes they ask for
//!   ([`Vault::register_extension`]; organisation-wide consent for organisation-level scopes
//!   only), users' grants with an expiry ([`Vault::grant_consent`], default 60 days;
//!   [`Vault::revoke_consent`]), and the extension context ([`Vault::extension`]) whose reads
//!   succeed only within a live grant and otherwise fail at once with
//!   [`Error::ConsentRequired`]; a restricted user's data never goes through it. Exports can be
//!   encrypted to age recipients (`AgeOutput`, `age` feature).
//!
//! - **Operator tools.** [`Vault::verify`], [`Vault::stats`] and [`Vault::key_stats`],
//!   [`Vault::compact_scope`], root key rotation ([`Vault::rotate_root_key`]), rotation of the
//!   keys below it while the vault serves ([`Vault::rotate_tenant_kek`],
//!   [`Vault::rotate_data_keys`], [`Vault::reseal`], [`Vault::retire_data_keys`]), consistent
//!   copies ([`Vault::checkpoint`]) and [`Vault::restore`], which refuses a copy that needs a
//!   root key version retired since; read-only secondary instances beside the writer
//!   ([`Vault::open_secondary`]); progress reports of long calls
//!   ([`Vault::verify_with_progress`], [`Progress`]). The vault records its format version
//!   ([`VAULT_FORMAT_VERSION`], [`Vault::format_version`]): an older vault is upgraded in place
//!   at open, crash-safely; a newer one is refused before anything is written
//!   ([`Error::VaultFormatTooNew`]).
//!
//! Limits: message bodies up to [`VaultOptions::max_body_bytes`] (64 KiB by default); one writer
//! process per vault (RocksDB's rule; read-only secondaries beside it); no search, no
//! replication.
//!
//! ```no_run
//! use std::sync::Arc;
//! use chatvault::{Vault, VaultOptions, StaticKeyProvider, TenantOptions, UserProfile,
//!                 ConversationKind, NewMessage, Direction};
//! # fn main() -> chatvault::Result<()> {
//! let provider = Arc::new(StaticKeyProvider::from_env_or_file(Some("/etc/chatvault/root.key".as_ref()))?);
//! let vault = Vault::create("/var/lib/chatvault", provider, VaultOptions::default())?;
//! let t = vault.create_tenant("acme", TenantOptions::default())?;
//! let alice = vault.create_user(t, "alice@acme", UserProfile::named("Alice"))?;
//! let c = vault.create_conversation(t, "general", ConversationKind::Group, None, &[(alice, 0)])?;
//! // `append` says whether the message was stored (a conversation may have history off).
//! if let Some(id) = vault.append(t, c, NewMessage::text(alice, 1_700_000_000_000, "hello"))?.stored() {
//!     assert_eq!(vault.get(t, c, id)?.body, "hello");
//! }
//! let page = vault.page(t, c, None, Direction::Backward, 50)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod audit;
pub mod chain;
mod checkpoint;
pub mod codec;
mod consent;
pub mod envelope;
mod error;
mod export;
mod format;
mod fsutil;
/// For fuzzing (the cargo-fuzz targets in `fuzz/`); not a stable API.
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
mod keycheck;
pub mod keys;
mod model;
mod ops;
mod policy;
mod progress;
mod rekey;
pub mod retention;
mod rights;
mod rotate;
pub mod shred;
mod vault;
mod verify;

pub use audit::{AuditEntry, AuditEvent, AuditOutcome, ExportScope, RotationStep};
pub use chain::{ChainBreak, ChainFault, ChainHead, ChainId, ChainReport};
pub use checkpoint::RestoreReport;
pub use consent::{
    AccessTarget, ConsentGrant, ConsentMissing, ConsentScope, ExtensionContext, ExtensionId,
    ExtensionInfo, ExtensionPage, ExtensionSpec, GrantOptions, DEFAULT_CONSENT_MS,
};
pub use error::{Error, Result};
#[cfg(feature = "age")]
pub use export::AgeOutput;
pub use export::{ExportOptions, ExportSummary, EXPORT_FORMAT, EXPORT_VERSION};
pub use format::{stop_upgrade_after, NO_RECEIPT, OLDEST_UPGRADABLE_FORMAT, VAULT_FORMAT_VERSION};
pub use keycheck::KEYCHECK_FILE;
pub use keys::{KeyProvider, ProviderError, SecretKey, StaticKeyProvider, ROOT_KEY_ENV};
pub use model::{
    Appended, Attachment, ConversationId, ConversationInfo, ConversationKind, Direction,
    ErasurePolicy, Membership, Message, MessageId, MessageKind, NewMessage, NotStoredReason, Page,
    Revision, TenantId, TenantInfo, TenantOptions, UserId, UserInfo, UserProfile,
};
pub use ops::{CompactReport, KeyStats, TenantKeyStats};
pub use policy::{ConversationPurge, PurgeOptions, PurgeReport};
pub use progress::{Progress, PROGRESS_EVERY};
pub use rekey::RekeyReport;
pub use retention::{
    Actor, Clock, FakeClock, History, Hold, HoldScope, Policy, PolicyChange, PolicyOverride,
    Retention, SystemClock, TenantPolicy,
};
pub use rights::{MessageRole, SubjectAccess, SubjectConversation};
pub use rotate::{
    DataKeyRotationReport, KekRotationReport, ResealOptions, ResealProgress, ResealReport,
    RetireReport,
};
pub use shred::{
    QueuedErasure, ReceiptEntry, ReceiptEvent, ShredOutcome, ShredReceipt, ShredScope,
};
pub use vault::{cf, CfStats, Durability, MessageIter, Vault, VaultOptions, VaultStats};
pub use verify::{ConversationCheck, VerifyFailure, VerifyReport};
