//! The audit event: one KMIP batch item, one administrative action or one refused
//! connection, as plain text fields.
//!
//! The type is deliberately incapable of carrying key material: it has no byte
//! fields (no `Vec<u8>`, no `SecretBytes`, no arrays), only identifiers, names and
//! outcome text, each cut to [`AUDIT_FIELD_MAX_BYTES`]. Callers fill it from the
//! operation's outcome (operation name, unique identifier, result reason), never
//! from a request or response payload. A PIN has no field to go in either.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::limits::AUDIT_FIELD_MAX_BYTES;

/// What produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// One KMIP batch item from a client.
    Kmip,
    /// An administrator's `keyward` command (revoke, destroy, trust change …).
    Admin,
    /// A TLS connection, typically one refused before any KMIP message.
    Connection,
    /// The audit trail itself: events it had to drop.
    Trail,
}

/// How it ended (the KMIP Result Status names where they apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditResult {
    Success,
    OperationFailed,
    /// Not attempted: the caller or connection was not allowed.
    Refused,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Kmip => "Kmip",
            EventKind::Admin => "Admin",
            EventKind::Connection => "Connection",
            EventKind::Trail => "Trail",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        [
            EventKind::Kmip,
            EventKind::Admin,
            EventKind::Connection,
            EventKind::Trail,
        ]
        .into_iter()
        .find(|k| k.name() == text)
    }
}

impl AuditResult {
    pub fn name(self) -> &'static str {
        match self {
            AuditResult::Success => "Success",
            AuditResult::OperationFailed => "OperationFailed",
            AuditResult::Refused => "Refused",
        }
    }

    pub fn parse(text: &str) -> Option<AuditResult> {
        [
            AuditResult::Success,
            AuditResult::OperationFailed,
            AuditResult::Refused,
        ]
        .into_iter()
        .find(|r| r.name() == text)
    }
}

/// One audit record. Build it with [`AuditEvent::new`] (or [`AuditEvent::admin`])
/// and the builder methods; absent fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened (UTC), RFC 3339 in JSON.
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    pub kind: EventKind,
    /// The trust entry's name (or the local user for [`EventKind::Admin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// SHA-256 of the client certificate, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SocketAddr>,
    /// KMIP operation name (`Create`, `Get` …) or admin action (`KeyRevoke` …).
    pub operation: String,
    /// The object's Unique Identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The key's `x-Name` attribute (vCenter's key id) when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_name: Option<String>,
    pub result: AuditResult,
    /// KMIP Result Reason name (`ItemNotFound` …) or refusal cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Result Message text, for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For [`EventKind::Trail`]: how many events were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

impl AuditEvent {
    /// An event of `kind` for `operation`, now, with result `Success` until told otherwise.
    pub fn new(kind: EventKind, operation: &str) -> AuditEvent {
        AuditEvent {
            time: OffsetDateTime::now_utc(),
            kind,
            client_name: None,
            client_fingerprint: None,
            client_group: None,
            source_address: None,
            operation: operation.to_owned(),
            object_id: None,
            x_name: None,
            result: AuditResult::Success,
            reason: None,
            message: None,
            dropped: None,
        }
    }

    /// An administrative action by the local user running `keyward`. The name
    /// comes from the environment (`SUDO_USER`, `USER`): it attributes, it does not
    /// authenticate — the journal's own `_UID` field is the trusted one.
    pub fn admin(operation: &str) -> AuditEvent {
        AuditEvent::new(EventKind::Admin, operation).client(Some(&local_user()), None, None)
    }

    /// Who: trust entry name, certificate fingerprint (hex), group.
    pub fn client(mut self, name: Option<&str>, fingerprint_hex: Option<&str>, group: Option<&str>) -> Self {
        self.client_name = name.map(str::to_owned);
        self.client_fingerprint = fingerprint_hex.map(str::to_ascii_lowercase);
        self.client_group = group.map(str::to_owned);
        self
    }

    pub fn source(mut self, address: SocketAddr) -> Self {
        self.source_address = Some(address);
        self
    }

    pub fn object(mut self, unique_identifier: Option<&str>) -> Self {
        self.object_id = unique_identifier.map(str::to_owned);
        self
    }

    pub fn x_name(mut self, x_name: Option<&str>) -> Self {
        self.x_name = x_name.map(str::to_owned);
        self
    }

