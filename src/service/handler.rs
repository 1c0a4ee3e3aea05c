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
        self.audit.emit(
            AuditEvent::new(EventKind::Connection, "Connect")
                .source(peer)
                .refused(reason),
        );
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
