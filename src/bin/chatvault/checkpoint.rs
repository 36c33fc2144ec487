//! `chatvault checkpoint DIR` (`Vault::checkpoint`) and `chatvault restore CHECKPOINT --data
//! DIR` (`Vault::restore`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use chatvault::{Error, Vault, VaultOptions};
use serde_json::json;

use crate::common::{self, Failure, VaultArgs};

/// Shown under `chatvault checkpoint --help`.
pub const CHECKPOINT_EXIT_CODES: &str = "Exit codes: 0 checkpoint made, 1 error (target not \
empty or inside the data directory, vault held by another process, ...), 2 bad usage.";

/// Shown under `chatvault restore --help`.
pub const RESTORE_EXIT_CODES: &str = "Exit codes: 0 restored and checked, 1 error (not a \
checkpoint, target not empty, wrong root key, ...), 2 bad usage, 6 the checkpoint needs a root \
key version the key file no longer holds (taken before a shred, an erasure or a purge that \
re-versioned keys; nothing was written).";

/// Exit code of `restore` when the checkpoint needs a retired root key version.
pub const EXIT_ROOT_KEY_RETIRED: u8 = 6;

#[derive(clap::Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Where to write the checkpoint: a new or empty directory outside the data directory.
    dir: PathBuf,
    /// Print one JSON object: {"checkpoint", "data", "elapsed_ms", "root_key_version"}.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The checkpoint directory (made by `chatvault checkpoint` or Vault::checkpoint).
    checkpoint: PathBuf,
    /// Print one JSON object: {"checkpoint", "data", "files_copied", "bytes_copied",
    /// "tenant_keks", "tenants", "root_key_version"}.
    #[arg(long)]
    json: bool,
}

pub fn checkpoint(args: &CheckpointArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&args.vault, "Vault::checkpoint")?;
    let start = Instant::now();
    {
        let progress = common::Progress::new("checkpoint", args.json);
        progress.step("flushing and linking the files");
        v.checkpoint(&args.dir)?;
    }
    let ms = start.elapsed().as_millis() as u64;
    let root = v.key_stats()?.root_key_version;
    if args.json {
        return common::print_json(
            out,
            &json!({
                "checkpoint": args.dir.display().to_string(),
                "data": args.vault.data.display().to_string(),
                "elapsed_ms": ms,
                "root_key_version": root,
            }),
        );
    }
    writeln!(
        out,
        "checkpoint written to {} in {ms} ms: a consistent copy of the vault (root key version \
         {root}). It opens with this key file until the next shred or erasure (or a purge that \
         destroys expired days' keys) re-versions keys; keep a copy of the key file with it if \
         it must stay restorable (DESIGN.md §7)",
        args.dir.display()
    )?;
    Ok(())
}

pub fn restore(args: &RestoreArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if let Some(key) = args
        .vault
        .key_file
        .as_ref()
        .filter(|f| !f.as_os_str().is_empty())
    {
        common::refuse_key_inside_data(key, &args.checkpoint)?;
    }
    let p = common::provider(&args.vault)?;
    let progress = common::Progress::new("restore", args.json);
    progress.step("copying the files, then opening the copy with the root key");
    let restored = Vault::restore(
        &args.checkpoint,
        &args.vault.data,
        p,
        VaultOptions::default(),
    );
    drop(progress);
    let r = match restored {
        Ok(r) => r,
        Err(e @ Error::RootKeyVersionRetired { .. }) => {
            return Err(Failure {
                code: EXIT_ROOT_KEY_RETIRED,
                message: format!("{e}; nothing was written"),
            }
            .into())
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot restore {} into {} (nothing was written there)",
                args.checkpoint.display(),
                args.vault.data.display()
            )))
        }
    };
    if args.json {
        return common::print_json(
            out,
            &json!({
                "checkpoint": args.checkpoint.display().to_string(),
                "data": args.vault.data.display().to_string(),
                "files_copied": r.files_copied,
                "bytes_copied": r.bytes_copied,
                "tenant_keks": r.tenant_keks,
                "tenants": r.tenants,
                "root_key_version": r.root_key_version,
            }),
        );
    }
    writeln!(
        out,
        "restored {} into {}: {} files ({} bytes) copied; it opens with this root key: {} \
         unwrapped (root key version {}), {} readable",
        args.checkpoint.display(),
        args.vault.data.display(),
        r.files_copied,
        r.bytes_copied,
        common::plural(r.tenant_keks, "tenant KEK"),
        r.root_key_version,
        common::plural(r.tenants, "tenant"),
    )?;
    Ok(())
}
