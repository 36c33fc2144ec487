//! `chatvault key rotate-root|retire-root`: root key versions (`Vault::rotate_root_key`,
//! `Vault::retire_root_key`); `chatvault key rotate-tenant|rotate-data|reseal|retire-data`:
//! the keys below it (`Vault::rotate_tenant_kek`, `Vault::rotate_data_keys`, `Vault::reseal`,
//! `Vault::retire_data_keys`).

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use chatvault::{
    Actor, ConversationId, DataKeyRotationReport, ResealOptions, ResealReport, RetireReport,
    TenantId, Vault,
};
use serde_json::json;

use crate::common::{self, VaultArgs};

/// Shown under the `--help` of the commands below the root key.
const ROTATION_EXIT_CODES: &str = "Exit codes: 0 done, 1 error (tenant or conversation not \
found, vault held by another process, old versions still in use: re-seal first, ...), 2 bad \
usage.";

/// The tenant, and optionally one of its conversations, that a rotation applies to.
#[derive(clap::Args)]
pub struct ScopeArgs {
    /// The tenant (its name, as `chatvault ls` lists it).
    tenant: String,
    /// Only this conversation of the tenant (its external id).
    #[arg(long, value_name = "CONVERSATION")]
    conversation: Option<String>,
}

impl ScopeArgs {
    fn resolve(&self, v: &Vault) -> anyhow::Result<(TenantId, Option<ConversationId>)> {
        let t = common::tenant(v, &self.tenant)?;
        let c = match &self.conversation {
            Some(c) => Some(common::conversation(v, t, &self.tenant, c)?),
            None => None,
        };
        Ok((t, c))
    }

