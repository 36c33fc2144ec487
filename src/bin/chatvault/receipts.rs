//! `chatvault receipts show|verify`: the shred receipt chain (`Vault::receipts`,
//! `Vault::verify_receipts`).

use std::io::Write;

use chatvault::{ChainHead, ReceiptEntry, ReceiptEvent};

use crate::common::{self, fmt_time, json_str, json_strs, scope_json, shred_scope_text, VaultArgs};

#[derive(clap::Subcommand)]
pub enum ReceiptsCommand {
    /// List every receipt, oldest first (internal ids only), and the chain head.
    Show(ShowArgs),
    /// Check the receipt chain: every MAC, every link, no gap; with --head, also that no
    /// receipt was cut off the end since that head was printed.
    ///
    /// Prints the head to keep. Exit codes: 0 intact, 1 error, 2 bad usage, 5 the chain is
    /// broken (the first broken entry is named: edited, dropped, reordered, or cut off the end).
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// One JSON object: {"entries": [...], "head": "SEQ:HEX" or null}.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    vault: VaultArgs,
    /// The head kept from an earlier `receipts verify` or `shred` (SEQ:HEX): detects entries
    /// cut off the end since then.
    #[arg(long, value_name = "SEQ:HEX", value_parser = parse_head)]
    head: Option<ChainHead>,
    /// Print one JSON object: {"intact", "entries" (verified), "head": "SEQ:HEX" or null,
    /// "broken": null or {"seq", "fault", "detail"}}. The exit code is the same as without it
    /// (5 when broken).
    #[arg(long)]
    json: bool,
}

fn parse_head(s: &str) -> Result<ChainHead, String> {
    s.parse::<ChainHead>().map_err(|e| e.to_string())
}

pub fn run(cmd: ReceiptsCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match cmd {
        ReceiptsCommand::Show(a) => show(&a, out),
        ReceiptsCommand::Verify(a) => verify(&a, out),
    }
}

fn show(a: &ShowArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&a.vault, "Vault::receipts")?;
    let entries = v.receipts()?;
    let head = v.receipts_head();
    if a.json {
        let items: Vec<String> = entries.iter().map(entry_json).collect();
        writeln!(
            out,
            r#"{{"entries":[{}],"head":{}}}"#,
            items.join(","),
            head.map(|h| json_str(&h.to_string()))
                .unwrap_or_else(|| "null".into())
        )?;
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(out, "no receipts yet (nothing has been shredded or queued)")?;
        return Ok(());
    }
    writeln!(out, "seq\ttime\treceipt")?;
    for e in &entries {
        writeln!(
            out,
            "{}\t{}\t{}",
            e.seq,
            fmt_time(e.at_ms),
            event_text(&e.event)
        )?;
    }
    if let Some(h) = head {
        writeln!(out, "head: {h}")?;
    }
    Ok(())
}

fn verify(a: &VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let v = common::open(&a.vault, "Vault::verify_receipts")?;
    let r = v.verify_receipts(a.head.as_ref())?;
    if a.json {
        common::print_json(
            out,
            &serde_json::json!({
                "intact": r.broken.is_none(),
                "entries": r.entries,
                "head": r.head.map(|h| h.to_string()),
                "broken": r.broken.as_ref().map(|b| serde_json::json!({
                    "seq": b.seq,
                    "fault": b.fault.to_string(),
                    "detail": b.detail,
                })),
            }),
        )?;
        if let Some(b) = &r.broken {
            out.flush()?;
            return Err(common::Failure {
                code: common::EXIT_CHAIN_BROKEN,
                message: format!(
                    "receipt chain broken at {b} ({} verified); restore the receipts from a \
                     backup and investigate",
                    common::count(r.entries, "entry", "entries")
                ),
            }
            .into());
        }
        return Ok(());
    }
    common::report_chain(
        &r,
        a.head.as_ref(),
        &common::ChainWords {
            name: "receipt chain",
            altered: "The receipts were altered by someone who could write the data directory \
                      ({} verified); restore the receipts from a backup and investigate",
            empty: "empty (nothing has been shredded or queued)",
            command: "receipts",
            items: "receipts",
        },
        out,
    )
}

fn event_text(e: &ReceiptEvent) -> String {
    match e {
        ReceiptEvent::Shredded {
            tenant,
            scope,
            key_ranges,
            queued,
            ..
        } => format!(
            "shredded {}{}; keys destroyed: {}",
            shred_scope_text(*tenant, scope),
            queued
                .map(|q| format!(" (carries out queued request {q})"))
                .unwrap_or_default(),
            key_ranges.join(", ")
        ),
        ReceiptEvent::Queued {
            tenant,
            scope,
            held_by,
        } => format!(
            "queued the erasure of {} under legal hold {}",
            shred_scope_text(*tenant, scope),
            held_by
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ReceiptEvent::Removed { shred_seq } => {
            format!("removed from every data file: the records and keys of shred {shred_seq}")
        }
        ReceiptEvent::Resolved { queued_seq, by } => match by {
            Some(b) => format!("queued request {queued_seq} resolved: covered by shred {b}"),
            None => format!("queued request {queued_seq} resolved: its scope was already shredded"),
        },
    }
}

fn entry_json(e: &ReceiptEntry) -> String {
    let common = format!(
        r#""seq":{},"at_ms":{},"at":{},"mac":{}"#,
        e.seq,
        e.at_ms,
        json_str(&fmt_time(e.at_ms)),
        json_str(&hex::encode(e.mac))
    );
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "null".into());
    let body = match &e.event {
        ReceiptEvent::Shredded {
            tenant,
            scope,
            key_ranges,
            window,
            queued,
        } => format!(
            r#""event":"shredded","tenant":{},"scope":{},"key_ranges":{},"window":{},"queued":{}"#,
            tenant.as_u64(),
            scope_json(scope),
            json_strs(key_ranges),
            window
                .map(|(a, b)| format!("[{a},{b}]"))
                .unwrap_or_else(|| "null".into()),
            opt(*queued)
        ),
        ReceiptEvent::Queued {
            tenant,
            scope,
            held_by,
        } => format!(
            r#""event":"queued","tenant":{},"scope":{},"held_by":[{}]"#,
            tenant.as_u64(),
            scope_json(scope),
            held_by
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        ReceiptEvent::Removed { shred_seq } => {
            format!(r#""event":"removed","shred_seq":{shred_seq}"#)
        }
        ReceiptEvent::Resolved { queued_seq, by } => format!(
            r#""event":"resolved","queued_seq":{queued_seq},"by":{}"#,
            opt(*by)
        ),
    };
    format!("{{{common},{body}}}")
}
