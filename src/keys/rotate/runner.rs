//! Re-seals with bounded concurrency, an optional rate limit and retries of
//! transient failures: the engine under one rotation pass.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::{Progress, ResealOutcome, RotationOptions, RotationReport, TRANSIENT_ATTEMPTS};
use crate::hsm::CrkVersion;
use crate::keys::{KeyError, KeyService};
use crate::store::Record;

pub(super) enum Work {
    Record(Record),
    Uid(String),
}

impl Work {
    fn uid(&self) -> &str {
        match self {
            Work::Record(r) => &r.uid,
            Work::Uid(u) => u,
        }
    }
}

/// Runs re-seals with bounded concurrency and an optional rate limit.
pub(super) struct Runner {
    keys: Arc<KeyService>,
    target: CrkVersion,
    concurrency: usize,
    max_rate: Option<u32>,
    started_at: Instant,
    started: u64,
    tasks: JoinSet<(String, Result<ResealOutcome, KeyError>)>,
    in_flight: BTreeSet<String>,
    progress: Progress,
}

impl Runner {
    pub(super) fn new(
        keys: Arc<KeyService>,
        target: CrkVersion,
        options: &RotationOptions,
        pass: u32,
        total: u64,
    ) -> Self {
        Runner {
            keys,
            target,
            concurrency: options.concurrency.max(1),
            max_rate: options.max_rate.filter(|&r| r > 0),
            started_at: Instant::now(),
            started: 0,
            tasks: JoinSet::new(),
            in_flight: BTreeSet::new(),
            progress: Progress {
                pass,
                total,
                ..Progress::default()
            },
        }
    }

    pub(super) async fn submit(
        &mut self,
        work: Work,
        report: &mut RotationReport,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), KeyError> {
        while self.tasks.len() >= self.concurrency {
            self.collect_one(report, progress).await?;
        }
        if let Some(rate) = self.max_rate {
            let due = self.started_at + Duration::from_secs_f64(self.started as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
        }
        self.started += 1;
        self.in_flight.insert(work.uid().to_owned());
        let keys = Arc::clone(&self.keys);
        let target = self.target;
        self.tasks.spawn(async move {
            let uid = work.uid().to_owned();
            let result = reseal_with_retries(&keys, work, target).await;
            (uid, result)
        });
        Ok(())
    }

    async fn collect_one(
        &mut self,
        report: &mut RotationReport,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), KeyError> {
        let Some(joined) = self.tasks.join_next().await else {
            return Ok(());
        };
        let (uid, result) = joined.map_err(KeyError::Task)?;
        self.in_flight.remove(&uid);
        match result {
            Ok(outcome) => report.add(outcome),
            // Still failing after retries: stop; the rotation can be resumed.
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                report.failed.insert(uid, e.to_string());
            }
        }
        self.progress.done += 1;
        self.progress.resealed = report.resealed;
        self.progress.total = self.progress.total.max(self.progress.done);
        progress(self.progress);
        Ok(())
    }

    pub(super) async fn finish(
        mut self,
        report: &mut RotationReport,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), KeyError> {
        while !self.tasks.is_empty() {
            self.collect_one(report, progress).await?;
        }
        Ok(())
    }
}

/// One record's re-seal, retried after transient HSM or store failures
/// (with a short back-off) before the error is reported.
async fn reseal_with_retries(
    keys: &KeyService,
    work: Work,
    target: CrkVersion,
) -> Result<ResealOutcome, KeyError> {
    let (uid, mut record) = match work {
        Work::Record(record) => (record.uid.clone(), Some(record)),
        Work::Uid(uid) => (uid, None),
    };
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = match record.take() {
            Some(r) => keys.reseal_record(r, target).await,
            None => keys.reseal(&uid, target).await,
        };
        match result {
            Err(e) if e.is_transient() && attempt < TRANSIENT_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}
