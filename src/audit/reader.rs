//! Reading the trail back: from the JSON-lines file, or from the journal through
//! `journalctl -o json`, filtered by client, key, operation and time.
//!
//! Both sources stream: one event in memory at a time, however long the trail.

use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time};

use super::event::{AuditEvent, AuditResult, EventKind};
use super::journal::{AUDIT_MARKER_FIELD, JOURNAL_FIELDS, SYSLOG_IDENTIFIER};
use crate::limits::AUDIT_LINE_MAX_BYTES;

/// Shortest fingerprint prefix `--client` accepts as a fingerprint (32 bits).
const MIN_FINGERPRINT_PREFIX: usize = 8;

/// Which events to show; every given criterion must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Client name, or its certificate fingerprint (hex, colons allowed; a prefix
    /// of at least 8 hex digits will do).
    pub client: Option<String>,
    /// Unique Identifier or `x-Name` of the key.
    pub key: Option<String>,
    /// Operation name, case-insensitive (`get` matches `Get`).
    pub operation: Option<String>,
    /// Events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Events at or before this time.
    pub until: Option<OffsetDateTime>,
}

impl AuditFilter {
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.client.as_deref().is_none_or(|c| client_matches(c, event))
            && self
                .key
                .as_deref()
                .is_none_or(|k| event.object_id.as_deref() == Some(k) || event.x_name.as_deref() == Some(k))
            && self
                .operation
                .as_deref()
                .is_none_or(|op| event.operation.eq_ignore_ascii_case(op))
            && self.since.is_none_or(|t| event.time >= t)
            && self.until.is_none_or(|t| event.time <= t)
    }
}

fn client_matches(wanted: &str, event: &AuditEvent) -> bool {
    if event.client_name.as_deref() == Some(wanted) {
        return true;
    }
    let hex: String = wanted
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    hex.len() >= MIN_FINGERPRINT_PREFIX
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && event
            .client_fingerprint
            .as_deref()
            .is_some_and(|f| f.starts_with(&hex))
}

/// Parses `--since`/`--until`: RFC 3339 (`2025-03-01T12:00:00Z`), a date
/// (`2025-03-01`, midnight UTC), `now`, or a time relative to `now` such as `-90s`,
/// `-15m`, `-1h`, `-2d`, `-1w`.
pub fn parse_time(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Some(relative) = text.strip_prefix('-') {
        let split = relative
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(relative.len());
        let (number, unit) = relative.split_at(split);
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a number after '-', as in -1h"))?;
        let span = match unit {
            "s" => Duration::seconds(n),
            "m" | "min" => Duration::minutes(n),
            "h" => Duration::hours(n),
            "d" => Duration::days(n),
            "w" => Duration::weeks(n),
            _ => return Err(format!("{text:?}: unit must be s, m, h, d or w")),
        };
        return now
            .checked_sub(span)
            .ok_or_else(|| format!("{text:?} is too far back"));
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = Date::parse(text, &date_format) {
        return Ok(date.with_time(Time::MIDNIGHT).assume_utc());
    }
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2025-03-01T12:00:00Z), a date (2025-03-01), now, or -15m/-1h/-2d"
    ))
}

/// What a read went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Events that passed the filter.
    pub matched: u64,
    /// Lines or entries that were not audit events (damaged, too long, foreign).
    pub unreadable: u64,
}

