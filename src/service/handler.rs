//! The KMIP handler the listener calls: answers through [`Operations`] and
//! reports every item's outcome, in one place ([`KmipHandler::report`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::{AuditEvent, AuditSink, EventKind};
use crate::net::{ConnectionInfo, RequestHandler};
use crate::ops::{Caller, ItemOutcome, Operations};

/// The group of clients whose trust entry names none.
pub const DEFAULT_GROUP: &str = "default";

/// Answers KMIP messages through [`Operations`] and reports each item.
pub struct KmipHandler {
    pub ops: Operations,
    pub audit: AuditSink,
    pub metrics: crate::metrics::Metrics,
}

impl KmipHandler {
    fn caller(conn: &ConnectionInfo) -> Caller {
        let source = conn.identity.matched.source();
        Caller {
            name: source.name.clone(),
            group: source.group.clone().unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            password: source.password.clone(),
            credential_verified: Arc::clone(&conn.credential_verified),
        }
    }

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
        let caller = Self::caller(conn);
        // A Register request carries key material: wipe it once handled.
        let request = zeroize::Zeroizing::new(request);
        let started = Instant::now();
        let handled = self.ops.handle(&caller, &request).await;
        let latency = started.elapsed();
        for outcome in &handled.outcomes {
            self.report(conn, &caller, outcome, latency);
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
        .client(Some(&caller.name), Some(&fingerprint), Some(&caller.group))
        .source(conn.peer)
        .object(outcome.unique_identifier.as_deref());
    match &outcome.result {
        Ok(()) => event,
        Err(e) => event.failed(e.reason.name().unwrap_or("Unknown"), &e.message),
    }
}
