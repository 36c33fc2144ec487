//! Key material: the root-key provider, secret keys, AES-256-GCM-SIV sealing, HKDF derivation
//! and the bounded cache of unwrapped keys.
//!
//! This is the only module that touches raw key bytes. Nothing here implements `Debug` or
//! `Display` of key bytes, and every secret is zeroized on drop.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hkdf::Hkdf;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of every key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// AES-GCM-SIV nonce length in bytes (RFC 8452 section 4: 96 bits).
pub const NONCE_LEN: usize = 12;
/// AES-GCM-SIV tag length in bytes.
pub const TAG_LEN: usize = 16;

/// HKDF labels, in spec notation. Each derivation is
/// `HKDF-SHA256(salt = HKDF_SALT, ikm, info = LABEL || ids)` (RFC 5869 section 2).
pub mod labels {
    /// Salt for every HKDF extraction in format version 1.
    pub const HKDF_SALT: &[u8] = b"chatvault/v1/hkdf-salt";
    /// Message DEK: `ikm = epoch_key [|| author_user_key]`,
    /// `info = MSG_DEK || tenant || conv || epoch || epoch_version [|| author || author_version]`.
    pub const MSG_DEK: &[u8] = b"chatvault/v1/msg-dek";
    /// HMAC key for the tenant-name directory: `ikm = vault_key`, `info = TENANT_DIRECTORY`.
    pub const TENANT_DIRECTORY: &[u8] = b"chatvault/v1/tenant-directory";
    /// HMAC key for a tenant's user and conversation directory:
    /// `ikm = tenant_kek`, `info = DIRECTORY || tenant`.
    pub const DIRECTORY: &[u8] = b"chatvault/v1/directory";
    /// MAC key of an append-only chain ([`crate::chain`]): `ikm = vault_key`,
    /// `info = CHAIN_KEY || chain id (1 byte)`.
    pub const CHAIN_KEY: &[u8] = b"chatvault/v1/chain-key";
    /// First bytes MAC'd for every chain entry:
    /// `HMAC(chain key, CHAIN_MAC || chain id || entry bytes before the MAC)`.
    pub const CHAIN_MAC: &[u8] = b"chatvault/v1/chain";
}

/// A 256-bit secret key. Zeroized on drop; its `Debug` never shows the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// A fresh random key from the OS CSPRNG (`getrandom`).
    pub fn generate() -> Result<Self, ProviderError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::getrandom(&mut k)
            .map_err(|e| ProviderError::Unavailable(format!("OS random source: {e}")))?;
        Ok(SecretKey(k))
    }

    /// Wraps existing bytes (the caller's copy should be zeroized by the caller).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// The raw bytes. Only for wrapping, deriving and building ciphers.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A ready AES-256-GCM-SIV cipher for this key (the key schedule costs ~100-250 ns: cache
    /// it). Public for benchmarks and tools; chatvault caches its own.
    pub fn cipher(&self) -> Cipher {
        Cipher::new(&self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The AES-256-GCM-SIV (RFC 8452) implementation with a key set up: RustCrypto `aes-gcm-siv`
/// (pure Rust; round keys zeroized on drop by the `aes` crate's `zeroize` feature) by default,
/// AWS-LC through `aws-lc-rs` with the `aws-lc` feature (faster: see BENCHMARKS.md). Both give
/// the same bytes and open each other's records (`tests/aead_backends_interoperate.rs`).
pub struct Cipher {
    #[cfg(not(feature = "aws-lc"))]
    inner: aes_gcm_siv::Aes256GcmSiv,
    #[cfg(feature = "aws-lc")]
    inner: aws_lc_rs::aead::LessSafeKey,
}

impl Cipher {
    /// Sets the key up (key schedule): ~140 ns with RustCrypto, so callers cache it.
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        #[cfg(not(feature = "aws-lc"))]
        {
            use aes_gcm_siv::aead::KeyInit;
            Cipher {
                inner: aes_gcm_siv::Aes256GcmSiv::new(key.into()),
            }
        }
        #[cfg(feature = "aws-lc")]
        {
            use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM_SIV};
            // UnboundKey::new fails only for a key of the wrong length, and KEY_LEN is
            // AES-256's: this cannot fail. Panicking here is deliberate: any fallback key would
            // be a silent disaster.
            #[allow(clippy::expect_used)]
            let unbound = UnboundKey::new(&AES_256_GCM_SIV, key)
                .expect("a 32-byte key is always valid for AES-256-GCM-SIV");
            Cipher {
                inner: LessSafeKey::new(unbound),
            }
        }
    }

    /// Encrypts `buf` in place; returns the tag. Fails only above the AEAD's length limit.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], ()> {
        #[cfg(not(feature = "aws-lc"))]
        {
            use aes_gcm_siv::aead::AeadInPlace;
            self.inner
                .encrypt_in_place_detached(aes_gcm_siv::Nonce::from_slice(nonce), aad, buf)
                .map(Into::into)
                .map_err(|_| ())
        }
        #[cfg(feature = "aws-lc")]
        {
            use aws_lc_rs::aead::{Aad, Nonce};
            let tag = self
                .inner
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    buf,
                )
                .map_err(|_| ())?;
            tag.as_ref().try_into().map_err(|_| ())
        }
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `nonce` and `aad`.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        #[cfg(not(feature = "aws-lc"))]
        {
            use aes_gcm_siv::aead::AeadInPlace;
            self.inner
                .decrypt_in_place_detached(
                    aes_gcm_siv::Nonce::from_slice(nonce),
                    aad,
                    buf,
                    tag.into(),
                )
                .map_err(|_| ())
        }
        #[cfg(feature = "aws-lc")]
        {
            use aws_lc_rs::aead::{Aad, Nonce};
            self.inner
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    tag,
                    buf,
                )
                .map(|_| ())
                .map_err(|_| ())
        }
    }
}

