//! `chatvault`: the operator's command-line tool. Every command is a thin wrapper over a library
//! call, run on a vault that no other process holds (RocksDB allows one process per vault; a
//! backend that serves the vault makes the same calls through the library instead).
//!
//! One file per subcommand; `common` holds what they share.

mod audit;
mod checkpoint;
mod common;
mod compact;
mod consent;
mod export;
mod export_format;
mod extension;
mod hold;
mod import;
mod init;
mod key;
mod ls;
mod purge;
mod read;
mod receipts;
mod retention;
mod shred;
mod stats;
mod user;
mod verify;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use common::{Failure, Stdout};

/// chatvault: chat transcripts encrypted at rest on RocksDB.
///
/// Every command that writes works on a vault that no other process has open (RocksDB allows
/// one writer process per vault); the read-only ones (verify, stats, ls, read) can run beside
/// it with --secondary DIR. The root key comes from --key-file (or CHATVAULT_KEY_FILE) or from
/// CHATVAULT_ROOT_KEY, never both. Logs on stderr: errors only by default; CHATVAULT_LOG=warn,
/// info or debug shows more.
///
/// Exit codes (every command's --help lists its own): 0 done, 1 error, 2 bad usage, 3 purge
/// incomplete, 4 refused by a legal hold (shred), 5 verification failed (verify, receipts
/// verify, audit verify), 6 the checkpoint needs a retired root key version (restore), 7
/// consent required (an extension's access refused), 8 the vault's format version cannot be
/// used by this build (newer than it reads, or older on a read-only --secondary, which never
/// upgrades).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new vault and a new root key file.
    ///
    /// Writes the root key to --key-file (mode 0600; it must not exist yet and must lie outside
    /// the data directory), then creates the vault in --data (a new or empty directory).
    /// Everything is checked before anything is created. init always needs --key-file, even if
    /// the key is later passed in CHATVAULT_ROOT_KEY (which must be unset for init).
    #[command(after_help = init::EXIT_CODES)]
    Init(init::InitArgs),
    /// Import chat logs.
    Import {
        #[command(subcommand)]
        source: import::Source,
    },
    /// List tenants, or the conversations of a tenant with their message counts.
    Ls(ls::LsArgs),
    /// Print a conversation's messages, oldest first.
    Read(read::ReadArgs),
    /// Show counts (visible messages per tenant), keys per state, the records sealed under the
    /// current key versions per tenant, and storage sizes per column family (live and dead
    /// estimates). Reads only; --secondary DIR runs it beside a serving process.
    #[command(after_help = stats::EXIT_CODES)]
    Stats(stats::StatsArgs),
    /// Flush and compact every column family down to the bottommost level, or with --tenant
    /// (and --conversation) only that scope's key ranges.
    #[command(after_help = compact::EXIT_CODES)]
    Compact(compact::CompactArgs),
    /// Write a consistent copy of the vault (a checkpoint) to a new or empty directory.
    ///
    /// SST files are hard-linked where possible. The copy opens with the same key file until a
    /// purge re-versions keys (after shreds or expired days): keep the key file of its time with
    /// it if it must stay restorable.
    #[command(after_help = checkpoint::CHECKPOINT_EXIT_CODES)]
    Checkpoint(checkpoint::CheckpointArgs),
    /// Restore a checkpoint into --data (a new or empty directory), checking first that it is a
    /// chatvault checkpoint and that it opens with the root key.
    ///
    /// A checkpoint taken before a shred or an erasure (each re-versions keys before it
    /// returns), or before a purge that destroyed expired days' keys, needs a root key version
    /// the key file no longer holds: it is refused (exit 6), so that it cannot bring back data
    /// destroyed since. A checkpoint taken after a shred keeps it shredded.
    #[command(after_help = checkpoint::RESTORE_EXIT_CODES)]
    Restore(checkpoint::RestoreArgs),
    /// Show or set retention policies (history on/off, retention period).
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCommand,
    },
    /// Place, release and list legal holds.
    Hold {
        #[command(subcommand)]
        command: hold::HoldCommand,
    },
    /// Remove expired and shredded records from disk (verified by a byte scan of every data
    /// file), destroy the keys of fully expired days, and re-version keys still waiting for it.
    ///
    /// Prints, per conversation, what is (or with --dry-run, would be) removed, then whether
    /// the purge is complete: verified by a scan of every data file that no removed record is
    /// left. Exit code 3 if it is not complete.
    #[command(after_help = purge::EXIT_CODES)]
    Purge(purge::PurgeArgs),
    /// Rotate and retire root key versions; rotate tenant KEKs and data keys, re-seal records
    /// under the new versions and retire the old ones, while nothing is lost.
    Key {
        #[command(subcommand)]
        command: key::KeyCommand,
    },
    /// Open and authenticate every wrapped key, metadata record, message and revision, and
    /// check that the time index agrees with the records.
    ///
    /// Prints per conversation and per tenant how many records are fine, expired or shredded
    /// and awaiting purge, or failed, then every failure (ids only, never plaintext). Reads
    /// only; --secondary DIR runs it beside a serving process. Exit code 5 if anything failed.
    #[command(after_help = verify::EXIT_CODES)]
    Verify(verify::VerifyArgs),
    /// Crypto-shred a tenant, conversation, user or day window: destroy the keys that guard it.
    ///
    /// What the keys guarded can never be read again. Requires --yes (nothing is asked
    /// interactively). Prints the receipt: internal ids, the key ranges destroyed, the time, its
    /// seq in the receipt chain and the new chain head (--json: one JSON object). A legal hold
    /// over any part of the scope refuses the shred; with --queue-if-held the erasure is queued
    /// instead and carried out when the last hold over it is released. `chatvault purge` then
    /// removes the shredded records from every data file.
    ///
    /// Exit codes: 0 shredded (or, with --queue-if-held, queued), 1 error (not found, already
    /// shredded, ...), 2 bad usage (or --yes missing: nothing changed), 4 under legal hold:
    /// nothing destroyed, nothing queued.
    Shred {
        #[command(subcommand)]
        scope: shred::ShredCommand,
    },
    /// Show or verify the shred receipt chain (MAC-chained, append-only).
    ///
    /// Exit codes of `verify`: 0 intact, 1 error, 2 bad usage, 5 broken (the first broken
    /// entry is named).
    Receipts {
        #[command(subcommand)]
        command: receipts::ReceiptsCommand,
    },
    /// Data-subject rights of one user: access, rectification, restriction of processing,
    /// erasure (export is `chatvault export user`).
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Export a user, a conversation or a tenant as JSON Lines (format chatvault-export v1,
    /// docs/export-schema-v1.json), to standard output or --out FILE. A progress bar shows on a
    /// terminal, none when the output is piped.
    ///
    /// With --format slack or --format mattermost, a tenant or a conversation is written back
    /// as a Slack export zip or a Mattermost bulk export (JSON Lines) instead.
    Export {
        /// chatvault (JSON Lines, the default), slack (a Slack export zip: needs --out) or
        /// mattermost (a Mattermost bulk export, JSON Lines).
        #[arg(long, value_enum, global = true, default_value = "chatvault")]
        format: export_format::Format,
        #[command(subcommand)]
        command: export::ExportCommand,
    },
    /// Show or verify the audit trail (MAC-chained, append-only, like the receipts): exports,
    /// rectifications, restrictions, erasures, shreds, policy and hold changes.
    ///
    /// Exit codes of `verify`: 0 intact, 1 error, 2 bad usage, 5 broken (the first broken
    /// entry is named).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Extensions: register (with the scopes they ask for, and organisation-wide consent for
    /// organisation-level scopes), list, remove, add to conversations, and read as one
    /// (refused with exit 7 without a live consent grant).
    Extension {
        #[command(subcommand)]
        command: extension::ExtensionCommand,
    },
    /// A user's consent for extensions: grant (personal scopes, with an expiry, default 60
    /// days), revoke (at once), list.
    Consent {
        #[command(subcommand)]
        command: consent::ConsentCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHATVAULT_LOG")
                // Errors only by default: what an operator must act on is in the command's own
                // output; CHATVAULT_LOG=warn|info|debug shows more.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    // An empty CHATVAULT_KEY_FILE or CHATVAULT_DATA means unset (as an empty CHATVAULT_ROOT_KEY
    // does), not "a value is required": clap would take the empty value. Single-threaded here.
    for var in ["CHATVAULT_KEY_FILE", "CHATVAULT_DATA"] {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(var);
        }
    }
    // Under --json a failure is also one JSON object on stdout, for scripts that read only it
    // (usage errors included; --help and --version stay text).
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let matches = document_exit_codes(Cli::command()).try_get_matches();
    let cli = match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let help = matches!(
                e.kind(),
                K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if json && !help {
                let text = e.render().to_string();
                let message = text
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("bad usage")
                    .trim_start_matches("error: ")
                    .to_string();
                println!(
                    "{}",
                    serde_json::json!({"error": message, "exit_code": e.exit_code()})
                );
            }
            e.exit()
        }
    };
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
            let (code, text) = if let Some(f) = e.downcast_ref::<Failure>() {
                (f.code, f.to_string())
            } else {
                let mut text = e.to_string();
                let mut shown = text.clone();
                for cause in e.chain().skip(1) {
                    // Most errors already quote their cause; do not say it twice.
                    let s = cause.to_string();
                    if shown.contains(&s) {
                        continue;
                    }
                    text.push_str(&format!("\n  caused by: {s}"));
                    shown = s;
                }
                (common::exit_code_of(&e).unwrap_or(1), text)
            };
            eprintln!("error: {text}");
            if json {
                let message = text.replace("\n  caused by: ", ": ");
                println!(
                    "{}",
                    serde_json::json!({"error": message, "exit_code": code})
                );
            }
            ExitCode::from(code)
        }
    }
}

