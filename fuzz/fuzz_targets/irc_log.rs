//! The IRC log parser (`chatvault::import::irc::parse_log`, layouts in its module docs).
//!
//! Properties, on arbitrary (file name, log text, annotation text):
//! - it never panics;
//! - a rejection is a typed `IrcParseError` naming the file (the annotation file for
//!   `BadAnnotation`, with the log) and a 1-based line number within the file it names, and
//!   its message names both;
//! - an accepted log accounts for every line: messages + system lines = lines; each message's
//!   line ends with its body byte for byte and holds its nick before it; line numbers rise;
//!   times never go backwards; when no line was out of order, each timed message keeps its
//!   written time of day (modulo 12 h on a 12-hour clock), read where the file name's layout
//!   puts the clock (a `.ascii.txt` name with an Ubuntu date stem is the Ubuntu layout: a
//!   finding of the target itself, once); the conversation is the file stem
//!   (channel `ubuntu` for the Ubuntu layout); reply links point to earlier message lines,
//!   the nearest as `reply_to_line` and the others ascending before it, and `links_kept`
//!   counts them; no annotation, no links;
//! - line endings: the same text with every `\n` written `\r\n` (when it holds no `\r`) gives
//!   the same log, or the same error.
//!
//! Framing: `FILE NAME 0x00 LOG TEXT [0x00 ANNOTATION TEXT]` (no annotation without a second
//! 0x00); each part is read as UTF-8 with invalid bytes replaced (the importer refuses
//! non-UTF-8 files before parsing).
//!
//! Run: `./dev fuzz irc_log --seconds 60` (seeds: fuzz/seeds/irc_log, from the IRC
//! Disentanglement corpus, CC-BY-4.0).
#![no_main]

use chatvault::import::irc::{annotation_file_name, parse_log_with_stats, IrcLog, IrcParseError};
use libfuzzer_sys::fuzz_target;

const HOUR_MS: i64 = 3_600_000;

/// The log's lines as the parser splits them (module docs: a line ends at `\n`, a `\r` before
/// it is removed, a final `\n` starts no empty line).
fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// `[HH:MM]` or `[HH:MM:SS]` at the start of `s`, as ms since midnight.
fn clock(s: &str) -> Option<i64> {
    let inner = s.strip_prefix('[')?.split(']').next()?;
    let parts: Vec<&str> = inner.split(':').collect();
    let num = |p: &str| -> Option<i64> {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (num(h)?, num(m)?, 0),
        [h, m, s] => (num(h)?, num(m)?, num(s)?),
        _ => return None,
    };
    Some(h * HOUR_MS + m * 60_000 + s * 1000)
}

/// Which layout the parser reads a log of this file name in: `Some(true)` the dated layout
/// (`<channel>.<n>.ascii.txt`), `Some(false)` the Ubuntu layout (a `YYYY-MM-DD` stem, alone or
/// with `_HH` or `.<tag>`, even with the `.ascii.txt` suffix), `None` where only the parser's
/// calendar can tell (an Ubuntu-shaped stem whose day may not exist in its month).
fn dated_layout(name: &str) -> Option<bool> {
    let (stem, ascii) = match name.strip_suffix(".ascii.txt") {
        Some(s) => (s, true),
        None => (name.strip_suffix(".raw.txt")?, false),
    };
    let b = stem.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let date_shaped = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10);
    let rest = stem.get(10..).unwrap_or("");
    let rest_ok = rest.is_empty()
        || rest
            .strip_prefix('_')
            .is_some_and(|h| h.len() == 2 && h.bytes().all(|d| d.is_ascii_digit()))
        || rest.strip_prefix('.').is_some_and(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    if date_shaped && rest_ok {
        let month: u32 = stem[5..7].parse().ok()?;
        let day: u32 = stem[8..10].parse().ok()?;
        // Surely a date: the Ubuntu layout. Days 29 to 31 depend on the month and year.
        return ((1..=12).contains(&month) && (1..=28).contains(&day)).then_some(false);
    }
    Some(ascii)
}

