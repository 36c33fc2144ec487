//! What every subcommand shares: the vault arguments, loading the root key, opening the vault
//! (with the checks the library leaves to its caller), the output stream and formatting.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use chatvault::{
    ConversationId, Error, History, ProviderError, Retention, ShredScope, StaticKeyProvider,
    TenantId, Vault, VaultOptions, KEYCHECK_FILE, ROOT_KEY_ENV,
};
use clap::Args;
use zeroize::Zeroizing;

/// Where the vault is and how to unlock it.
#[derive(Args, Clone, Debug)]
pub struct VaultArgs {
    /// Data directory of the vault.
    #[arg(long, short = 'd', env = "CHATVAULT_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Root key file, kept outside the data directory (`chatvault init` writes it). Instead,
    /// the key itself may be in CHATVAULT_ROOT_KEY; giving both is an error.
    #[arg(long, short = 'k', env = "CHATVAULT_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// The vault arguments of a read-only command (`verify`, `stats`, `ls`, `read`), which can run
/// beside a process that holds the vault open for writing.
#[derive(Args, Clone, Debug)]
pub struct ReadVaultArgs {
    #[command(flatten)]
    pub vault: VaultArgs,
    /// Read beside a process that holds the vault open for writing (a serving backend), as a
    /// RocksDB secondary instance: read-only, no lock taken, data as of the start of the
    /// command. DIR holds the instance's own RocksDB log (created if missing; outside the data
    /// directory; reuse it between runs). Without it the command needs the vault to itself.
    #[arg(long, value_name = "DIR")]
    pub secondary: Option<PathBuf>,
}

/// An error that ends the program with a given exit code and a message that is already
/// complete (no "caused by" lines follow it).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Print one JSON object on stdout (with a newline).
pub fn print_json(out: &mut impl Write, v: &serde_json::Value) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Exit code of bad usage (as clap's for a bad flag): nothing was done.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `purge` when expired records are still on disk.
pub const EXIT_PURGE_INCOMPLETE: u8 = 3;
/// Exit code of `shred` when a legal hold covers the scope (nothing destroyed, nothing queued).
pub const EXIT_LEGAL_HOLD: u8 = 4;
/// Exit code of `verify` and `receipts verify` when something failed to authenticate, the
/// indexes disagree or the receipt chain is broken.
pub const EXIT_VERIFY_FAILED: u8 = 5;
/// Same code as [`EXIT_VERIFY_FAILED`], named for `receipts verify`.
pub const EXIT_CHAIN_BROKEN: u8 = EXIT_VERIFY_FAILED;
/// Exit code of every command when the vault's format version is one this build cannot use:
/// newer than it knows (`Error::VaultFormatTooNew`), or older on a read-only secondary, which
/// never upgrades (`Error::VaultFormatNeedsUpgrade`).
pub const EXIT_FORMAT: u8 = 8;

/// The exit code a library error calls for, when it is not 1 (looked up through the whole
/// context chain).
pub fn exit_code_of(e: &anyhow::Error) -> Option<u8> {
    e.chain().find_map(|c| match c.downcast_ref::<Error>() {
        Some(Error::VaultFormatTooNew { .. } | Error::VaultFormatNeedsUpgrade { .. }) => {
            Some(EXIT_FORMAT)
        }
        // An old copy (checkpoint, backup) opened in place: as `restore` answers it.
        Some(Error::RootKeyVersionRetired { .. }) => Some(6),
        _ => None,
    })
}

/// CHATVAULT_ROOT_KEY, if set to something other than blanks (an empty variable counts as
/// unset).
pub fn root_key_env() -> Option<Zeroizing<String>> {
    let v = Zeroizing::new(std::env::var(ROOT_KEY_ENV).ok()?);
    if v.trim().is_empty() {
        None
    } else {
        Some(v)
    }
}

/// The root key: from CHATVAULT_ROOT_KEY or from the key file, never both.
pub fn provider(args: &VaultArgs) -> anyhow::Result<Arc<StaticKeyProvider>> {
    let unwrap_msg = |e: ProviderError| -> anyhow::Error {
        match e {
            // The message says it all; "key provider unavailable" would only add noise.
            ProviderError::Unavailable(m) => anyhow::anyhow!(m),
            e => e.into(),
        }
    };
    // An empty CHATVAULT_KEY_FILE (or --key-file "") means no key file, as an empty
    // CHATVAULT_ROOT_KEY means no key.
    let key_file = args.key_file.as_ref().filter(|f| !f.as_os_str().is_empty());
    let p = match (root_key_env(), key_file) {
        (Some(_), Some(file)) => bail!(
            "both {ROOT_KEY_ENV} and a key file ({}, from --key-file or CHATVAULT_KEY_FILE) are \
             given; give only one: unset {ROOT_KEY_ENV}, or drop --key-file and unset \
             CHATVAULT_KEY_FILE",
            file.display()
        ),
        (Some(value), None) => {
            tracing::debug!("root key from {ROOT_KEY_ENV}");
            StaticKeyProvider::parse_env_value(&value)
                .map(StaticKeyProvider::from_env_source)
                .map_err(unwrap_msg)?
        }
        (None, Some(file)) => {
            refuse_key_inside_data(file, &args.data)?;
            tracing::debug!(key_file = %file.display(), "root key from the key file");
            StaticKeyProvider::from_file(file).map_err(unwrap_msg)?
        }
        // Bad usage (exit 2), as for `init` without a key file.
        (None, None) => {
            return Err(Failure {
                code: EXIT_USAGE,
                message: format!(
                    "no root key: pass --key-file FILE (or set CHATVAULT_KEY_FILE) with the key \
                     file that `chatvault init` wrote, or put the key itself in {ROOT_KEY_ENV}"
                ),
            }
            .into())
        }
    };
    Ok(Arc::new(p))
}

/// The absolute form of `p` with symbolic links resolved as far as the path exists (so that it
/// works for paths not created yet).
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    // Drop `.` and fold `..` lexically where nothing exists to canonicalize.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalize(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return normalize(&abs),
        }
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether `inner` is `outer` or lies under it.
pub fn is_inside(inner: &Path, outer: &Path) -> bool {
    resolved(inner).starts_with(resolved(outer))
}

/// The root key must not live with the data it protects: a copy or backup of the data
/// directory would then hold everything needed to read it.
pub fn refuse_key_inside_data(key_file: &Path, data: &Path) -> anyhow::Result<()> {
    if is_inside(key_file, data) {
        bail!(
            "the key file {} is inside the data directory {}: keep the root key apart from the \
             data it protects (a copy or backup of the directory would otherwise carry its own \
             key). Move the key file out of the directory and pass its new path",
            key_file.display(),
            data.display()
        );
    }
    Ok(())
}

/// Checks that `data` holds a vault, with a message that says what to do when it does not.
fn require_vault(data: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(data) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "no vault at {} (the directory does not exist): create one with `chatvault init \
             --data {} --key-file FILE`, or check the path",
            data.display(),
            data.display()
        ),
        Err(e) => bail!("cannot read the data directory {}: {e}", data.display()),
        Ok(m) if !m.is_dir() => bail!(
            "no vault at {}: it is a file, not a directory",
            data.display()
        ),
        Ok(_) => {}
    }
    if !data.join(KEYCHECK_FILE).exists() {
        bail!(
            "no vault at {} (no {KEYCHECK_FILE} file): create one with `chatvault init`, or \
             check the path",
            data.display()
        );
    }
    Ok(())
}

