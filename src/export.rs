//! Export (portability): everything held about a user, a conversation or a tenant, as JSON
//! Lines (one JSON object per line, UTF-8, `\n` after each), format `chatvault-export`
//! version 1. The schema is `docs/export-schema-v1.json` (JSON Schema) and DESIGN.md §
//! "Data-subject rights and audit".
//!
//! Lines, in order: a `header`; for a tenant export a `tenant`; `user` records; for each
//! conversation a `conversation` followed by its `message`s (oldest first); an `end` record
//! with the counts. An output without the `end` record is incomplete. Strings are written
//! exactly (serde_json escapes only `"`, `\` and control characters; emoji, right-to-left text
//! and combining marks are written as they are).
//!
//! Exports stream: one RocksDB iterator and one message (with its earlier revisions) in memory
//! at a time, through a 64 KiB buffer. Shredded data is left out (shredded windows, erased
//! authors' messages under the default erasure policy, erased users' profiles); a shredded
//! conversation or tenant asked for by name fails with [`Error::Shredded`].

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};

use serde::Serialize;

use crate::audit::{error_kind, AuditEvent, AuditOutcome, ExportScope};
use crate::codec::{self, be64, KeyBuf};
use crate::error::{Error, Result};
use crate::model::*;
use crate::retention::Actor;
use crate::rights::{check_subject_or_admin, role_of, MessageRole};
use crate::vault::{cf, RawIter, Vault};

/// The `format` of the header record.
pub const EXPORT_FORMAT: &str = "chatvault-export";
/// The `version` of the header record this build writes.
pub const EXPORT_VERSION: u32 = 1;

/// Options of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportOptions {
    /// An export for a third party (another controller, a processor, an extension): users whose
    /// processing is restricted ([`Vault::restrict_processing`]) are left out (their profiles
    /// and the messages they wrote), and exporting such a user fails with
    /// [`Error::Restricted`]. Default `false` (the user's own copy, or an admin's).
    pub third_party: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportSummary {
    /// JSON Lines records written before the `end` record, the header included: the same
    /// number as the `end` record's `records` (the output has `records + 1` lines).
    pub records: u64,
    /// `message` records.
    pub messages: u64,
    /// `user` records.
    pub users: u64,
    /// `conversation` records.
    pub conversations: u64,
    /// `consent` records (user exports).
    pub consents: u64,
    /// Users left out because their processing is restricted (third-party exports only).
    pub restricted_users_left_out: u64,
}

#[derive(Serialize)]
struct MemberLine {
    user: u64,
    joined_at_ms: i64,
    left_at_ms: Option<i64>,
}

#[derive(Serialize)]
struct RevisionLine {
    revision: u32,
    body: String,
    written_at_ms: i64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    Header {
        format: &'static str,
        version: u32,
        scope: &'static str,
        tenant: u64,
        user: Option<u64>,
        conversation: Option<u64>,
        third_party: bool,
        exported_at_ms: i64,
    },
    Tenant {
        tenant: u64,
        name: &'a str,
        erasure_policy: &'static str,
        epoch_ms: u64,
        created_at_ms: i64,
    },
    User {
        user: u64,
        external_id: &'a str,
        display_name: &'a str,
        email: Option<&'a str>,
        phone: Option<&'a str>,
        fields: &'a BTreeMap<String, String>,
        restricted: bool,
        restricted_since_ms: Option<i64>,
    },
    Conversation {
        conversation: u64,
        external_id: &'a str,
        kind: &'static str,
        title: Option<&'a str>,
        created_at_ms: i64,
        members: Vec<MemberLine>,
    },
    Message {
        conversation: u64,
        id: u64,
        author: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<&'static str>,
        sent_at_ms: i64,
        kind: &'static str,
        body: &'a str,
        reply_to: Option<u64>,
        also_reply_to: &'a [u64],
        attachments: &'a [Attachment],
        revision: u32,
        edited_at_ms: Option<i64>,
        deleted_at_ms: Option<i64>,
        revisions: Vec<RevisionLine>,
    },
    Consent {
        user: u64,
        extension: u64,
        extension_id: &'a str,
        extension_name: &'a str,
        scopes: Vec<&'static str>,
        granted_at_ms: i64,
        expires_at_ms: i64,
        live: bool,
    },
    End {
        records: u64,
        messages: u64,
    },
}

