//! Importers of real chat logs into a vault.
//!
//! [`import_irc_file`] ingests one IRC log (see [`irc`] for the formats): one tenant per
//! channel (or the tenant given in [`ImportOptions::tenant`]), one conversation per log file, one
//! user per nick. It is idempotent and resumable: message ids are assigned in file order, so a
//! conversation that has used `n` message ids continues from message `n + 1`, after checking
//! every message it still holds against the file's message with the same id (author, time, body,
//! kind, replies). A difference is an [`ImportError::Conflict`] naming the first differing
//! message and line, and nothing is written.
//!
//! [`slack::import_slack_export`] and [`mattermost::import_mattermost_export`] import a Slack
//! export (zip) and a Mattermost bulk export (JSON Lines); [`write_back`] writes a tenant back
//! in either format. They key each message by its external id (blind index, DESIGN.md §3), so
//! a re-import skips what is stored and a part-way import continues.
//!
//! Each call imports one file; a caller importing several files (like the CLI) is not
//! all-or-nothing across them: the files before a failing one stay imported.

pub mod irc;
pub mod mattermost;
pub mod slack;
pub mod write_back;

mod external;
mod xref;

pub use external::ExternalImportReport;
pub use xref::ExternalRef;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{
    ConversationKind, Direction, Error, MessageKind, NewMessage, TenantId, TenantOptions, UserId,
    UserProfile, Vault,
};

/// What an import can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The log file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log file is not valid UTF-8.
    #[error("{path} is not valid UTF-8 (byte {valid_up_to}); convert it to UTF-8 first")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Length of the valid prefix in bytes.
        valid_up_to: usize,
    },
    /// A line of the log could not be parsed.
    #[error(transparent)]
    Parse(#[from] irc::IrcParseError),
    /// The conversation already holds messages that are not this file's.
    #[error(
        "{path}: conversation {conversation:?} of tenant {tenant:?} already holds messages that \
         differ from this file: {detail}. If this is another log that \
         happens to have the same name, import it under another tenant (`chatvault import irc \
         --tenant NAME`) or into another vault"
    )]
    Conflict {
        /// The file.
        path: PathBuf,
        /// The tenant imported into.
        tenant: String,
        /// The conversation's external id.
        conversation: String,
        /// What differs.
        detail: String,
    },
    /// A Slack or Mattermost export is malformed: `file` is the export (and the entry inside a
    /// zip), `entry` the line or the record. Nothing of that record was written; what was
    /// imported before it stays, and a re-import after the fix continues from there.
    #[error(
        "{file}, {entry}: {problem}. Nothing of this record was written and what was imported \
         before it stays; fix the export and run the same import again to continue"
    )]
    Malformed {
        /// The export file (for a zip: `EXPORT.zip: folder/2016-01-15.json`).
        file: String,
        /// Where in it: `line 12`, `entry 3 (ts 1452837318.000002)`.
        entry: String,
        /// What is wrong.
        problem: String,
    },
    /// The vault refused a write or read.
    #[error("{path}: {source}")]
    Vault {
        /// The file.
        path: PathBuf,
        /// The vault's error.
        #[source]
        source: Error,
    },
}

/// What one file's import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Tenant name (the channel's, unless [`ImportOptions::tenant`] overrides it).
    pub tenant: String,
    /// Conversation external id (the file stem).
    pub conversation: String,
    /// Messages (and actions) in the file.
    pub messages_in_file: u64,
    /// Messages written by this run.
    pub messages_written: u64,
    /// Messages already in the vault from an earlier run, skipped.
    pub messages_already_present: u64,
    /// Users created by this run.
    pub users_created: u64,
    /// Join/part/quit/nick-change lines, not stored.
    pub system_lines: u32,
    /// Reply links kept as reply-to.
    pub reply_links: u32,
    /// Whether every message of the file is now in the vault.
    pub completed: bool,
    /// The conversation's history is off: nothing was stored, by policy.
    pub history_off: bool,
}

