//! Consistent copies of a live vault ([`Vault::checkpoint`]).
//!
//! A checkpoint is RocksDB's checkpoint of the database (memtables flushed first; SST files
//! hard-linked when the target is on the same file system, copied otherwise; MANIFEST, OPTIONS
//! and live WAL copied) plus the vault's `KEYCHECK` file, so that [`Vault::open`] with the same
//! root key provider opens it. It is built in a staging directory next to the target and
//! renamed into place only when complete (KEYCHECK included, fsynced), so a crash never leaves a
//! half-made checkpoint under the target's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::{self, be32, be64};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keycheck::{self, KEYCHECK_FILE};
use crate::keys::{path_is_inside, KeyProvider, ProviderError};
use crate::vault::{cf, KeyId, Vault, VaultOptions};

/// What [`Vault::restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Files copied from the checkpoint (RocksDB's SST, MANIFEST, OPTIONS, WAL and CURRENT
    /// files, and `KEYCHECK`).
    pub files_copied: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Tenants whose KEK unwrapped under the given root key (shredded tenants have none).
    pub tenant_keks: u64,
    /// Tenants listed after the restore (not shredded).
    pub tenants: u64,
    /// Root key version the restored vault's tenant KEKs are wrapped under (the highest one
    /// found; 0 if it holds no tenant).
    pub root_key_version: u32,
}

impl Vault {
    /// Writes a consistent copy of the vault to `dir` while the vault stays open and writes go
    /// on: every write acknowledged before the call started is in the copy; writes made during
    /// the call may or may not be. `dir` must not exist or be an empty directory (its parent
    /// is created if missing), and must not lie inside the vault's data directory.
    ///
    /// The copy is a vault of its own: open it with [`Vault::open`] and the same root key
    /// provider. SST files are hard links to the vault's own where the file system allows
    /// (little extra space until compaction rewrites them). Policy, hold, shred and purge calls
    /// wait while the copy is made (they share one lock), so the copy's `KEYCHECK` matches its
    /// keys. A shred or purge of the vault after the checkpoint does not reach the copy: it is
    /// an old copy of the data directory in the sense of DESIGN.md §4 and §7.
    ///
    /// Errors: [`Error::AlreadyExists`] if `dir` is a file or a non-empty directory;
    /// [`Error::InvalidInput`] if `dir` is or lies inside the vault's data directory;
    /// [`Error::Storage`] if RocksDB cannot make the checkpoint; [`Error::Io`] for the
    /// file-system steps (staging directory, `KEYCHECK` copy, rename, fsync).
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        let i = &self.inner;
        let dir = dir.as_ref();
        i.writable("making a checkpoint")?;
        if path_is_inside(dir, &i.path) {
            return Err(Error::InvalidInput(format!(
                "checkpoint target {} is inside the vault's data directory {}; choose a \
                 directory outside it",
                dir.display(),
                i.path.display()
            )));
        }
        let target_exists = check_target(dir, "a checkpoint")?;
        let name = dir
            .file_name()
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "checkpoint target {} has no directory name",
                    dir.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(Error::io("creating", &parent))?;
        let staging = parent.join(format!(".{name}.chatvault-checkpoint"));
        // A leftover of a checkpoint interrupted by a crash (RocksDB cleans its own `.tmp`).
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(Error::io("removing", &staging))?;
        }

        // Shred, purge (which will rewrite KEYCHECK when it retires root key versions) and
        // policy changes wait: the copy's KEYCHECK and key records belong together.
        let _g = i.policy_lock.lock();
        let result = (|| {
            let keycheck_src = i.path.join(KEYCHECK_FILE);
            let keycheck =
                std::fs::read(&keycheck_src).map_err(Error::io("reading", &keycheck_src))?;
            rocksdb::checkpoint::Checkpoint::new(&i.db)
                .and_then(|c| c.create_checkpoint(&staging))
                .map_err(Error::storage("making a checkpoint"))?;
            let copy = staging.join(KEYCHECK_FILE);
            fsutil::write_atomic(&copy, &keycheck, false).map_err(Error::io("writing", &copy))?;
            if target_exists {
                // Empty (checked above); rename cannot replace a directory everywhere.
                std::fs::remove_dir(dir)
                    .map_err(Error::io("replacing the empty directory", dir))?;
            }
            std::fs::rename(&staging, dir).map_err(Error::io("renaming the checkpoint to", dir))?;
            fsutil::sync_dir(&parent).map_err(Error::io("syncing directory", &parent))
        })();
        if result.is_err() && staging.exists() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result?;
        tracing::info!(path = %i.path.display(), checkpoint = %dir.display(), "checkpoint made");
        Ok(())
    }
}

