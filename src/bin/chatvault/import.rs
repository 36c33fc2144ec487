//! `chatvault import irc`: IRC logs, one file at a time.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use chatvault::import::{self, ImportOptions};

use crate::common::{self, plural, Failure, VaultArgs};

#[derive(clap::Subcommand)]
pub enum Source {
    /// Import IRC logs: one tenant per channel, one conversation per file, one user per nick.
    ///
    /// Reads `*.raw.txt` and `*.ascii.txt` logs with their `*.annotation.txt` (reply links)
    /// beside them: the Ubuntu layout (`<YYYY-MM-DD>_<HH>.raw.txt`, `[HH:MM] <nick> text`,
    /// channel ubuntu) and the dated layout (`<channel>.<n>.ascii.txt`, `<channel> <YYYY-MM-DD>
    /// [HH:MM:SS] <nick> text`). Messages, actions (`* nick text`) and notices are stored;
    /// joins, parts, quits, nick and mode changes are counted and skipped.
    ///
    /// Safe to re-run: a file already imported is checked message by message against the vault
    /// and skipped, and a file imported part-way continues where it stopped. Not all-or-nothing
    /// across files: files are imported one after the other, and when one fails, the files
    /// before it stay imported (the error lists them); fix the failing file and run the same
    /// command again.
    Irc(IrcArgs),
}

#[derive(clap::Args)]
pub struct IrcArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Import into this tenant instead of one tenant per channel (for example to keep a second
    /// log that has the same file name apart from the first).
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
    /// Log files or directories (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(source: Source, out: &mut impl Write) -> anyhow::Result<()> {
    match source {
        Source::Irc(args) => irc(&args, out),
    }
}

fn irc(args: &IrcArgs, out: &mut impl Write) -> anyhow::Result<()> {
    for p in &args.paths {
        match std::fs::metadata(p) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!(
                    "nothing to import at {}: no such file or directory",
                    p.display()
                )
            }
            Err(e) => bail!("cannot read {}: {e}", p.display()),
        }
    }
    let mut files = Vec::new();
    for p in &args.paths {
        files.extend(import::irc_log_files(p)?);
    }
    if files.is_empty() {
        bail!(
            "no IRC log files (*.raw.txt, *.ascii.txt) under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(t) = &args.tenant {
        if t.trim().is_empty() {
            bail!("--tenant needs a name");
        }
    }
    let v = common::open(&args.vault, "chatvault::import::import_irc_file")?;
    let options = ImportOptions {
        tenant: args.tenant.clone(),
    };
    let bar = progress_bar(files.len() as u64);
    let start = Instant::now();
    let mut t = Totals::default();
    for (i, f) in files.iter().enumerate() {
        bar.set_message(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let r = match import::import_irc_file_with(&v, f, &options, |_| true) {
            Ok(r) => r,
            Err(e) => {
                bar.finish_and_clear();
                return Err(Failure {
                    code: 1,
                    message: format!("{e}\n{}", done_before(&files[..i])),
                }
                .into());
            }
        };
        tracing::debug!(file = %f.display(), ?r, "file imported");
        t.messages += r.messages_in_file;
        t.system_lines += u64::from(r.system_lines);
        t.written += r.messages_written;
        t.present += r.messages_already_present;
        t.users += r.users_created;
        if r.history_off {
            t.history_off
                .push(format!("{}/{}", r.tenant, r.conversation));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    v.flush()?;
    let secs = start.elapsed().as_secs_f64();
    let lines = t.messages + t.system_lines;
    writeln!(
        out,
        "imported {} in {secs:.2} s: {} = {} + {} (joins, parts, quits, nick and mode \
         changes: not stored)",
        plural(files.len() as u64, "file"),
        plural(lines, "line"),
        plural(t.messages, "message"),
        plural(t.system_lines, "system line"),
    )?;
    let rate = if t.written > 0 {
        format!(" ({:.0} messages/s)", t.written as f64 / secs.max(1e-9))
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} written{rate}, {} already in the vault from an earlier import, {}",
        plural(t.written, "message"),
        t.present,
        plural(t.users, "new user"),
    )?;
    if !t.history_off.is_empty() {
        writeln!(
            out,
            "not stored, because history is off for the conversation: {}",
            t.history_off.join(", ")
        )?;
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    messages: u64,
    system_lines: u64,
    written: u64,
    present: u64,
    users: u64,
    history_off: Vec<String>,
}

/// What stays in the vault when file `done.len()` fails.
fn done_before(done: &[PathBuf]) -> String {
    const SHOWN: usize = 5;
    if done.is_empty() {
        return "  note: no file was imported by this run (this one was the first)".into();
    }
    let mut names: Vec<String> = done
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    if done.len() > SHOWN {
        names.push(format!("and {} more", done.len() - SHOWN));
    }
    format!(
        "  note: import is not all-or-nothing across files: the {} before it {} imported and \
         {} in the vault ({}); running the same command again checks and skips {}",
        plural(done.len() as u64, "file"),
        if done.len() == 1 { "was" } else { "were" },
        if done.len() == 1 { "stays" } else { "stay" },
        names.join(", "),
        if done.len() == 1 { "it" } else { "them" },
    )
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
