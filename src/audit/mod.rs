//! The audit trail: one structured event per KMIP batch item, administrative
//! action and refused connection — who (certificate fingerprint, trust entry name,
//! group, source address), what (operation, object id, `x-Name`) and how it ended
//! (result, reason) — sent to the systemd journal and, when `[audit] path` is
//! configured, to a JSON-lines file; to stderr only when neither is there.
//!
//! No event can hold key material or a PIN: [`AuditEvent`] has text fields only,
//! filled from outcomes, never from payloads (see `event.rs`).
//!
//! Emitting never blocks or fails ([`AuditSink::emit`]); a full queue drops events
//! and the trail records how many. [`reader`] reads the trail back for
//! `keyward audit`.
//!
//! Layer 1: this module knows nothing of KMIP types, the network or keys; callers
//! turn their own types into the plain fields here.

mod event;
mod file;
pub mod journal;
pub mod reader;
mod sink;

pub use event::{AuditEvent, AuditResult, EventKind, escape_controls, format_time};
pub use file::JsonlFile;
pub use reader::{AuditFilter, ReadError, ReadStats};
pub use sink::{AuditError, AuditSettings, AuditSink, CapturedEvents, JournalTarget, MAX_BATCH};

#[cfg(test)]
mod tests;