impl Vault {
    /// Restores a checkpoint made by [`Vault::checkpoint`] (or a copy of a closed vault's data
    /// directory) into `data_dir`, a new or empty directory, and checks that it opens with
    /// `provider` before it declares success. Nothing is written to `data_dir` unless every
    /// check passes: the copy is made in a staging directory beside it (`.NAME.chatvault-restore`),
    /// opened there (RocksDB recovers its WAL; erasures queued under holds that are gone are
    /// carried out), every tenant KEK is unwrapped and every tenant record opened, and only then
    /// is it renamed into place. Files are copied (never hard-linked), each fsynced.
    ///
    /// Restoring never makes destroyed data readable again *if a purge has run since the
    /// shred*: the purge retired the root key version the checkpoint's keys are wrapped under,
    /// so the restore is refused with [`Error::RootKeyVersionRetired`] (DESIGN.md §7, "What this
    /// means for backups"). A checkpoint taken after a shred keeps the shred (its tombstones and
    /// destroyed keys are in it). A checkpoint taken before a shred with no purge since still
    /// holds the keys: see DESIGN.md §7, "Restoring a checkpoint".
    ///
    /// Errors: [`Error::InvalidInput`] if `checkpoint` is not a chatvault checkpoint (no
    /// `KEYCHECK` or no RocksDB `CURRENT` file), is a data directory that a process holds open
    /// for writing (Linux: its `LOCK` is held), or the two directories overlap (the same
    /// directory, or one inside the other);
    /// [`Error::AlreadyExists`] if `data_dir` is a file or a non-empty directory;
    /// [`Error::WrongRootKey`] if the root key does not open it; [`Error::RootKeyVersionRetired`]
    /// if it needs a retired root key version; [`Error::Io`], [`Error::Storage`].
    pub fn restore(
        checkpoint: impl AsRef<Path>,
        data_dir: impl AsRef<Path>,
        provider: Arc<dyn KeyProvider>,
        opts: VaultOptions,
    ) -> Result<RestoreReport> {
        let from = checkpoint.as_ref();
        let to = data_dir.as_ref();
        match std::fs::metadata(from) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::InvalidInput(format!(
                    "{} is a file, not a checkpoint directory; give the directory that \
                     `chatvault checkpoint` (Vault::checkpoint) made",
                    from.display()
                )))
            }
            Err(e) => return Err(Error::io("reading the checkpoint", from)(e)),
        }
        for (file, what) in [
            (KEYCHECK_FILE, "no KEYCHECK file"),
            ("CURRENT", "no RocksDB CURRENT file"),
        ] {
            if !from.join(file).is_file() {
                return Err(Error::InvalidInput(format!(
                    "{} is not a chatvault checkpoint ({what}); give the directory that \
                     `chatvault checkpoint` (Vault::checkpoint) made",
                    from.display()
                )));
            }
        }
        if path_is_inside(to, from) || path_is_inside(from, to) {
            return Err(Error::InvalidInput(format!(
                "the restore target {} and the checkpoint {} overlap; restore into a directory \
                 outside the checkpoint",
                to.display(),
                from.display()
            )));
        }
        // A data directory that a process holds open for writing is not a checkpoint: copying
        // its files while RocksDB writes them gives no consistent copy.
        if let Some(pid) = fsutil::lock_holder(&from.join("LOCK")) {
            return Err(Error::InvalidInput(format!(
                "{} is the data directory of a vault that a process (pid {pid}) holds open for \
                 writing, not a checkpoint: its files change while they are copied. Take a \
                 checkpoint of it (`chatvault checkpoint DIR` once that process is stopped, or \
                 Vault::checkpoint inside it) and restore that",
                from.display()
            )));
        }
        let target_exists = check_target(to, "a restore")?;
        // The root key first: nothing is copied for a key that cannot open the copy.
        keycheck::open_copy(from, provider.as_ref())?;

        let name = to
            .file_name()
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "restore target {} has no directory name",
                    to.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let parent = match to.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(Error::io("creating", &parent))?;
        let staging = parent.join(format!(".{name}.chatvault-restore"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(Error::io("removing", &staging))?;
        }
        let result = (|| -> Result<RestoreReport> {
            let (files_copied, bytes_copied) = copy_tree(from, &staging)?;
            let (tenant_keks, tenants, root_key_version) = {
                let v = Vault::open(&staging, provider.clone(), opts)?;
                let (keks, root) = v.check_tenant_keks(from)?;
                let tenants = v.tenants()?.len() as u64;
                v.flush()?;
                (keks, tenants, root)
            };
            fsutil::sync_dir(&staging).map_err(Error::io("syncing directory", &staging))?;
            if target_exists {
                std::fs::remove_dir(to).map_err(Error::io("replacing the empty directory", to))?;
            }
            std::fs::rename(&staging, to)
                .map_err(Error::io("renaming the restored vault to", to))?;
            fsutil::sync_dir(&parent).map_err(Error::io("syncing directory", &parent))?;
            Ok(RestoreReport {
                files_copied,
                bytes_copied,
                tenant_keks,
                tenants,
                root_key_version,
            })
        })();
        if result.is_err() && staging.exists() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        let r = result?;
        tracing::info!(checkpoint = %from.display(), data = %to.display(), "checkpoint restored");
        Ok(r)
    }

    /// Unwraps every tenant KEK: `(count, highest root key version)`. A root key version the
    /// provider lacks gives [`Error::RootKeyVersionRetired`] naming `copy`.
    fn check_tenant_keks(&self, copy: &Path) -> Result<(u64, u32)> {
        let i = &self.inner;
        let (mut n, mut root) = (0u64, 0u32);
        let mut it = i.prefix_iter(cf::KEYS, &[codec::keys::TENANT_KEK])?;
        let mut ids = Vec::new();
        while it.valid() {
            if let Some(k) = it.key() {
                if let (Some(t), Some(v)) =
                    (k.get(1..9).and_then(be64), k.get(9..13).and_then(be32))
                {
                    let parent = it
                        .value()
                        .and_then(|v| v.get(6..10))
                        .and_then(be32)
                        .unwrap_or(0);
                    ids.push((KeyId::TenantKek { t, v }, parent));
                }
            }
            it.next();
        }
        it.status().map_err(Error::storage("reading tenant KEKs"))?;
        drop(it);
        for (id, parent) in ids {
            match i.load_key_uncached(&id) {
                Ok(_) => {
                    n += 1;
                    root = root.max(parent);
                }
                Err(Error::KeyProvider(ProviderError::UnknownVersion(v))) => {
                    return Err(keycheck::retired_or_wrong(copy, i.provider.as_ref(), v))
                }
                Err(e) => return Err(e),
            }
        }
        Ok((n, root))
    }
}