/// Messages per WriteBatch during an import.
pub const IMPORT_BATCH: usize = 512;

/// Options of [`import_irc_file_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Import into this tenant instead of the one named after the log's channel.
    pub tenant: Option<String>,
}

/// Imports one IRC log file (`*.raw.txt` or `*.ascii.txt`), with its `*.annotation.txt` if
/// present beside it, into the tenant named after its channel. See [`import_irc_file_with`].
pub fn import_irc_file(
    vault: &Vault,
    path: &Path,
    on_progress: impl FnMut(u64) -> bool,
) -> Result<ImportReport, ImportError> {
    import_irc_file_with(vault, path, &ImportOptions::default(), on_progress)
}

/// Imports one IRC log file (`*.raw.txt` or `*.ascii.txt`), with its `*.annotation.txt` if
/// present beside it. `on_progress` is called after each WriteBatch with the number of messages
/// written so far; returning `false` stops the import there (it can be run again later to
/// completion, see the module docs), and the report says `completed: false`.
///
/// Before anything is written, every message the conversation already holds is checked against
/// the file (author, time, body, kind, replies); a difference is an [`ImportError::Conflict`]
/// and nothing is written, not even a user.
pub fn import_irc_file_with(
    vault: &Vault,
    path: &Path,
    options: &ImportOptions,
    mut on_progress: impl FnMut(u64) -> bool,
) -> Result<ImportReport, ImportError> {
    let verr = |source: Error| ImportError::Vault {
        path: path.to_path_buf(),
        source,
    };
    let text = read_utf8(path)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let annotation_path = irc::annotation_file_name(&file_name)
        .map(|a| path.with_file_name(a))
        .filter(|ap| ap.exists());
    let annotation = match &annotation_path {
        Some(ap) => Some(read_utf8(ap)?),
        None => None,
    };
    let log = irc::parse_log(&file_name, &text, annotation.as_deref())
        .map_err(|e| with_paths(e, path, annotation_path.as_deref()))?;
    let tenant_name = options
        .tenant
        .clone()
        .unwrap_or_else(|| log.channel.clone());
    let mut report = ImportReport {
        tenant: tenant_name.clone(),
        conversation: log.conversation.clone(),
        messages_in_file: log.messages.len() as u64,
        system_lines: log.system_lines,
        reply_links: log.links_kept,
        ..Default::default()
    };
    let conflict = |detail: String| ImportError::Conflict {
        path: path.to_path_buf(),
        tenant: tenant_name.clone(),
        conversation: log.conversation.clone(),
        detail,
    };
    let line_to_id: HashMap<u32, u64> = log
        .messages
        .iter()
        .enumerate()
        .map(|(n, m)| (m.line_no, n as u64 + 1))
        .collect();
    let reply_to = |m: &irc::IrcMessage| m.reply_to_line.and_then(|l| line_to_id.get(&l).copied());
    let also_reply_to = |m: &irc::IrcMessage| -> Vec<u64> {
        m.other_reply_to_lines
            .iter()
            .filter_map(|l| line_to_id.get(l).copied())
            .collect()
    };
    let kind_of = |m: &irc::IrcMessage| match m.kind {
        irc::IrcKind::Message => MessageKind::Text,
        irc::IrcKind::Action => MessageKind::Action,
    };

    // 1. Look up (never create) what already exists, and check every stored message against
    //    the file. Nothing is written before this check passes.
    let existing_tenant = match vault.tenant(&tenant_name) {
        Ok(t) => Some(t),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(verr(e)),
    };
    let existing_conv = match existing_tenant {
        Some(t) => match vault.conversation_id(t, &log.conversation) {
            Ok(c) => Some((t, c)),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(verr(e)),
        },
        None => None,
    };
    // Resume: ids are 1..=n in file order; `present` ids have been handed out already.
    let mut present = 0;
    if let Some((t, c)) = existing_conv {
        present = vault.last_message_id(t, c).map_err(verr)?;
        if present > log.messages.len() as u64 {
            return Err(conflict(format!(
                "the conversation has used {present} message ids, the file has only {} \
                 messages; nothing was written",
                log.messages.len()
            )));
        }
        // Nick -> user, looked up without creating (a nick with no user cannot be the author
        // of a stored message).
        let mut known: HashMap<&str, Option<UserId>> = HashMap::new();
        // Streams: one stored message at a time. Expired messages are not listed; shredded
        // ones (key destroyed) cannot be read, so cannot be checked.
        for stored in vault
            .messages(t, c, None, Direction::Forward)
            .map_err(verr)?
        {
            let stored = match stored {
                Ok(m) => m,
                Err(Error::Shredded { .. }) => continue,
                Err(e) => return Err(verr(e)),
            };
            let Some(expected) = stored
                .id
                .checked_sub(1)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| log.messages.get(i))
            else {
                return Err(conflict(format!(
                    "the conversation holds message {}, the file has only {} messages; nothing \
                     was written",
                    stored.id,
                    log.messages.len()
                )));
            };
            let author = match known.get(expected.nick.as_str()) {
                Some(u) => *u,
                None => {
                    let u = match vault.user_id(t, &expected.nick) {
                        Ok(u) => Some(u),
                        Err(Error::NotFound { .. }) => None,
                        Err(e) => return Err(verr(e)),
                    };
                    known.insert(expected.nick.as_str(), u);
                    u
                }
            };
            let mut differs = Vec::new();
            if author != Some(stored.author) {
                differs.push("author");
            }
            if stored.sent_at_ms != expected.sent_at_ms {
                differs.push("time");
            }
            // A message deleted since the import has no body left to compare.
            if stored.deleted_at_ms.is_none() {
                let original_body = if stored.revision == 0 {
                    Some(stored.body.clone())
                } else {
                    // Edited since the import: compare the original revision, if still kept.
                    vault
                        .revisions(t, c, stored.id)
                        .map_err(verr)?
                        .into_iter()
                        .find(|r| r.revision == 0)
                        .map(|r| r.body)
                };
                if original_body.is_some_and(|b| b != expected.body) {
                    differs.push("body");
                }
                if stored.kind != kind_of(expected) {
                    differs.push("kind (message or action)");
                }
                if stored.reply_to != reply_to(expected)
                    || stored.also_reply_to != also_reply_to(expected)
                {
                    differs.push("reply-to");
                }
            }
            if !differs.is_empty() {
                return Err(conflict(format!(
                    "message {} differs from line {} of the file in {}; nothing was written",
                    stored.id,
                    expected.line_no + 1,
                    differs.join(", ")
                )));
            }
        }
    }
    report.messages_already_present = present;

    // 2. Create what is missing: tenant, users (one per nick), conversation.
    let tenant = match existing_tenant {
        Some(t) => t,
        None => vault
            .create_tenant(&tenant_name, TenantOptions::default())
            .map_err(verr)?,
    };
    let mut users: HashMap<&str, UserId> = HashMap::new();
    let mut members: Vec<(UserId, i64)> = Vec::new();
    for m in &log.messages {
        if users.contains_key(m.nick.as_str()) {
            continue;
        }
        let u = user_for(vault, tenant, &m.nick, &mut report).map_err(verr)?;
        users.insert(m.nick.as_str(), u);
        members.push((u, m.sent_at_ms));
    }
    let conv = match existing_conv {
        Some((_, c)) => c,
        None => vault
            .create_conversation(
                tenant,
                &log.conversation,
                ConversationKind::Group,
                Some(&format!("#{} {}", log.channel, log.conversation)),
                &members,
            )
            .map_err(verr)?,
    };

    // 3. Append the rest of the file.
    let rest = &log.messages[present as usize..];
    let mut next_expected = present + 1;
    for chunk in rest.chunks(IMPORT_BATCH) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|m| NewMessage {
                author: users[m.nick.as_str()],
                sent_at_ms: m.sent_at_ms,
                body: m.body.clone(),
                kind: kind_of(m),
                reply_to: reply_to(m),
                also_reply_to: also_reply_to(m),
                attachments: Vec::new(),
            })
            .collect();
        let ids = match vault.append_batch(tenant, conv, &batch).map_err(verr)? {
            crate::Appended::Stored(ids) => ids,
            crate::Appended::NotStored(_) => {
                // History is off for this conversation: nothing is stored, by policy.
                report.history_off = true;
                tracing::info!(
                    file = %path.display(),
                    tenant = %report.tenant,
                    conversation = %report.conversation,
                    "history is off for this conversation: nothing stored"
                );
                return Ok(report);
            }
        };
        if ids.first() != Some(&next_expected) {
            return Err(conflict(format!(
                "expected the next message id to be {next_expected}, the vault gave {:?}: \
                 another writer appended to this conversation during the import (the messages \
                 before were written; re-run the import once that writer is stopped)",
                ids.first()
            )));
        }
        next_expected += ids.len() as u64;
        report.messages_written += ids.len() as u64;
        if !on_progress(report.messages_written) {
            return Ok(report);
        }
    }
    report.completed = true;
    tracing::info!(
        file = %path.display(),
        tenant = %report.tenant,
        conversation = %report.conversation,
        messages = report.messages_in_file,
        written = report.messages_written,
        already_present = report.messages_already_present,
        system_lines = report.system_lines,
        users_created = report.users_created,
        "imported IRC log"
    );
    Ok(report)
}

