//! Data-subject rights: access, rectification, restriction of processing and erasure. Export
//! (portability) is in `export.rs`, the audit trail in `audit.rs`.
//!
//! Who may do what: the user themself or a tenant admin (or an operator) may read the user's
//! data, restrict its processing and erase the account; only an admin may rectify a profile.

use rocksdb::WriteBatch;

use crate::audit::{AuditEvent, AuditOutcome};
use crate::codec::{self, KeyBuf};
use crate::envelope::{self, MetaKind};
use crate::error::{Error, Result};
use crate::model::*;
use crate::retention::Actor;
use crate::shred::{ShredOutcome, ShredScope};
use crate::vault::{cf, from_postcard, to_postcard, KeyId, Vault};

/// Whether a message of a subject-access read was written by the user or received by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    /// The user wrote it.
    Sent,
    /// Another member wrote it while the user was a member (joined ≤ sent < left).
    Received,
}

/// A conversation of a user, with the user's membership in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectConversation {
    /// The conversation's record.
    pub info: ConversationInfo,
    /// The user's membership (joined/left bounds what they received), `None` if they are no
    /// longer listed as a member (they may still have written in it).
    pub membership: Option<Membership>,
}

/// What [`Vault::subject_access`] returns: the user's profile, restriction state and
/// conversations. The messages come from [`Vault::subject_messages`], one conversation at a
/// time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectAccess {
    /// External id and profile.
    pub user: UserInfo,
    /// Since when their processing is restricted (UTC ms), `None` if it is not.
    pub restricted_since_ms: Option<i64>,
    /// Their conversations (shredded ones left out), in internal id order.
    pub conversations: Vec<SubjectConversation>,
}

/// Checks that `actor` may act on `user`'s data as the subject or an admin.
pub(crate) fn check_subject_or_admin(actor: &Actor, user: UserId, what: &str) -> Result<()> {
    if actor.is_admin() || actor.user == Some(user) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "only the user themself or a tenant admin may {what}"
        )))
    }
}

fn restriction_place(t: u64, u: u64) -> Vec<u8> {
    KeyBuf::tag(codec::meta::RESTRICTION)
        .u64(t)
        .u64(u)
        .into_vec()
}

impl Vault {
    /// The right of access: the user's profile, whether their processing is restricted, and the
    /// conversations they are or were a member of, or wrote a still readable message in
    /// without a membership (`membership: None`; found by a scan of the tenant's time index, no
    /// decryption). The user themself or an admin may call it.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`] (tenant, user);
    /// [`Error::Shredded`] (erased user or shredded tenant).
    pub fn subject_access(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
    ) -> Result<SubjectAccess> {
        check_subject_or_admin(&actor, user, "read a user's data")?;
        let info = self.user(tenant, user)?;
        let restricted_since_ms = self.restriction_since(tenant, user)?;
        let ids = self.subject_conversation_ids(tenant, user)?;
        let mut conversations = Vec::with_capacity(ids.len());
        for c in ids {
            let info = match self.conversation(tenant, c) {
                Ok(i) => i,
                Err(Error::Shredded { .. }) => continue,
                Err(e) => return Err(e),
            };
            let membership = self
                .members(tenant, c)?
                .into_iter()
                .find(|m| m.user == user);
            conversations.push(SubjectConversation { info, membership });
        }
        Ok(SubjectAccess {
            user: info,
            restricted_since_ms,
            conversations,
        })
    }

