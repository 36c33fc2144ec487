//! `chatvault key rotate-root|retire-root`: root key versions (`Vault::rotate_root_key`,
//! `Vault::retire_root_key`).

use std::io::Write;

use crate::common::{self, VaultArgs};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Add a new root key version to the key file and wrap the vault key and every tenant KEK
    /// under it. The old version stays in the key file (the vault no longer needs it) until
    /// `retire-root`. Back the key file up again afterwards.
    #[command(after_help = "Exit codes: 0 rotated, 1 error (the key came from \
CHATVAULT_ROOT_KEY and cannot get new versions, vault held by another process, ...), 2 bad \
usage.")]
    RotateRoot {
        #[command(flatten)]
        vault: VaultArgs,
        /// Print one JSON object: {"root_version", "retired_root_versions",
        /// "tenant_keks_rewrapped", "tenant_keks_reversioned", "conversation_keys_reversioned",
        /// "keys_rewrapped", "meta_resealed", "elapsed_ms"}.
        #[arg(long)]
        json: bool,
    },
    /// Remove an old root key version from the key file for good, after checking that nothing
    /// in the vault is still wrapped under it.
    #[command(
        after_help = "Exit codes: 0 retired, 1 error (still in use, current version, \
...), 2 bad usage."
    )]
    RetireRoot {
        #[command(flatten)]
        vault: VaultArgs,
        /// The root key version to retire (the key file's `N:` lines).
        version: u32,
    },
}

/// A re-versioning or rotation report as JSON (shared with `purge --json`).
pub fn rekey_json(r: &chatvault::RekeyReport) -> serde_json::Value {
    serde_json::json!({
        "root_version": r.root_version,
        "retired_root_versions": r.retired_root_versions,
        "tenant_keks_rewrapped": r.tenant_keks_rewrapped,
        "tenant_keks_reversioned": r.tenant_keks_reversioned,
        "conversation_keys_reversioned": r.conversation_keys_reversioned,
        "keys_rewrapped": r.keys_rewrapped,
        "meta_resealed": r.meta_resealed,
        "elapsed_ms": r.elapsed_ms,
    })
}

pub fn run(cmd: KeyCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::RotateRoot { vault, json } => {
            let v = common::open(&vault, "Vault::rotate_root_key")?;
            let r = v.rotate_root_key()?;
            if json {
                return common::print_json(out, &rekey_json(&r));
            }
            writeln!(
                out,
                "root key rotated in {} ms: version {} is current; {} re-wrapped under it{}",
                r.elapsed_ms,
                r.root_version,
                common::plural(r.tenant_keks_rewrapped, "tenant KEK"),
                if r.retired_root_versions.is_empty() {
                    ". Back the key file up again; retire the old version with `chatvault key \
                     retire-root N` once no backup made before needs it"
                        .to_string()
                } else {
                    format!(
                        "; key paths of shredded data re-versioned and old root versions {:?} \
                         retired",
                        r.retired_root_versions
                    )
                }
            )?;
        }
        KeyCommand::RetireRoot { vault, version } => {
            let v = common::open(&vault, "Vault::retire_root_key")?;
            v.retire_root_key(version)?;
            writeln!(
                out,
                "root key version {version} retired: it is gone from the key file, and backups \
                 of the vault made while it was current can no longer be opened with this key \
                 file"
            )?;
        }
    }
    Ok(())
}