/// Puts the full paths of the log (and its annotation file) into a parse error, which the
/// parser only knows by file name.
fn with_paths(e: irc::IrcParseError, log: &Path, annotation: Option<&Path>) -> ImportError {
    use irc::IrcParseError as P;
    let log_s = log.display().to_string();
    let e = match e {
        P::BadFileName { reason, .. } => P::BadFileName {
            file: log_s,
            reason,
        },
        P::UnknownLine {
            line,
            reason,
            excerpt,
            ..
        } => P::UnknownLine {
            file: log_s,
            line,
            reason,
            excerpt,
        },
        P::BadTimestamp {
            line,
            reason,
            excerpt,
            ..
        } => P::BadTimestamp {
            file: log_s,
            line,
            reason,
            excerpt,
        },
        P::ChannelMismatch {
            line,
            expected,
            found,
            ..
        } => P::ChannelMismatch {
            file: log_s,
            line,
            expected,
            found,
        },
        P::BadAnnotation {
            file,
            line,
            reason,
            excerpt,
            ..
        } => P::BadAnnotation {
            file: annotation.map(|a| a.display().to_string()).unwrap_or(file),
            log: log_s,
            line,
            reason,
            excerpt,
        },
        P::TooManyLines { lines, .. } => P::TooManyLines { file: log_s, lines },
    };
    ImportError::Parse(e)
}

fn user_for(
    vault: &Vault,
    tenant: TenantId,
    nick: &str,
    report: &mut ImportReport,
) -> Result<UserId, Error> {
    match vault.user_id(tenant, nick) {
        Ok(u) => Ok(u),
        Err(Error::NotFound { .. }) => {
            report.users_created += 1;
            vault.create_user(tenant, nick, UserProfile::named(nick.to_string()))
        }
        Err(e) => Err(e),
    }
}

fn read_utf8(path: &Path) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| ImportError::NotUtf8 {
        path: path.to_path_buf(),
        valid_up_to: e.utf8_error().valid_up_to(),
    })
}

/// The IRC log files under `path` (a file or a directory, searched recursively), sorted by
/// path. Annotation files are not listed (they are read beside their log).
pub fn irc_log_files(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let p = entry.map_err(io)?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if is_log(&p) {
                    out.push(p);
                }
            }
        }
    } else {
        std::fs::metadata(path).map_err(io)?;
        out.push(path.to_path_buf());
    }
    out.sort();
    Ok(out)
}

fn is_log(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| irc::annotation_file_name(n).is_some())
}