/// The output: a bounded buffer and the counts.
struct Sink<W: Write> {
    w: BufWriter<W>,
    sum: ExportSummary,
}

fn write_err(e: std::io::Error) -> Error {
    Error::ExportWrite { source: e }
}

impl<W: Write> Sink<W> {
    fn line(&mut self, l: &Line<'_>) -> Result<()> {
        serde_json::to_writer(&mut self.w, l).map_err(|e| {
            if e.is_io() {
                write_err(e.into())
            } else {
                Error::InvalidInput(format!("cannot encode an export record: {e}"))
            }
        })?;
        self.w.write_all(b"\n").map_err(write_err)?;
        match l {
            Line::Message { .. } => self.sum.messages += 1,
            Line::User { .. } => self.sum.users += 1,
            Line::Conversation { .. } => self.sum.conversations += 1,
            Line::Consent { .. } => self.sum.consents += 1,
            _ => {}
        }
        // The `end` record counts the lines before it, not itself.
        if !matches!(l, Line::End { .. }) {
            self.sum.records += 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let end = Line::End {
            records: self.sum.records,
            messages: self.sum.messages,
        };
        self.line(&end)?;
        self.w.flush().map_err(write_err)
    }
}

fn kind_str(k: ConversationKind) -> &'static str {
    match k {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    }
}

fn message_kind_str(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Text => "text",
        MessageKind::Action => "action",
    }
}

fn policy_str(p: ErasurePolicy) -> &'static str {
    match p {
        ErasurePolicy::MessagesUnreadable => "messages_unreadable",
        ErasurePolicy::AuthorErased => "author_erased",
    }
}

/// Who is restricted, asked once per user per export.
#[derive(Default)]
struct Restrictions(HashMap<UserId, bool>);

