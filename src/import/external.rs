//! The machinery shared by the Slack and Mattermost importers: users and conversations found
//! or created by external id, messages keyed by their external id (so a re-import skips what
//! is already stored and a part-way import continues), edits and deletions applied once,
//! batches of [`super::IMPORT_BATCH`] messages, and the summary.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::xref::ExternalRef;
use super::{ImportError, IMPORT_BATCH};
use crate::{
    Appended, ConversationId, ConversationKind, Error, MessageId, NewMessage, TenantId,
    TenantOptions, UserId, UserProfile, Vault,
};

/// What a Slack or Mattermost import did (the CLI prints it, or writes it with `--json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExternalImportReport {
    /// The format: `slack` or `mattermost`.
    pub source: String,
    /// The tenant imported into.
    pub tenant: String,
    /// Conversations (channels, direct and group messages) in the export.
    pub conversations_in_export: u64,
    /// Conversations created by this run.
    pub conversations_created: u64,
    /// Users created by this run (bots included).
    pub users_created: u64,
    /// Memberships added by this run.
    pub memberships_added: u64,
    /// Messages (posts, replies) in the export, as far as it was read.
    pub messages_in_export: u64,
    /// Messages written by this run.
    pub messages_written: u64,
    /// Messages already in the vault from an earlier run, skipped.
    pub messages_already_present: u64,
    /// Edits applied by this run (each a new revision).
    pub edits_applied: u64,
    /// Deletions applied by this run.
    pub deletions_applied: u64,
    /// Records read but not stored, by reason (for example `reactions (not stored)`).
    pub skipped: BTreeMap<String, u64>,
    /// Records stored otherwise than the export has them, by reason (for example a post
    /// naming a team its channel is not in).
    pub notes: BTreeMap<String, u64>,
    /// Conversations whose history is off: their messages were not stored, by policy.
    pub history_off: Vec<String>,
    /// Whether the whole export was read (false when the progress callback stopped it).
    pub completed: bool,
}

impl ExternalImportReport {
    pub(crate) fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.skipped.entry(reason.to_string()).or_default() += n;
        }
    }

    pub(crate) fn note(&mut self, reason: &str) {
        *self.notes.entry(reason.to_string()).or_default() += 1;
    }
}

/// A message ready to store: its content and its external reference.
pub(crate) struct Incoming {
    pub msg: NewMessage,
    pub xref: ExternalRef,
}

struct Pending {
    /// The id the next appended message will get.
    next_id: MessageId,
    msgs: Vec<NewMessage>,
    refs: Vec<ExternalRef>,
    /// External id -> id, for the messages not yet written.
    by_ext: HashMap<String, MessageId>,
}

/// One import run into one tenant.
pub(crate) struct Importer<'v, 'p> {
    pub vault: &'v Vault,
    pub tenant: TenantId,
    pub source: &'static str,
    /// The file being read, for errors.
    pub file: String,
    pub report: ExternalImportReport,
    users: HashMap<String, UserId>,
    pending: HashMap<ConversationId, Pending>,
    history_off: HashMap<ConversationId, String>,
    /// Members of the conversations seen, loaded once per conversation.
    members: HashMap<ConversationId, HashSet<UserId>>,
    on_progress: &'p mut dyn FnMut(&ExternalImportReport) -> bool,
    stopped: bool,
}

impl<'v, 'p> Importer<'v, 'p> {
    /// Opens (or creates) the tenant.
    pub fn new(
        vault: &'v Vault,
        tenant_name: &str,
        source: &'static str,
        file: String,
        on_progress: &'p mut dyn FnMut(&ExternalImportReport) -> bool,
    ) -> Result<Self, ImportError> {
        let verr = |source| ImportError::Vault {
            path: file.clone().into(),
            source,
        };
        let tenant = match vault.tenant(tenant_name) {
            Ok(t) => t,
            Err(Error::NotFound { .. }) => vault
                .create_tenant(tenant_name, TenantOptions::default())
                .map_err(verr)?,
            Err(e) => return Err(verr(e)),
        };
        Ok(Importer {
            vault,
            tenant,
            source,
            report: ExternalImportReport {
                source: source.to_string(),
                tenant: tenant_name.to_string(),
                ..Default::default()
            },
            file,
            users: HashMap::new(),
            pending: HashMap::new(),
            history_off: HashMap::new(),
            members: HashMap::new(),
            on_progress,
            stopped: false,
        })
    }

