//! Typed errors. Every variant's `Display` says what is wrong and what to do about it.

use std::path::PathBuf;

/// What a failed operation was doing, for errors that come from RocksDB or the file system.
pub type Op = &'static str;

/// Everything a chatvault call can fail with.
///
/// The variants are distinct on purpose: a wrong root key, a record that fails authentication,
/// a record that is malformed, a format version this build does not know, and a missing record
/// are different situations that call for different actions. [`Error::is_retryable`] says which
/// ones may succeed if simply tried again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The root key given does not open this vault (the key-check file did not authenticate).
    /// Nothing on disk was read beyond the key-check file, and nothing was written.
    #[error(
        "wrong root key for the vault at {path}: the key-check file does not open with it; \
         pass the key file (or CHATVAULT_ROOT_KEY) that `chatvault init` created for this vault"
    )]
    WrongRootKey {
        /// Data directory of the vault.
        path: PathBuf,
    },

    /// The vault was written in a format version newer than this build knows (a newer
    /// chatvault wrote it). It was refused before anything was written: open it with the
    /// build named in the message, or a newer one.
    #[error(
        "the vault at {path} has format version {found}, written by {written_by}; this build \
         ({this_build}) reads format versions up to {supported}, so it refused the vault and \
         wrote nothing. Open it with {written_by} or newer"
    )]
    VaultFormatTooNew {
        /// Data directory of the vault.
        path: PathBuf,
        /// The vault's format version.
        found: u32,
        /// The build that wrote it, as its format record names it (`chatvault X.Y.Z`).
        written_by: String,
        /// The newest format version this build reads ([`crate::VAULT_FORMAT_VERSION`]).
        supported: u32,
        /// This build (`chatvault X.Y.Z`).
        this_build: String,
    },

    /// The vault has an older format version, which a writer upgrades in place at open; a
    /// read-only secondary instance never writes, so it refused the vault.
    #[error(
        "the vault at {path} has format version {found}, older than this build's {current}; \
         a read-only secondary instance never upgrades a vault: open it once for writing with \
         this build (any command without --secondary while no other process holds it, or \
         `Vault::open` in the process that serves it), which upgrades it in place, then open \
         the secondary again"
    )]
    VaultFormatNeedsUpgrade {
        /// Data directory of the vault.
        path: PathBuf,
        /// The vault's format version.
        found: u32,
        /// The format version this build writes.
        current: u32,
    },

    /// The vault's key-check file is wrapped under a root key version that the root key given
    /// does not hold (for example a bare 64-hex-digit `CHATVAULT_ROOT_KEY`, read as version 1,
    /// after a rotation). Nothing was written.
    #[error(
        "the vault at {path} needs root key version {needed}, which the root key given does \
         not hold (it holds version(s) {held}): either it is the wrong key file or key for this \
         vault, or, for a key given in CHATVAULT_ROOT_KEY as bare hex (read as version 1), it \
         is the key of version {needed} given without its version: give it as \
         `CHATVAULT_ROOT_KEY={needed}:<64 hex digits>`, or pass the vault's key file, which \
         holds every version"
    )]
    RootKeyVersionMissing {
        /// Data directory of the vault.
        path: PathBuf,
        /// The root key version the key-check file is wrapped under.
        needed: u32,
        /// The versions the provider holds, as text (`1`).
        held: String,
    },

    /// The key provider could not wrap or unwrap a key.
    #[error("key provider: {0}")]
    KeyProvider(#[from] crate::keys::ProviderError),

    /// A sealed record or wrapped key failed AES-GCM-SIV authentication: it was altered, truncated
    /// inside its ciphertext, moved to another place, or sealed under another key.
    #[error(
        "authentication failed for {what}: the ciphertext was altered, moved from another \
         place, or sealed under another key; restore this record from a backup or delete it"
    )]
    Authentication {
        /// Which record, by internal ids (never plaintext).
        what: String,
    },

    /// A stored value is malformed (too short, bad header, undecodable payload).
    #[error("corrupt {what}: {detail}; run `chatvault verify` and restore from a backup")]
    Corrupt {
        /// Which record, by internal ids.
        what: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A stored value carries a format version this build does not know. It is never guessed at.
    #[error(
        "{what} has format version {found}, this build reads up to {supported}; \
         open the vault with a newer chatvault"
    )]
    UnsupportedFormat {
        /// Which kind of record.
        what: &'static str,
        /// The version found on disk.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },

    /// The named tenant, user, conversation or message does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up (external names are not included, to keep them out of logs).
        what: String,
    },

    /// Something with that name already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was being created.
        what: String,
    },

    /// The key guarding this data has been destroyed (crypto-shredding): it can never be read.
    #[error("{what} has been shredded: its key was destroyed and it can never be read again")]
    Shredded {
        /// What was asked for.
        what: String,
    },

    /// The message's retention has ended: it is hidden from every read and will be removed from
    /// disk by the next purge. Distinct from [`Error::NotFound`] and [`Error::Shredded`].
    #[error("{what} has expired under its conversation's retention policy")]
    Expired {
        /// What was asked for.
        what: String,
    },

    /// A legal hold covers (part of) what the call would delete; nothing was deleted.
    #[error("{what} is under legal hold; release the hold first (or queue the request)")]
    LegalHold {
        /// What was to be deleted.
        what: String,
    },

    /// The actor may not do this (for example a member changing a policy when only admins may).
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// A message body is larger than the vault's limit.
    #[error(
        "message body is {size} bytes, the limit is {limit} bytes \
         (VaultOptions::max_body_bytes); split the message or raise the limit"
    )]
    MessageTooLarge {
        /// Body size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },

    /// The caller passed something that cannot be stored (empty name, bad range, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A conversation already holds messages that differ from what an import wants to write.
    #[error("conflict: {0}")]
    Conflict(String),

    /// RocksDB reported an error (I/O error, disk full, background error, lock held by another
    /// process). Nothing acknowledged before is lost; see [`Error::is_retryable`].
    #[error("storage error while {op}: {source}{hint}", hint = storage_hint(source))]
    Storage {
        /// What chatvault was doing.
        op: Op,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },

    /// A write was asked of a read-only secondary instance ([`crate::Vault::open_secondary`]):
    /// it reads the vault beside the process that holds it open for writing, and never writes.
    #[error(
        "the vault at {path} is open here as a read-only secondary instance (beside the process \
         that holds it open for writing), so it refused {op}: it never writes; make this call in the process that \
         holds the vault, or stop that process and open the vault normally"
    )]
    ReadOnlySecondary {
        /// Data directory of the vault.
        path: PathBuf,
        /// What was refused.
        op: Op,
    },

    /// A checkpoint or backup needs a root key version that the key provider no longer holds:
    /// a shred, an erasure or a purge re-versioned key paths after the copy was made and
    /// retired that version, so that
    /// old copies cannot open what was shredded since (DESIGN.md §7, "What this means for
    /// backups"). Nothing was written.
    #[error(
        "the copy at {path} needs root key version {needed}, which the key file no longer \
         holds (it holds {held}): a shred, an erasure or a purge after this copy was taken \
         re-versioned the keys and retired version {needed}, so that copies made before cannot \
         open data destroyed since (shredded, erased, or days whose every message expired under \
         retention: the purge destroys their keys too). Restore it with the key file kept from \
         the time of the copy, then \
         shred again what the receipt chain (`chatvault receipts show`) says was shredded since \
         (what expired expires again by itself: retention is decided from the clock)"
    )]
    RootKeyVersionRetired {
        /// The copy (checkpoint or backup directory).
        path: PathBuf,
        /// Root key version its keys are wrapped under.
        needed: u32,
        /// Versions the provider holds, as text (`3, 4`).
        held: String,
    },

    /// Writing an export to its destination failed (disk full, closed pipe, ...). What was
    /// written is incomplete: it has no `end` record. The failure is in the audit trail.
    #[error(
        "writing the export failed: {source}; the output is incomplete (no `end` record): \
         free space or fix the destination, then run the export again"
    )]
    ExportWrite {
        /// The error of the destination.
        #[source]
        source: std::io::Error,
    },

    /// The user's processing is restricted ([`crate::Vault::restrict_processing`]): their data
    /// is left out of third-party exports and may not be handed to extensions. The user and
    /// tenant admins can still read it.
    #[error(
        "{what} has restricted the processing of their data: it may not go to a \
         third party; lift the restriction first if the user agrees"
    )]
    Restricted {
        /// Who, by internal ids.
        what: String,
    },

    /// Old key versions cannot be retired yet: records that are still readable (not expired,
    /// not shredded) are sealed under them. Nothing was deleted.
    #[error(
        "cannot retire the old key versions of {scope}: {records} readable record(s) are still \
         sealed under them ({detail}); run the re-seal to completion first (`chatvault key \
         reseal`, or `Vault::reseal`), then retire again. A record that fails to re-seal is \
         named by `chatvault verify`"
    )]
    KeyVersionsInUse {
        /// The scope, by internal ids (`tenant #1`, `conversation #5 of tenant #1`).
        scope: String,
        /// How many records still use an old version.
        records: u64,
        /// Which versions, e.g. `3 epoch key versions, 1 user key version`.
        detail: String,
    },

    /// An extension's access ([`crate::Vault::extension`]) needs a live consent grant that it
    /// does not have: none was given (or it was revoked), it expired, or it does not include
    /// the scope. Nothing was handed over; the refusal is in the audit trail. Not retryable
    /// until the consent is granted. The CLI exits with code 7.
    #[error("{}", consent_message(*tenant, *extension, *scope, *user, *reason))]
    ConsentRequired {
        /// The tenant.
        tenant: crate::model::TenantId,
        /// The extension.
        extension: crate::consent::ExtensionId,
        /// The scope the access needed.
        scope: crate::consent::ConsentScope,
        /// Whose consent: a user for a personal scope, `None` for organisation-wide consent.
        user: Option<crate::model::UserId>,
        /// What is missing.
        reason: crate::consent::ConsentMissing,
    },

    /// A file outside RocksDB (key-check file, key file) could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What chatvault was doing.
        op: Op,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn consent_message(
    tenant: crate::model::TenantId,
    extension: crate::consent::ExtensionId,
    scope: crate::consent::ConsentScope,
    user: Option<crate::model::UserId>,
    reason: crate::consent::ConsentMissing,
) -> String {
    if user.is_none() && scope.is_personal() {
        // Only the registry can refuse a personal scope without naming a user: the extension
        // was registered without it.
        return format!(
            "consent required: extension {extension} of tenant {tenant} does not ask for \
             {scope}, a personal scope that users grant: register the extension with this scope \
             first (`Vault::register_extension`, `chatvault extension register --scope {scope}`), \
             then the user grants it (`chatvault consent grant`)"
        );
    }
    let whom = match user {
        Some(u) => format!("user {u}"),
        None => "the organisation".into(),
    };
    let todo = match user {
        _ if !scope.is_personal() => "a tenant admin grants organisation-level scopes \
             organisation-wide when registering the extension"
            .to_string(),
        Some(_) => format!(
            "the user must grant {scope} to the extension (`Vault::grant_consent`, \
             `chatvault consent grant`)"
        ),
        None => "the extension does not ask for it: register it with this scope".to_string(),
    };
    format!(
        "consent required: extension {extension} of tenant {tenant} needs {whom}'s consent \
         for {scope}: {reason}; {todo}"
    )
}

