//! The key-check file: the vault key wrapped by the root key provider, kept in a small file in
//! the data directory (outside RocksDB) so that a wrong root key is caught before RocksDB is
//! opened (opening RocksDB writes its LOG).
//!
//! ```text
//!  0        4     5           21            23           23+len
//!  +--------+-----+-----------+-------------+------------+
//!  | "CVKC" | fmt | vault id  | blob length | root blob  |
//!  |        | =1  | 16 bytes  | u16 BE      | (provider) |
//!  +--------+-----+-----------+-------------+------------+
//!  provider AAD = "chatvault/v1/vault-key" || vault id
//! ```
//! The vault key keys the blind index of tenant names. The file is written atomically (write a
//! temporary file, fsync, rename, fsync the directory): at creation, and again with the same
//! vault key wrapped under a new root key version when the purge re-versions key paths
//! (`rekey.rs`).

use std::path::Path;

use crate::error::{Error, Result};
use crate::keys::{KeyProvider, ProviderError, SecretKey};

/// File name of the key-check file in the data directory.
pub const KEYCHECK_FILE: &str = "KEYCHECK";
const MAGIC: &[u8; 4] = b"CVKC";
const FORMAT: u8 = 1;
const AAD_LABEL: &[u8] = b"chatvault/v1/vault-key";

fn aad(vault_id: &[u8; 16]) -> Vec<u8> {
    let mut a = AAD_LABEL.to_vec();
    a.extend_from_slice(vault_id);
    a
}

/// Creates the key-check file with a fresh vault key. Fails if it exists.
pub(crate) fn create(dir: &Path, provider: &dyn KeyProvider) -> Result<SecretKey> {
    let path = dir.join(KEYCHECK_FILE);
    let mut vault_id = [0u8; 16];
    getrandom::getrandom(&mut vault_id)
        .map_err(|e| ProviderError::Unavailable(format!("OS random source: {e}")))?;
    let key = SecretKey::generate()?;
    if path.exists() {
        return Err(Error::AlreadyExists {
            what: format!("a vault at {}", dir.display()),
        });
    }
    write(dir, provider, &vault_id, &key)?;
    Ok(key)
}

/// Wraps the (unchanged) vault key again under the provider's current root key version and
/// replaces the file atomically, keeping the vault id. Used when the root key gets a new
/// version: a crash leaves the old file (old root version) or the new one, and both versions
/// are in the provider until the old one is retired after this returns.
pub(crate) fn rewrap(dir: &Path, provider: &dyn KeyProvider, vault_key: &SecretKey) -> Result<()> {
    let vault_id = read(dir)?.0;
    write(dir, provider, &vault_id, vault_key)
}

fn write(
    dir: &Path,
    provider: &dyn KeyProvider,
    vault_id: &[u8; 16],
    key: &SecretKey,
) -> Result<()> {
    let path = dir.join(KEYCHECK_FILE);
    let bytes = file_bytes(provider, vault_id, key)?;
    crate::fsutil::write_atomic(&path, &bytes, false).map_err(Error::io("writing", &path))
}

/// The file's bytes: `key` wrapped by `provider` for vault `vault_id`.
pub(crate) fn file_bytes(
    provider: &dyn KeyProvider,
    vault_id: &[u8; 16],
    key: &SecretKey,
) -> Result<Vec<u8>> {
    let blob = provider.wrap(key, &aad(vault_id))?;
    encode(vault_id, &blob)
}

/// The file's bytes for this vault id and provider blob. Errors: [`Error::KeyProvider`] for a
/// blob over 64 KiB.
pub(crate) fn encode(vault_id: &[u8; 16], blob: &[u8]) -> Result<Vec<u8>> {
    let len = u16::try_from(blob.len())
        .map_err(|_| ProviderError::Malformed("wrapped vault key over 64 KiB".into()))?;
    let mut bytes = MAGIC.to_vec();
    bytes.push(FORMAT);
    bytes.extend_from_slice(vault_id);
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(blob);
    Ok(bytes)
}

/// Parses the file's bytes (`what` names it in errors): the vault id and the provider's blob.
/// Errors: [`Error::Corrupt`] (not a key-check file, truncated, bytes after the blob),
/// [`Error::UnsupportedFormat`].
pub(crate) fn decode(bytes: &[u8], what: impl Fn() -> String) -> Result<([u8; 16], Vec<u8>)> {
    if bytes.len() < 23 || &bytes[..4] != MAGIC {
        return Err(Error::corrupt(what(), "not a chatvault key-check file"));
    }
    if bytes[4] != FORMAT {
        return Err(Error::UnsupportedFormat {
            what: "key-check file",
            found: bytes[4],
            supported: FORMAT,
        });
    }
    let mut vault_id = [0u8; 16];
    vault_id.copy_from_slice(&bytes[5..21]);
    let len = u16::from_be_bytes([bytes[21], bytes[22]]) as usize;
    let blob = bytes
        .get(23..23 + len)
        .ok_or_else(|| Error::corrupt(what(), "truncated"))?;
    if bytes.len() != 23 + len {
        return Err(Error::corrupt(
            what(),
            format!(
                "{} bytes after the wrapped vault key (the file was damaged or appended to)",
                bytes.len() - 23 - len
            ),
        ));
    }
    Ok((vault_id, blob.to_vec()))
}

