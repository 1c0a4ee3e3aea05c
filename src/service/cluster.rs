//! A node of a KMS cluster: the index of the remote store every node shares
//! (`store::indexed`), kept in step by a sync task, its events in the audit
//! trail, its standing with the store in `/health/ready` and the metrics.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Health;
use crate::audit::{AuditEvent, AuditSink};
use crate::store::{IndexEvent, IndexedStore};

/// Sends the index's events to the audit trail, the log and the metrics.
pub(super) fn report_events(index: &IndexedStore, audit: AuditSink, metrics: crate::metrics::Metrics) {
    index.set_events(move |event| {
        let admin = |operation: &str| AuditEvent::admin(operation);
        let record = match &event {
            IndexEvent::DeletedInStore { uid } => {
                metrics.index_event("deleted_in_store");
                tracing::warn!(uid = %uid, "a record was deleted in the store: no longer served");
                admin("StoreRecordDeleted")
                    .object(Some(uid))
                    .message("deleted in the store by someone else: no longer served")
            }
            IndexEvent::RolledBack { uid, seen, found } => {
                metrics.index_event("rolled_back");
                tracing::error!(uid = %uid, seen, found, "a record was rolled back in the store: refused");
                admin("StoreRecordRolledBack").object(Some(uid)).failed(
                    "GeneralFailure",
                    &format!(
                        "changed outside keyward: the store holds version {found}, this node saw version {seen}; refused"
                    ),
                )
            }
            IndexEvent::ServedFromCopy { uid } => {
                // One per read during an outage: counted, logged at debug
                // only (the outage itself is logged and audited once).
                metrics.index_event("served_from_copy");
                tracing::debug!(uid = %uid, "store out of reach: read served from this node's sealed copy");
                return;
            }
            IndexEvent::Unreachable { detail, grace } => {
                tracing::warn!(error = %detail, grace_s = grace.as_secs(), "store out of reach: writes fail; reads from sealed copies within the grace");
                admin("StoreUnreachable").message(&format!(
                    "{detail}; writes fail, reads served from sealed copies for up to {} s",
                    grace.as_secs()
                ))
            }
            IndexEvent::Reachable { after } => {
                tracing::info!(down_for_ms = after.as_millis() as u64, "store reachable again");
                admin("StoreReachable").message(&format!("after {} s", after.as_secs()))
            }
        };
        audit.emit(record);
    });
}

/// Every `every`, compares the index with the remote store (records deleted
/// there stop being listed, records other nodes wrote are fetched) and
/// records where the node stands with the store.
pub(super) async fn sync_index(
    index: Arc<IndexedStore>,
    health: Arc<Health>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The standing is refreshed every second (a grace runs out by itself);
    // the sync runs every `every`.
    let mut ticks = tokio::time::interval(Duration::from_secs(1).min(every));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {}
        }
        health.set_store_reach(index.reach());
        if last_sync.is_some_and(|at| at.elapsed() < every) {
            continue;
        }
        last_sync = Some(tokio::time::Instant::now());
        match index.sync().await {
            Ok(report) if report.fetched + report.deleted + report.rolled_back > 0 => {
                tracing::info!(
                    remote = report.remote,
                    fetched = report.fetched,
                    deleted = report.deleted,
                    rolled_back = report.rolled_back,
                    "index synced with the store"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "index sync failed; next try in one interval"),
        }
        health.set_store_reach(index.reach());
    }
}