/// Whether a storage error is RocksDB's lock held by another process.
pub fn is_lock_error(e: &Error) -> bool {
    match e {
        Error::Storage { source, .. } => {
            let m = source.as_ref();
            m.contains("lock file") || m.contains("/LOCK") || m.contains("LOCK:")
        }
        _ => false,
    }
}

/// Opens the vault for a read-only command: as a secondary instance with `--secondary DIR`
/// (caught up with the primary), else like [`open`], whose lock message then also suggests
/// `--secondary`.
pub fn open_read(args: &ReadVaultArgs, call: &str) -> anyhow::Result<Vault> {
    let Some(dir) = &args.secondary else {
        return open_inner(&args.vault, call, true);
    };
    require_vault(&args.vault.data)?;
    let p = provider(&args.vault)?;
    let v =
        Vault::open_secondary(&args.vault.data, dir, p, VaultOptions::default()).map_err(|e| {
            match e {
                e @ (Error::WrongRootKey { .. } | Error::RootKeyVersionMissing { .. }) => {
                    anyhow::Error::new(e)
                }
                e => anyhow::Error::new(e).context(format!(
                    "cannot open the vault at {} as a read-only secondary instance",
                    args.vault.data.display()
                )),
            }
        })?;
    v.catch_up()?;
    tracing::debug!(path = %args.vault.data.display(), "vault open as a secondary instance");
    Ok(v)
}

/// Opens the vault. `call` names the library function a backend that holds the vault would call
/// instead of running this command (shown when another process holds the vault).
pub fn open(args: &VaultArgs, call: &str) -> anyhow::Result<Vault> {
    open_inner(args, call, false)
}

