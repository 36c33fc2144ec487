//! Consent for extensions: a registry of extensions per tenant, consent grants with scopes and
//! an expiry, and the extension context ([`Vault::extension`]) through which every read of an
//! extension goes, so that it succeeds only within a live grant's scopes.
//!
//! ```text
//!  meta 0x17 t e    extension record (id, name, requested scopes, bot user, conversations it
//!                   is added to), sealed under the tenant KEK (meta kind 11)
//!  meta 0x18 t e    organisation-wide grant (organisation-level scopes only), given by a tenant
//!                   admin at install time, sealed under the tenant KEK (meta kind 12)
//!  meta 0x19 t u e  a user's grant, sealed under the user's key (meta kind 13): erasing the
//!                   user shreds it with everything else of theirs
//! ```
//!
//! `e` is the extension's internal id (from the vault-wide counter); the extension's own id
//! (`com.example.summary`) and name exist only sealed. A grant is live while
//! `now < expires_at_ms` on the vault's [`crate::Clock`]; every access reads the grant again,
//! so a revocation or an expiry refuses the next access at once with
//! [`Error::ConsentRequired`]. A restricted user's data ([`Vault::restrict_processing`]) is never
//! handed to an extension, whatever its grants ([`Error::Restricted`]). Every access, allowed or
//! refused, and every grant, revocation and registry change is in the audit trail.

use std::collections::{BTreeMap, BTreeSet};

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::audit::{error_kind, AuditEvent, AuditOutcome};
use crate::codec::{self, be64, Iid, KeyBuf};
use crate::envelope::{self, MetaKind};
use crate::error::{Error, Result};
use crate::model::*;
use crate::retention::Actor;
use crate::vault::{cf, from_postcard, to_postcard, KeyId, RawIter, Vault};

/// Default validity of a consent grant: 60 days, in milliseconds.
pub const DEFAULT_CONSENT_MS: u64 = 60 * 86_400_000;

/// Handle of a registered extension inside its tenant (an internal id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtensionId(pub(crate) u64);

impl ExtensionId {
    /// The internal id as a number (stable for the life of the vault).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ExtensionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What an extension may ask to do. Personal scopes concern one user's data: each user grants
/// them for themself. Organisation-level scopes concern the tenant: a tenant admin grants them
/// organisation-wide when installing the extension ([`ConsentScope::is_personal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConsentScope {
    /// Personal: read the messages the user wrote, in conversations the extension is added to.
    ReadMessages,
    /// Personal: read the user's profile (display name, e-mail, phone, fields).
    ReadProfile,
    /// Organisation-level: list and read the records (external id, kind, title) of the
    /// conversations the extension is added to.
    ReadConversations,
    /// Organisation-level: post messages, as the extension's bot user, into conversations the
    /// extension is added to.
    PostMessages,
}

impl ConsentScope {
    /// Every scope.
    pub const ALL: [ConsentScope; 4] = [
        ConsentScope::ReadMessages,
        ConsentScope::ReadProfile,
        ConsentScope::ReadConversations,
        ConsentScope::PostMessages,
    ];

    /// Whether the scope concerns one user's personal data (granted by each user), rather than
    /// the organisation (granted organisation-wide by a tenant admin at install time).
    pub fn is_personal(self) -> bool {
        matches!(self, ConsentScope::ReadMessages | ConsentScope::ReadProfile)
    }

    /// The scope's name: `read-messages`, `read-profile`, `read-conversations`, `post-messages`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentScope::ReadMessages => "read-messages",
            ConsentScope::ReadProfile => "read-profile",
            ConsentScope::ReadConversations => "read-conversations",
            ConsentScope::PostMessages => "post-messages",
        }
    }
}

impl std::fmt::Display for ConsentScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConsentScope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ConsentScope::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown consent scope {s:?}; the scopes are {}",
                    ConsentScope::ALL.map(ConsentScope::as_str).join(", ")
                ))
            })
    }
}

/// Why an extension's access needs consent it does not have (in [`Error::ConsentRequired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMissing {
    /// No grant: never given, or revoked.
    NotGranted,
    /// The grant expired at this time (UTC ms).
    Expired {
        /// When it expired, UTC ms.
        at_ms: i64,
    },
    /// A live grant exists but does not include the scope.
    ScopeNotGranted,
}

impl std::fmt::Display for ConsentMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsentMissing::NotGranted => f.write_str("no grant (never given, or revoked)"),
            ConsentMissing::Expired { at_ms } => write!(f, "the grant expired at {at_ms} ms UTC"),
            ConsentMissing::ScopeNotGranted => f.write_str("the live grant does not include it"),
        }
    }
}

/// An extension to register ([`Vault::register_extension`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionSpec {
    /// Its id, unique in the tenant (e.g. `com.example.summary`); sealed, never in clear.
    pub id: String,
    /// Its name, shown to users asked for consent.
    pub name: String,
    /// The scopes it asks for; grants can only include these.
    pub scopes: BTreeSet<ConsentScope>,
    /// The user account it posts as ([`ConsentScope::PostMessages`]); `None` if it never posts.
    pub bot_user: Option<UserId>,
}