#[derive(Debug)]
pub enum ReadError {
    Open(PathBuf, io::Error),
    Read(io::Error),
    /// The consumer of the events failed (e.g. stdout closed).
    Output(io::Error),
    Journalctl(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Open(p, e) => write!(f, "cannot open {}: {e}", p.display()),
            ReadError::Read(e) => write!(f, "reading the audit trail: {e}"),
            ReadError::Output(e) => write!(f, "writing: {e}"),
            ReadError::Journalctl(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ReadError {}

/// Calls `each` for every event of the JSON-lines file at `path` that `filter` passes.
pub fn read_file(
    path: &Path,
    filter: &AuditFilter,
    each: impl FnMut(&AuditEvent) -> io::Result<()>,
) -> Result<ReadStats, ReadError> {
    let file = std::fs::File::open(path).map_err(|e| ReadError::Open(path.to_path_buf(), e))?;
    read_lines(BufReader::new(file), filter, parse_file_line, each)
}

fn parse_file_line(line: &[u8]) -> Option<AuditEvent> {
    serde_json::from_slice(line).ok()
}

/// The arguments given to `journalctl`: audit entries only, narrowed by time
/// (whole seconds, widened; the exact filter is applied to what comes back).
pub fn journalctl_args(filter: &AuditFilter) -> Vec<String> {
    let mut args = vec![
        "--output=json".to_owned(),
        "--no-pager".to_owned(),
        "--quiet".to_owned(),
    ];
    if let Some(since) = filter.since {
        args.push(format!("--since=@{}", since.unix_timestamp()));
    }
    if let Some(until) = filter.until {
        args.push(format!("--until=@{}", until.unix_timestamp() + 1));
    }
    args.push(format!("SYSLOG_IDENTIFIER={SYSLOG_IDENTIFIER}"));
    args.push(format!("{AUDIT_MARKER_FIELD}=1"));
    args
}

/// Calls `each` for every audit event in the journal that `filter` passes,
/// running `journalctl` (found on `PATH`).
pub fn read_journal(
    filter: &AuditFilter,
    each: impl FnMut(&AuditEvent) -> io::Result<()>,
) -> Result<ReadStats, ReadError> {
    let mut child = Command::new("journalctl")
        .args(journalctl_args(filter))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            ReadError::Journalctl(format!(
                "cannot run journalctl ({e}); without a journal, set [audit] path in the configuration"
            ))
        })?;
    let Some(stdout) = child.stdout.take() else {
        return Err(ReadError::Journalctl(
            "journalctl gave no output stream".to_owned(),
        ));
    };
    let read = read_lines(BufReader::new(stdout), filter, parse_journal_line, each);
    if read.is_err() {
        // Stop the journalctl we started; its output is no longer wanted.
        let _ = child.kill();
    }
    let status = child.wait().map_err(ReadError::Read)?;
    let stats = read?;
    if !status.success() {
        return Err(ReadError::Journalctl(format!("journalctl failed ({status})")));
    }
    Ok(stats)
}

fn parse_journal_line(line: &[u8]) -> Option<AuditEvent> {
    event_from_journal(&serde_json::from_slice(line).ok()?)
}

/// Rebuilds an event from one `journalctl -o json` entry; `None` if it is not one.
pub fn event_from_journal(entry: &Value) -> Option<AuditEvent> {
    let field = |name: &str| -> Option<String> {
        let journal_name = JOURNAL_FIELDS.iter().find(|(n, _)| *n == name)?.1;
        journal_text(entry.get(journal_name)?)
    };
    let time = field("time")
        .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok())
        .or_else(|| {
            let micros: i128 = journal_text(entry.get("__REALTIME_TIMESTAMP")?)?.parse().ok()?;
            OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).ok()
        })?;
    Some(AuditEvent {
        time,
        kind: EventKind::parse(&field("kind")?)?,
        client_name: field("client_name"),
        client_fingerprint: field("client_fingerprint"),
        client_group: field("client_group"),
        source_address: field("source_address").and_then(|a| a.parse().ok()),
        operation: field("operation")?,
        object_id: field("object_id"),
        x_name: field("x_name"),
        result: AuditResult::parse(&field("result")?)?,
        reason: field("reason"),
        message: field("message"),
        dropped: field("dropped").and_then(|d| d.parse().ok()),
    })
}

/// journalctl writes a field as a string, as an array of byte values when it is
/// not printable text (our multi-line messages), and as an array of those when
/// the field occurs more than once (the first is taken).
fn journal_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => match items.first()? {
            Value::Number(_) => {
                let bytes: Option<Vec<u8>> = items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect();
                Some(String::from_utf8_lossy(&bytes?).into_owned())
            }
            first => journal_text(first),
        },
        _ => None,
    }
}

fn read_lines(
    mut reader: impl BufRead,
    filter: &AuditFilter,
    parse: fn(&[u8]) -> Option<AuditEvent>,
    mut each: impl FnMut(&AuditEvent) -> io::Result<()>,
) -> Result<ReadStats, ReadError> {
    let mut stats = ReadStats::default();
    let mut line = Vec::new();
    while let Some(complete) =
        read_bounded_line(&mut reader, &mut line, AUDIT_LINE_MAX_BYTES).map_err(ReadError::Read)?
    {
        if line.iter().all(u8::is_ascii_whitespace) && complete {
            continue;
        }
        match parse(&line).filter(|_| complete) {
            Some(event) if filter.matches(&event) => {
                stats.matched += 1;
                each(&event).map_err(ReadError::Output)?;
            }
            Some(_) => {}
            None => stats.unreadable += 1,
        }
    }
    Ok(stats)
}

/// Reads one `\n`-terminated line into `line` (without the newline), keeping at
/// most `limit` bytes: `Some(true)` a line, `Some(false)` a line that was too long
/// (skipped to its end, `line` left empty), `None` the end of input.
fn read_bounded_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(any.then_some(!too_long));
        }
        any = true;
        let (chunk, used, end) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() <= limit {
                line.extend_from_slice(chunk);
            } else {
                too_long = true;
                line.clear();
            }
        }
        reader.consume(used);
        if end {
            return Ok(Some(!too_long));
        }
    }
}
