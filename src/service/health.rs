//! What the running service knows of its own state, shared by the probes that
//! update it and the readers (systemd's status line today, `/health/ready` and
//! the metrics next).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::store::Reach;

/// Shared, lock-free health state. Every field starts pessimistic (not up,
/// not usable) except what the build has just proved.
#[derive(Debug, Default)]
pub struct Health {
    /// HSM and store availability are mirrored into these gauges.
    metrics: crate::metrics::Metrics,
    listener_up: AtomicBool,
    hsm_usable: AtomicBool,
    store_usable: AtomicBool,
    /// With a remote store: 1 up, 2 grace, 3 down ([`Reach`]); 0 without one.
    store_reach: AtomicU8,
    audit_dropped: AtomicU64,
    /// `u64::MAX` until the audit sink exposes its queue depth.
    audit_queue_depth: AtomicU64,
}

/// One reading of [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSnapshot {
    pub listener_up: bool,
    pub hsm_usable: bool,
    pub store_usable: bool,
    /// Audit events dropped since start (the queue was full).
    pub audit_dropped: u64,
    /// Audit events waiting to be written, when the sink reports it.
    pub audit_queue_depth: Option<u64>,
}

impl HealthSnapshot {
    /// Ready to serve keys: listening, with the HSM and the store usable.
    pub fn ready(&self) -> bool {
        self.listener_up && self.hsm_usable && self.store_usable
    }
}

impl Health {
    pub fn new() -> Health {
        Health::with_metrics(crate::metrics::Metrics::new())
    }

    /// Health whose HSM and store availability also move `metrics`' gauges.
    pub fn with_metrics(metrics: crate::metrics::Metrics) -> Health {
        let health = Health {
            metrics,
            ..Health::default()
        };
        health.audit_queue_depth.store(u64::MAX, Ordering::Relaxed);
        health
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let depth = self.audit_queue_depth.load(Ordering::Relaxed);
        HealthSnapshot {
            listener_up: self.listener_up.load(Ordering::Relaxed),
            hsm_usable: self.hsm_usable.load(Ordering::Relaxed),
            store_usable: self.store_usable.load(Ordering::Relaxed),
            audit_dropped: self.audit_dropped.load(Ordering::Relaxed),
            audit_queue_depth: (depth != u64::MAX).then_some(depth),
        }
    }

    /// Ready to serve keys (see [`HealthSnapshot::ready`]).
    pub fn ready(&self) -> bool {
        self.snapshot().ready()
    }

    /// [`Health::ready`], or why not: what `/health/ready` answers.
    pub fn readiness(&self) -> Result<(), String> {
        let now = self.snapshot();
        let mut missing = Vec::new();
        if !now.listener_up {
            missing.push("listener not serving");
        }
        if !now.hsm_usable {
            missing.push("HSM unavailable");
        }
        if !now.store_usable {
            missing.push(match self.store_reach.load(Ordering::Relaxed) {
                2 => "store unavailable (reads served from sealed copies within the read grace)",
                3 => "store unavailable (beyond the read grace)",
                _ => "store unavailable",
            });
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    }

    pub fn set_listener_up(&self, up: bool) {
        self.listener_up.store(up, Ordering::Relaxed);
    }

    /// Returns the previous value, so a probe can log changes only.
    pub fn set_hsm_usable(&self, usable: bool) -> bool {
        self.metrics.set_hsm_available(usable);
        self.hsm_usable.swap(usable, Ordering::Relaxed)
    }

    /// Returns the previous value, so a probe can log changes only.
    pub fn set_store_usable(&self, usable: bool) -> bool {
        self.metrics.set_store_available(usable);
        self.store_usable.swap(usable, Ordering::Relaxed)
    }

    /// Where the node stands with its remote store (mirrored into the metric).
    pub fn set_store_reach(&self, reach: Reach) {
        let code = match reach {
            Reach::Up => 1,
            Reach::Grace { .. } => 2,
            Reach::Down { .. } => 3,
        };
        self.store_reach.store(code, Ordering::Relaxed);
        self.metrics.set_store_reach(reach.name());
    }

    pub fn set_audit(&self, dropped: u64, queue_depth: Option<u64>) {
        self.audit_dropped.store(dropped, Ordering::Relaxed);
        self.audit_queue_depth
            .store(queue_depth.unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_listener_hsm_and_store() {
        let health = Health::new();
        assert!(!health.ready());
        assert_eq!(health.snapshot().audit_queue_depth, None);
        health.set_listener_up(true);
        assert!(!health.set_hsm_usable(true));
        assert!(!health.ready());
        health.set_store_usable(true);
        assert!(health.ready());
        assert!(health.set_hsm_usable(false));
        assert!(!health.ready());
        health.set_audit(3, Some(7));
        assert_eq!(health.snapshot().audit_dropped, 3);
        assert_eq!(health.snapshot().audit_queue_depth, Some(7));
    }
}
