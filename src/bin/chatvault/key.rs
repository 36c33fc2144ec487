//! `chatvault key rotate-root|retire-root`: root key versions (`Vault::rotate_root_key`,
//! `Vault::retire_root_key`).

use std::io::Write;

use crate::common::{self, VaultArgs};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Add a new root key version to the key file and wrap the vault key and every tenant KEK
    /// under it. The old version stays in the key file (the vault no longer needs it) until
    /// `retire-root`. Back the key file up again afterwards.
    RotateRoot {
        #[command(flatten)]
        vault: VaultArgs,
    },
    /// Remove an old root key version from the key file for good, after checking that nothing
    /// in the vault is still wrapped under it.
    RetireRoot {
        #[command(flatten)]
        vault: VaultArgs,
        /// The root key version to retire (the key file's `N:` lines).
        version: u32,
    },
}

pub fn run(cmd: KeyCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::RotateRoot { vault } => {
            let v = common::open(&vault, "Vault::rotate_root_key")?;
            let r = v.rotate_root_key()?;
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
