//! The KMIP handler the listener calls: answers through [`Operations`] and
//! reports every item's outcome, in one place ([`KmipHandler::report`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::audit::{AuditEvent, AuditSink, EventKind};
use crate::auth::Caller;
use crate::net::{ConnectionInfo, RequestHandler};
use crate::ops::{ItemOutcome, Operations};

/// Answers KMIP messages through [`Operations`] and reports each item.
pub struct KmipHandler {
    pub ops: Operations,
    pub audit: AuditSink,
    pub metrics: crate::metrics::Metrics,
    /// How many refused connections were audited one by one this second.
    pub refusals: RefusalBudget,
}

/// Refused connections are audited one by one up to
/// [`crate::limits::AUDITED_REFUSALS_PER_SECOND`] a second; beyond it they are
/// counted and summed up in one event, so that a flood of bad handshakes from
/// anywhere cannot fill the audit queue and push out the KMIP events.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    /// (unix second, audited in it, suppressed in it)
    window: std::sync::Mutex<(i64, u64, u64)>,
}

impl RefusalBudget {
    /// Whether this refusal is audited on its own; when a new second begins,
    /// how many were suppressed in the one before.
    fn admit(&self, now: i64) -> (bool, u64) {
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut suppressed_before = 0;
        if w.0 != now {
            suppressed_before = w.2;
            *w = (now, 0, 0);
        }
        if w.1 < crate::limits::AUDITED_REFUSALS_PER_SECOND {
            w.1 += 1;
            (true, suppressed_before)
        } else {
            w.2 += 1;
            (false, suppressed_before)
        }
    }
}

impl KmipHandler {
    /// Where every item's outcome goes: the audit trail — and the metrics
    /// (operation, result reason, `latency`) belong right beside it.
    /// `latency` is the time its message took to handle (a batch's items share it).
    fn report(&self, conn: &ConnectionInfo, caller: &Caller, outcome: &ItemOutcome, latency: Duration) {
        let reason = match &outcome.result {
            Ok(()) => "Success",
            Err(e) => e.reason.name().unwrap_or("Unknown"),
        };
        self.metrics
            .record_request(outcome.operation.name().unwrap_or("Unknown"), reason, latency);
        if let Some(internal) = outcome.internal() {
            // The client saw only the reference; the operator gets the detail.
            tracing::warn!(
                reference = %internal.reference,
                detail = %internal.detail,
                operation = outcome.operation.name().unwrap_or("Unknown"),
                "internal error answered as General Failure"
            );
        }
        let x_name = outcome
            .unique_identifier
            .as_deref()
            .and_then(|uid| self.ops.keys.known_x_name(uid));
        self.audit
            .emit(audit_event(conn, caller, outcome).x_name(x_name.as_deref()));
    }
}

impl RequestHandler for KmipHandler {
    async fn handle(&self, conn: &ConnectionInfo, request: Vec<u8>) -> Option<Vec<u8>> {
        let caller = &conn.caller;
        // A Register request carries key material: wipe it once handled.
        let request = zeroize::Zeroizing::new(request);
        let started = Instant::now();
        let handled = self.ops.handle(caller, &request).await;
        let latency = started.elapsed();
        for outcome in &handled.outcomes {
            self.report(conn, caller, outcome, latency);
        }
        handled.response
    }

    fn refused(&self, peer: SocketAddr, reason: &str) {
        let (audited, suppressed_before) = self.refusals.admit(crate::clock::unix_now());
        if suppressed_before > 0 {
            self.audit.emit(
                AuditEvent::new(EventKind::Connection, "Connect").refused(&format!(
                    "{suppressed_before} more refused connections in the second before, not audited one by one"
                )),
            );
        }
        if audited {
            self.audit.emit(
                AuditEvent::new(EventKind::Connection, "Connect")
                    .source(peer)
                    .refused(reason),
            );
        }
    }
}

fn audit_event(conn: &ConnectionInfo, caller: &Caller, outcome: &ItemOutcome) -> AuditEvent {
    let fingerprint = hex::encode(conn.identity.fingerprint);
    let event = AuditEvent::new(EventKind::Kmip, outcome.operation.name().unwrap_or("Unknown"))
        .client(Some(caller.name()), Some(&fingerprint), Some(caller.group()))
        .source(conn.peer)
        .object(outcome.unique_identifier.as_deref());
    match &outcome.result {
        Ok(()) => event,
        // The audit line gets the internal detail the client's message only
        // names by its reference.
        Err(e) => event.failed(e.reason.name().unwrap_or("Unknown"), &e.audit_message()),
    }
}

#[cfg(test)]
mod tests {
    use super::RefusalBudget;
    use crate::limits::AUDITED_REFUSALS_PER_SECOND;

    #[test]
    fn refusals_past_the_budget_are_counted_and_summed_up_next_second() {
        let budget = RefusalBudget::default();
        for _ in 0..AUDITED_REFUSALS_PER_SECOND {
            assert_eq!(budget.admit(10), (true, 0));
        }
        for _ in 0..7 {
            assert_eq!(budget.admit(10), (false, 0));
        }
        // The next second: audited again, and the 7 are reported once.
        assert_eq!(budget.admit(11), (true, 7));
        assert_eq!(budget.admit(11), (true, 0));
    }
}
