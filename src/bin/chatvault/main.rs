//! `chatvault`: the operator's command-line tool. Every command is a thin wrapper over a library
//! call, run on a vault that no other process holds (RocksDB allows one writer process).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context};
use chatvault::{
    import, ConversationId, Direction, Error, MessageKind, StaticKeyProvider, TenantId, Vault,
    VaultOptions,
};
use clap::{Args, Parser, Subcommand};

/// chatvault: chat transcripts encrypted at rest on RocksDB.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct VaultArgs {
    /// Data directory of the vault.
    #[arg(long, short = 'd', env = "CHATVAULT_DATA")]
    data: PathBuf,
    /// Root key file (kept outside the data directory). CHATVAULT_ROOT_KEY, if set, is used
    /// instead.
    #[arg(long, short = 'k', env = "CHATVAULT_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new vault and a new root key file (mode 0600, outside the data directory).
    Init {
        #[command(flatten)]
        vault: VaultArgs,
    },
    /// Import chat logs.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// List tenants, or the conversations of a tenant.
    Ls {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name: list its conversations.
        tenant: Option<String>,
    },
    /// Print a conversation's messages, oldest first.
    Read {
        #[command(flatten)]
        vault: VaultArgs,
        /// Tenant name.
        tenant: String,
        /// Conversation id (for IRC imports: the log file's stem, e.g. 2004-11-15_03).
        conversation: String,
        /// First message id to print.
        #[arg(long)]
        from: Option<u64>,
        /// Print at most this many messages.
        #[arg(long)]
        limit: Option<usize>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
    },
    /// Show counts and sizes.
    Stats {
        #[command(flatten)]
        vault: VaultArgs,
    },
    /// Flush and compact every column family down to the bottommost level.
    Compact {
        #[command(flatten)]
        vault: VaultArgs,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// IRC logs (`*.raw.txt`, `*.ascii.txt` with their `*.annotation.txt`): one tenant per
    /// channel, one conversation per file, one user per nick. Safe to re-run.
    Irc {
        #[command(flatten)]
        vault: VaultArgs,
        /// Log files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHATVAULT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`chatvault read ... | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn provider(args: &VaultArgs) -> anyhow::Result<Arc<StaticKeyProvider>> {
    Ok(Arc::new(
        StaticKeyProvider::from_env_or_file(args.key_file.as_deref())
            .context("loading the root key")?,
    ))
}

fn open(args: &VaultArgs) -> anyhow::Result<Vault> {
    let p = provider(args)?;
    Vault::open(&args.data, p, VaultOptions::default())
        .with_context(|| format!("opening the vault at {}", args.data.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match cli.command {
        Command::Init { vault } => init(&vault, &mut out)?,
        Command::Import {
            source: ImportSource::Irc { vault, paths },
        } => import_irc(&open(&vault)?, &paths, &mut out)?,
        Command::Ls { vault, tenant } => ls(&open(&vault)?, tenant.as_deref(), &mut out)?,
        Command::Read {
            vault,
            tenant,
            conversation,
            from,
            limit,
            backward,
        } => {
            let v = open(&vault)?;
            let (t, c) = resolve(&v, &tenant, &conversation)?;
            read(&v, t, c, from, limit, backward, &mut out)?
        }
        Command::Stats { vault } => stats(&open(&vault)?, &mut out)?,
        Command::Compact { vault } => {
            let v = open(&vault)?;
            let start = Instant::now();
            v.compact()?;
            writeln!(out, "compacted in {:.1} s", start.elapsed().as_secs_f64())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn init(args: &VaultArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let key_file = args
        .key_file
        .clone()
        .context("init needs --key-file: the path where the new root key is written")?;
    if std::env::var_os(chatvault::ROOT_KEY_ENV).is_some() {
        bail!(
            "{} is set; unset it for init, which writes a new root key to --key-file",
            chatvault::ROOT_KEY_ENV
        );
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    if chatvault::keys::path_is_inside(&key_file, &args.data) {
        bail!(
            "the key file {} is inside the data directory {}: keep the root key apart from \
             the data it protects",
            key_file.display(),
            args.data.display()
        );
    }
    if args.data.join(chatvault::KEYCHECK_FILE).exists() {
        bail!("{} already holds a vault", args.data.display());
    }
    let p = StaticKeyProvider::create_key_file(&key_file)
        .with_context(|| format!("creating the key file {}", key_file.display()))?;
    Vault::create(&args.data, Arc::new(p), VaultOptions::default())?;
    writeln!(
        out,
        "created vault {}\nroot key   {} (mode 0600; back it up apart from the vault: without it \
         the data can never be read)",
        args.data.display(),
        key_file.display()
    )?;
    Ok(())
}

fn import_irc(v: &Vault, paths: &[PathBuf], out: &mut impl Write) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(import::irc_log_files(p)?);
    }
    if files.is_empty() {
        bail!("no IRC log files (*.raw.txt, *.ascii.txt) under the given paths");
    }
    let bar = progress_bar(files.len() as u64);
    let start = Instant::now();
    let (mut written, mut skipped, mut in_files, mut users) = (0u64, 0u64, 0u64, 0u64);
    for f in &files {
        bar.set_message(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let r = import::import_irc_file(v, f, |_| true)?;
        written += r.messages_written;
        skipped += r.messages_already_present;
        in_files += r.messages_in_file;
        users += r.users_created;
        bar.inc(1);
    }
    bar.finish_and_clear();
    v.flush()?;
    let secs = start.elapsed().as_secs_f64();
    writeln!(
        out,
        "imported {} files: {in_files} messages ({written} written, {skipped} already present), \
         {users} new users, in {secs:.2} s ({:.0} messages/s)",
        files.len(),
        written as f64 / secs.max(1e-9)
    )?;
    Ok(())
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files  {msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn resolve(
    v: &Vault,
    tenant: &str,
    conversation: &str,
) -> anyhow::Result<(TenantId, ConversationId)> {
    let t = v
        .tenant(tenant)
        .with_context(|| format!("tenant {tenant:?} (see `chatvault ls`)"))?;
    let c = v
        .conversation_id(t, conversation)
        .with_context(|| format!("conversation {conversation:?} (see `chatvault ls {tenant}`)"))?;
    Ok((t, c))
}

fn ls(v: &Vault, tenant: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    match tenant {
        None => {
            for t in v.tenants()? {
                let n = v.conversations(t.id)?.count();
                writeln!(
                    out,
                    "{}\t{n} conversation{}",
                    t.name,
                    if n == 1 { "" } else { "s" }
                )?;
            }
        }
        Some(name) => {
            let t = v
                .tenant(name)
                .with_context(|| format!("tenant {name:?} (see `chatvault ls`)"))?;
            for c in v.conversations(t)? {
                let c = c?;
                let n = v.last_message_id(t, c.id)?;
                writeln!(out, "{}\t{n} messages", c.external_id)?;
            }
        }
    }
    Ok(())
}

fn read(
    v: &Vault,
    t: TenantId,
    c: ConversationId,
    from: Option<u64>,
    limit: Option<usize>,
    backward: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let dir = if backward {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let mut names = std::collections::HashMap::new();
    for m in v
        .messages(t, c, from, dir)?
        .take(limit.unwrap_or(usize::MAX))
    {
        let m = m?;
        let nick = match names.get(&m.author) {
            Some(n) => n,
            None => {
                let n = match v.user(t, m.author) {
                    Ok(u) => u.profile.display_name,
                    Err(Error::Shredded { .. }) => "[erased user]".into(),
                    Err(e) => return Err(e.into()),
                };
                names.entry(m.author).or_insert(n)
            }
        };
        let when = humantime::format_rfc3339_seconds(
            UNIX_EPOCH + Duration::from_millis(m.sent_at_ms.max(0) as u64),
        );
        let reply = m
            .reply_to
            .map(|r| format!(" (re #{r})"))
            .unwrap_or_default();
        if m.deleted_at_ms.is_some() {
            writeln!(out, "#{} {when} [deleted]", m.id)?;
            continue;
        }
        match m.kind {
            MessageKind::Action => writeln!(out, "#{} {when}{reply} * {nick} {}", m.id, m.body)?,
            _ => writeln!(out, "#{} {when}{reply} <{nick}> {}", m.id, m.body)?,
        }
    }
    Ok(())
}

fn stats(v: &Vault, out: &mut impl Write) -> anyhow::Result<()> {
    let mut total_msgs = 0u64;
    let tenants = v.tenants()?;
    for t in &tenants {
        let mut convs = 0u64;
        let mut msgs = 0u64;
        for c in v.conversations(t.id)? {
            let c = c?;
            convs += 1;
            msgs += v.last_message_id(t.id, c.id)?;
        }
        total_msgs += msgs;
        writeln!(
            out,
            "tenant {:<16} {convs:>5} conversations {msgs:>8} messages",
            t.name
        )?;
    }
    writeln!(
        out,
        "total: {} tenants, {total_msgs} messages",
        tenants.len()
    )?;
    let s = v.stats()?;
    writeln!(
        out,
        "column family      keys(est)   SST bytes   memtable bytes"
    )?;
    for c in &s.column_families {
        writeln!(
            out,
            "{:<16} {:>11} {:>11} {:>16}",
            c.name, c.estimated_keys, c.sst_bytes, c.memtable_bytes
        )?;
    }
    writeln!(out, "data directory: {} bytes", dir_size(v.path()))?;
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}