fn check_log(
    name: &str,
    text: &str,
    annotation: Option<&str>,
    log: &IrcLog,
    twelve: bool,
    ooo: u32,
) {
    let lines = split_lines(text);
    let stem = name
        .strip_suffix(".raw.txt")
        .or_else(|| name.strip_suffix(".ascii.txt"))
        .expect("an accepted file name has a log suffix");
    assert_eq!(log.conversation, stem);
    if !name.ends_with(".ascii.txt") {
        assert_eq!(log.channel, "ubuntu");
    }
    assert_eq!(
        log.messages.len() + log.system_lines as usize,
        lines.len(),
        "every line is a message or a system line"
    );
    let is_message: std::collections::HashSet<u32> =
        log.messages.iter().map(|m| m.line_no).collect();
    let mut links = 0u32;
    let period = if twelve { 12 * HOUR_MS } else { 24 * HOUR_MS };
    for (i, m) in log.messages.iter().enumerate() {
        let line = lines[m.line_no as usize];
        assert!(
            line.ends_with(&m.body),
            "line {} does not end with its body",
            m.line_no
        );
        let head = &line[..line.len() - m.body.len()];
        assert!(
            head.contains(&m.nick),
            "line {} does not hold its nick",
            m.line_no
        );
        assert!(!m.nick.is_empty());
        if i > 0 {
            let p = &log.messages[i - 1];
            assert!(p.line_no < m.line_no);
            assert!(
                p.sent_at_ms <= m.sent_at_ms,
                "time went backwards at line {}",
                m.line_no
            );
        }
        if ooo == 0 {
            // The clock of a timed line: at its start (Ubuntu) or after `channel date `.
            let timed = match dated_layout(name) {
                Some(false) => line.starts_with('[').then_some(line),
                Some(true) => line.splitn(3, ' ').nth(2).filter(|r| r.starts_with('[')),
                None => None,
            };
            if let Some(tod) = timed.and_then(clock) {
                assert_eq!(
                    m.sent_at_ms.rem_euclid(period),
                    tod % period,
                    "line {} lost its written time of day",
                    m.line_no
                );
            }
        }
        if let Some(r) = m.reply_to_line {
            assert!(annotation.is_some());
            assert!(r < m.line_no && is_message.contains(&r));
            let mut prev = None;
            for &o in &m.other_reply_to_lines {
                assert!(o < r && is_message.contains(&o));
                assert!(
                    prev.map_or(true, |p| p < o),
                    "other parents ascending, once each"
                );
                prev = Some(o);
            }
            links += 1 + m.other_reply_to_lines.len() as u32;
        } else {
            assert!(m.other_reply_to_lines.is_empty());
        }
    }
    assert_eq!(log.links_kept, links);
    if annotation.is_none() {
        assert_eq!((log.links_kept, log.links_dropped), (0, 0));
    }
}

fn check_error(name: &str, text: &str, annotation: Option<&str>, e: &IrcParseError) {
    let msg = e.to_string();
    let in_range = |line: u32, text: &str| {
        assert!(
            line >= 1 && line as usize <= split_lines(text).len(),
            "line {line}: {msg}"
        );
    };
    match e {
        IrcParseError::BadFileName { file, .. } => assert_eq!(file, name),
        IrcParseError::UnknownLine { file, line, .. }
        | IrcParseError::BadTimestamp { file, line, .. }
        | IrcParseError::ChannelMismatch { file, line, .. } => {
            assert_eq!(file, name);
            in_range(*line, text);
            assert!(msg.contains(&format!("{name}:{line}")), "{msg}");
        }
        IrcParseError::BadAnnotation {
            file, log, line, ..
        } => {
            assert_eq!(log, name);
            assert_eq!(
                Some(file.clone()),
                annotation_file_name(name).or_else(|| Some(name.to_string()))
            );
            in_range(
                *line,
                annotation.expect("an annotation error needs an annotation"),
            );
            assert!(msg.contains(&format!("{file}:{line}")) && msg.contains(name));
        }
        IrcParseError::TooManyLines { .. } => panic!("a fuzz input has fewer than 2^32 lines"),
        other => panic!("unknown error {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let name = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let annotation = parts
        .next()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let result = parse_log_with_stats(&name, &text, annotation.as_deref());
    match &result {
        Ok((log, stats)) => check_log(
            &name,
            &text,
            annotation.as_deref(),
            log,
            stats.twelve_hour_clock,
            stats.out_of_order,
        ),
        Err(e) => check_error(&name, &text, annotation.as_deref(), e),
    }
    if !text.contains('\r') && !annotation.as_deref().unwrap_or_default().contains('\r') {
        let crlf = text.replace('\n', "\r\n");
        let ann = annotation.as_deref().map(|a| a.replace('\n', "\r\n"));
        let again = parse_log_with_stats(&name, &crlf, ann.as_deref());
        match (&result, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "CRLF line endings changed the log"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("CRLF line endings changed the outcome: {result:?} / {again:?}"),
        }
    }
});