/// Exit code 8 is the same for every command that opens a vault.
const FORMAT_EXIT: &str = "8 the vault's format version cannot be used by this build (newer \
than it reads: use the chatvault the message names; or older, on a read-only --secondary: open \
it once without --secondary to upgrade it).";

/// Gives every command's --help an "Exit codes" section (the commands with codes of their own
/// set it themselves), with code 8 in each.
fn document_exit_codes(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_subcommands(document_exit_codes);
    if cmd.has_subcommands() || cmd.get_name() == "help" {
        return cmd;
    }
    let in_about = cmd
        .get_long_about()
        .or(cmd.get_about())
        .is_some_and(|a| a.to_string().contains("Exit codes"));
    let own = cmd.get_after_help().map(|h| h.to_string());
    match own {
        Some(h) if h.contains(" 8 ") => cmd,
        Some(h) => cmd.after_help(format!("{h}\nAlso: {FORMAT_EXIT}")),
        None if in_about => cmd.after_help(format!("Also: {FORMAT_EXIT}")),
        None => cmd.after_help(format!(
            "Exit codes: 0 done, 1 error (the message says what is wrong and what to do), 2 \
             bad usage, {FORMAT_EXIT}"
        )),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = io::BufWriter::new(Stdout::new());
    match cli.command {
        Command::Init(args) => init::run(&args, &mut out)?,
        Command::Import { source } => import::run(source, &mut out)?,
        Command::Ls(args) => ls::run(&args, &mut out)?,
        Command::Read(args) => read::run(&args, &mut out)?,
        Command::Stats(args) => stats::run(&args, &mut out)?,
        Command::Compact(args) => compact::run(&args, &mut out)?,
        Command::Checkpoint(args) => checkpoint::checkpoint(&args, &mut out)?,
        Command::Restore(args) => checkpoint::restore(&args, &mut out)?,
        Command::Retention { command } => retention::run(command, &mut out)?,
        Command::Hold { command } => hold::run(command, &mut out)?,
        Command::Key { command } => key::run(command, &mut out)?,
        Command::Verify(args) => {
            let r = verify::run(&args, &mut out);
            out.flush()?;
            r?
        }
        Command::Shred { scope } => shred::run(scope, &mut out)?,
        Command::Receipts { command } => receipts::run(command, &mut out)?,
        Command::User { command } => user::run(command, &mut out)?,
        Command::Export { format, command } => match format {
            export_format::Format::Chatvault => export::run(command, &mut out)?,
            f => export_format::run(f, command, &mut out)?,
        },
        Command::Audit { command } => audit::run(command, &mut out)?,
        Command::Extension { command } => extension::run(command, &mut out)?,
        Command::Consent { command } => consent::run(command, &mut out)?,
        Command::Purge(args) => {
            // Print the report even when the purge is incomplete (an error follows it).
            let r = purge::run(&args, &mut out);
            out.flush()?;
            r?
        }
    }
    out.flush()?;
    Ok(())
}