    pub fn verr(&self, source: Error) -> ImportError {
        ImportError::Vault {
            path: self.file.clone().into(),
            source,
        }
    }

    /// Whether the progress callback asked to stop.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The user with this external id: found, or created with `profile`.
    pub fn user(
        &mut self,
        external_id: &str,
        profile: impl FnOnce() -> UserProfile,
    ) -> Result<UserId, ImportError> {
        if let Some(u) = self.users.get(external_id) {
            return Ok(*u);
        }
        let u = match self.vault.user_id(self.tenant, external_id) {
            Ok(u) => u,
            Err(Error::NotFound { .. }) => {
                self.report.users_created += 1;
                self.vault
                    .create_user(self.tenant, external_id, profile())
                    .map_err(|e| self.verr(e))?
            }
            Err(e) => return Err(self.verr(e)),
        };
        self.users.insert(external_id.to_string(), u);
        Ok(u)
    }

    /// A user already seen or stored, without creating one.
    pub fn known_user(&mut self, external_id: &str) -> Result<Option<UserId>, ImportError> {
        if let Some(u) = self.users.get(external_id) {
            return Ok(Some(*u));
        }
        match self.vault.user_id(self.tenant, external_id) {
            Ok(u) => {
                self.users.insert(external_id.to_string(), u);
                Ok(Some(u))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.verr(e)),
        }
    }

    /// The conversation with this external id: found (members added if missing), or created
    /// with its members and its external reference.
    pub fn conversation(
        &mut self,
        external_id: &str,
        kind: ConversationKind,
        title: Option<&str>,
        members: &[(UserId, i64)],
        xref: &ExternalRef,
    ) -> Result<ConversationId, ImportError> {
        self.report.conversations_in_export += 1;
        match self.vault.conversation_id(self.tenant, external_id) {
            Ok(c) => {
                for (u, at) in members {
                    self.member(c, *u, *at)?;
                }
                Ok(c)
            }
            Err(Error::NotFound { .. }) => {
                let c = self
                    .vault
                    .create_conversation(self.tenant, external_id, kind, title, members)
                    .map_err(|e| self.verr(e))?;
                self.vault
                    .put_conversation_ref(self.tenant, c, xref)
                    .map_err(|e| self.verr(e))?;
                self.report.conversations_created += 1;
                self.report.memberships_added += members.len() as u64;
                Ok(c)
            }
            Err(e) => Err(self.verr(e)),
        }
    }

    /// Adds a member unless they already are one.
    pub fn member(
        &mut self,
        c: ConversationId,
        u: UserId,
        joined_at_ms: i64,
    ) -> Result<(), ImportError> {
        if !self.members.contains_key(&c) {
            let now: HashSet<UserId> = self
                .vault
                .members(self.tenant, c)
                .map_err(|e| self.verr(e))?
                .into_iter()
                .map(|m| m.user)
                .collect();
            self.members.insert(c, now);
        }
        if self.members.get(&c).is_some_and(|m| m.contains(&u)) {
            return Ok(());
        }
        self.vault
            .add_member(self.tenant, c, u, joined_at_ms)
            .map_err(|e| self.verr(e))?;
        self.members.entry(c).or_default().insert(u);
        self.report.memberships_added += 1;
        Ok(())
    }

    /// The message with this external id, written or pending.
    pub fn resolve(
        &self,
        c: ConversationId,
        external_id: &str,
    ) -> Result<Option<MessageId>, ImportError> {
        if let Some(id) = self.pending.get(&c).and_then(|p| p.by_ext.get(external_id)) {
            return Ok(Some(*id));
        }
        self.vault
            .external_message_id(self.tenant, c, self.source, external_id)
            .map_err(|e| self.verr(e))
    }