impl Restrictions {
    fn get(&mut self, v: &Vault, t: TenantId, u: UserId) -> Result<bool> {
        if let Some(r) = self.0.get(&u) {
            return Ok(*r);
        }
        let r = match v.is_restricted(t, u) {
            Ok(r) => r,
            // An erased user: nothing of theirs is readable to restrict.
            Err(Error::Shredded { .. } | Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        self.0.insert(u, r);
        Ok(r)
    }
}

impl Vault {
    /// Exports everything held about `user` as JSON Lines to `out` (see the module docs and
    /// `docs/export-schema-v1.json`): the header, their `user` record (profile, restriction
    /// state), then each of their conversations (with their own membership; also those they
    /// wrote in without one, as [`Vault::subject_access`] lists them) followed by the
    /// messages they wrote or received while a member (`role`: `sent` / `received`), with
    /// earlier revisions. The user themself or an admin may export; with
    /// [`ExportOptions::third_party`] a restricted user's export fails with
    /// [`Error::Restricted`]. The export, or its failure, is recorded in the audit trail.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`] (erased
    /// user, shredded tenant); [`Error::Restricted`]; [`Error::ExportWrite`] when `out` fails
    /// (the output then has no `end` record).
    pub fn export_user<W: Write>(
        &self,
        tenant: TenantId,
        actor: Actor,
        user: UserId,
        opts: &ExportOptions,
        out: W,
    ) -> Result<ExportSummary> {
        self.audited_export(tenant, actor, ExportScope::User(user), opts, out, |v, s| {
            check_subject_or_admin(&actor, user, "export a user's data")?;
            v.write_user_export(tenant, user, opts, s)
        })
    }

    /// Exports one conversation (admins only): the header, the `user` records of its members
    /// (erased ones left out), the `conversation` record with every membership, and its
    /// messages. With [`ExportOptions::third_party`], restricted members' profiles and messages
    /// are left out. Recorded in the audit trail.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`]
    /// (conversation or tenant); [`Error::ExportWrite`].
    pub fn export_conversation<W: Write>(
        &self,
        tenant: TenantId,
        actor: Actor,
        conv: ConversationId,
        opts: &ExportOptions,
        out: W,
    ) -> Result<ExportSummary> {
        self.audited_export(
            tenant,
            actor,
            ExportScope::Conversation(conv),
            opts,
            out,
            |v, s| {
                check_admin(&actor)?;
                let info = v.conversation(tenant, conv)?;
                let members = v.members(tenant, conv)?;
                s.line(&header(v, "tenant", tenant, None, Some(conv), opts))?;
                let mut restricted = Restrictions::default();
                for m in &members {
                    v.write_user_line(tenant, m.user, opts, &mut restricted, s)?;
                }
                v.write_conversation(tenant, &info, &members, None, opts, &mut restricted, s)
            },
        )
    }

    /// Exports a whole tenant (admins only): the header, the `tenant` record, every user (erased
    /// ones left out), then every conversation (shredded ones left out) followed by its
    /// messages. With [`ExportOptions::third_party`], restricted users' profiles and messages
    /// are left out. Recorded in the audit trail.
    ///
    /// Errors: [`Error::PermissionDenied`]; [`Error::NotFound`]; [`Error::Shredded`] (tenant);
    /// [`Error::ExportWrite`].
    pub fn export_tenant<W: Write>(
        &self,
        tenant: TenantId,
        actor: Actor,
        opts: &ExportOptions,
        out: W,
    ) -> Result<ExportSummary> {
        self.audited_export(tenant, actor, ExportScope::Tenant, opts, out, |v, s| {
            check_admin(&actor)?;
            v.write_tenant_export(tenant, opts, s)
        })
    }

    fn audited_export<W: Write>(
        &self,
        tenant: TenantId,
        actor: Actor,
        scope: ExportScope,
        opts: &ExportOptions,
        out: W,
        body: impl FnOnce(&Vault, &mut Sink<W>) -> Result<()>,
    ) -> Result<ExportSummary> {
        let mut sink = Sink {
            w: BufWriter::with_capacity(64 * 1024, out),
            sum: ExportSummary::default(),
        };
        let r = body(self, &mut sink).and_then(|()| sink.finish());
        let event = AuditEvent::Export {
            tenant,
            scope,
            third_party: opts.third_party,
            records: sink.sum.records,
        };
        match r {
            Ok(()) => {
                self.audit_now(&actor, event, AuditOutcome::Done)?;
                tracing::info!(
                    tenant = tenant.0,
                    ?scope,
                    records = sink.sum.records,
                    "exported"
                );
                Ok(sink.sum)
            }
            Err(e) => {
                let outcome = AuditOutcome::Failed {
                    error: error_kind(&e).to_string(),
                };
                if let Err(ae) = self.audit_now(&actor, event, outcome) {
                    tracing::error!(error = %ae, "cannot record a failed export in the audit trail");
                }
                Err(e)
            }
        }
    }

    fn write_user_export<W: Write>(
        &self,
        tenant: TenantId,
        user: UserId,
        opts: &ExportOptions,
        s: &mut Sink<W>,
    ) -> Result<()> {
        let info = self.user(tenant, user)?;
        let since = self.restriction_since(tenant, user)?;
        if opts.third_party && since.is_some() {
            return Err(Error::Restricted {
                what: format!("user {user} of tenant {tenant}"),
            });
        }
        s.line(&header(self, "user", tenant, Some(user), None, opts))?;
        s.line(&user_line(&info, since))?;
        let now = self.inner.opts.clock.now_ms();
        for (ext, g) in self.user_consents(tenant, user)? {
            s.line(&Line::Consent {
                user: user.as_u64(),
                extension: ext.extension.as_u64(),
                extension_id: &ext.id,
                extension_name: &ext.name,
                scopes: g.scopes.iter().map(|c| c.as_str()).collect(),
                granted_at_ms: g.granted_at_ms,
                expires_at_ms: g.expires_at_ms,
                live: g.is_live(now),
            })?;
        }
        let convs = self.subject_conversation_ids(tenant, user)?;
        let mut restricted = Restrictions::default();
        for c in convs {
            let cinfo = match self.conversation(tenant, c) {
                Ok(i) => i,
                Err(Error::Shredded { .. }) => continue,
                Err(e) => return Err(e),
            };
            let members: Vec<Membership> = self
                .members(tenant, c)?
                .into_iter()
                .filter(|m| m.user == user)
                .collect();
            self.write_conversation(
                tenant,
                &cinfo,
                &members,
                Some(user),
                opts,
                &mut restricted,
                s,
            )?;
        }
        Ok(())
    }

    fn write_tenant_export<W: Write>(
        &self,
        tenant: TenantId,
        opts: &ExportOptions,
        s: &mut Sink<W>,
    ) -> Result<()> {
        let i = &self.inner;
        i.tenant_state(tenant.0)?;
        let place = KeyBuf::tag(codec::meta::TENANT).u64(tenant.0).into_vec();
        let v = i.get(cf::META, &place)?.ok_or_else(|| Error::NotFound {
            what: format!("tenant {tenant}"),
        })?;
        let t = i.tenant_info(tenant.0, &place, &v)?;
        s.line(&header(self, "tenant", tenant, None, None, opts))?;
        s.line(&Line::Tenant {
            tenant: tenant.0,
            name: &t.name,
            erasure_policy: policy_str(t.erasure_policy),
            epoch_ms: t.epoch_ms,
            created_at_ms: t.created_at_ms,
        })?;
        let mut restricted = Restrictions::default();
        let prefix = KeyBuf::tag(codec::meta::USER).u64(tenant.0).into_vec();
        let it = i.prefix_iter(cf::META, &prefix)?;
        for kv in RawIter::new(it, "listing users") {
            let (k, _) = kv?;
            let u = k
                .get(9..17)
                .and_then(be64)
                .ok_or_else(|| Error::corrupt("user record key", "bad length"))?;
            self.write_user_line(tenant, UserId(u), opts, &mut restricted, s)?;
        }
        for info in self.conversations(tenant)? {
            let info = info?;
            let members = self.members(tenant, info.id)?;
            self.write_conversation(tenant, &info, &members, None, opts, &mut restricted, s)?;
        }
        Ok(())
    }

    /// A `user` record, unless the user is erased, or restricted in a third-party export.
    fn write_user_line<W: Write>(
        &self,
        tenant: TenantId,
        user: UserId,
        opts: &ExportOptions,
        restricted: &mut Restrictions,
        s: &mut Sink<W>,
    ) -> Result<()> {
        let info = match self.user(tenant, user) {
            Ok(i) => i,
            Err(Error::Shredded { .. } | Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if opts.third_party && restricted.get(self, tenant, user)? {
            s.sum.restricted_users_left_out += 1;
            return Ok(());
        }
        let since = self.restriction_since(tenant, user)?;
        s.line(&user_line(&info, since))
    }

    /// A `conversation` record and its messages: for a user export (`subject`), those the
    /// subject wrote or received while a member, with their role.
    #[allow(clippy::too_many_arguments)]
    fn write_conversation<W: Write>(
        &self,
        tenant: TenantId,
        info: &ConversationInfo,
        members: &[Membership],
        subject: Option<UserId>,
        opts: &ExportOptions,
        restricted: &mut Restrictions,
        s: &mut Sink<W>,
    ) -> Result<()> {
        // A third party does not learn that a restricted user is a member either.
        let mut listed = Vec::with_capacity(members.len());
        for m in members {
            if !(opts.third_party && restricted.get(self, tenant, m.user)?) {
                listed.push(MemberLine {
                    user: m.user.as_u64(),
                    joined_at_ms: m.joined_at_ms,
                    left_at_ms: m.left_at_ms,
                });
            }
        }
        s.line(&Line::Conversation {
            conversation: info.id.as_u64(),
            external_id: &info.external_id,
            kind: kind_str(info.kind),
            title: info.title.as_deref(),
            created_at_ms: info.created_at_ms,
            members: listed,
        })?;
        let own = subject.and_then(|u| members.iter().find(|m| m.user == u).copied());
        for m in self.messages(tenant, info.id, None, Direction::Forward)? {
            let m = m?;
            let role = match subject {
                Some(u) => match role_of(&m, u, own.as_ref()) {
                    Some(MessageRole::Sent) => Some("sent"),
                    Some(MessageRole::Received) => Some("received"),
                    None => continue,
                },
                None => None,
            };
            if opts.third_party && restricted.get(self, tenant, m.author)? {
                continue;
            }
            let revisions = if m.revision > 0 && m.deleted_at_ms.is_none() {
                self.revisions(tenant, info.id, m.id)?
                    .into_iter()
                    .map(|r| RevisionLine {
                        revision: r.revision,
                        body: r.body,
                        written_at_ms: r.written_at_ms,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            s.line(&Line::Message {
                conversation: info.id.as_u64(),
                id: m.id,
                author: m.author.as_u64(),
                role,
                sent_at_ms: m.sent_at_ms,
                kind: message_kind_str(m.kind),
                body: &m.body,
                reply_to: m.reply_to,
                also_reply_to: &m.also_reply_to,
                attachments: &m.attachments,
                revision: m.revision,
                edited_at_ms: m.edited_at_ms,
                deleted_at_ms: m.deleted_at_ms,
                revisions,
            })?;
        }
        Ok(())
    }
}

fn check_admin(actor: &Actor) -> Result<()> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "only a tenant admin may export a conversation or a tenant".into(),
        ))
    }
}

fn header(
    v: &Vault,
    scope: &'static str,
    tenant: TenantId,
    user: Option<UserId>,
    conversation: Option<ConversationId>,
    opts: &ExportOptions,
) -> Line<'static> {
    Line::Header {
        format: EXPORT_FORMAT,
        version: EXPORT_VERSION,
        scope: if conversation.is_some() {
            "conversation"
        } else {
            scope
        },
        tenant: tenant.as_u64(),
        user: user.map(UserId::as_u64),
        conversation: conversation.map(ConversationId::as_u64),
        third_party: opts.third_party,
        exported_at_ms: v.inner.opts.clock.now_ms(),
    }
}

fn user_line(info: &UserInfo, since: Option<i64>) -> Line<'_> {
    Line::User {
        user: info.id.as_u64(),
        external_id: &info.external_id,
        display_name: &info.profile.display_name,
        email: info.profile.email.as_deref(),
        phone: info.profile.phone.as_deref(),
        fields: &info.profile.fields,
        restricted: since.is_some(),
        restricted_since_ms: since,
    }
}

/// An export's output encrypted to one or more recipients in the age format
/// (age-encryption.org/v1, X25519 recipients `age1...`), behind the `age` cargo feature. It
/// streams: age seals 64 KiB chunks, so memory stays bounded. Pass `&mut` it as the export's
/// writer, then call [`AgeOutput::finish`], which seals the last chunk; without it the file
/// does not decrypt. Nothing in clear reaches the inner writer.
///
/// ```no_run
/// # fn f(vault: &chatvault::Vault, t: chatvault::TenantId, u: chatvault::UserId) -> chatvault::Result<()> {
/// use chatvault::{Actor, AgeOutput, ExportOptions};
/// let file = std::fs::File::create("/tmp/export.jsonl.age").map_err(|e| chatvault::Error::ExportWrite { source: e })?;
/// let mut out = AgeOutput::new(&["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"], file)?;
/// vault.export_user(t, Actor::member(u), u, &ExportOptions::default(), &mut out)?;
/// out.finish()?;
/// # Ok(()) }
/// ```
#[cfg(feature = "age")]
pub struct AgeOutput<W: Write> {
    w: age::stream::StreamWriter<W>,
}

#[cfg(feature = "age")]
impl<W: Write> AgeOutput<W> {
    /// Starts an age file to `recipients` (X25519 public keys, `age1...`; at least one) on
    /// `out`, writing its header.
    ///
    /// Errors: [`Error::InvalidInput`] (no recipient, or one that is not an `age1...` X25519
    /// public key); [`Error::ExportWrite`] (writing the header failed).
    pub fn new<S: AsRef<str>>(recipients: &[S], out: W) -> Result<Self> {
        if recipients.is_empty() {
            return Err(Error::InvalidInput(
                "an age-encrypted export needs at least one recipient (age1...)".into(),
            ));
        }
        let mut parsed = Vec::with_capacity(recipients.len());
        for r in recipients {
            let r = r.as_ref().trim();
            let p: age::x25519::Recipient = r.parse().map_err(|e| {
                Error::InvalidInput(format!(
                    "{r:?} is not an age X25519 recipient (age1..., as `age-keygen` prints): {e}"
                ))
            })?;
            parsed.push(p);
        }
        let enc = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::InvalidInput(format!("cannot encrypt to these recipients: {e}")))?;
        let w = enc.wrap_output(out).map_err(write_err)?;
        Ok(AgeOutput { w })
    }

    /// Seals the last chunk and returns the inner writer (flushed).
    ///
    /// Errors: [`Error::ExportWrite`].
    pub fn finish(self) -> Result<W> {
        let mut w = self.w.finish().map_err(write_err)?;
        w.flush().map_err(write_err)?;
        Ok(w)
    }
}

#[cfg(feature = "age")]
impl<W: Write> Write for AgeOutput<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}