/// A registered extension, as [`Vault::extensions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionInfo {
    /// Internal handle.
    pub extension: ExtensionId,
    /// Its id, as registered.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The scopes it asks for.
    pub scopes: BTreeSet<ConsentScope>,
    /// The user it posts as.
    pub bot_user: Option<UserId>,
    /// The conversations it is added to.
    pub conversations: BTreeSet<ConversationId>,
    /// When it was registered, UTC ms.
    pub registered_at_ms: i64,
    /// The organisation-wide grant given at install time, if any (live or expired).
    pub org_grant: Option<ConsentGrant>,
}

/// A consent grant: personal (`user` is `Some`) or organisation-wide (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGrant {
    /// The extension.
    pub extension: ExtensionId,
    /// The user who granted it; `None` for an organisation-wide grant.
    pub user: Option<UserId>,
    /// The scopes granted.
    pub scopes: BTreeSet<ConsentScope>,
    /// When it was granted, UTC ms.
    pub granted_at_ms: i64,
    /// When it expires, UTC ms (exclusive: from this instant on it is not live).
    pub expires_at_ms: i64,
    /// Who recorded it (`None`: an operator or the backend, recording the user's decision).
    pub granted_by: Option<UserId>,
}

impl ConsentGrant {
    /// Whether the grant is live at `now_ms` (UTC ms).
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// Options of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantOptions {
    /// How long the grant stays live, in milliseconds from now. Default
    /// [`DEFAULT_CONSENT_MS`] (60 days); at least 1.
    pub valid_for_ms: u64,
}

impl Default for GrantOptions {
    fn default() -> Self {
        GrantOptions {
            valid_for_ms: DEFAULT_CONSENT_MS,
        }
    }
}

/// What an extension accessed (in [`AuditEvent::ExtensionAccess`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessTarget {
    /// The list of the conversations it is added to.
    Conversations,
    /// A conversation's record.
    Conversation(ConversationId),
    /// A page of a conversation's messages.
    Messages(ConversationId),
    /// One message.
    Message(ConversationId, MessageId),
    /// A user's profile.
    Profile(UserId),
    /// A message posted into a conversation.
    Post(ConversationId),
}

/// A page of messages read through an extension ([`ExtensionContext::messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionPage {
    /// The messages whose authors granted [`ConsentScope::ReadMessages`] and are not
    /// restricted, oldest first.
    pub messages: Vec<Message>,
    /// Messages of the range scanned that were withheld (no live grant of their author, or a
    /// restricted author).
    pub withheld: u64,
    /// The id to pass as `from` for the next page; `None` at the end.
    pub next: Option<MessageId>,
}

#[derive(Serialize, Deserialize)]
struct ExtensionRecord {
    id: String,
    name: String,
    scopes: BTreeSet<ConsentScope>,
    bot_user: Option<u64>,
    conversations: BTreeSet<u64>,
    registered_at_ms: i64,
    registered_by: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct GrantRecord {
    scopes: BTreeSet<ConsentScope>,
    granted_at_ms: i64,
    expires_at_ms: i64,
    granted_by: Option<u64>,
}

fn ext_place(t: Iid, e: Iid) -> Vec<u8> {
    KeyBuf::tag(codec::meta::EXTENSION).u64(t).u64(e).into_vec()
}

fn org_place(t: Iid, e: Iid) -> Vec<u8> {
    KeyBuf::tag(codec::meta::ORG_CONSENT)
        .u64(t)
        .u64(e)
        .into_vec()
}

fn grant_place(t: Iid, u: Iid, e: Iid) -> Vec<u8> {
    KeyBuf::tag(codec::meta::USER_CONSENT)
        .u64(t)
        .u64(u)
        .u64(e)
        .into_vec()
}

fn grant_of(e: ExtensionId, user: Option<UserId>, r: GrantRecord) -> ConsentGrant {
    ConsentGrant {
        extension: e,
        user,
        scopes: r.scopes,
        granted_at_ms: r.granted_at_ms,
        expires_at_ms: r.expires_at_ms,
        granted_by: r.granted_by.map(UserId),
    }
}

fn check_admin(actor: &Actor, what: &str) -> Result<()> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "only a tenant admin may {what}"
        )))
    }
}

impl Vault {
    // ------------------------------------------------------------------ sealed records

    fn seal_kek(&self, t: Iid, kind: MetaKind, place: &[u8], pt: &[u8]) -> Result<Vec<u8>> {
        let kek = self.inner.key(KeyId::TenantKek { t, v: 0 })?;
        envelope::seal_meta(&kek.cipher, kind, kek.version, place, pt)
    }

    fn open_kek(
        &self,
        t: Iid,
        kind: MetaKind,
        place: &[u8],
        v: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let what = || format!("consent record {} of tenant #{t}", hex::encode(place));
        let kv = envelope::meta_key_version(v, kind, what)?;
        let kek = self.inner.key(KeyId::TenantKek { t, v: kv })?;
        envelope::open_meta(&kek.cipher, v, kind, place, what)
    }

    fn read_extension(&self, t: Iid, e: Iid) -> Result<Option<ExtensionRecord>> {
        let place = ext_place(t, e);
        let Some(v) = self.inner.get(cf::META, &place)? else {
            return Ok(None);
        };
        let pt = self.open_kek(t, MetaKind::Extension, &place, &v)?;
        from_postcard(&pt, || format!("extension #{e} of tenant #{t}")).map(Some)
    }

