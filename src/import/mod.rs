//! Importers of real chat logs into a vault.
//!
//! [`import_irc_file`] ingests one IRC log (see [`irc`] for the formats): one tenant per
//! channel, one conversation per log file, one user per nick. It is idempotent and resumable:
//! message ids are assigned in file order, so a conversation that already holds `n` messages
//! continues from message `n + 1`, after checking that message `n` is the file's `n`-th message
//! (otherwise [`ImportError::Conflict`], and nothing is written).

pub mod irc;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::{
    ConversationKind, Error, MessageKind, NewMessage, TenantId, TenantOptions, UserId, UserProfile,
    Vault,
};

/// What an import can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The log file could not be read.
    #[error("reading {path}: {source}")]
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
        "{path}: the vault's conversation {conversation:?} already holds messages that differ \
         from this file ({detail}); nothing was written. Import it under another tenant or vault"
    )]
    Conflict {
        /// The file.
        path: PathBuf,
        /// The conversation's external id.
        conversation: String,
        /// What differs.
        detail: String,
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
    /// Tenant (channel) name.
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

/// Imports one IRC log file (`*.raw.txt` or `*.ascii.txt`), with its `*.annotation.txt` if
/// present beside it. `on_progress` is called after each WriteBatch with the number of messages
/// written so far; returning `false` stops the import there (it can be run again later to
/// completion, see the module docs), and the report says `completed: false`.
pub fn import_irc_file(
    vault: &Vault,
    path: &Path,
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
    let annotation = match irc::annotation_file_name(&file_name) {
        Some(a) => {
            let ap = path.with_file_name(a);
            if ap.exists() {
                Some(read_utf8(&ap)?)
            } else {
                None
            }
        }
        None => None,
    };
    let log = irc::parse_log(&file_name, &text, annotation.as_deref())?;
    let mut report = ImportReport {
        tenant: log.channel.clone(),
        conversation: log.conversation.clone(),
        messages_in_file: log.messages.len() as u64,
        system_lines: log.system_lines,
        reply_links: log.links_kept,
        ..Default::default()
    };

    let tenant = match vault.tenant(&log.channel) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => vault
            .create_tenant(&log.channel, TenantOptions::default())
            .map_err(verr)?,
        Err(e) => return Err(verr(e)),
    };

    // Users, one per nick, in order of first appearance.
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

    let conv = match vault.conversation_id(tenant, &log.conversation) {
        Ok(c) => c,
        Err(Error::NotFound { .. }) => vault
            .create_conversation(
                tenant,
                &log.conversation,
                ConversationKind::Group,
                Some(&format!("#{} {}", log.channel, log.conversation)),
                &members,
            )
            .map_err(verr)?,
        Err(e) => return Err(verr(e)),
    };

    // Resume: ids are 1..=n in file order.
    let present = vault.last_message_id(tenant, conv).map_err(verr)?;
    let conflict = |detail: String| ImportError::Conflict {
        path: path.to_path_buf(),
        conversation: log.conversation.clone(),
        detail,
    };
    if present > log.messages.len() as u64 {
        return Err(conflict(format!(
            "it has {present} messages, the file {}",
            log.messages.len()
        )));
    }
    if present > 0 {
        let stored = vault.get(tenant, conv, present).map_err(verr)?;
        let expected = &log.messages[(present - 1) as usize];
        if stored.body != expected.body
            || stored.sent_at_ms != expected.sent_at_ms
            || Some(&stored.author) != users.get(expected.nick.as_str())
        {
            return Err(conflict(format!("message {present} differs")));
        }
    }
    report.messages_already_present = present;

    let line_to_id: HashMap<u32, u64> = log
        .messages
        .iter()
        .enumerate()
        .map(|(n, m)| (m.line_no, n as u64 + 1))
        .collect();
    let rest = &log.messages[present as usize..];
    let mut next_expected = present + 1;
    for chunk in rest.chunks(IMPORT_BATCH) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|m| NewMessage {
                author: users[m.nick.as_str()],
                sent_at_ms: m.sent_at_ms,
                body: m.body.clone(),
                kind: match m.kind {
                    irc::IrcKind::Message => MessageKind::Text,
                    irc::IrcKind::Action => MessageKind::Action,
                },
                reply_to: m.reply_to_line.and_then(|l| line_to_id.get(&l).copied()),
                also_reply_to: m
                    .other_reply_to_lines
                    .iter()
                    .filter_map(|l| line_to_id.get(l).copied())
                    .collect(),
                attachments: Vec::new(),
            })
            .collect();
        let ids = match vault.append_batch(tenant, conv, &batch).map_err(verr)? {
            crate::Appended::Stored(ids) => ids,
            crate::Appended::NotStored(_) => {
                // History is off for this conversation: nothing is stored, by policy.
                report.history_off = true;
                return Ok(report);
            }
        };
        if ids.first() != Some(&next_expected) {
            return Err(conflict(format!(
                "expected the next id to be {next_expected}, the vault gave {:?}; another \
                 writer appended to this conversation during the import",
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
    Ok(report)
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
            vault.create_user(
                tenant,
                nick,
                UserProfile {
                    display_name: nick.to_string(),
                },
            )
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