    /// The messages of conversation `conv` that `user` wrote, or received while a member
    /// (joined ≤ sent_at < left), oldest first, streamed (one message at a time). Expired and
    /// shredded messages are left out. The user themself or an admin may call it.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`]
    /// (conversation, tenant).
    pub fn subject_messages(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
        conv: ConversationId,
    ) -> Result<impl Iterator<Item = Result<(Message, MessageRole)>> + '_> {
        check_subject_or_admin(&actor, user, "read a user's messages")?;
        let membership = self
            .members(tenant, conv)?
            .into_iter()
            .find(|m| m.user == user);
        let it = self.messages(tenant, conv, None, Direction::Forward)?;
        Ok(it.filter_map(move |m| match m {
            Err(e) => Some(Err(e)),
            Ok(m) => role_of(&m, user, membership.as_ref()).map(|r| Ok((m, r))),
        }))
    }

    /// The conversations a data subject's rights reach: those they are or were a member of
    /// (the user's conversation index), and those where they wrote a message still readable
    /// without a membership (an application that appends for non-members), found by the
    /// author iid in the time index, without decrypting (a scan of the tenant's time index,
    /// skipping the conversations already known). Ascending; shredded conversations left out. Under the
    /// `AuthorErased` policy records do not name their author in clear, so only the index
    /// finds them.
    pub(crate) fn subject_conversation_ids(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<Vec<ConversationId>> {
        let mut ids: std::collections::BTreeSet<ConversationId> = self
            .user_conversations(tenant, user)?
            .collect::<Result<_>>()?;
        let i = &self.inner;
        let snap = i.retention.current();
        let now = i.opts.clock.now_ms();
        let shredded = |c: u64| {
            snap.tenant(tenant.0)
                .is_some_and(|tr| tr.shred.whole_conversation(c))
        };
        let prefix = KeyBuf::new().u64(tenant.0).into_vec();
        let mut it = i.prefix_iter(cf::TIME_INDEX, &prefix)?;
        let author = user.0.to_be_bytes();
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let Some(c) = k.get(8..16).and_then(codec::be64) else {
                return Err(Error::corrupt("time index entry", "bad key length"));
            };
            let known = ids.contains(&ConversationId(c)) || shredded(c);
            // A readable message by the user: not expired, not in a shredded window.
            let theirs = v == author
                && codec::decode_time_key(k).is_some_and(|(_, _, at, _)| {
                    !snap.is_shredded(tenant.0, c, Some(user.0), at)
                        && !snap.is_expired(tenant.0, c, Some(user.0), at, now)
                });
            if known || theirs {
                ids.insert(ConversationId(c));
                // Nothing more to learn from this conversation: on with the next one.
                match c.checked_add(1) {
                    Some(next) => it.seek(KeyBuf::new().u64(tenant.0).u64(next).into_vec()),
                    None => break,
                }
                continue;
            }
            it.next();
        }
        it.status()
            .map_err(Error::storage("reading the time index"))?;
        Ok(ids.into_iter().filter(|c| !shredded(c.0)).collect())
    }

    /// Rectification: replaces `user`'s profile with `profile` (tenant admins and operators
    /// only). The previous values are not kept: the record is overwritten in place, and the
    /// overwritten version (sealed) leaves the data files at the next [`Vault::purge`], which
    /// verifies by its raw scan that it is gone. The audit trail records who changed which field names, and when; never
    /// a value. Returns the names of the fields changed (see [`UserProfile::changed_fields`]);
    /// nothing is written when none changed.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`].
    pub fn rectify_profile(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
        profile: UserProfile,
    ) -> Result<Vec<String>> {
        if !actor.is_admin() {
            return Err(Error::PermissionDenied(
                "only a tenant admin may rectify a profile".into(),
            ));
        }
        let i = &self.inner;
        // Serialized with other record rewrites; the user key cannot be re-versioned meanwhile
        // (`create_lock` is what a re-versioning pass holds).
        let _g = i.create_lock.lock();
        let mut rec = i.read_user(tenant.0, user.0)?;
        let fields = rec.profile.changed_fields(&profile);
        if fields.is_empty() {
            return Ok(fields);
        }
        rec.profile = profile;
        let mut batch = WriteBatch::default();
        // The old version leaves the files at the next purge, which verifies it by a raw scan.
        let place = KeyBuf::tag(codec::meta::USER)
            .u64(tenant.0)
            .u64(user.0)
            .into_vec();
        if let Some(old) = i.get(cf::META, &place)? {
            if let Some(needle) = old.get(6..6 + 16) {
                let mut key = KeyBuf::tag(codec::meta::REWRITTEN)
                    .u64(tenant.0)
                    .u64(user.0)
                    .into_vec();
                key.extend_from_slice(&needle[..8]);
                let masked: Vec<u8> = needle.iter().map(|b| b ^ 0xFF).collect();
                batch.put_cf(&i.cf(cf::META)?, key, masked);
            }
        }
        i.put_user(&mut batch, tenant.0, user.0, &rec)?;
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::Rectification {
                tenant,
                user,
                fields: fields.clone(),
            },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "rectifying a profile")?;
        aud.commit();
        tracing::info!(
            tenant = tenant.0,
            user = user.0,
            n = fields.len(),
            "profile rectified"
        );
        Ok(fields)
    }

    /// Restriction of processing: sets (`on`) or lifts a per-user flag. While it is set the
    /// user's data stays stored and readable by the user and tenant admins, but is left out of
    /// third-party exports ([`crate::ExportOptions::third_party`]), and an extension layer must
    /// not process it ([`Vault::is_restricted`]). The user themself or an admin may call it.
    /// Setting it when set (or lifting it when lifted) changes nothing and records nothing.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`].
    pub fn restrict_processing(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
        on: bool,
    ) -> Result<()> {
        check_subject_or_admin(&actor, user, "restrict the processing of a user's data")?;
        let i = &self.inner;
        let _g = i.create_lock.lock();
        // Checks the user exists and is not erased.
        i.read_user(tenant.0, user.0)?;
        if self.restriction_since(tenant, user)?.is_some() == on {
            return Ok(());
        }
        let place = restriction_place(tenant.0, user.0);
        let mut batch = WriteBatch::default();
        let meta = i.cf(cf::META)?;
        if on {
            let ukey = i.user_key(tenant.0, user.0, 0)?;
            let rec = RestrictionRecord {
                since_ms: i.opts.clock.now_ms(),
                by: actor.user.map(|u| u.as_u64()),
            };
            let sealed = envelope::seal_meta(
                &ukey.cipher,
                MetaKind::Restriction,
                ukey.version,
                &place,
                &to_postcard(&rec)?,
            )?;
            batch.put_cf(&meta, &place, sealed);
        } else {
            batch.delete_cf(&meta, &place);
        }
        let aud = self.stage_audit(
            &mut batch,
            &actor,
            AuditEvent::Restriction { tenant, user, on },
            AuditOutcome::Done,
        )?;
        i.write_sync(batch, "restricting processing")?;
        aud.commit();
        tracing::info!(
            tenant = tenant.0,
            user = user.0,
            on,
            "restriction of processing"
        );
        Ok(())
    }

    /// Whether `user`'s processing is restricted (see [`Vault::restrict_processing`]). The
    /// check a consent or extension layer makes before handing the user's data on.
    ///
    /// Errors: [`Error::NotFound`] (tenant); [`Error::Shredded`] (erased user, tenant);
    /// [`Error::Authentication`] for a tampered restriction record.
    pub fn is_restricted(&self, tenant: TenantId, user: UserId) -> Result<bool> {
        Ok(self.restriction_since(tenant, user)?.is_some())
    }

    /// Since when `user`'s processing is restricted (UTC ms), `None` if it is not.
    pub(crate) fn restriction_since(&self, tenant: TenantId, user: UserId) -> Result<Option<i64>> {
        let i = &self.inner;
        i.tenant_state(tenant.0)?;
        if i.retention
            .current()
            .tenant(tenant.0)
            .is_some_and(|tr| tr.shred.users.contains(&user.0))
        {
            return Err(Error::Shredded {
                what: format!("user {user} of tenant {tenant}"),
            });
        }
        let place = restriction_place(tenant.0, user.0);
        let Some(v) = i.get(cf::META, &place)? else {
            return Ok(None);
        };
        let what = || format!("restriction of user {user} of tenant {tenant}");
        let kv = envelope::meta_key_version(&v, MetaKind::Restriction, what)?;
        let ukey = i.key(KeyId::User {
            t: tenant.0,
            u: user.0,
            v: kv,
        })?;
        let pt = envelope::open_meta(&ukey.cipher, &v, MetaKind::Restriction, &place, what)?;
        let rec: RestrictionRecord = from_postcard(&pt, what)?;
        Ok(Some(rec.since_ms))
    }

    /// Erasure ("close my account"): shreds the user ([`ShredScope::User`]: their key, profile,
    /// restriction record, consent grants, directory entry and conversation index; under the
    /// default erasure policy also every message they wrote), and returns the receipt. Under a
    /// legal hold that covers the user, the request is queued and the returned outcome carries
    /// the queued request (carried out when the last hold over it is released). It cannot be
    /// undone. The user themself or an admin may call it; the audit trail records an `Erasure`.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`] (already
    /// erased).
    pub fn erase_user(&self, tenant: TenantId, actor: Actor, user: UserId) -> Result<ShredOutcome> {
        check_subject_or_admin(&actor, user, "erase a user's account")?;
        self.shred_inner(tenant, actor, ShredScope::User(user), true, true)
    }
}

/// The role of `m` for `user` with `membership`, `None` if the user neither wrote nor received it.
pub(crate) fn role_of(
    m: &Message,
    user: UserId,
    membership: Option<&Membership>,
) -> Option<MessageRole> {
    if m.author == user {
        return Some(MessageRole::Sent);
    }
    let ms = membership?;
    let after_join = m.sent_at_ms >= ms.joined_at_ms;
    let before_leave = ms.left_at_ms.is_none_or(|l| m.sent_at_ms < l);
    (after_join && before_leave).then_some(MessageRole::Received)
}