    fn put_extension(
        &self,
        batch: &mut WriteBatch,
        t: Iid,
        e: Iid,
        rec: &ExtensionRecord,
    ) -> Result<()> {
        let place = ext_place(t, e);
        let sealed = self.seal_kek(t, MetaKind::Extension, &place, &to_postcard(rec)?)?;
        batch.put_cf(&self.inner.cf(cf::META)?, place, sealed);
        Ok(())
    }

    /// Every extension record of tenant `t`: (internal id, record).
    fn extension_records(&self, t: Iid) -> Result<Vec<(Iid, ExtensionRecord)>> {
        let prefix = KeyBuf::tag(codec::meta::EXTENSION).u64(t).into_vec();
        let it = self.inner.prefix_iter(cf::META, &prefix)?;
        let mut out = Vec::new();
        for kv in RawIter::new(it, "listing extensions") {
            let (k, v) = kv?;
            let e = k
                .get(9..17)
                .and_then(be64)
                .ok_or_else(|| Error::corrupt("extension record key", "bad length"))?;
            let pt = self.open_kek(t, MetaKind::Extension, &k, &v)?;
            out.push((e, from_postcard(&pt, || format!("extension #{e}"))?));
        }
        Ok(out)
    }

    /// The extension registered as `id` in tenant `t`.
    fn find_extension(&self, t: Iid, id: &str) -> Result<(Iid, ExtensionRecord)> {
        self.inner.tenant_state(t)?;
        self.extension_records(t)?
            .into_iter()
            .find(|(_, r)| r.id == id)
            .ok_or_else(|| Error::NotFound {
                what: format!(
                    "extension {id:?} of tenant #{t} (`Vault::extensions` lists the registered ones)"
                ),
            })
    }

    fn read_org_grant(&self, t: Iid, e: Iid) -> Result<Option<GrantRecord>> {
        let place = org_place(t, e);
        let Some(v) = self.inner.get(cf::META, &place)? else {
            return Ok(None);
        };
        let pt = self.open_kek(t, MetaKind::OrgConsent, &place, &v)?;
        from_postcard(&pt, || format!("organisation consent of extension #{e}")).map(Some)
    }

    fn read_user_grant(&self, t: Iid, u: Iid, e: Iid) -> Result<Option<GrantRecord>> {
        let i = &self.inner;
        let place = grant_place(t, u, e);
        let Some(v) = i.get(cf::META, &place)? else {
            return Ok(None);
        };
        let what = || format!("consent of user #{u} for extension #{e}");
        let kv = envelope::meta_key_version(&v, MetaKind::UserConsent, what)?;
        let ukey = i.key(KeyId::User { t, u, v: kv })?;
        let pt = envelope::open_meta(&ukey.cipher, &v, MetaKind::UserConsent, &place, what)?;
        from_postcard(&pt, what).map(Some)
    }

    fn info_of(&self, t: Iid, e: Iid, r: ExtensionRecord) -> Result<ExtensionInfo> {
        let ext = ExtensionId(e);
        Ok(ExtensionInfo {
            extension: ext,
            id: r.id,
            name: r.name,
            scopes: r.scopes,
            bot_user: r.bot_user.map(UserId),
            conversations: r.conversations.into_iter().map(ConversationId).collect(),
            registered_at_ms: r.registered_at_ms,
            org_grant: self.read_org_grant(t, e)?.map(|g| grant_of(ext, None, g)),
        })
    }

    // ------------------------------------------------------------------ registry

