//! Durable replacement of small files (the key-check file, the root key file, a checkpoint's
//! key-check copy): write a temporary file in the same directory, fsync it, rename it over the
//! target, fsync the directory. A crash leaves the old file or the new one, never a mix.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably. `private`: the file is created with
/// mode 0600 (Unix), for key material. A temporary file left by an earlier crash is replaced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Fsyncs a directory, so that a rename or a new entry in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The id of a process that holds a POSIX lock on `file` (RocksDB's `LOCK` file of a database
/// open for writing), read from Linux's `/proc/locks`; `None` if no process does, the file does
/// not exist, or the system has no `/proc/locks`.
pub(crate) fn lock_holder(file: &Path) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(file).ok()?;
        let dev = m.dev();
        let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
        let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
        let ino = m.ino();
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        for line in locks.lines() {
            // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (waiters have "->" after the id)
            let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
            let (Some(pid), Some(place)) = (f.get(4), f.get(5)) else {
                continue;
            };
            let mut p = place.split(':');
            let (Some(ma), Some(mi), Some(i)) = (p.next(), p.next(), p.next()) else {
                continue;
            };
            if u64::from_str_radix(ma, 16).ok() == Some(major)
                && u64::from_str_radix(mi, 16).ok() == Some(minor)
                && i.parse::<u64>().ok() == Some(ino)
            {
                return pid.parse().ok();
            }
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}