/// What a [`KeyProvider`] can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The wrapped key names a root key version this provider does not hold.
    #[error(
        "root key version {0} is not in the key provider; add that version back to the key \
         file (a retired version cannot open data still wrapped under it)"
    )]
    UnknownVersion(u32),
    /// The wrapped key did not authenticate under the root key version it names.
    #[error("a wrapped key did not authenticate under the root key")]
    Authentication,
    /// The wrapped blob is malformed.
    #[error("malformed wrapped key: {0}")]
    Malformed(String),
    /// The provider cannot be reached or used now (KMS down, no randomness, bad key file).
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// The provider cannot add or retire root key versions (for example a root key passed in
    /// an environment variable, which chatvault cannot rewrite).
    #[error("the key provider cannot add or retire root key versions: {0}")]
    CannotRotate(String),
}

impl ProviderError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_))
    }
}

/// The holder of the root key. It wraps and unwraps keys and never hands out the root key's
/// bytes, so that a KMS or an HSM can implement it.
///
/// Outcomes: `wrap` returns an opaque blob that names the root key version it used; `unwrap`
/// returns the key, or [`ProviderError::UnknownVersion`] (not mine), or
/// [`ProviderError::Authentication`] (wrong key or altered blob), or another error (failed).
/// `aad` must be bound into the wrap, so that a blob moved elsewhere fails to unwrap.
pub trait KeyProvider: Send + Sync + 'static {
    /// Root key version that new wraps use.
    fn current_version(&self) -> u32;
    /// Wraps `key` under the current root key version, binding `aad`.
    fn wrap(&self, key: &SecretKey, aad: &[u8]) -> Result<Vec<u8>, ProviderError>;
    /// Unwraps a blob produced by [`KeyProvider::wrap`] with the same `aad`.
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<SecretKey, ProviderError>;
    /// Root key versions held, lowest first. Default: only the current one.
    fn versions(&self) -> Vec<u32> {
        vec![self.current_version()]
    }
    /// Adds a fresh root key version and makes it current; durable (for a key file: written
    /// and fsynced) before it returns. The vault calls this when it re-versions key paths after
    /// crypto-shredding (see [`crate::Vault::purge`]). Default:
    /// [`ProviderError::CannotRotate`].
    fn add_version(&self) -> Result<u32, ProviderError> {
        Err(ProviderError::CannotRotate(
            "this key provider does not implement add_version".into(),
        ))
    }
    /// Destroys a root key version for good (durably). Anything still wrapped under it can
    /// never be unwrapped again: the vault retires only versions that nothing it holds uses.
    /// Retiring a version the provider does not hold is not an error. The current version
    /// cannot be retired. Default: [`ProviderError::CannotRotate`].
    fn retire_version(&self, version: u32) -> Result<(), ProviderError> {
        let _ = version;
        Err(ProviderError::CannotRotate(
            "this key provider does not implement retire_version".into(),
        ))
    }
    /// Reads the root key versions again from where they are stored, for a reader beside the
    /// process that rotates them: a read-only secondary ([`crate::Vault::catch_up`]) calls this
    /// before it reads what the writer wrapped since (a shred or a purge adds a root key version
    /// and retires the old one). Default: nothing (the provider always answers with its
    /// current versions, as a KMS does).
    fn reload(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Environment variable that may hold the root key instead of a key file (same text format as
/// the key file's key lines: `VERSION:HEX`, several separated by commas, or a bare 64-hex-digit
/// key meaning version 1).
pub const ROOT_KEY_ENV: &str = "CHATVAULT_ROOT_KEY";

const KEY_FILE_MAGIC: &str = "chatvault-root-key-v1";
const ROOT_WRAP_VERSION: u8 = 1;

/// Root keys held in memory, loaded from a key file or the environment: the embedded default
/// [`KeyProvider`].
///
/// Key file format (UTF-8 text, mode 0600, kept outside the data directory):
/// ```text
/// chatvault-root-key-v1
/// 1:<64 hex digits>
/// 2:<64 hex digits>      (after a rotation; the highest version is current)
/// ```
/// Lines starting with `#` are comments.
///
/// Wrapped blob (65 bytes): `fmt=1 (u8) | root version (u32 BE) | nonce (12) | ct (32) | tag (16)`,
/// sealed with AES-256-GCM-SIV under that root key version, AAD = caller's AAD.
///
/// Rotation ([`KeyProvider::add_version`], [`KeyProvider::retire_version`]): a provider loaded
/// from a key file rewrites that file (a temporary file in the same directory, mode 0600,
/// fsynced, renamed over the old one, directory fsynced), so that a crash leaves either the old
/// or the new file; one made with [`StaticKeyProvider::ephemeral`] changes only in memory (for
/// tests); one given its keys by the application ([`StaticKeyProvider::single`],
/// [`StaticKeyProvider::parse`]) or parsed from [`ROOT_KEY_ENV`] cannot rotate
/// ([`ProviderError::CannotRotate`]). A key file belongs to one vault: the vault retires versions
/// it no longer uses.
pub struct StaticKeyProvider {
    keys: RwLock<Vec<(u32, Cipher, SecretKey)>>,
    source: KeySource,
}

/// Where a [`StaticKeyProvider`]'s keys came from, and so where rotations go.
#[derive(Debug, Clone)]
enum KeySource {
    /// Given by the application ([`StaticKeyProvider::single`], [`StaticKeyProvider::parse`]):
    /// chatvault cannot store a new version where the application keeps its key.
    Fixed,
    /// [`StaticKeyProvider::ephemeral`]: versions live in memory only.
    Ephemeral,
    File(PathBuf),
    Env,
}

impl fmt::Debug for StaticKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeyProvider")
            .field("versions", &self.versions())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl StaticKeyProvider {
    /// A provider holding one root key, given by the application, as version 1. It cannot add
    /// or retire versions ([`ProviderError::CannotRotate`]): a new version would be lost when the
    /// process exits, and the vault with it. So a purge after crypto-shredding cannot protect
    /// old copies of the data directory with it (`PurgeReport::old_copies_exposed`); use a key
    /// file ([`StaticKeyProvider::from_file`]) or a provider that stores its versions.
    pub fn single(key: SecretKey) -> Self {
        let cipher = key.cipher();
        StaticKeyProvider {
            keys: RwLock::new(vec![(1, cipher, key)]),
            source: KeySource::Fixed,
        }
    }

    /// A provider holding one root key as version 1 whose added versions live in memory only,
    /// lost at exit: for tests and throwaway vaults, never for data that must outlive the
    /// process (a vault re-versioned under it cannot be opened again once it is gone).
    pub fn ephemeral(key: SecretKey) -> Self {
        let mut p = Self::single(key);
        p.source = KeySource::Ephemeral;
        p
    }

    /// Parses key-file text (see the type's docs).
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, KEY_FILE_MAGIC)) => {}
            _ => {
                return Err(ProviderError::Unavailable(format!(
                    "not a chatvault key file (its first line that is not a comment must be \
                     `{KEY_FILE_MAGIC}`)"
                )))
            }
        }
        Self::parse_key_lines(lines, |n| format!("line {n}"), "key file")
    }

    /// Parses the value of [`ROOT_KEY_ENV`]: a bare 64-hex-digit key (version 1), or
    /// `VERSION:HEX` entries separated by commas.
    pub fn parse_env_value(value: &str) -> Result<Self, ProviderError> {
        let value = value.trim();
        let expected = "expected the root key as 64 hex digits, or `VERSION:HEX` entries \
                        separated by commas (as in the key file)";
        if value.is_empty() {
            return Err(ProviderError::Unavailable(format!(
                "{ROOT_KEY_ENV} is set but empty: set it to the root key ({expected}), or \
                 unset it to use a key file"
            )));
        }
        if !value.contains(':') {
            // A bare key. Never echo it: it may be a real key with a typo.
            let hex_digits = value.chars().filter(char::is_ascii_hexdigit).count();
            let n = value.chars().count();
            if n == 2 * KEY_LEN && hex_digits == n {
                return Self::parse_key_lines(
                    std::iter::once((1, format!("1:{value}").as_str())),
                    |_| String::new(),
                    ROOT_KEY_ENV,
                );
            }
            let what = if hex_digits == n {
                format!("{n} hex digits")
            } else {
                format!("{n} characters, {} of them not hex digits", n - hex_digits)
            };
            return Err(ProviderError::Unavailable(format!(
                "{ROOT_KEY_ENV} is not a valid root key: {expected}; it holds {what}"
            )));
        }
        Self::parse_key_lines(
            value
                .split(',')
                .map(str::trim)
                .enumerate()
                .map(|(n, l)| (n + 1, l)),
            |n| format!("entry {n}"),
            ROOT_KEY_ENV,
        )
    }

    /// `loc` names an entry (`line 3`, `entry 2`) and `source` the whole (`CHATVAULT_ROOT_KEY`,
    /// `the key file`), for error messages.
    fn parse_key_lines<'a>(
        lines: impl Iterator<Item = (usize, &'a str)>,
        loc: impl Fn(usize) -> String,
        source: &str,
    ) -> Result<Self, ProviderError> {
        let at = |n: usize| {
            let l = loc(n);
            if l.is_empty() {
                format!("{source}: ")
            } else {
                format!("{source}, {l}: ")
            }
        };
        let mut keys: Vec<(u32, Cipher, SecretKey)> = Vec::new();
        for (n, line) in lines {
            let (v, hexkey) = line.split_once(':').ok_or_else(|| {
                ProviderError::Unavailable(format!(
                    "{}expected `VERSION:HEX` (a key version, a colon, 64 hex digits)",
                    at(n)
                ))
            })?;
            let version: u32 = v.trim().parse().map_err(|_| {
                ProviderError::Unavailable(format!(
                    "{}the key version before `:` must be a positive integer",
                    at(n)
                ))
            })?;
            if version == 0 {
                return Err(ProviderError::Unavailable(format!(
                    "{}key version 0 is reserved; versions start at 1",
                    at(n)
                )));
            }
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(hexkey.trim(), bytes.as_mut()).map_err(|_| {
                ProviderError::Unavailable(format!(
                    "{}the key after `{version}:` must be exactly {} hex digits",
                    at(n),
                    2 * KEY_LEN
                ))
            })?;
            if keys.iter().any(|(v, _, _)| *v == version) {
                return Err(ProviderError::Unavailable(format!(
                    "{}root key version {version} appears twice",
                    at(n)
                )));
            }
            let key = SecretKey::from_bytes(*bytes);
            keys.push((version, key.cipher(), key));
        }
        if keys.is_empty() {
            return Err(ProviderError::Unavailable(format!(
                "{source} holds no root key (expected `VERSION:HEX` lines)"
            )));
        }
        keys.sort_by_key(|(v, _, _)| *v);
        Ok(StaticKeyProvider {
            keys: RwLock::new(keys),
            source: KeySource::Fixed,
        })
    }

    /// Loads a key file. Refuses a file that others can read (mode must not grant group or
    /// other any access) on Unix.
    pub fn from_file(path: &Path) -> Result<Self, ProviderError> {
        let unavailable = |msg: String| ProviderError::Unavailable(msg);
        let meta = std::fs::metadata(path).map_err(|e| {
            unavailable(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "key file {} does not exist; pass the key file that `chatvault init` wrote",
                    path.display()
                )
            } else {
                format!("cannot read key file {}: {e}", path.display())
            })
        })?;
        if meta.is_dir() {
            return Err(unavailable(format!(
                "key file {} is a directory; pass the path of the key file itself (the file \
                 that `chatvault init` wrote)",
                path.display()
            )));
        }
        if !meta.is_file() {
            return Err(unavailable(format!(
                "key file {} is not a regular file; pass the key file that `chatvault init` wrote",
                path.display()
            )));
        }
        let not_a_key_file = || {
            unavailable(format!(
                "{} is not a chatvault key file (its first line that is not a comment must be \
                 `{KEY_FILE_MAGIC}`); pass the key file that `chatvault init` wrote",
                path.display()
            ))
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                not_a_key_file()
            } else {
                unavailable(format!("cannot read key file {}: {e}", path.display()))
            }
        })?);
        // Is it a key file at all? (Before the mode check, so that a wrong path is not met
        // with advice to chmod it.)
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        if first != Some(KEY_FILE_MAGIC) {
            return Err(not_a_key_file());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(unavailable(format!(
                    "key file {} has mode {:o}, so group or others may read it; make it \
                     private with `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        // Name the file in parse errors ("key file, line 3: ..." -> "key file P, line 3: ...").
        let mut p = Self::parse(&text).map_err(|e| match e {
            ProviderError::Unavailable(m) => unavailable(match m.strip_prefix("key file") {
                Some(rest) => format!("key file {}{rest}", path.display()),
                None => format!("{} is {m}", path.display()),
            }),
            e => e,
        })?;
        p.source = KeySource::File(path.to_path_buf());
        Ok(p)
    }

    /// Marks a provider parsed with [`StaticKeyProvider::parse_env_value`] as coming from the
    /// environment: it then refuses to rotate (a new version would be lost at exit).
    pub fn from_env_source(mut self) -> Self {
        self.source = KeySource::Env;
        self
    }

    /// Writes the key file from `keys` (atomically: `fsutil::write_atomic`, mode 0600).
    fn write_key_file(path: &Path, keys: &[(u32, Cipher, SecretKey)]) -> std::io::Result<()> {
        let text = Self::key_file_text(keys);
        crate::fsutil::write_atomic(path, text.as_bytes(), true)
    }

    /// The key file's text for `keys` (what [`StaticKeyProvider::parse`] reads back).
    fn key_file_text(keys: &[(u32, Cipher, SecretKey)]) -> Zeroizing<String> {
        let mut text = Zeroizing::new(format!(
            "# chatvault root key. Keep it secret and back it up apart from the vault:\n\
             # without it the vault can never be read again. The highest version is current;\n\
             # chatvault adds and retires versions itself (at each shred and erasure, and at purges).\n\
             {KEY_FILE_MAGIC}\n"
        ));
        for (v, _, k) in keys {
            text.push_str(&format!(
                "{v}:{}\n",
                Zeroizing::new(hex::encode(k.expose())).as_str()
            ));
        }
        text
    }

    /// This provider's keys as key-file text, for fuzzing the key-file parser's round trip
    /// (`chatvault::fuzzing`); the text holds the keys.
    pub(crate) fn to_key_file_text(&self) -> Zeroizing<String> {
        Self::key_file_text(&self.keys.read())
    }

    /// Persists `keys` where this provider's keys came from.
    fn persist(&self, keys: &[(u32, Cipher, SecretKey)]) -> Result<(), ProviderError> {
        match &self.source {
            KeySource::Ephemeral => Ok(()),
            KeySource::Fixed => Err(ProviderError::CannotRotate(
                "the root key was given by the application (StaticKeyProvider::single or \
                 parse), so a new version could not be stored and would be lost at exit; use a \
                 key file (StaticKeyProvider::from_file) or a provider that stores its versions"
                    .into(),
            )),
            KeySource::Env => Err(ProviderError::CannotRotate(format!(
                "the root key came from {ROOT_KEY_ENV}, which chatvault cannot rewrite; use a \
                 key file (--key-file) so that root key versions can be added and retired"
            ))),
            KeySource::File(path) => Self::write_key_file(path, keys).map_err(|e| {
                ProviderError::Unavailable(format!(
                    "cannot rewrite key file {}: {e} (the file is unchanged)",
                    path.display()
                ))
            }),
        }
    }

    /// Loads the root key from [`ROOT_KEY_ENV`] if it is set, else from `key_file`.
    pub fn from_env_or_file(key_file: Option<&Path>) -> Result<Self, ProviderError> {
        if let Ok(v) = std::env::var(ROOT_KEY_ENV) {
            let v = Zeroizing::new(v);
            return Self::parse_env_value(&v).map(StaticKeyProvider::from_env_source);
        }
        match key_file {
            Some(p) => Self::from_file(p),
            None => Err(ProviderError::Unavailable(format!(
                "no root key: pass --key-file (or set CHATVAULT_KEY_FILE) with the key file \
                 that `chatvault init` wrote, or set {ROOT_KEY_ENV}"
            ))),
        }
    }

    /// Creates a new key file holding one fresh root key (version 1), with mode 0600.
    /// Fails if the file exists. The file is fsynced before this returns.
    pub fn create_key_file(path: &Path) -> Result<Self, std::io::Error> {
        use std::io::Write;
        let key = SecretKey::generate().map_err(std::io::Error::other)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        let text = Zeroizing::new(format!(
            "# chatvault root key. Keep it secret and back it up apart from the vault:\n\
             # without it the vault can never be read again.\n{KEY_FILE_MAGIC}\n1:{}\n",
            hex::encode(key.expose())
        ));
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        let mut p = Self::single(key);
        p.source = KeySource::File(path.to_path_buf());
        Ok(p)
    }

    /// Root key versions held, lowest first.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.read().iter().map(|(v, _, _)| *v).collect()
    }
}

impl KeyProvider for StaticKeyProvider {
    fn current_version(&self) -> u32 {
        self.keys.read().last().map(|(v, _, _)| *v).unwrap_or(0)
    }

    fn versions(&self) -> Vec<u32> {
        StaticKeyProvider::versions(self)
    }

    fn add_version(&self) -> Result<u32, ProviderError> {
        let mut keys = self.keys.write();
        let v = keys
            .last()
            .map(|(v, _, _)| *v)
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| ProviderError::CannotRotate("root key version overflow".into()))?;
        let key = SecretKey::generate()?;
        let mut next: Vec<(u32, Cipher, SecretKey)> = keys
            .iter()
            .map(|(v, _, k)| (*v, k.cipher(), k.clone()))
            .collect();
        next.push((v, key.cipher(), key));
        self.persist(&next)?;
        *keys = next;
        Ok(v)
    }

    /// A provider loaded from a key file reads the file again (another process may have
    /// rotated it); the others have nothing to reload.
    fn reload(&self) -> Result<(), ProviderError> {
        let KeySource::File(path) = &self.source else {
            return Ok(());
        };
        let fresh = StaticKeyProvider::from_file(path)?;
        let keys = std::mem::take(&mut *fresh.keys.write());
        *self.keys.write() = keys;
        Ok(())
    }

    fn retire_version(&self, version: u32) -> Result<(), ProviderError> {
        let mut keys = self.keys.write();
        if keys.last().map(|(v, _, _)| *v) == Some(version) {
            return Err(ProviderError::CannotRotate(format!(
                "root key version {version} is the current version and cannot be retired"
            )));
        }
        if !keys.iter().any(|(v, _, _)| *v == version) {
            return Ok(());
        }
        let next: Vec<(u32, Cipher, SecretKey)> = keys
            .iter()
            .filter(|(v, _, _)| *v != version)
            .map(|(v, _, k)| (*v, k.cipher(), k.clone()))
            .collect();
        self.persist(&next)?;
        *keys = next;
        Ok(())
    }

    fn wrap(&self, key: &SecretKey, aad: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let keys = self.keys.read();
        let (version, cipher, _) = keys
            .last()
            .ok_or_else(|| ProviderError::Unavailable("no root key".into()))?;
        let mut out = Vec::with_capacity(5 + NONCE_LEN + KEY_LEN + TAG_LEN);
        out.push(ROOT_WRAP_VERSION);
        out.extend_from_slice(&version.to_be_bytes());
        let mut full_aad = Vec::with_capacity(aad.len() + 5);
        full_aad.extend_from_slice(&out);
        full_aad.extend_from_slice(aad);
        seal_into(cipher, &full_aad, key.expose(), &mut out)
            .map_err(|_| ProviderError::Malformed("seal failed".into()))?;
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<SecretKey, ProviderError> {
        if wrapped.len() != 5 + NONCE_LEN + KEY_LEN + TAG_LEN {
            return Err(ProviderError::Malformed(format!(
                "{} bytes, expected {}",
                wrapped.len(),
                5 + NONCE_LEN + KEY_LEN + TAG_LEN
            )));
        }
        if wrapped[0] != ROOT_WRAP_VERSION {
            return Err(ProviderError::Malformed(format!(
                "unknown root wrap format {}",
                wrapped[0]
            )));
        }
        let version = u32::from_be_bytes([wrapped[1], wrapped[2], wrapped[3], wrapped[4]]);
        let keys = self.keys.read();
        let (_, cipher, _) = keys
            .iter()
            .find(|(v, _, _)| *v == version)
            .ok_or(ProviderError::UnknownVersion(version))?;
        let mut full_aad = Vec::with_capacity(aad.len() + 5);
        full_aad.extend_from_slice(&wrapped[..5]);
        full_aad.extend_from_slice(aad);
        let pt = open_detached(cipher, &full_aad, &wrapped[5..])
            .map_err(|_| ProviderError::Authentication)?;
        key_from_plaintext(&pt).ok_or_else(|| ProviderError::Malformed("key length".into()))
    }
}

pub(crate) fn key_from_plaintext(pt: &[u8]) -> Option<SecretKey> {
    let bytes: [u8; KEY_LEN] = pt.try_into().ok()?;
    Some(SecretKey::from_bytes(bytes))
}

/// Seals `plaintext` with AES-256-GCM-SIV under a fresh random 96-bit nonce, appending
/// `nonce || ciphertext || tag` to `out`.
///
/// Nonces come from `rand`'s thread-local CSPRNG (ChaCha12, seeded and periodically reseeded
/// from the OS), about 6 ns a draw instead of ~380 ns for a `getrandom` system call. GCM-SIV is
/// nonce-misuse resistant (RFC 8452 section 1), so even a repeated nonce leaks only whether two
/// plaintexts under one key are equal.
pub(crate) fn seal_into(
    cipher: &Cipher,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    seal_with_nonce_into(cipher, &nonce, aad, plaintext, out)
}

fn seal_with_nonce_into(
    cipher: &Cipher,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    // Fails only when the plaintext exceeds the AEAD's limit (2^36 bytes, RFC 8452 section 6).
    match cipher.seal_in_place(nonce, aad, &mut out[start..]) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(())
        }
        Err(_) => {
            out[start..].zeroize();
            out.truncate(start - NONCE_LEN);
            Err(SealError)
        }
    }
}

