//! The audit trail: who did what, when, on what scope (internal ids) and with what outcome, in
//! the MAC-chained log of [`crate::chain`] with chain id 2 ([`ChainId::Audit`]). The same
//! mechanism, format and verification as the shred receipts (chain id 1); only the body differs.
//!
//! Entries hold internal ids, field names and error kinds, never a name, an external id or a
//! value: the log is authenticated, not sealed. Recorded: exports (when they complete, or fail
//! midway), rectifications (the names of the fields changed), restrictions of processing,
//! erasures, shreds, retention policy changes, legal holds placed and released. A change and
//! its entry are written in one WriteBatch; an export (a read) appends its entry, synced, when
//! it ends.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::chain::{self, Appender, Chain, ChainHead, ChainReport, MAC_LEN};
use crate::codec;
use crate::consent::{AccessTarget, ConsentScope, ExtensionId};
use crate::error::{Error, Result};
use crate::model::{ConversationId, TenantId, UserId};
use crate::retention::{Actor, HoldScope};
use crate::shred::ShredScope;
use crate::vault::{cf, RawIter, Vault};

/// What an export covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportScope {
    /// Everything held about one user.
    User(UserId),
    /// One conversation.
    Conversation(ConversationId),
    /// A whole tenant.
    Tenant,
}

/// What an audit entry records (internal ids only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditEvent {
    /// An export ([`Vault::export_user`], [`Vault::export_conversation`],
    /// [`Vault::export_tenant`]).
    Export {
        /// The tenant.
        tenant: TenantId,
        /// What was exported.
        scope: ExportScope,
        /// Whether it was a third-party export (restricted users left out).
        third_party: bool,
        /// JSON Lines records written (all of them when it completed).
        records: u64,
    },
    /// A profile was rectified ([`Vault::rectify_profile`]): the names of the fields changed,
    /// never their old or new values.
    Rectification {
        /// The tenant.
        tenant: TenantId,
        /// The user whose profile changed.
        user: UserId,
        /// `display_name`, `email`, `phone`, `fields.NAME`.
        fields: Vec<String>,
    },
    /// Restriction of processing set or lifted ([`Vault::restrict_processing`]).
    Restriction {
        /// The tenant.
        tenant: TenantId,
        /// The user.
        user: UserId,
        /// `true`: restricted from now on; `false`: lifted.
        on: bool,
    },
    /// A user's erasure ("close my account", [`Vault::erase_user`]).
    Erasure {
        /// The tenant.
        tenant: TenantId,
        /// The erased user.
        user: UserId,
        /// The seq of its receipt in the receipt chain (`Shredded`, or `Queued` under a hold).
        receipt: u64,
    },
    /// A shred ([`Vault::shred`], [`Vault::shred_or_queue`]).
    Shred {
        /// The tenant.
        tenant: TenantId,
        /// The scope.
        scope: ShredScope,
        /// The seq of its receipt in the receipt chain (`Shredded`, or `Queued` under a hold).
        receipt: u64,
    },
    /// A retention policy changed (tenant default, or a conversation's override).
    PolicyChange {
        /// The tenant.
        tenant: TenantId,
        /// The conversation, for an override; `None` for the tenant default.
        conversation: Option<ConversationId>,
    },
    /// A legal hold was placed.
    HoldPlaced {
        /// The tenant.
        tenant: TenantId,
        /// The hold's id.
        hold: u64,
        /// What it covers.
        scope: HoldScope,
    },
    /// A legal hold was released.
    HoldReleased {
        /// The tenant.
        tenant: TenantId,
        /// The hold's id.
        hold: u64,
        /// Receipt seqs of the queued erasures carried out with the release.
        carried_out: Vec<u64>,
    },
    /// An extension was registered ([`Vault::register_extension`]).
    ExtensionRegistered {
        /// The tenant.
        tenant: TenantId,
        /// The extension's internal id.
        extension: ExtensionId,
        /// The scopes it asks for.
        scopes: Vec<ConsentScope>,
    },
    /// An extension was removed, with every grant for it ([`Vault::remove_extension`]).
    ExtensionRemoved {
        /// The tenant.
        tenant: TenantId,
        /// The extension.
        extension: ExtensionId,
        /// User grants removed with it.
        grants_removed: u64,
    },
    /// An extension was added to or removed from a conversation
    /// ([`Vault::set_extension_conversation`]).
    ExtensionConversation {
        /// The tenant.
        tenant: TenantId,
        /// The extension.
        extension: ExtensionId,
        /// The conversation.
        conversation: ConversationId,
        /// `true`: added; `false`: removed.
        added: bool,
    },
    /// Consent granted ([`Vault::grant_consent`]; organisation-wide at
    /// [`Vault::register_extension`]).
    ConsentGranted {
        /// The tenant.
        tenant: TenantId,
        /// The extension.
        extension: ExtensionId,
        /// The user who granted it; `None`: organisation-wide.
        user: Option<UserId>,
        /// The scopes granted.
        scopes: Vec<ConsentScope>,
        /// When it expires, UTC ms.
        expires_at_ms: i64,
    },
    /// Consent revoked ([`Vault::revoke_consent`], [`Vault::revoke_org_consent`]).
    ConsentRevoked {
        /// The tenant.
        tenant: TenantId,
        /// The extension.
        extension: ExtensionId,
        /// The user; `None`: the organisation-wide grant.
        user: Option<UserId>,
    },
    /// An access through an extension's context ([`Vault::extension`]), allowed (outcome
    /// `Done`) or refused (`Failed`, e.g. `ConsentRequired`, `Restricted`). The acting party is
    /// the extension: the entry's actor is `None`.
    ExtensionAccess {
        /// The tenant.
        tenant: TenantId,
        /// The extension.
        extension: ExtensionId,
        /// The scope the access needed.
        scope: ConsentScope,
        /// What it read or wrote.
        target: AccessTarget,
        /// Records handed over (messages, profiles, conversations, or 1 posted).
        returned: u64,
        /// Messages withheld (their authors gave no live consent, or are restricted).
        withheld: u64,
    },
    /// Keys below the root key were rotated, or the old versions a rotation left were retired
    /// ([`Vault::rotate_tenant_kek`], [`Vault::rotate_data_keys`], [`Vault::retire_data_keys`]).
    KeyRotation {
        /// The tenant.
        tenant: TenantId,
        /// The conversation, for a rotation of one conversation's data keys.
        conversation: Option<ConversationId>,
        /// What was done.
        step: RotationStep,
    },
}