    /// Result `Success` (the default).
    pub fn succeeded(mut self) -> Self {
        self.result = AuditResult::Success;
        self
    }

    /// Result `OperationFailed` with its Result Reason name and message.
    pub fn failed(mut self, reason: &str, message: &str) -> Self {
        self.result = AuditResult::OperationFailed;
        self.reason = Some(reason.to_owned());
        self.message = non_empty(message);
        self
    }

    /// Result `Refused`: not attempted, with why.
    pub fn refused(mut self, reason: &str) -> Self {
        self.result = AuditResult::Refused;
        self.reason = Some(reason.to_owned());
        self
    }

    /// Extra text for a human (e.g. an admin action's parameters, never secrets).
    pub fn message(mut self, message: &str) -> Self {
        self.message = non_empty(message);
        self
    }

    /// The report of `count` events dropped because the queue was full.
    pub fn dropped_report(count: u64) -> AuditEvent {
        let mut event = AuditEvent::new(EventKind::Trail, "EventsDropped");
        event.result = AuditResult::OperationFailed;
        event.reason = Some("QueueFull".to_owned());
        event.message = Some(format!("{count} audit events dropped: the audit queue was full"));
        event.dropped = Some(count);
        event
    }

    /// Cuts every text field to [`AUDIT_FIELD_MAX_BYTES`].
    pub fn bounded(mut self) -> Self {
        self.operation = cut(std::mem::take(&mut self.operation));
        for field in [
            &mut self.client_name,
            &mut self.client_fingerprint,
            &mut self.client_group,
            &mut self.object_id,
            &mut self.x_name,
            &mut self.reason,
            &mut self.message,
        ] {
            *field = field.take().map(cut);
        }
        self
    }

    /// One line for a human, the journal's `MESSAGE`:
    /// `Get 5f3c… by vcenter-1 from 10.0.0.5:50432: OperationFailed ItemNotFound`.
    pub fn summary(&self) -> String {
        let mut s = self.operation.clone();
        if let Some(id) = &self.object_id {
            s.push(' ');
            s.push_str(id);
        }
        if let Some(name) = &self.x_name {
            s.push_str(&format!(" ({name})"));
        }
        if let Some(client) = &self.client_name {
            s.push_str(" by ");
            s.push_str(client);
        }
        if let Some(addr) = &self.source_address {
            s.push_str(&format!(" from {addr}"));
        }
        s.push_str(": ");
        s.push_str(self.result.name());
        if let Some(reason) = &self.reason {
            s.push(' ');
            s.push_str(reason);
        }
        if let Some(message) = &self.message {
            s.push_str(" - ");
            s.push_str(message);
        }
        escape_controls(&s)
    }

    /// The event as ordered (name, value) pairs, absent fields left out; the one
    /// list the journal encoding and the text form are built from.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let all: [(&'static str, Option<String>); 13] = [
            ("time", Some(format_time(self.time))),
            ("kind", Some(self.kind.name().to_owned())),
            ("client_name", self.client_name.clone()),
            ("client_fingerprint", self.client_fingerprint.clone()),
            ("client_group", self.client_group.clone()),
            ("source_address", self.source_address.map(|a| a.to_string())),
            ("operation", Some(self.operation.clone())),
            ("object_id", self.object_id.clone()),
            ("x_name", self.x_name.clone()),
            ("result", Some(self.result.name().to_owned())),
            ("reason", self.reason.clone()),
            ("message", self.message.clone()),
            ("dropped", self.dropped.map(|d| d.to_string())),
        ];
        all.into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect()
    }
}

/// `key=value` pairs on one line, values quoted when they hold spaces, quotes or
/// control characters: the stderr form.
impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("audit")?;
        for (name, value) in self.fields() {
            let plain = !value.is_empty()
                && value
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\');
            if plain {
                write!(f, " {name}={value}")?;
            } else {
                write!(f, " {name}={value:?}")?;
            }
        }
        Ok(())
    }
}

pub fn format_time(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

/// Control characters (newlines included) shown as escapes, so that one event
/// stays one line on a terminal.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn cut(mut text: String) -> String {
    if text.len() <= AUDIT_FIELD_MAX_BYTES {
        return text;
    }
    let mut end = AUDIT_FIELD_MAX_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

fn local_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .ok()
                .map(|m| format!("uid {}", m.uid()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// RFC 3339 text for `time` in JSON (the `time` crate's serde support is not enabled).
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn serialize<S: Serializer>(time: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}