/// The sealing primitive with a caller-chosen nonce, for known-answer tests (RFC 8452
/// appendix C) only: chatvault itself always draws a fresh random nonce. Returns
/// `nonce || ciphertext || tag`.
#[doc(hidden)]
pub fn seal_with_nonce_for_kat(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    seal_with_nonce_into(&key.cipher(), nonce, aad, plaintext, &mut out).ok()?;
    Some(out)
}

/// The opening primitive, for known-answer tests: opens `nonce || ciphertext || tag`.
#[doc(hidden)]
pub fn open_for_kat(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    open_detached(&key.cipher(), aad, sealed)
        .ok()
        .map(|z| z.to_vec())
}

/// AES-GCM-SIV refused to seal (plaintext over 2^36 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealError;

/// Opens `nonce || ciphertext || tag`. Returns the plaintext in a buffer zeroized on drop.
pub(crate) fn open_detached(
    cipher: &Cipher,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ()> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(());
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = Zeroizing::new(ct.to_vec());
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| ())?;
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| ())?;
    cipher.open_in_place(nonce, aad, &mut buf, tag)?;
    Ok(buf)
}

/// HKDF-SHA256 (RFC 5869) with salt [`labels::HKDF_SALT`], `ikm` concatenated from parts, and
/// `info = label || info_tail`, producing one 256-bit key.
pub(crate) fn derive_key(ikm_parts: &[&SecretKey], label: &[u8], info_tail: &[u8]) -> SecretKey {
    let mut ikm = Zeroizing::new(Vec::with_capacity(KEY_LEN * ikm_parts.len()));
    for k in ikm_parts {
        ikm.extend_from_slice(k.expose());
    }
    let hk = Hkdf::<Sha256>::new(Some(labels::HKDF_SALT), &ikm);
    let mut info = Vec::with_capacity(label.len() + info_tail.len());
    info.extend_from_slice(label);
    info.extend_from_slice(info_tail);
    let mut okm = [0u8; KEY_LEN];
    // expand only fails for outputs longer than 255 * 32 bytes; 32 is always fine.
    if hk.expand(&info, &mut okm).is_err() {
        okm = [0u8; KEY_LEN];
    }
    let k = SecretKey::from_bytes(okm);
    okm.zeroize();
    k
}