    fn text(&self) -> String {
        match &self.conversation {
            Some(c) => format!("conversation {c} of tenant {}", self.tenant),
            None => format!("tenant {}", self.tenant),
        }
    }
}

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
        /// Print one JSON object: {"retired_root_version"} (no key material).
        #[arg(long)]
        json: bool,
    },
    /// Give a tenant's KEK a new version with a new random value: every conversation, user
    /// and directory key of the tenant is re-wrapped under it, the tenant's KEK-sealed
    /// metadata sealed again, and the old version deleted, in one atomic write. Records are
    /// not touched (see rotate-data).
    #[command(after_help = ROTATION_EXIT_CODES)]
    RotateTenant {
        #[command(flatten)]
        vault: VaultArgs,
        /// The tenant (its name).
        tenant: String,
        /// Print one JSON object: {"tenant_id", "kek_version", "keys_rewrapped",
        /// "meta_resealed", "elapsed_ms"}.
        #[arg(long)]
        json: bool,
    },
    /// Give the data keys of a tenant (or of one conversation) new versions with new random
    /// values: conversation keys (old version deleted at once), epoch keys and, for a whole
    /// tenant, user keys. New writes use them at once; records stay sealed under the old
    /// versions until `reseal` (or --reseal) seals them again and retires the old versions.
    /// An interrupted rotation is finished by running the command again.
    #[command(after_help = ROTATION_EXIT_CODES)]
    RotateData {
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Then re-seal every record under the new versions and retire the old ones (as
        /// `reseal`).
        #[arg(long)]
        reseal: bool,
        /// Print one JSON object: {"rotation": {"tenant_id", "conversation_id",
        /// "conversation_keys", "epoch_keys", "user_keys", "keys_rewrapped", "meta_resealed",
        /// "resumed", "batches", "elapsed_ms"}, "reseal": null or as `reseal --json`}.
        #[arg(long)]
        json: bool,
    },
    /// Seal again, under the current key versions, every record of a tenant (or one
    /// conversation) still sealed under an older version, in batches, then retire the old
    /// versions. Resumable: after an interruption, run it again. A progress bar shows on a
    /// terminal (none when piped or with --json).
    #[command(after_help = ROTATION_EXIT_CODES)]
    Reseal {
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Keep the old key versions (do not retire them; `retire-data` does it later).
        #[arg(long)]
        keep_old: bool,
        /// Records re-sealed per atomic write.
        #[arg(long, default_value_t = 256, value_name = "N")]
        batch: usize,
        /// Print one JSON object: {"scanned", "resealed", "already_current", "expired",
        /// "shredded", "failed", "batches", "elapsed_ms", "retired": null or as `retire-data
        /// --json`}.
        #[arg(long)]
        json: bool,
    },
    /// Delete the old epoch and user key versions a data-key rotation left, after checking
    /// that no readable record of the scope is still sealed under them (refused otherwise:
    /// run `reseal`).
    #[command(after_help = ROTATION_EXIT_CODES)]
    RetireData {
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Print one JSON object: {"epoch_key_versions", "user_key_versions",
        /// "records_scanned", "elapsed_ms"}.
        #[arg(long)]
        json: bool,
    },
}

fn rotation_json(r: &DataKeyRotationReport) -> serde_json::Value {
    json!({
        "tenant_id": r.tenant.as_u64(),
        "conversation_id": r.conversation.map(|c| c.as_u64()),
        "conversation_keys": r.conversation_keys,
        "epoch_keys": r.epoch_keys,
        "user_keys": r.user_keys,
        "keys_rewrapped": r.keys_rewrapped,
        "meta_resealed": r.meta_resealed,
        "resumed": r.resumed,
        "batches": r.batches,
        "elapsed_ms": r.elapsed_ms,
    })
}

fn retire_json(r: &RetireReport) -> serde_json::Value {
    json!({
        "epoch_key_versions": r.epoch_key_versions,
        "user_key_versions": r.user_key_versions,
        "records_scanned": r.records_scanned,
        "elapsed_ms": r.elapsed_ms,
    })
}

fn reseal_json(r: &ResealReport) -> serde_json::Value {
    json!({
        "scanned": r.scanned,
        "resealed": r.resealed,
        "already_current": r.already_current,
        "expired": r.expired,
        "shredded": r.shredded,
        "failed": r.failed,
        "batches": r.batches,
        "elapsed_ms": r.elapsed_ms,
        "retired": r.retired.as_ref().map(retire_json),
    })
}

fn retire_text(r: &RetireReport) -> String {
    format!(
        "old key versions retired: {}, {} deleted ({} checked first)",
        common::plural(r.epoch_key_versions, "epoch key version"),
        common::plural(r.user_key_versions, "user key version"),
        common::plural(r.records_scanned, "record"),
    )
}

/// Runs the re-seal with a progress bar on a terminal (stderr), none when piped or for JSON.
fn reseal(
    v: &Vault,
    t: TenantId,
    c: Option<ConversationId>,
    opts: &ResealOptions,
    json: bool,
) -> anyhow::Result<ResealReport> {
    let bar = if !json && io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} records  {msg}")
        {
            b.set_style(style);
        }
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let r = v.reseal(t, c, opts, |p| {
        bar.set_length(p.total);
        bar.set_position(p.scanned);
        bar.set_message(format!("{} re-sealed", p.resealed));
    });
    bar.finish_and_clear();
    Ok(r?)
}