/// Copies every file of `from` (recursively; RocksDB's `LOCK` and info `LOG` files left out)
/// into the new directory `to`, fsyncing each: `(files, bytes)`.
fn copy_tree(from: &Path, to: &Path) -> Result<(u64, u64)> {
    std::fs::create_dir(to).map_err(Error::io("creating", to))?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for e in std::fs::read_dir(from).map_err(Error::io("listing", from))? {
        let e = e.map_err(Error::io("listing", from))?;
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n == "LOCK" || n == "LOG" || n.starts_with("LOG.old") {
            continue;
        }
        let src = e.path();
        let dst = to.join(&name);
        let ft = e.file_type().map_err(Error::io("inspecting", &src))?;
        if ft.is_dir() {
            let (f, b) = copy_tree(&src, &dst)?;
            files += f;
            bytes += b;
        } else if ft.is_file() {
            bytes += std::fs::copy(&src, &dst).map_err(Error::io("copying", &src))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(Error::io("syncing", &dst))?;
            files += 1;
        }
    }
    fsutil::sync_dir(to).map_err(Error::io("syncing directory", to))?;
    Ok((files, bytes))
}

/// Whether `dir` exists (as an empty directory). A file or a non-empty directory is refused.
fn check_target(dir: &Path, what: &str) -> Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspecting", dir)(e)),
        Ok(m) if !m.is_dir() => Err(Error::AlreadyExists {
            what: format!(
                "{} (not a directory; {what} needs a new or empty directory)",
                dir.display()
            ),
        }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(Error::io("listing", dir))?;
            if entries.next().is_some() {
                return Err(Error::AlreadyExists {
                    what: format!(
                        "a non-empty directory at {} ({what} needs a new or empty directory)",
                        dir.display()
                    ),
                });
            }
            Ok(true)
        }
    }
}