/// Reads the key-check file: the vault id and the provider's blob.
fn read(dir: &Path) -> Result<([u8; 16], Vec<u8>)> {
    let path = dir.join(KEYCHECK_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                // Shown as "... not found" (Error::NotFound).
                what: format!(
                    "vault at {}: its key-check file {}",
                    dir.display(),
                    path.display()
                ),
            });
        }
        Err(e) => return Err(Error::io("reading", &path)(e)),
    };
    decode(&bytes, || format!("key-check file {}", path.display()))
}

/// Reads the key-check file and unwraps the vault key. A root key that does not open it gives
/// [`Error::WrongRootKey`].
pub(crate) fn open(dir: &Path, provider: &dyn KeyProvider) -> Result<SecretKey> {
    let (vault_id, blob) = read(dir)?;
    unwrap_vault_key(dir, &vault_id, &blob, provider)
}

/// Unwraps the vault key from the decoded file of the vault at `dir` (named in errors), as
/// [`open`] does.
pub(crate) fn unwrap_vault_key(
    dir: &Path,
    vault_id: &[u8; 16],
    blob: &[u8],
    provider: &dyn KeyProvider,
) -> Result<SecretKey> {
    let what = || format!("key-check file {}", dir.join(KEYCHECK_FILE).display());
    match provider.unwrap(blob, &aad(vault_id)) {
        Ok(k) => Ok(k),
        Err(ProviderError::Authentication) => Err(Error::WrongRootKey {
            path: dir.to_path_buf(),
        }),
        // A newer version than the key given holds (a bare key after a rotation): name it,
        // since "wrong key" would send the operator looking for another key when the key may
        // be right but given under the wrong version. An older one is most likely an old copy
        // (a backup, a checkpoint) whose version a shred or a purge retired since: say so, as
        // `restore` does.
        Err(ProviderError::UnknownVersion(needed)) if needed > provider.current_version() => {
            Err(Error::RootKeyVersionMissing {
                path: dir.to_path_buf(),
                needed,
                held: provider
                    .versions()
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
        Err(ProviderError::UnknownVersion(v)) => Err(retired_or_wrong(dir, provider, v)),
        Err(ProviderError::Malformed(m)) => Err(Error::corrupt(what(), m)),
        Err(e) => Err(e.into()),
    }
}

/// Like [`open`], for a copy of a vault (a checkpoint or backup being restored): a root key
/// version the provider no longer holds, older than its current one, gives
/// [`Error::RootKeyVersionRetired`] (the copy predates a re-versioning purge) instead of
/// [`Error::WrongRootKey`].
pub(crate) fn open_copy(dir: &Path, provider: &dyn KeyProvider) -> Result<SecretKey> {
    let (vault_id, blob) = read(dir)?;
    match provider.unwrap(&blob, &aad(&vault_id)) {
        Ok(k) => Ok(k),
        Err(ProviderError::UnknownVersion(v)) => Err(retired_or_wrong(dir, provider, v)),
        Err(ProviderError::Authentication) => Err(Error::WrongRootKey {
            path: dir.to_path_buf(),
        }),
        Err(ProviderError::Malformed(m)) => Err(Error::corrupt(
            format!("key-check file {}", dir.join(KEYCHECK_FILE).display()),
            m,
        )),
        Err(e) => Err(e.into()),
    }
}

/// The error for a copy whose keys need root key version `needed`, which `provider` lacks.
pub(crate) fn retired_or_wrong(dir: &Path, provider: &dyn KeyProvider, needed: u32) -> Error {
    if needed < provider.current_version() {
        Error::RootKeyVersionRetired {
            path: dir.to_path_buf(),
            needed,
            held: provider
                .versions()
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    } else {
        Error::WrongRootKey {
            path: dir.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz target `key_files`): bytes after the wrapped vault key were ignored,
    /// so a damaged or appended-to file still opened; only what `write` writes is accepted.
    #[test]
    fn only_the_exact_encoding_decodes() {
        let id = [7u8; 16];
        let blob = [1u8; 65];
        let bytes = encode(&id, &blob).unwrap();
        assert_eq!(decode(&bytes, String::new).unwrap(), (id, blob.to_vec()));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer, String::new),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], String::new),
            Err(Error::Corrupt { .. })
        ));
    }
}