/// What a [`AuditEvent::KeyRotation`] entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationStep {
    /// The tenant KEK got a new version with a new random value.
    TenantKek,
    /// Conversation, epoch and (tenant scope) user keys got new versions for new writes.
    DataKeys,
    /// The old data-key versions were deleted after a scan showed nothing readable uses them.
    OldVersionsRetired,
}

/// How the recorded operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditOutcome {
    /// It was carried out.
    Done,
    /// It was queued (an erasure or shred under a legal hold).
    Queued,
    /// It failed; `error` is the error's kind (e.g. `Storage`, `Shredded`), never its message.
    Failed {
        /// The kind of [`Error`].
        error: String,
    },
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its sequence number, from 0.
    pub seq: u64,
    /// When it was appended, UTC ms.
    pub at_ms: i64,
    /// Who acted: an internal user id, or `None` for an operator or the system.
    pub actor: Option<UserId>,
    /// Whether the actor acted as a tenant admin (an operator always does).
    pub as_admin: bool,
    /// What was done.
    pub event: AuditEvent,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Its MAC (HMAC-SHA256; see [`crate::chain`]).
    pub mac: [u8; MAC_LEN],
}

/// The body of an audit entry as stored (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditBody {
    pub actor: Option<UserId>,
    pub as_admin: bool,
    pub event: AuditEvent,
    pub outcome: AuditOutcome,
}

/// Decodes a stored audit body (as [`Vault::audit_entries`] does).
pub(crate) fn decode_body(b: &[u8]) -> std::result::Result<AuditBody, postcard::Error> {
    postcard::from_bytes(b)
}

