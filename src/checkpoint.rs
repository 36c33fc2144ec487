//! Consistent copies of a live vault ([`Vault::checkpoint`]).
//!
//! A checkpoint is RocksDB's checkpoint of the database (memtables flushed first; SST files
//! hard-linked when the target is on the same file system, copied otherwise; MANIFEST, OPTIONS
//! and live WAL copied) plus the vault's `KEYCHECK` file, so that [`Vault::open`] with the same
//! root key provider opens it. It is built in a staging directory next to the target and
//! renamed into place only when complete (KEYCHECK included, fsynced), so a crash never leaves a
//! half-made checkpoint under the target's name.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::keycheck::KEYCHECK_FILE;
use crate::keys::path_is_inside;
use crate::vault::Vault;

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
        if path_is_inside(dir, &i.path) {
            return Err(Error::InvalidInput(format!(
                "checkpoint target {} is inside the vault's data directory {}; choose a \
                 directory outside it",
                dir.display(),
                i.path.display()
            )));
        }
        let target_exists = check_target(dir)?;
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

/// Whether `dir` exists (as an empty directory). A file or a non-empty directory is refused.
fn check_target(dir: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspecting", dir)(e)),
        Ok(m) if !m.is_dir() => Err(Error::AlreadyExists {
            what: format!(
                "{} (not a directory; a checkpoint needs a new or empty directory)",
                dir.display()
            ),
        }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(Error::io("listing", dir))?;
            if entries.next().is_some() {
                return Err(Error::AlreadyExists {
                    what: format!(
                        "a non-empty directory at {} (a checkpoint needs a new or empty \
                         directory)",
                        dir.display()
                    ),
                });
            }
            Ok(true)
        }
    }
}