fn storage_hint(e: &rocksdb::Error) -> &'static str {
    use rocksdb::ErrorKind as K;
    // The lock first: RocksDB reports a held LOCK file as an I/O error ("IO error: While lock
    // file: .../LOCK: Resource temporarily unavailable"), which is not a full disk.
    let msg = e.as_ref();
    if msg.contains("lock hold by current process") {
        return " (this process already has this vault open: open it once and share the `Vault` \
                handle, which is cheap to clone)";
    }
    if msg.contains("lock file") || msg.contains("/LOCK") || msg.contains("LOCK:") {
        return " (another process holds this vault open: RocksDB allows one process per vault; \
                stop that process, or run this operation as a library call inside it, as a \
                backend serving the vault does)";
    }
    match e.kind() {
        K::IOError => {
            " (an I/O error such as a full disk: free space, then retry or reopen the vault)"
        }
        K::Busy | K::TryAgain | K::TimedOut => " (transient: retry)",
        K::Corruption => " (RocksDB found corruption: run `chatvault verify`)",
        _ => "",
    }
}

impl Error {
    /// Whether trying the same call again later may succeed (transient storage conditions such
    /// as a full disk that has been cleared). Authentication, corruption, wrong-key and
    /// not-found errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage { source, .. } => matches!(
                source.kind(),
                rocksdb::ErrorKind::IOError
                    | rocksdb::ErrorKind::Busy
                    | rocksdb::ErrorKind::TryAgain
                    | rocksdb::ErrorKind::TimedOut
                    | rocksdb::ErrorKind::Incomplete
            ),
            Error::Io { .. } | Error::ExportWrite { .. } => true,
            Error::KeyProvider(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn storage(op: Op) -> impl FnOnce(rocksdb::Error) -> Error {
        move |source| Error::Storage { op, source }
    }

    pub(crate) fn io(op: Op, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Result alias for chatvault calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