    /// Queues a message unless it is already stored; returns its id (the stored one, or the one
    /// it will get). A stored message with the same external id but another author or time is
    /// a [`ImportError::Conflict`].
    pub fn message(
        &mut self,
        c: ConversationId,
        m: Incoming,
    ) -> Result<Option<MessageId>, ImportError> {
        self.report.messages_in_export += 1;
        if self.history_off.contains_key(&c) {
            return Ok(None);
        }
        if let Some(id) = self.resolve(c, &m.xref.id)? {
            if !self
                .pending
                .get(&c)
                .is_some_and(|p| p.by_ext.contains_key(&m.xref.id))
            {
                let stored = match self.vault.get(self.tenant, c, id) {
                    Ok(s) => Some(s),
                    Err(Error::Expired { .. } | Error::Shredded { .. }) => None,
                    Err(e) => return Err(self.verr(e)),
                };
                if let Some(s) = stored {
                    if s.author != m.msg.author || s.sent_at_ms != m.msg.sent_at_ms {
                        return Err(ImportError::Conflict {
                            path: self.file.clone().into(),
                            tenant: self.report.tenant.clone(),
                            conversation: self.conversation_name(c),
                            detail: format!(
                                "message {id} (external id {}) has another author or time in \
                                 the vault than in the export; nothing more was written",
                                m.xref.id
                            ),
                        });
                    }
                }
                self.report.messages_already_present += 1;
            } else {
                self.report
                    .skip("duplicate of an earlier record of the export", 1);
            }
            return Ok(Some(id));
        }
        if !self.pending.contains_key(&c) {
            let last = self
                .vault
                .last_message_id(self.tenant, c)
                .map_err(|e| self.verr(e))?;
            self.pending.insert(
                c,
                Pending {
                    next_id: last + 1,
                    msgs: Vec::new(),
                    refs: Vec::new(),
                    by_ext: HashMap::new(),
                },
            );
        }
        let full = {
            let Some(p) = self.pending.get_mut(&c) else {
                return Ok(None);
            };
            let id = p.next_id + p.msgs.len() as u64;
            p.by_ext.insert(m.xref.id.clone(), id);
            p.msgs.push(m.msg);
            p.refs.push(m.xref);
            if p.msgs.len() >= IMPORT_BATCH {
                Some(id)
            } else {
                return Ok(Some(id));
            }
        };
        self.flush(c)?;
        Ok(full)
    }

    fn conversation_name(&self, c: ConversationId) -> String {
        self.vault
            .conversation(self.tenant, c)
            .map(|i| i.external_id)
            .unwrap_or_else(|_| c.to_string())
    }

    /// Writes the conversation's pending messages.
    pub fn flush(&mut self, c: ConversationId) -> Result<(), ImportError> {
        let Some(p) = self.pending.remove(&c) else {
            return Ok(());
        };
        if p.msgs.is_empty() {
            return Ok(());
        }
        let ids = match self
            .vault
            .append_with_refs(self.tenant, c, &p.msgs, &p.refs)
            .map_err(|e| self.verr(e))?
        {
            Appended::Stored(ids) => ids,
            Appended::NotStored(_) => {
                let name = self.conversation_name(c);
                self.report.history_off.push(name.clone());
                self.history_off.insert(c, name);
                return Ok(());
            }
        };
        if ids.first() != Some(&p.next_id) {
            return Err(ImportError::Conflict {
                path: self.file.clone().into(),
                tenant: self.report.tenant.clone(),
                conversation: self.conversation_name(c),
                detail: format!(
                    "expected the next message id to be {}, the vault gave {:?}: another writer \
                     appended to this conversation during the import (the messages before were \
                     written; re-run the import once that writer is stopped)",
                    p.next_id,
                    ids.first()
                ),
            });
        }
        self.report.messages_written += ids.len() as u64;
        if !(self.on_progress)(&self.report) {
            self.stopped = true;
        }
        Ok(())
    }