fn open_inner(args: &VaultArgs, call: &str, read_only: bool) -> anyhow::Result<Vault> {
    require_vault(&args.data)?;
    let p = provider(args)?;
    match Vault::open(&args.data, p, VaultOptions::default()) {
        Ok(v) => {
            tracing::debug!(path = %args.data.display(), "vault open for the command");
            Ok(v)
        }
        Err(e) if is_lock_error(&e) => Err(Failure {
            code: 1,
            message: format!(
                "the vault at {} is held by another process, probably the backend that serves \
                 it: RocksDB lets one process at a time open a vault, and this command needs it \
                 to itself. Run it while that process is stopped, or have that process make \
                 this call itself through the library: {call}{}",
                args.data.display(),
                if read_only {
                    ". This command only reads: it can also run beside that process with \
                     --secondary DIR (a RocksDB secondary instance; DIR outside the data \
                     directory)"
                } else {
                    ""
                }
            ),
        }
        .into()),
        Err(e @ (Error::WrongRootKey { .. } | Error::RootKeyVersionMissing { .. })) => {
            Err(e.into())
        }
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("cannot open the vault at {}", args.data.display()))),
    }
}

/// The tenant named `name`, or an error that says how to find the right name.
pub fn tenant(v: &Vault, name: &str) -> anyhow::Result<TenantId> {
    // `#N`: the internal id, as receipts and audit entries print it.
    if let Some(id) = internal_id(name) {
        let t = TenantId::from_u64(id);
        return match v.tenants()?.iter().any(|x| x.id == t) {
            true => Ok(t),
            false => bail!(
                "no tenant {name} in this vault (`chatvault ls --json` gives tenant ids); a \
                 shredded tenant is not listed"
            ),
        };
    }
    match v.tenant(name) {
        Ok(t) => Ok(t),
        Err(Error::NotFound { .. }) => {
            bail!(
                "no tenant named {name:?} in this vault (`chatvault ls` lists the tenants); a \
                 shredded tenant is not listed, and its name no longer leads to it"
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// `#N` (an internal id, as receipts and audit entries print it), or `None` for a name. Names
/// of that form are taken as ids (IRC nicks, Slack and Mattermost ids never have it).
fn internal_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('#')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The conversation `name` of tenant `tenant_name`, or an error that says how to find it.
pub fn conversation(
    v: &Vault,
    t: TenantId,
    tenant_name: &str,
    name: &str,
) -> anyhow::Result<ConversationId> {
    if let Some(id) = internal_id(name) {
        let c = ConversationId::from_u64(id);
        return match v.conversation(t, c) {
            Ok(_) => Ok(c),
            Err(Error::NotFound { .. }) => bail!(
                "tenant {tenant_name:?} has no conversation {name} (`chatvault ls \
                 {tenant_name} --json` gives conversation ids)"
            ),
            Err(e) => Err(e.into()),
        };
    }
    match v.conversation_id(t, name) {
        Ok(c) => Ok(c),
        Err(Error::NotFound { .. }) => {
            // Conversations are named by their id (a Slack channel id, an IRC log's stem); a
            // title (a Slack channel's name) only leads to the id.
            let bare = name.trim_start_matches('#');
            let by_title: Vec<String> = v
                .conversations(t)?
                .filter_map(|c| c.ok())
                .filter(|c| {
                    c.title
                        .as_deref()
                        .is_some_and(|x| x.trim_start_matches('#') == bare)
                })
                .map(|c| c.external_id)
                .collect();
            if !by_title.is_empty() {
                bail!(
                    "tenant {tenant_name:?} has no conversation with the id {name:?}, but {} \
                     titled so: give the id ({})",
                    if by_title.len() == 1 {
                        "one is"
                    } else {
                        "these are"
                    },
                    by_title.join(", ")
                );
            }
            bail!(
                "tenant {tenant_name:?} has no conversation {name:?} (`chatvault ls \
                 {tenant_name}` lists its conversations by id, with their titles; a shredded \
                 conversation's name no longer leads to it, `chatvault receipts show` lists the \
                 shreds)"
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// A user of a tenant by external id (an IRC nick for imported logs).
/// Opens the vault for `call` and looks up the tenant and the user by name: the start of every
/// command about one user (`user ...`, `consent ...`).
pub fn open_user(
    vault: &VaultArgs,
    call: &str,
    tenant_name: &str,
    name: &str,
) -> anyhow::Result<(Vault, TenantId, chatvault::UserId)> {
    let v = open(vault, call)?;
    let t = tenant(&v, tenant_name)?;
    let u = user(&v, t, tenant_name, name)?;
    Ok((v, t, u))
}

pub fn user(
    v: &Vault,
    t: TenantId,
    tenant_name: &str,
    name: &str,
) -> anyhow::Result<chatvault::UserId> {
    if let Some(id) = internal_id(name) {
        let u = chatvault::UserId::from_u64(id);
        return match v.user(t, u) {
            Ok(_) => Ok(u),
            Err(Error::NotFound { .. }) => bail!("tenant {tenant_name:?} has no user {name}"),
            Err(e) => Err(e.into()),
        };
    }
    match v.user_id(t, name) {
        Ok(u) => Ok(u),
        Err(Error::NotFound { .. }) => bail!(
            "tenant {tenant_name:?} has no user {name:?} (for imported IRC logs, users are \
             nicks as written in the log); an erased user's name no longer leads to them: \
             `chatvault receipts show` lists the erasures"
        ),
        Err(e) => Err(e.into()),
    }
}

// ------------------------------------------------------------------ progress

/// Whether a long command draws progress: only when stderr is a terminal, and never with
/// `--json` (a script reads the output; it wants no escape codes on stderr either). Piped or
/// redirected stderr gets none. Every command that shows progress asks this, so the rule is
/// in one place.
pub fn show_progress(json: bool) -> bool {
    !json && io::stderr().is_terminal()
}

/// The progress display of long commands (verify, purge, compact, checkpoint, restore), on
/// stderr, in one style: `⠋ verify: messages 12,288/40,000 [2/5] (3s)`. Hidden (draws
/// nothing) unless [`show_progress`]. Cleared when dropped, so that only the command's own
/// output stays on the terminal.
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A display for `command` (`verify`, `purge`, ...); `json`: the command's `--json`.
    pub fn new(command: &str, json: bool) -> Progress {
        if !show_progress(json) {
            return Progress {
                bar: indicatif::ProgressBar::hidden(),
            };
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(command.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    /// Shows what the command does now (for steps the library does not count, such as a
    /// checkpoint).
    pub fn step(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    /// Shows a library progress report.
    pub fn report(&self, p: chatvault::Progress<'_>) {
        let counts = match p.total {
            Some(t) if t >= p.done => format!("{}/{t}", p.done),
            _ => p.done.to_string(),
        };
        self.bar.set_message(format!(
            "{} {counts} [{}/{}]",
            p.stage, p.stage_no, p.stages
        ));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

// ------------------------------------------------------------------ output

/// Standard output whose write errors say that writing the output failed (`read > /dev/full`
/// would otherwise report a bare "No space left on device").
pub struct Stdout(io::StdoutLock<'static>);

impl Stdout {
    pub fn new() -> Self {
        Stdout(io::stdout().lock())
    }
}

#[derive(Debug)]
struct OutputError(io::Error);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "writing the output failed: {}", self.0)
    }
}

impl std::error::Error for OutputError {}

fn output_error(e: io::Error) -> io::Error {
    // The kind is kept, so a closed pipe is still recognised as one.
    io::Error::new(e.kind(), OutputError(e))
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(output_error)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(output_error)
    }
}

/// `1 message`, `2 messages`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `1 conversation`, `2 conversations` (regular plurals).
pub fn plural(n: u64, noun: &str) -> String {
    count(n, noun, &format!("{noun}s"))
}

/// UTC time, RFC 3339 to the second.
pub fn fmt_time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

pub fn fmt_history(h: History) -> &'static str {
    match h {
        History::On => "on",
        History::Off => "off",
    }
}

/// `forever`, `90 days`, `12 hours`, `30 minutes`, or milliseconds.
pub fn fmt_retention(r: Retention) -> String {
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match r {
        Retention::Forever => "forever".into(),
        Retention::Period { ms } if ms % DAY == 0 => plural(ms / DAY, "day"),
        Retention::Period { ms } if ms % HOUR == 0 => plural(ms / HOUR, "hour"),
        Retention::Period { ms } if ms % MINUTE == 0 => plural(ms / MINUTE, "minute"),
        Retention::Period { ms } => format!("{ms} ms"),
    }
}

/// `forever`, a number of milliseconds, or a duration such as `90d`, `12h`, `30m`, `1w`.
pub fn parse_retention(s: &str) -> Result<Retention, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("forever") {
        return Ok(Retention::Forever);
    }
    let ms = if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"))?
    } else {
        let d = humantime::parse_duration(s).map_err(|e| {
            format!(
                "{s:?} is not a duration ({e}); write e.g. 90d, 12h, 30m, 1w, a number of \
                 milliseconds, or forever"
            )
        })?;
        u64::try_from(d.as_millis()).map_err(|_| format!("{s:?} is too long"))?
    };
    if ms < chatvault::retention::MIN_RETENTION_MS {
        return Err(format!(
            "{s:?} is shorter than one minute, the shortest retention period; give at least \
             1m (60000 ms), or turn history off with --history off"
        ));
    }
    Ok(Retention::Period { ms })
}

/// A point in time: milliseconds since the Unix epoch, a UTC date (`2011-11-13`, midnight), or
/// an RFC 3339 time (`2011-11-13T02:00:00Z`; without an offset, UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|e| format!("{s:?}: {e}"));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    let t = humantime::parse_rfc3339_weak(&full).map_err(|e| {
        format!(
            "{s:?} is not a time ({e}); write a UTC date (2011-11-13), an RFC 3339 time \
             (2011-11-13T02:00:00Z) or milliseconds since 1970"
        )
    })?;
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{s:?} is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("{s:?} is too far in the future"))
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A shred scope of a tenant by internal ids, as text (`conversation #5 of tenant #1`).
pub fn shred_scope_text(tenant: TenantId, scope: &ShredScope) -> String {
    match scope {
        ShredScope::Tenant => format!("tenant {tenant}"),
        ShredScope::Conversation(c) => format!("conversation {c} of tenant {tenant}"),
        ShredScope::User(u) => format!("user {u} of tenant {tenant}"),
        ShredScope::Window {
            conversation,
            at_ms,
        } => format!(
            "the window containing {} of conversation {conversation} of tenant {tenant}",
            fmt_time(*at_ms)
        ),
    }
}

/// A shred scope by internal ids, as a JSON object.
pub fn scope_json(scope: &ShredScope) -> String {
    match scope {
        ShredScope::Tenant => r#"{"kind":"tenant"}"#.into(),
        ShredScope::Conversation(c) => {
            format!(r#"{{"kind":"conversation","conversation":{}}}"#, c.as_u64())
        }
        ShredScope::User(u) => format!(r#"{{"kind":"user","user":{}}}"#, u.as_u64()),
        ShredScope::Window {
            conversation,
            at_ms,
        } => format!(
            r#"{{"kind":"window","conversation":{},"at_ms":{at_ms}}}"#,
            conversation.as_u64()
        ),
    }
}

/// A list of strings as a JSON array.
pub fn json_strs<S: AsRef<str>>(v: &[S]) -> String {
    let items: Vec<String> = v.iter().map(|s| json_str(s.as_ref())).collect();
    format!("[{}]", items.join(","))
}

/// How `receipts verify` and `audit verify` name their chain in what they print.
pub struct ChainWords {
    /// "receipt chain", "audit trail".
    pub name: &'static str,
    /// The break message after "broken at ENTRY. ", with `{}` for the count verified.
    pub altered: &'static str,
    /// What follows "intact: " when the chain is empty.
    pub empty: &'static str,
    /// The CLI subcommand: "receipts", "audit".
    pub command: &'static str,
    /// What is cut off the end: "receipts", "entries".
    pub items: &'static str,
}

/// Prints a chain verification (the head to keep), or fails with exit 5 naming the first
/// broken entry. Shared by `receipts verify` and `audit verify`.
pub fn report_chain(
    r: &chatvault::chain::ChainReport,
    kept: Option<&chatvault::chain::ChainHead>,
    w: &ChainWords,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    if let Some(b) = &r.broken {
        tracing::warn!(seq = b.seq, fault = %b.fault, "{} broken", w.name);
        return Err(Failure {
            code: EXIT_CHAIN_BROKEN,
            message: format!(
                "{} broken at {b}. {}",
                w.name,
                w.altered
                    .replace("{}", &count(r.entries, "entry", "entries"))
            ),
        }
        .into());
    }
    match r.head {
        None => writeln!(out, "{} intact: {}", w.name, w.empty)?,
        Some(h) => {
            writeln!(
                out,
                "{} intact: {}, every MAC and link checked{}",
                w.name,
                count(r.entries, "entry", "entries"),
                match kept {
                    Some(k) => format!("; the kept head {} is in place", k.seq),
                    None => String::new(),
                }
            )?;
            writeln!(out, "head: {h}")?;
            writeln!(
                out,
                "keep the head: `chatvault {} verify --head {h}` detects {} cut off the end later",
                w.command, w.items
            )?;
        }
    }
    Ok(())
}