fn reseal_text(r: &ResealReport, what: &str) -> String {
    let mut s = format!(
        "re-sealed {} of {what} in {} ms ({} already current, {} expired and {} shredded left \
         for the purge, {} failed to open)",
        common::plural(r.resealed, "record"),
        r.elapsed_ms,
        r.already_current,
        r.expired,
        r.shredded,
        r.failed,
    );
    match &r.retired {
        Some(rt) => s += &format!("; {}", retire_text(rt)),
        None => s += "; old key versions kept (`chatvault key retire-data` retires them)",
    }
    s
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
                    format!(
                        ". Back the key file up again; retire the old version with `chatvault \
                         key retire-root {}` once no backup made before needs it",
                        r.root_version.saturating_sub(1)
                    )
                } else {
                    format!(
                        "; key paths of shredded data re-versioned and old root versions {:?} \
                         retired",
                        r.retired_root_versions
                    )
                }
            )?;
        }
        KeyCommand::RetireRoot {
            vault,
            version,
            json,
        } => {
            let v = common::open(&vault, "Vault::retire_root_key")?;
            v.retire_root_key(version)?;
            if json {
                return common::print_json(out, &json!({ "retired_root_version": version }));
            }
            writeln!(
                out,
                "root key version {version} retired: it is gone from the key file, and backups \
                 of the vault made while it was current can no longer be opened with this key \
                 file"
            )?;
        }
        KeyCommand::RotateTenant {
            vault,
            tenant,
            json,
        } => {
            let v = common::open(&vault, "Vault::rotate_tenant_kek")?;
            let t = common::tenant(&v, &tenant)?;
            let r = v.rotate_tenant_kek(t, Actor::operator())?;
            if json {
                return common::print_json(
                    out,
                    &json!({
                        "tenant_id": r.tenant.as_u64(),
                        "kek_version": r.kek_version,
                        "keys_rewrapped": r.keys_rewrapped,
                        "meta_resealed": r.meta_resealed,
                        "elapsed_ms": r.elapsed_ms,
                    }),
                );
            }
            writeln!(
                out,
                "tenant KEK of tenant {tenant} rotated in {} ms: version {} is current (a new \
                 random key), the old version is deleted; {} re-wrapped, {} sealed again",
                r.elapsed_ms,
                r.kek_version,
                common::plural(r.keys_rewrapped, "key"),
                common::plural(r.meta_resealed, "metadata record"),
            )?;
        }
        KeyCommand::RotateData {
            vault,
            scope,
            reseal: then_reseal,
            json,
        } => {
            let v = common::open(&vault, "Vault::rotate_data_keys")?;
            let (t, c) = scope.resolve(&v)?;
            let r = v.rotate_data_keys(t, c, Actor::operator())?;
            let rs = if then_reseal {
                Some(reseal(&v, t, c, &ResealOptions::default(), json)?)
            } else {
                None
            };
            if json {
                return common::print_json(
                    out,
                    &json!({
                        "rotation": rotation_json(&r),
                        "reseal": rs.as_ref().map(reseal_json),
                    }),
                );
            }
            writeln!(
                out,
                "data keys of {} {} in {} ms: {}, {}, {} (new random values, used for new \
                 writes from now on)",
                scope.text(),
                if r.resumed {
                    "rotated (an interrupted rotation finished)"
                } else {
                    "rotated"
                },
                r.elapsed_ms,
                common::plural(r.conversation_keys, "conversation key"),
                common::plural(r.epoch_keys, "epoch key"),
                common::plural(r.user_keys, "user key"),
            )?;
            match &rs {
                Some(rs) => writeln!(out, "{}", reseal_text(rs, &scope.text()))?,
                None => writeln!(
                    out,
                    "records are still sealed under the old versions: run `chatvault key \
                     reseal {}{}` to seal them again and retire the old versions",
                    scope.tenant,
                    scope
                        .conversation
                        .as_ref()
                        .map(|c| format!(" --conversation {c}"))
                        .unwrap_or_default()
                )?,
            }
        }
        KeyCommand::Reseal {
            vault,
            scope,
            keep_old,
            batch,
            json,
        } => {
            let v = common::open(&vault, "Vault::reseal")?;
            let (t, c) = scope.resolve(&v)?;
            let opts = ResealOptions {
                batch_records: batch,
                retire: !keep_old,
            };
            let r = reseal(&v, t, c, &opts, json)?;
            if json {
                return common::print_json(out, &reseal_json(&r));
            }
            writeln!(out, "{}", reseal_text(&r, &scope.text()))?;
        }
        KeyCommand::RetireData { vault, scope, json } => {
            let v = common::open(&vault, "Vault::retire_data_keys")?;
            let (t, c) = scope.resolve(&v)?;
            let r = v.retire_data_keys(t, c, Actor::operator())?;
            if json {
                return common::print_json(out, &retire_json(&r));
            }
            writeln!(out, "{}: {}", scope.text(), retire_text(&r))?;
        }
    }
    Ok(())
}