    /// Writes every pending message.
    pub fn flush_all(&mut self) -> Result<(), ImportError> {
        let mut convs: Vec<ConversationId> = self.pending.keys().copied().collect();
        convs.sort();
        for c in convs {
            self.flush(c)?;
        }
        Ok(())
    }

    /// Applies an edit (a new revision with `body`, written at `at_ms`) to the message with
    /// this external id, unless a revision with that body and time is already there.
    pub fn edit(
        &mut self,
        c: ConversationId,
        external_id: &str,
        body: &str,
        at_ms: i64,
    ) -> Result<(), ImportError> {
        self.flush(c)?;
        let Some(id) = self.resolve(c, external_id)? else {
            self.report
                .skip("edit of a message that is not in the export", 1);
            return Ok(());
        };
        let cur = match self.vault.get(self.tenant, c, id) {
            Ok(m) => m,
            Err(Error::Expired { .. } | Error::Shredded { .. } | Error::NotFound { .. }) => {
                self.report
                    .skip("edit of a message expired or shredded in the vault", 1);
                return Ok(());
            }
            Err(e) => return Err(self.verr(e)),
        };
        if cur.deleted_at_ms.is_some() {
            self.report.skip("edit of a deleted message", 1);
            return Ok(());
        }
        if cur.edited_at_ms == Some(at_ms) && cur.body == body {
            return Ok(());
        }
        let revs = self
            .vault
            .revisions(self.tenant, c, id)
            .map_err(|e| self.verr(e))?;
        if revs
            .iter()
            .any(|r| r.revision > 0 && r.written_at_ms == at_ms && r.body == body)
        {
            return Ok(());
        }
        self.vault
            .edit(self.tenant, c, id, body, at_ms)
            .map_err(|e| self.verr(e))?;
        self.report.edits_applied += 1;
        Ok(())
    }

    /// Deletes the message with this external id (deleted at `at_ms`), unless it already is.
    pub fn delete(
        &mut self,
        c: ConversationId,
        external_id: &str,
        at_ms: i64,
    ) -> Result<(), ImportError> {
        self.flush(c)?;
        let Some(id) = self.resolve(c, external_id)? else {
            self.report
                .skip("deletion of a message that is not in the export", 1);
            return Ok(());
        };
        match self.vault.get(self.tenant, c, id) {
            Ok(m) if m.deleted_at_ms.is_some() => Ok(()),
            Ok(_) => {
                self.vault
                    .delete(self.tenant, c, id, at_ms)
                    .map_err(|e| self.verr(e))?;
                self.report.deletions_applied += 1;
                Ok(())
            }
            Err(Error::Expired { .. } | Error::Shredded { .. } | Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.verr(e)),
        }
    }

    /// What to return on an error in the input: the messages read before it are written
    /// first (so that "what was imported before it stays" holds for them too).
    pub fn fail(&mut self, e: ImportError) -> ImportError {
        if let Err(fe) = self.flush_all() {
            tracing::warn!(error = %fe, "cannot write the messages read before the error");
        }
        e
    }

    /// Writes what is pending and returns the report.
    pub fn finish(mut self) -> Result<ExternalImportReport, ImportError> {
        self.flush_all()?;
        self.report.completed = !self.stopped;
        self.report.history_off.sort();
        self.report.history_off.dedup();
        Ok(self.report)
    }
}

/// A malformed-input error.
pub(crate) fn malformed(
    file: &str,
    entry: impl Into<String>,
    problem: impl Into<String>,
) -> ImportError {
    ImportError::Malformed {
        file: file.to_string(),
        entry: entry.into(),
        problem: problem.into(),
    }
}

/// A string field of a JSON object.
pub(crate) fn str_of<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(serde_json::Value::as_str)
}

/// A non-empty string, owned.
pub(crate) fn nonempty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}
