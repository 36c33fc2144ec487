//! `chatvault init`: a new vault and a new root key file. Everything is checked before anything
//! is created, and a failure part-way removes what this run created.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use chatvault::{StaticKeyProvider, Vault, VaultOptions, KEYCHECK_FILE, ROOT_KEY_ENV};

use serde_json::json;

use crate::common::{self, refuse_key_inside_data, root_key_env, Failure, VaultArgs, EXIT_USAGE};

/// Shown under `chatvault init --help`.
pub const EXIT_CODES: &str = "Exit codes: 0 created, 1 error (the directory already holds a \
vault or is not empty, the key file exists, ...: nothing was created), 2 bad usage (no \
--key-file, CHATVAULT_ROOT_KEY set).";

#[derive(clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Print one JSON object: {"data", "key_file", "format_version"}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &InitArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let args = &a.vault;
    let data = &args.data;
    let Some(key_file) = args
        .key_file
        .as_deref()
        .filter(|f| !f.as_os_str().is_empty())
    else {
        return Err(Failure {
            code: EXIT_USAGE,
            message: format!(
                "init needs --key-file FILE: the path where it writes the new root key (init \
                 always writes a key file, even if you pass the key in {ROOT_KEY_ENV} later)"
            ),
        }
        .into());
    };
    if root_key_env().is_some() {
        return Err(Failure {
            code: EXIT_USAGE,
            message: format!(
                "{ROOT_KEY_ENV} is set; unset it for init, which writes a new root key to \
                 --key-file (you can put that key in {ROOT_KEY_ENV} afterwards)"
            ),
        }
        .into());
    }

    // 1. Check everything.
    refuse_key_inside_data(key_file, data)?;
    let data_existed = match std::fs::metadata(data) {
        Ok(m) if !m.is_dir() => bail!("{} exists and is not a directory", data.display()),
        Ok(_) => {
            if data.join(KEYCHECK_FILE).exists() || data.join("CURRENT").exists() {
                bail!("{} already holds a vault", data.display());
            }
            let mut entries = std::fs::read_dir(data)
                .with_context(|| format!("cannot read the directory {}", data.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty: init creates a vault in a new or empty \
                     directory",
                    data.display()
                );
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => bail!("cannot use {} as the data directory: {e}", data.display()),
    };
    if std::fs::symlink_metadata(key_file).is_ok() {
        bail!(
            "refusing to overwrite the existing key file {}: it may be the only copy of another \
             vault's root key. Pass a new path (or move that file away if you are sure nothing \
             needs it)",
            key_file.display()
        );
    }
    let key_dir = match key_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !key_dir.is_dir() {
        bail!(
            "the directory {} of the key file does not exist; create it first (outside the \
             data directory)",
            key_dir.display()
        );
    }

    // 2. Create: the key file first (the vault is sealed under it), then the vault. On failure,
    //    remove what this run created.
    let p = StaticKeyProvider::create_key_file(key_file)
        .with_context(|| format!("cannot create the key file {}", key_file.display()))?;
    let created = match Vault::create(data, Arc::new(p), VaultOptions::default()) {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(key_file);
            if data_existed {
                // It was empty: empty it again.
                if let Ok(rd) = std::fs::read_dir(data) {
                    for entry in rd.flatten() {
                        let p = entry.path();
                        let _ = if p.is_dir() {
                            std::fs::remove_dir_all(&p)
                        } else {
                            std::fs::remove_file(&p)
                        };
                    }
                }
            } else {
                let _ = std::fs::remove_dir_all(data);
            }
            return Err(anyhow::Error::new(e).context(format!(
                "cannot create the vault at {} (the key file and the directory created by this \
             run were removed again)",
                data.display()
            )));
        }
    };
    let format_version = created.format_version()?;
    drop(created);
    tracing::info!(path = %data.display(), key_file = %key_file.display(), "vault created");
    if a.json {
        return common::print_json(
            out,
            &json!({
                "data": data.display().to_string(),
                "key_file": key_file.display().to_string(),
                "format_version": format_version,
            }),
        );
    }
    writeln!(
        out,
        "created vault {}\nroot key   {} (mode 0600; back it up apart from the vault: without it \
         the data can never be read)",
        data.display(),
        key_file.display()
    )?;
    Ok(())
}
