//! `chatvault import irc|slack|mattermost`: IRC logs (one file at a time), Slack export zips
//! and Mattermost bulk exports.

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
    /// Import a Slack workspace export (the zip from Slack's export page): one tenant for the
    /// workspace, one conversation per channel, private channel, DM and group DM, one user per
    /// user and bot.
    ///
    /// Threads become reply links, edits revisions, deletions deletions, file shares attachment
    /// metadata; reactions, pins, file contents and URLs are not stored (the summary counts
    /// what was skipped and why; README "Slack and Mattermost"). Safe to re-run: messages are
    /// keyed by their ts, so what is stored is skipped and an import stopped part-way
    /// continues. A malformed entry stops the import with an error naming the entry; what was
    /// imported before it stays.
    Slack(ExternalArgs),
    /// Import a Mattermost bulk export (JSON Lines, version 1): one tenant for the export,
    /// one conversation per channel and direct channel, one user per user.
    ///
    /// Replies keep their link to their post (even when stamped before it; history is not
    /// reordered); reactions and emoji are not stored. Re-runs and part-way imports behave as
    /// for `import slack`; a malformed line stops the import with an error naming the line.
    Mattermost(ExternalArgs),
}

#[derive(clap::Args)]
pub struct ExternalArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Import into this tenant (default: the Slack team id, or the first Mattermost team).
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
    /// Print the summary as one JSON object: the import report's fields (tenant, counts of
    /// conversations, messages, edits, deletions, users and memberships), "skipped" and
    /// "notes" (each a map from the reason, as printed without --json, to a count),
    /// "history_off" and "seconds".
    #[arg(long)]
    json: bool,
    /// The export file (Slack: the .zip; Mattermost: the .jsonl).
    #[arg(value_name = "FILE")]
    path: PathBuf,
}

#[derive(clap::Args)]
pub struct IrcArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// Import into this tenant instead of one tenant per channel (for example to keep a second
    /// log that has the same file name apart from the first).
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
    /// Print the summary as one JSON object: {"source": "irc", "files", "lines",
    /// "messages_in_files", "messages_written", "messages_already_present", "users_created",
    /// "skipped": {"system_lines" (joins, parts, quits, nick and mode changes: not stored)},
    /// "history_off", "completed", "seconds"}.
    #[arg(long)]
    json: bool,
    /// Log files or directories (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(source: Source, out: &mut impl Write) -> anyhow::Result<()> {
    match source {
        Source::Irc(args) => irc(&args, out),
        Source::Slack(args) => external(&args, "slack", out),
        Source::Mattermost(args) => external(&args, "mattermost", out),
    }
}

fn external(args: &ExternalArgs, format: &str, out: &mut impl Write) -> anyhow::Result<()> {
    match std::fs::metadata(&args.path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => bail!("{} is not a file", args.path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("nothing to import at {}: no such file", args.path.display())
        }
        Err(e) => bail!("cannot read {}: {e}", args.path.display()),
    }
    if let Some(t) = &args.tenant {
        if t.trim().is_empty() {
            bail!("--tenant needs a name");
        }
    }
    let call = if format == "slack" {
        "chatvault::import::slack::import_slack_export"
    } else {
        "chatvault::import::mattermost::import_mattermost_export"
    };
    let v = common::open(&args.vault, call)?;
    let options = ImportOptions {
        tenant: args.tenant.clone(),
    };
    let bar = spinner();
    let start = Instant::now();
    let mut progress = |r: &import::ExternalImportReport| {
        bar.set_message(format!(
            "{} messages written, {} already present",
            r.messages_written, r.messages_already_present
        ));
        true
    };
    let r = if format == "slack" {
        import::slack::import_slack_export(&v, &args.path, &options, &mut progress)
    } else {
        import::mattermost::import_mattermost_export(&v, &args.path, &options, &mut progress)
    };
    bar.finish_and_clear();
    let r = r.map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    v.flush()?;
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        let mut j = serde_json::to_value(&r)?;
        if let Some(o) = j.as_object_mut() {
            o.insert("seconds".into(), serde_json::json!(secs));
        }
        return common::print_json(out, &j);
    }
    writeln!(
        out,
        "imported {} into tenant {} in {secs:.2} s: {} ({} created), {}",
        args.path.display(),
        r.tenant,
        plural(r.conversations_in_export, "conversation"),
        r.conversations_created,
        plural(r.messages_in_export, "message"),
    )?;
    writeln!(
        out,
        "{} written, {} already in the vault from an earlier import, {} and {} applied, {}, {}",
        plural(r.messages_written, "message"),
        r.messages_already_present,
        plural(r.edits_applied, "edit"),
        plural(r.deletions_applied, "deletion"),
        plural(r.users_created, "new user"),
        plural(r.memberships_added, "new membership"),
    )?;
    for (why, n) in &r.skipped {
        writeln!(out, "skipped {n}: {why}")?;
    }
    for (why, n) in &r.notes {
        writeln!(out, "note, {n}: {why}")?;
    }
    if !r.history_off.is_empty() {
        writeln!(
            out,
            "not stored, because history is off for the conversation: {}",
            r.history_off.join(", ")
        )?;
    }
    Ok(())
}

fn spinner() -> indicatif::ProgressBar {
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} importing: {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
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
    if args.json {
        return common::print_json(
            out,
            &serde_json::json!({
                "source": "irc",
                "files": files.len(),
                "lines": lines,
                "messages_in_files": t.messages,
                "messages_written": t.written,
                "messages_already_present": t.present,
                "users_created": t.users,
                "skipped": {"system_lines": t.system_lines},
                "history_off": t.history_off,
                "completed": true,
                "seconds": secs,
            }),
        );
    }
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
