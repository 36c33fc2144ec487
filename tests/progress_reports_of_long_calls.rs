//! The progress callbacks of long calls: verify reports one stage per column family with the
//! records it checked, compact one per column family, purge its scan, compaction and file
//! check. The CLI draws them on a terminal (`chatvault verify`, `purge`, `compact`).

mod common;

use std::sync::Mutex;

use chatvault::{
    Actor, History, NewMessage, Policy, Progress, PurgeOptions, Retention, TenantOptions,
    TenantPolicy, PROGRESS_EVERY,
};

/// Every report, as (stage, stage_no, stages, done).
type Log = Mutex<Vec<(String, u32, u32, u64)>>;

#[test]
fn verify_compact_and_purge_report_their_stages() {
    let (_dir, v, _) = common::new_vault();
    let f = common::fixture(&v, "acme", TenantOptions::default());
    let n = PROGRESS_EVERY + 10;
    let msgs: Vec<_> = (0..n)
        .map(|k| NewMessage::text(f.alice, 1_000 + k as i64, "hi"))
        .collect();
    let _stored = v.append_batch(f.t, f.c, &msgs).unwrap();

    let log: Log = Mutex::new(Vec::new());
    let record = |p: Progress<'_>| {
        log.lock()
            .unwrap()
            .push((p.stage.to_string(), p.stage_no, p.stages, p.done))
    };
    let r = v.verify_with_progress(&record).unwrap();
    assert!(r.is_ok());
    let got = std::mem::take(&mut *log.lock().unwrap());
    let stages: Vec<_> = got.iter().map(|(s, ..)| s.as_str()).collect::<Vec<_>>();
    let mut distinct = stages.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        ["keys", "meta", "messages", "revisions", "time_index"]
    );
    assert!(got.iter().all(|(_, _, total, _)| *total == 5));
    // The messages stage reported in between (every PROGRESS_EVERY) and ended at the count.
    let msg: Vec<u64> = got
        .iter()
        .filter(|(s, ..)| s == "messages")
        .map(|(.., d)| *d)
        .collect();
    assert_eq!(msg, [0, PROGRESS_EVERY, n], "{got:?}");

    v.compact_with_progress(&record).unwrap();
    let got = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(got.len(), 10, "start and end of 5 stages: {got:?}");
    assert_eq!(got.last().unwrap(), &("time_index".to_string(), 5, 5, 1));

    // Everything expires (sent in 1970, kept a minute), so the purge runs every stage.
    v.set_tenant_policy(
        f.t,
        Actor::operator(),
        TenantPolicy {
            default: Policy {
                history: History::On,
                retention: Retention::period_ms(60_000).unwrap(),
            },
            members_may_change: false,
        },
    )
    .unwrap();
    v.purge_with_progress(PurgeOptions::default(), &record)
        .unwrap();
    let got = std::mem::take(&mut *log.lock().unwrap());
    let mut names: Vec<_> = got.iter().map(|(s, ..)| s.as_str()).collect();
    names.dedup();
    assert_eq!(names, ["scan", "re-version keys", "compact", "check files"]);
    let scanned = got
        .iter()
        .filter(|(s, ..)| s == "scan")
        .map(|(.., d)| *d)
        .max();
    assert_eq!(scanned, Some(1), "one conversation scanned");
}
