//! Progress reports of long calls ([`crate::Vault::verify_with_progress`],
//! [`crate::Vault::compact_with_progress`], [`crate::Vault::purge_with_progress`]), for a caller that shows them. The library draws
//! nothing: the CLI turns them into a bar on a terminal.

/// Where a long call is. Reported at the start and end of each stage and every
/// [`PROGRESS_EVERY`] items in between; the callback runs on the calling thread, inside the
/// call, so it should be quick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// What the call is doing now, e.g. the column family being verified (`keys`, `meta`,
    /// `messages`, `revisions`, `time_index`) or compacted.
    pub stage: &'a str,
    /// Number of this stage, from 1.
    pub stage_no: u32,
    /// Number of stages of the call.
    pub stages: u32,
    /// Items done in this stage (records, for verify).
    pub done: u64,
    /// Items in this stage, if known: RocksDB's estimate (`rocksdb.estimate-num-keys`), which
    /// `done` may pass.
    pub total: Option<u64>,
}

/// How many items pass between two reports within a stage.
pub const PROGRESS_EVERY: u64 = 4096;

/// Counts the items of one stage and reports every [`PROGRESS_EVERY`].
pub(crate) struct Ticker<'a> {
    f: &'a dyn Fn(Progress<'_>),
    stage: &'a str,
    stage_no: u32,
    stages: u32,
    done: u64,
    total: Option<u64>,
}

impl<'a> Ticker<'a> {
    pub(crate) fn new(f: &'a dyn Fn(Progress<'_>), stages: u32) -> Self {
        Ticker {
            f,
            stage: "",
            stage_no: 0,
            stages,
            done: 0,
            total: None,
        }
    }

    fn report(&self) {
        (self.f)(Progress {
            stage: self.stage,
            stage_no: self.stage_no,
            stages: self.stages,
            done: self.done,
            total: self.total,
        });
    }

    /// Starts the next stage.
    pub(crate) fn stage(&mut self, stage: &'a str, total: Option<u64>) {
        self.stage = stage;
        self.stage_no += 1;
        self.done = 0;
        self.total = total;
        self.report();
    }

    /// The call has `n` more stages than it announced (a retry).
    pub(crate) fn more_stages(&mut self, n: u32) {
        self.stages += n;
    }

    /// One more item done.
    pub(crate) fn tick(&mut self) {
        self.done += 1;
        if self.done % PROGRESS_EVERY == 0 {
            self.report();
        }
    }

    /// The stage is done.
    pub(crate) fn end_stage(&mut self) {
        self.report();
    }
}