    /// Registers (installs) an extension in a tenant (tenant admins only), and, if `org_scopes`
    /// is not empty, grants it organisation-wide consent for those scopes, valid for
    /// `org.valid_for_ms`. Organisation-wide consent covers organisation-level scopes only
    /// ([`ConsentScope::is_personal`] is false): personal scopes are each user's to grant.
    /// The record is sealed under the tenant KEK; the audit trail records an
    /// `ExtensionRegistered` (and a `ConsentGranted` for the organisation-wide grant).
    ///
    /// Errors: [`Error::PermissionDenied`] (not an admin; a personal scope in `org_scopes`);
    /// [`Error::InvalidInput`] (empty id or name, no scopes, an `org_scopes` scope the
    /// extension does not ask for, a bot user that does not exist); [`Error::AlreadyExists`];
    /// [`Error::NotFound`], [`Error::Shredded`] (tenant).
    pub fn register_extension(
        &self,
        tenant: TenantId,
        actor: Actor,
        spec: &ExtensionSpec,
        org_scopes: &[ConsentScope],
        org: &GrantOptions,
    ) -> Result<ExtensionId> {
        check_admin(&actor, "register an extension")?;
        let t = tenant.0;
        let i = &self.inner;
        i.tenant_state(t)?;
        if spec.id.is_empty() || spec.name.is_empty() {
            return Err(Error::InvalidInput(
                "an extension needs a non-empty id and name".into(),
            ));
        }
        if spec.scopes.is_empty() {
            return Err(Error::InvalidInput(
                "an extension must ask for at least one scope".into(),
            ));
        }
        if let Some(p) = org_scopes.iter().find(|s| s.is_personal()) {
            return Err(Error::PermissionDenied(format!(
                "organisation-wide consent covers organisation-level scopes only; {p} is \
                 personal: each user grants it for themself (`Vault::grant_consent`)"
            )));
        }
        if let Some(s) = org_scopes.iter().find(|s| !spec.scopes.contains(s)) {
            return Err(Error::InvalidInput(format!(
                "organisation-wide consent for {s}, which the extension does not ask for"
            )));
        }
        check_valid_for(org.valid_for_ms)?;
        if let Some(b) = spec.bot_user {
            self.user(tenant, b)?;
        }
        let _g = i.create_lock.lock();
        if self
            .extension_records(t)?
            .iter()
            .any(|(_, r)| r.id == spec.id)
        {
            return Err(Error::AlreadyExists {
                what: "extension with this id in the tenant".into(),
            });
        }
        let now = i.opts.clock.now_ms();
        let mut batch = WriteBatch::default();
        let e = i.alloc_iid(&mut batch)?;
        let ext = ExtensionId(e);
        let rec = ExtensionRecord {
            id: spec.id.clone(),
            name: spec.name.clone(),
            scopes: spec.scopes.clone(),
            bot_user: spec.bot_user.map(UserId::as_u64),
            conversations: BTreeSet::new(),
            registered_at_ms: now,
            registered_by: actor.user.map(UserId::as_u64),
        };
        self.put_extension(&mut batch, t, e, &rec)?;
        let org_set: BTreeSet<ConsentScope> = org_scopes.iter().copied().collect();
        let mut app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::ExtensionRegistered {
                tenant,
                extension: ext,
                scopes: spec.scopes.iter().copied().collect(),
            },
            AuditOutcome::Done,
        )?;
        if !org_set.is_empty() {
            let g = GrantRecord {
                scopes: org_set.clone(),
                granted_at_ms: now,
                expires_at_ms: now.saturating_add(org.valid_for_ms as i64),
                granted_by: actor.user.map(UserId::as_u64),
            };
            let place = org_place(t, e);
            let sealed = self.seal_kek(t, MetaKind::OrgConsent, &place, &to_postcard(&g)?)?;
            batch.put_cf(&i.cf(cf::META)?, place, sealed);
            let body = crate::audit::encode(
                &actor,
                AuditEvent::ConsentGranted {
                    tenant,
                    extension: ext,
                    user: None,
                    scopes: org_set.into_iter().collect(),
                    expires_at_ms: g.expires_at_ms,
                },
                AuditOutcome::Done,
            )?;
            app.append(&mut batch, &i.cf(cf::META)?, now, &body);
        }
        i.write_sync(batch, "registering an extension")?;
        app.commit();
        tracing::info!(tenant = t, extension = e, "extension registered");
        Ok(ext)
    }

    /// The extensions registered in a tenant, in internal id order.
    ///
    /// Errors: [`Error::NotFound`], [`Error::Shredded`] (tenant); [`Error::Authentication`].
    pub fn extensions(&self, tenant: TenantId) -> Result<Vec<ExtensionInfo>> {
        let t = tenant.0;
        self.inner.tenant_state(t)?;
        self.extension_records(t)?
            .into_iter()
            .map(|(e, r)| self.info_of(t, e, r))
            .collect()
    }

    /// The extension registered as `id`. Errors: [`Error::NotFound`], as [`Vault::extensions`].
    pub fn extension_info(&self, tenant: TenantId, id: &str) -> Result<ExtensionInfo> {
        let (e, r) = self.find_extension(tenant.0, id)?;
        self.info_of(tenant.0, e, r)
    }

    /// Removes an extension (tenant admins only): its record, its organisation-wide grant and
    /// every user's grant for it, in one WriteBatch; its context refuses every call from then
    /// on. Returns the number of user grants removed. Audited (`ExtensionRemoved`).
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`].
    pub fn remove_extension(&self, tenant: TenantId, actor: Actor, id: &str) -> Result<u64> {
        check_admin(&actor, "remove an extension")?;
        let t = tenant.0;
        let i = &self.inner;
        let _g = i.create_lock.lock();
        let (e, _) = self.find_extension(t, id)?;
        let meta = i.cf(cf::META)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(&meta, ext_place(t, e));
        batch.delete_cf(&meta, org_place(t, e));
        let prefix = KeyBuf::tag(codec::meta::USER_CONSENT).u64(t).into_vec();
        let it = i.prefix_iter(cf::META, &prefix)?;
        let mut removed = 0;
        for kv in RawIter::new(it, "listing consent grants") {
            let (k, _) = kv?;
            if k.get(17..25).and_then(be64) == Some(e) {
                batch.delete_cf(&meta, &k);
                removed += 1;
            }
        }
        let app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::ExtensionRemoved {
                tenant,
                extension: ExtensionId(e),
                grants_removed: removed,
            },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "removing an extension")?;
        app.commit();
        tracing::info!(tenant = t, extension = e, removed, "extension removed");
        Ok(removed)
    }

    /// Adds the extension to a conversation (`added`), or removes it from one (tenant admins
    /// only). It reads messages ([`ConsentScope::ReadMessages`]) and posts only in conversations
    /// it is added to. Audited (`ExtensionConversation`); changing nothing records nothing.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`] (extension, conversation);
    /// [`Error::Shredded`].
    pub fn set_extension_conversation(
        &self,
        tenant: TenantId,
        actor: Actor,
        id: &str,
        conv: ConversationId,
        added: bool,
    ) -> Result<()> {
        check_admin(&actor, "add an extension to a conversation")?;
        let t = tenant.0;
        let i = &self.inner;
        self.conversation(tenant, conv)?;
        let _g = i.create_lock.lock();
        let (e, mut rec) = self.find_extension(t, id)?;
        let changed = if added {
            rec.conversations.insert(conv.0)
        } else {
            rec.conversations.remove(&conv.0)
        };
        if !changed {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        self.put_extension(&mut batch, t, e, &rec)?;
        let app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::ExtensionConversation {
                tenant,
                extension: ExtensionId(e),
                conversation: conv,
                added,
            },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "adding an extension to a conversation")?;
        app.commit();
        Ok(())
    }

    // ------------------------------------------------------------------ grants

    /// A user grants consent to extension `id` for `scopes` (personal scopes only, among those
    /// the extension asks for), live for `opts.valid_for_ms` (default 60 days) from now on the
    /// vault's clock. It replaces any earlier grant of the user for that extension. The user
    /// themself may call it, or an operator (`Actor::operator()`: the backend recording the
    /// user's decision); an admin may not consent for someone else. Sealed under the user's key
    /// (erasing the user shreds it). Audited (`ConsentGranted`).
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::InvalidInput`] (no scopes, an
    /// organisation-level scope, a scope the extension does not ask for, `valid_for_ms` 0);
    /// [`Error::NotFound`] (extension, user); [`Error::Shredded`] (erased user).
    pub fn grant_consent(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
        id: &str,
        scopes: &[ConsentScope],
        opts: &GrantOptions,
    ) -> Result<ConsentGrant> {
        if actor.user.is_some_and(|u| u != user) {
            return Err(Error::PermissionDenied(
                "consent is the user's own to give: only the user themself (or the backend, \
                 as an operator, recording their decision) may grant it"
                    .into(),
            ));
        }
        if scopes.is_empty() {
            return Err(Error::InvalidInput(
                "a consent grant needs at least one scope".into(),
            ));
        }
        if let Some(s) = scopes.iter().find(|s| !s.is_personal()) {
            return Err(Error::InvalidInput(format!(
                "{s} is an organisation-level scope: a tenant admin grants it organisation-wide \
                 when registering the extension, not a user"
            )));
        }
        check_valid_for(opts.valid_for_ms)?;
        let t = tenant.0;
        let i = &self.inner;
        let _g = i.create_lock.lock();
        let (e, rec) = self.find_extension(t, id)?;
        if let Some(s) = scopes.iter().find(|s| !rec.scopes.contains(s)) {
            return Err(Error::InvalidInput(format!(
                "extension {id:?} does not ask for {s} (it asks for {})",
                scope_list(&rec.scopes)
            )));
        }
        // Checks the user exists and is not erased.
        i.read_user(t, user.0)?;
        let now = i.opts.clock.now_ms();
        let g = GrantRecord {
            scopes: scopes.iter().copied().collect(),
            granted_at_ms: now,
            expires_at_ms: now.saturating_add(opts.valid_for_ms as i64),
            granted_by: actor.user.map(UserId::as_u64),
        };
        let place = grant_place(t, user.0, e);
        let ukey = i.user_key(t, user.0, 0)?;
        let sealed = envelope::seal_meta(
            &ukey.cipher,
            MetaKind::UserConsent,
            ukey.version,
            &place,
            &to_postcard(&g)?,
        )?;
        let mut batch = WriteBatch::default();
        batch.put_cf(&i.cf(cf::META)?, &place, sealed);
        let ext = ExtensionId(e);
        let app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::ConsentGranted {
                tenant,
                extension: ext,
                user: Some(user),
                scopes: g.scopes.iter().copied().collect(),
                expires_at_ms: g.expires_at_ms,
            },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "granting consent")?;
        app.commit();
        tracing::info!(tenant = t, user = user.0, extension = e, "consent granted");
        Ok(grant_of(ext, Some(user), g))
    }

    /// Revokes a user's consent for extension `id`, at once: the extension's next access to
    /// their data fails with [`Error::ConsentRequired`]. The user themself or an admin may call
    /// it. Returns whether there was a grant to revoke (none: nothing recorded). Audited
    /// (`ConsentRevoked`).
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`] (extension, user);
    /// [`Error::Shredded`].
    pub fn revoke_consent(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
        id: &str,
    ) -> Result<bool> {
        crate::rights::check_subject_or_admin(&actor, user, "revoke a user's consent")?;
        let t = tenant.0;
        let i = &self.inner;
        let _g = i.create_lock.lock();
        let (e, _) = self.find_extension(t, id)?;
        i.read_user(t, user.0)?;
        let place = grant_place(t, user.0, e);
        if i.get(cf::META, &place)?.is_none() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(&i.cf(cf::META)?, &place);
        let app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::ConsentRevoked {
                tenant,
                extension: ExtensionId(e),
                user: Some(user),
            },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "revoking consent")?;
        app.commit();
        tracing::info!(tenant = t, user = user.0, extension = e, "consent revoked");
        Ok(true)
    }

    /// Revokes the organisation-wide consent of extension `id` (tenant admins only). Returns
    /// whether there was one. Audited (`ConsentRevoked` with no user).
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`].
    pub fn revoke_org_consent(&self, tenant: TenantId, actor: Actor, id: &str) -> Result<bool> {
        check_admin(&actor, "revoke organisation-wide consent")?;
        let t = tenant.0;
        let i = &self.inner;
        let _g = i.create_lock.lock();
        let (e, _) = self.find_extension(t, id)?;
        let place = org_place(t, e);
        if i.get(cf::META, &place)?.is_none() {
            return Ok(false);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(&i.cf(cf::META)?, &place);
        let app = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::ConsentRevoked {
                tenant,
                extension: ExtensionId(e),
                user: None,
            },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "revoking organisation-wide consent")?;
        app.commit();
        Ok(true)
    }

    /// A user's consent grants (live and expired), with the extension each is for, in
    /// extension id order. The user themself or an admin may call it.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`].
    pub fn consents(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
    ) -> Result<Vec<(ExtensionInfo, ConsentGrant)>> {
        crate::rights::check_subject_or_admin(&actor, user, "list a user's consents")?;
        self.user_consents(tenant, user)
    }

    /// A user's grants, without a permission check (exports check it).
    pub(crate) fn user_consents(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<(ExtensionInfo, ConsentGrant)>> {
        let t = tenant.0;
        self.inner.read_user(t, user.0)?;
        let mut exts: BTreeMap<Iid, ExtensionRecord> =
            self.extension_records(t)?.into_iter().collect();
        let prefix = KeyBuf::tag(codec::meta::USER_CONSENT)
            .u64(t)
            .u64(user.0)
            .into_vec();
        let it = self.inner.prefix_iter(cf::META, &prefix)?;
        let mut ids = Vec::new();
        for kv in RawIter::new(it, "listing consent grants") {
            let (k, _) = kv?;
            if let Some(e) = k.get(17..25).and_then(be64) {
                ids.push(e);
            }
        }
        let mut out = Vec::new();
        for e in ids {
            let (Some(g), Some(r)) = (self.read_user_grant(t, user.0, e)?, exts.remove(&e)) else {
                continue;
            };
            out.push((
                self.info_of(t, e, r)?,
                grant_of(ExtensionId(e), Some(user), g),
            ));
        }
        Ok(out)
    }

    /// The context of extension `id` in a tenant: every read it makes succeeds only within a
    /// live grant's scopes ([`ExtensionContext`]). The registry is read again at each call,
    /// so a removal or a change of its conversations applies at once.
    ///
    /// Errors: [`Error::NotFound`] (tenant, extension); [`Error::Shredded`] (tenant).
    pub fn extension(&self, tenant: TenantId, id: &str) -> Result<ExtensionContext> {
        let (e, _) = self.find_extension(tenant.0, id)?;
        Ok(ExtensionContext {
            vault: self.clone(),
            tenant,
            ext: ExtensionId(e),
        })
    }
}