/// HMAC-SHA256 of `data` under `key`, truncated to 16 bytes: the blind index used for the
/// directories, so that RocksDB keys never contain an external name or id.
pub(crate) fn blind_index(key: &SecretKey, domain: &[u8], data: &[u8]) -> [u8; 16] {
    // Hmac::new_from_slice accepts any key length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key.expose()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(&(domain.len() as u32).to_be_bytes());
    mac.update(domain);
    mac.update(data);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[cold]
pub(crate) fn unreachable_hmac() -> Hmac<Sha256> {
    // HMAC takes keys of any length; this branch cannot be reached. Build a keyed MAC anyway
    // rather than panic.
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

/// An unwrapped key with its ready cipher (building one costs ~140 ns, so it is cached with the
/// key). Both are zeroized on drop (the `aes` crate's `zeroize` feature covers the round keys).
pub struct ReadyKey {
    pub(crate) key: SecretKey,
    pub(crate) cipher: Cipher,
    /// Version of this key.
    pub(crate) version: u32,
}

impl ReadyKey {
    pub(crate) fn new(key: SecretKey, version: u32) -> Arc<Self> {
        let cipher = key.cipher();
        Arc::new(ReadyKey {
            key,
            cipher,
            version,
        })
    }
}

impl fmt::Debug for ReadyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Bounded LRU cache of unwrapped keys. Evicted entries are dropped (and so zeroized) once the
/// last user lets go of them.
pub(crate) struct KeyCache<K: Hash + Eq> {
    inner: Mutex<lru::LruCache<K, Arc<ReadyKey>>>,
}

impl<K: Hash + Eq + Clone> KeyCache<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        KeyCache {
            inner: Mutex::new(lru::LruCache::new(cap)),
        }
    }

    pub(crate) fn get(&self, id: &K) -> Option<Arc<ReadyKey>> {
        self.inner.lock().get(id).cloned()
    }

    pub(crate) fn insert(&self, id: K, key: Arc<ReadyKey>) {
        self.inner.lock().put(id, key);
    }

    pub(crate) fn remove_where(&self, mut pred: impl FnMut(&K) -> bool) {
        let mut c = self.inner.lock();
        let doomed: Vec<K> = c
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            c.pop(&k);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len()
    }
}

/// Whether `inner` is `outer` or lies inside it (after resolving symlinks; `inner` need not
/// exist yet). Used to refuse a key file inside the data directory.
pub fn path_is_inside(inner: &Path, outer: &Path) -> bool {
    let canon = |p: &Path| -> PathBuf {
        // The key file may not exist yet: canonicalize its parent.
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) if !p.exists() => {
                std::fs::canonicalize(if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                })
                .map(|c| c.join(name))
                .unwrap_or_else(|_| p.to_path_buf())
            }
            _ => std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()),
        }
    };
    canon(inner).starts_with(canon(outer))
}
