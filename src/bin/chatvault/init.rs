//! `chatvault init`: a new vault and a new root key file. Everything is checked before anything
//! is created, and a failure part-way removes what this run created.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use chatvault::{StaticKeyProvider, Vault, VaultOptions, KEYCHECK_FILE, ROOT_KEY_ENV};

use crate::common::{refuse_key_inside_data, root_key_env, VaultArgs};

pub fn run(args: &VaultArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let data = &args.data;
    let Some(key_file) = args.key_file.as_deref() else {
        bail!(
            "init needs --key-file FILE: the path where it writes the new root key (init always \
             writes a key file, even if you pass the key in {ROOT_KEY_ENV} later)"
        );
    };
    if root_key_env().is_some() {
        bail!(
            "{ROOT_KEY_ENV} is set; unset it for init, which writes a new root key to \
             --key-file (you can put that key in {ROOT_KEY_ENV} afterwards)"
        );
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
    if let Err(e) = Vault::create(data, Arc::new(p), VaultOptions::default()) {
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
    tracing::info!(path = %data.display(), key_file = %key_file.display(), "vault created");
    writeln!(
        out,
        "created vault {}\nroot key   {} (mode 0600; back it up apart from the vault: without it \
         the data can never be read)",
        data.display(),
        key_file.display()
    )?;
    Ok(())
}