/// The kind of an error, for [`AuditOutcome::Failed`] (no message: messages may quote paths).
pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::WrongRootKey { .. } => "WrongRootKey",
        Error::KeyProvider(_) => "KeyProvider",
        Error::Authentication { .. } => "Authentication",
        Error::Corrupt { .. } => "Corrupt",
        Error::UnsupportedFormat { .. } => "UnsupportedFormat",
        Error::NotFound { .. } => "NotFound",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::Shredded { .. } => "Shredded",
        Error::Expired { .. } => "Expired",
        Error::LegalHold { .. } => "LegalHold",
        Error::PermissionDenied(_) => "PermissionDenied",
        Error::MessageTooLarge { .. } => "MessageTooLarge",
        Error::InvalidInput(_) => "InvalidInput",
        Error::Conflict(_) => "Conflict",
        Error::Storage { .. } => "Storage",
        Error::Io { .. } => "Io",
        Error::ExportWrite { .. } => "ExportWrite",
        Error::Restricted { .. } => "Restricted",
        Error::ReadOnlySecondary { .. } => "ReadOnlySecondary",
        Error::RootKeyVersionRetired { .. } => "RootKeyVersionRetired",
        Error::KeyVersionsInUse { .. } => "KeyVersionsInUse",
        Error::RootKeyVersionMissing { .. } => "RootKeyVersionMissing",
        Error::VaultFormatTooNew { .. } => "VaultFormatTooNew",
        Error::VaultFormatNeedsUpgrade { .. } => "VaultFormatNeedsUpgrade",
        Error::ConsentRequired { .. } => "ConsentRequired",
    }
}

pub(crate) fn encode(actor: &Actor, event: AuditEvent, outcome: AuditOutcome) -> Result<Vec<u8>> {
    let body = AuditBody {
        actor: actor.user,
        as_admin: actor.is_admin(),
        event,
        outcome,
    };
    postcard::to_stdvec(&body)
        .map_err(|e| Error::InvalidInput(format!("cannot encode an audit entry: {e}")))
}

impl Vault {
    /// Puts an audit entry in `batch`. The returned appender holds the audit chain's lock:
    /// commit it once the batch is written (drop it if the batch is not written).
    pub(crate) fn stage_audit(
        &self,
        batch: &mut WriteBatch,
        actor: &Actor,
        event: AuditEvent,
        outcome: AuditOutcome,
    ) -> Result<Appender<'_>> {
        let i = &self.inner;
        let body = encode(actor, event, outcome)?;
        let now = i.opts.clock.now_ms();
        let meta = i.cf(cf::META)?;
        let mut app = i.audit.appender();
        app.append(batch, &meta, now, &body);
        Ok(app)
    }

    /// Appends an audit entry on its own, synced (for reads such as exports).
    pub(crate) fn audit_now(
        &self,
        actor: &Actor,
        event: AuditEvent,
        outcome: AuditOutcome,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        let app = self.stage_audit(&mut batch, actor, event, outcome)?;
        self.inner
            .write_sync(batch, "appending to the audit trail")?;
        app.commit();
        Ok(())
    }

    /// Every entry of the audit trail, oldest first. Errors: [`Error::Corrupt`] for an entry
    /// that cannot be decoded (run [`Vault::verify_audit`] to find out what happened);
    /// [`Error::Storage`].
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>> {
        let i = &self.inner;
        let it = i.prefix_iter(cf::META, &chain::prefix(i.audit.id()))?;
        let mut out = Vec::new();
        for kv in RawIter::new(it, "reading the audit trail") {
            let (k, v) = kv?;
            let what = || {
                format!(
                    "audit entry {}",
                    k.get(2..10).and_then(codec::be64).unwrap_or(0)
                )
            };
            let e = Chain::decode(&v).ok_or_else(|| Error::corrupt(what(), "undecodable"))?;
            let body = decode_body(&e.body)
                .map_err(|err| Error::corrupt(what(), format!("body: {err}")))?;
            out.push(AuditEntry {
                seq: e.seq,
                at_ms: e.at_ms,
                actor: body.actor,
                as_admin: body.as_admin,
                event: body.event,
                outcome: body.outcome,
                mac: e.mac,
            });
        }
        Ok(out)
    }

    /// Verifies the audit trail exactly as [`Vault::verify_receipts`] verifies the receipts
    /// (same code): every MAC, every link, no gap; given the head kept from an earlier
    /// verification, also entries cut off the end. A broken chain is a report naming the first
    /// broken entry, not an error; errors: [`Error::Storage`].
    pub fn verify_audit(&self, kept_head: Option<&ChainHead>) -> Result<ChainReport> {
        let i = &self.inner;
        let it = i.prefix_iter(cf::META, &chain::prefix(i.audit.id()))?;
        i.audit
            .verify(RawIter::new(it, "verifying the audit trail"), kept_head)
    }

    /// The head of the audit trail (its last entry), from memory; `None` if it is empty.
    pub fn audit_head(&self) -> Option<ChainHead> {
        self.inner.audit.head()
    }
}