fn check_valid_for(ms: u64) -> Result<()> {
    if ms == 0 || ms > i64::MAX as u64 {
        return Err(Error::InvalidInput(format!(
            "a consent grant must be valid for at least 1 ms, got {ms} ms"
        )));
    }
    Ok(())
}

fn scope_list(s: &BTreeSet<ConsentScope>) -> String {
    s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// What one access of an extension may do, decided per user.
enum Decision {
    Allowed,
    Refused(Error),
}

/// An extension's handle on a tenant ([`Vault::extension`]): the only way an extension reads.
/// Each call checks, at that moment on the vault's clock: that the extension is still
/// registered and asks for the scope; for personal data, a live grant of the user concerned
/// that includes the scope, and that the user's processing is not restricted; for
/// organisation-level scopes, a live organisation-wide grant; for conversations, that the
/// extension is added to it. A missing, expired or revoked grant fails at once with
/// [`Error::ConsentRequired`]. Every call, allowed or refused, appends an `ExtensionAccess`
/// entry to the audit trail (synced).
#[derive(Debug, Clone)]
pub struct ExtensionContext {
    vault: Vault,
    tenant: TenantId,
    ext: ExtensionId,
}

impl ExtensionContext {
    /// The extension's internal handle.
    pub fn id(&self) -> ExtensionId {
        self.ext
    }

    /// The extension's registry entry (not an access: not audited).
    pub fn info(&self) -> Result<ExtensionInfo> {
        let t = self.tenant.0;
        let r = self.record()?;
        self.vault.info_of(t, self.ext.0, r)
    }

    fn record(&self) -> Result<ExtensionRecord> {
        self.vault
            .read_extension(self.tenant.0, self.ext.0)?
            .ok_or_else(|| Error::NotFound {
                what: format!(
                    "extension {} of tenant {} (it was removed)",
                    self.ext, self.tenant
                ),
            })
    }

    /// Records the access and returns its result.
    fn audited<T>(
        &self,
        scope: ConsentScope,
        target: AccessTarget,
        counts: impl Fn(&T) -> (u64, u64),
        body: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let r = body();
        let (returned, withheld) = r.as_ref().map(&counts).unwrap_or((0, 0));
        let outcome = match &r {
            Ok(_) => AuditOutcome::Done,
            Err(e) => AuditOutcome::Failed {
                error: error_kind(e).to_string(),
            },
        };
        let event = AuditEvent::ExtensionAccess {
            tenant: self.tenant,
            extension: self.ext,
            scope,
            target,
            returned,
            withheld,
        };
        self.vault.audit_now(&Actor::operator(), event, outcome)?;
        r
    }

    fn consent_required(
        &self,
        scope: ConsentScope,
        user: Option<UserId>,
        why: ConsentMissing,
    ) -> Error {
        Error::ConsentRequired {
            tenant: self.tenant,
            extension: self.ext,
            scope,
            user,
            reason: why,
        }
    }

    /// The registry record, checked to ask for `scope`.
    fn record_for(&self, scope: ConsentScope) -> Result<ExtensionRecord> {
        let r = self.record()?;
        if !r.scopes.contains(&scope) {
            return Err(self.consent_required(scope, None, ConsentMissing::ScopeNotGranted));
        }
        Ok(r)
    }

    fn check_org(&self, scope: ConsentScope) -> Result<ExtensionRecord> {
        let r = self.record_for(scope)?;
        let now = self.vault.inner.opts.clock.now_ms();
        match self.vault.read_org_grant(self.tenant.0, self.ext.0)? {
            None => Err(self.consent_required(scope, None, ConsentMissing::NotGranted)),
            Some(g) if now >= g.expires_at_ms => Err(self.consent_required(
                scope,
                None,
                ConsentMissing::Expired {
                    at_ms: g.expires_at_ms,
                },
            )),
            Some(g) if !g.scopes.contains(&scope) => {
                Err(self.consent_required(scope, None, ConsentMissing::ScopeNotGranted))
            }
            Some(_) => Ok(r),
        }
    }

    fn check_added(&self, r: &ExtensionRecord, conv: ConversationId) -> Result<()> {
        if r.conversations.contains(&conv.0) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "extension {} is not added to conversation {conv} of tenant {}; a tenant admin \
                 adds it (`Vault::set_extension_conversation`, `chatvault extension add`)",
                self.ext, self.tenant
            )))
        }
    }

    /// Whether `user`'s data may go to the extension under personal `scope` now.
    fn decide(&self, scope: ConsentScope, user: UserId) -> Result<Decision> {
        let v = &self.vault;
        let t = self.tenant;
        if v.is_restricted(t, user)? {
            return Ok(Decision::Refused(Error::Restricted {
                what: format!("user {user} of tenant {t}"),
            }));
        }
        let now = v.inner.opts.clock.now_ms();
        Ok(match v.read_user_grant(t.0, user.0, self.ext.0)? {
            None => Decision::Refused(self.consent_required(
                scope,
                Some(user),
                ConsentMissing::NotGranted,
            )),
            Some(g) if now >= g.expires_at_ms => Decision::Refused(self.consent_required(
                scope,
                Some(user),
                ConsentMissing::Expired {
                    at_ms: g.expires_at_ms,
                },
            )),
            Some(g) if !g.scopes.contains(&scope) => Decision::Refused(self.consent_required(
                scope,
                Some(user),
                ConsentMissing::ScopeNotGranted,
            )),
            Some(_) => Decision::Allowed,
        })
    }

    fn require(&self, scope: ConsentScope, user: UserId) -> Result<()> {
        match self.decide(scope, user)? {
            Decision::Allowed => Ok(()),
            Decision::Refused(e) => Err(e),
        }
    }

    /// The conversations the extension is added to (shredded ones left out). Needs the
    /// organisation-wide grant of [`ConsentScope::ReadConversations`].
    ///
    /// Errors: [`Error::ConsentRequired`]; [`Error::NotFound`] (extension removed).
    pub fn conversations(&self) -> Result<Vec<ConversationInfo>> {
        self.audited(
            ConsentScope::ReadConversations,
            AccessTarget::Conversations,
            |v: &Vec<ConversationInfo>| (v.len() as u64, 0),
            || {
                let r = self.check_org(ConsentScope::ReadConversations)?;
                let mut out = Vec::new();
                for c in r.conversations {
                    match self.vault.conversation(self.tenant, ConversationId(c)) {
                        Ok(i) => out.push(i),
                        Err(Error::Shredded { .. } | Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            },
        )
    }

    /// A conversation's record (it must be added to it). Needs the organisation-wide grant of
    /// [`ConsentScope::ReadConversations`].
    ///
    /// Errors: [`Error::ConsentRequired`]; [`Error::PermissionDenied`] (not added to it);
    /// [`Error::NotFound`], [`Error::Shredded`].
    pub fn conversation(&self, conv: ConversationId) -> Result<ConversationInfo> {
        self.audited(
            ConsentScope::ReadConversations,
            AccessTarget::Conversation(conv),
            |_| (1, 0),
            || {
                let r = self.check_org(ConsentScope::ReadConversations)?;
                self.check_added(&r, conv)?;
                self.vault.conversation(self.tenant, conv)
            },
        )
    }

    /// A page of at most `limit` messages of conversation `conv` from id `from` (inclusive;
    /// `None`: the first), oldest first: only messages whose authors have a live grant of
    /// [`ConsentScope::ReadMessages`] for this extension and are not restricted; the others are
    /// withheld and counted. The extension must be added to the conversation. Each author's
    /// grant is read once per call.
    ///
    /// Errors: [`Error::ConsentRequired`] (the extension does not ask for the scope);
    /// [`Error::PermissionDenied`] (not added); [`Error::NotFound`], [`Error::Shredded`].
    pub fn messages(
        &self,
        conv: ConversationId,
        from: Option<MessageId>,
        limit: usize,
    ) -> Result<ExtensionPage> {
        self.audited(
            ConsentScope::ReadMessages,
            AccessTarget::Messages(conv),
            |p: &ExtensionPage| (p.messages.len() as u64, p.withheld),
            || {
                let r = self.record_for(ConsentScope::ReadMessages)?;
                self.check_added(&r, conv)?;
                let mut allowed: BTreeMap<UserId, bool> = BTreeMap::new();
                let mut page = ExtensionPage {
                    messages: Vec::new(),
                    withheld: 0,
                    next: None,
                };
                for m in self
                    .vault
                    .messages(self.tenant, conv, from, Direction::Forward)?
                {
                    let m = m?;
                    if page.messages.len() >= limit {
                        page.next = Some(m.id);
                        break;
                    }
                    let ok = match allowed.get(&m.author) {
                        Some(ok) => *ok,
                        None => {
                            let ok = match self.decide(ConsentScope::ReadMessages, m.author) {
                                Ok(Decision::Allowed) => true,
                                Ok(Decision::Refused(_))
                                | Err(Error::Shredded { .. } | Error::NotFound { .. }) => false,
                                Err(e) => return Err(e),
                            };
                            allowed.insert(m.author, ok);
                            ok
                        }
                    };
                    if ok {
                        page.messages.push(m);
                    } else {
                        page.withheld += 1;
                    }
                }
                Ok(page)
            },
        )
    }

    /// One message, if its author has a live grant of [`ConsentScope::ReadMessages`] for this
    /// extension and is not restricted, and the extension is added to the conversation.
    ///
    /// Errors: [`Error::ConsentRequired`] (no grant, expired, revoked, scope not granted);
    /// [`Error::Restricted`]; [`Error::PermissionDenied`] (not added); [`Error::NotFound`],
    /// [`Error::Shredded`], [`Error::Expired`].
    pub fn message(&self, conv: ConversationId, id: MessageId) -> Result<Message> {
        self.audited(
            ConsentScope::ReadMessages,
            AccessTarget::Message(conv, id),
            |_| (1, 0),
            || {
                let r = self.record_for(ConsentScope::ReadMessages)?;
                self.check_added(&r, conv)?;
                let m = self.vault.get(self.tenant, conv, id)?;
                self.require(ConsentScope::ReadMessages, m.author)?;
                Ok(m)
            },
        )
    }

    /// A user's profile, if they have a live grant of [`ConsentScope::ReadProfile`] for this
    /// extension and are not restricted.
    ///
    /// Errors: [`Error::ConsentRequired`]; [`Error::Restricted`]; [`Error::NotFound`],
    /// [`Error::Shredded`] (erased user).
    pub fn profile(&self, user: UserId) -> Result<UserInfo> {
        self.audited(
            ConsentScope::ReadProfile,
            AccessTarget::Profile(user),
            |_| (1, 0),
            || {
                self.record_for(ConsentScope::ReadProfile)?;
                let info = self.vault.user(self.tenant, user)?;
                self.require(ConsentScope::ReadProfile, user)?;
                Ok(info)
            },
        )
    }

    /// Posts a text message as the extension's bot user into a conversation it is added to.
    /// Needs the organisation-wide grant of [`ConsentScope::PostMessages`].
    ///
    /// Errors: [`Error::ConsentRequired`]; [`Error::PermissionDenied`] (not added);
    /// [`Error::InvalidInput`] (no bot user registered); as [`Vault::append`].
    pub fn post(&self, conv: ConversationId, sent_at_ms: i64, body: &str) -> Result<Appended> {
        self.audited(
            ConsentScope::PostMessages,
            AccessTarget::Post(conv),
            |_| (1, 0),
            || {
                let r = self.check_org(ConsentScope::PostMessages)?;
                self.check_added(&r, conv)?;
                let bot = r.bot_user.ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "extension {} has no bot user to post as; register it with one",
                        self.ext
                    ))
                })?;
                self.vault.append(
                    self.tenant,
                    conv,
                    NewMessage::text(UserId(bot), sent_at_ms, body),
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip_and_unknown_names_are_refused() {
        for s in ConsentScope::ALL {
            assert_eq!(s.as_str().parse::<ConsentScope>().unwrap(), s);
        }
        assert!(matches!(
            "read-everything".parse::<ConsentScope>(),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn personal_and_organisation_scopes_partition_the_set() {
        let personal: Vec<_> = ConsentScope::ALL
            .into_iter()
            .filter(|s| s.is_personal())
            .collect();
        assert_eq!(
            personal,
            [ConsentScope::ReadMessages, ConsentScope::ReadProfile]
        );
    }

    /// The stored records hold scopes as postcard variant indexes: they must never change
    /// (new scopes are appended).
    #[test]
    fn stored_scope_encoding_is_stable() {
        let enc: Vec<Vec<u8>> = ConsentScope::ALL
            .iter()
            .map(|s| postcard::to_stdvec(s).unwrap())
            .collect();
        assert_eq!(enc, vec![vec![0], vec![1], vec![2], vec![3]]);
        let g = GrantRecord {
            scopes: [ConsentScope::ReadProfile].into_iter().collect(),
            granted_at_ms: 1,
            expires_at_ms: 2,
            granted_by: None,
        };
        let b = postcard::to_stdvec(&g).unwrap();
        let back: GrantRecord = postcard::from_bytes(&b).unwrap();
        assert_eq!(back.scopes, g.scopes);
        assert_eq!((back.granted_at_ms, back.expires_at_ms), (1, 2));
    }

    #[test]
    fn a_grant_is_live_until_its_expiry_exclusive() {
        let g = ConsentGrant {
            extension: ExtensionId(1),
            user: None,
            scopes: BTreeSet::new(),
            granted_at_ms: 0,
            expires_at_ms: 100,
            granted_by: None,
        };
        assert!(g.is_live(99));
        assert!(!g.is_live(100));
    }
}
