//! `keyward audit`: the audit trail read back, filtered — from the JSON-lines
//! file when `[audit] path` is configured (or `--file` names one), otherwise from
//! the systemd journal through `journalctl`.

use std::io::{self, Write};
use std::path::PathBuf;

use time::OffsetDateTime;

use super::{CliError, CliResult, RunCommand};
use crate::audit::reader::{self, parse_time};
use crate::audit::{AuditEvent, AuditFilter, ReadError, ReadStats, escape_controls, format_time};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct AuditCommand {
    /// The configuration file; its `[audit] path` is read when set.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Read this JSON-lines audit file (e.g. a copy an auditor was given).
    #[arg(long, conflicts_with = "config")]
    file: Option<PathBuf>,
    /// Only this client: trust entry name, or certificate SHA-256 (hex, colons
    /// allowed; 8+ leading digits suffice).
    #[arg(long)]
    client: Option<String>,
    /// Only this key: Unique Identifier or x-Name.
    #[arg(long)]
    key: Option<String>,
    /// Only this operation (Create, Get, Locate, Revoke, …; case-insensitive).
    #[arg(long)]
    operation: Option<String>,
    /// From this time: RFC 3339, a date (2025-03-01), or relative (-1h, -30m, -7d).
    #[arg(long, allow_hyphen_values = true)]
    since: Option<String>,
    /// Up to this time, same forms as --since.
    #[arg(long, allow_hyphen_values = true)]
    until: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

impl RunCommand for AuditCommand {
    fn run(self) -> CliResult {
        let now = OffsetDateTime::now_utc();
        let time = |t: &Option<String>| {
            t.as_deref()
                .map(|t| parse_time(t, now))
                .transpose()
                .map_err(CliError::new)
        };
        let filter = AuditFilter {
            client: self.client.clone(),
            key: self.key.clone(),
            operation: self.operation.clone(),
            since: time(&self.since)?,
            until: time(&self.until)?,
        };
        let file = match (&self.file, &self.config) {
            (Some(file), _) => Some(file.clone()),
            (None, Some(config)) => Config::load(config)?.audit.path,
            (None, None) => None,
        };

        let mut out = io::stdout().lock();
        let json = self.json;
        let mut header_written = false;
        let print = |event: &AuditEvent| -> io::Result<()> {
            if json {
                serde_json::to_writer(&mut out, event).map_err(io::Error::other)?;
                out.write_all(b"\n")
            } else {
                if !header_written {
                    write_table_header(&mut out)?;
                    header_written = true;
                }
                write_table_row(&mut out, event)
            }
        };
        let read = match &file {
            Some(path) => reader::read_file(path, &filter, print),
            None => reader::read_journal(&filter, print),
        };
        match read {
            Ok(stats) => report(stats, json),
            // `keyward audit | head`: the reader left, not an error.
            Err(ReadError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn report(stats: ReadStats, json: bool) -> CliResult {
    if stats.matched == 0 && !json {
        eprintln!("keyward: no matching audit events");
    }
    if stats.unreadable > 0 {
        eprintln!(
            "keyward: warning: {} line(s) of the trail were not audit events and were skipped",
            stats.unreadable
        );
    }
    Ok(())
}

/// Columns: time, client, source, operation, object (x-Name), result and reason.
const COLUMNS: [(&str, usize); 6] = [
    ("TIME", 24),
    ("CLIENT", 18),
    ("SOURCE", 22),
    ("OPERATION", 16),
    ("OBJECT", 38),
    ("RESULT", 0),
];

fn write_table_header(out: &mut impl Write) -> io::Result<()> {
    let cells: Vec<String> = COLUMNS.iter().map(|(name, _)| (*name).to_owned()).collect();
    write_cells(out, &cells)
}

fn write_table_row(out: &mut impl Write, event: &AuditEvent) -> io::Result<()> {
    let time = format_time(event.time.replace_nanosecond(0).unwrap_or(event.time));
    let client = match (&event.client_name, &event.client_fingerprint) {
        (Some(name), _) => name.clone(),
        (None, Some(fingerprint)) => fingerprint.chars().take(16).collect(),
        (None, None) => "-".to_owned(),
    };
    let source = event
        .source_address
        .map_or_else(|| "-".to_owned(), |a| a.to_string());
    let mut object = event.object_id.clone().unwrap_or_else(|| "-".to_owned());
    if let Some(x_name) = &event.x_name {
        object.push_str(&format!(" ({x_name})"));
    }
    let mut result = event.result.name().to_owned();
    for detail in [&event.reason, &event.message].into_iter().flatten() {
        result.push_str(": ");
        result.push_str(detail);
    }
    let cells = [time, client, source, event.operation.clone(), object, result];
    write_cells(out, &cells.map(|c| escape_controls(&c)))
}

/// Pads each cell to its column; a cell too wide for its column is cut with `…`.
fn write_cells(out: &mut impl Write, cells: &[String]) -> io::Result<()> {
    let mut line = String::new();
    for ((_, width), cell) in COLUMNS.iter().zip(cells) {
        if *width == 0 {
            line.push_str(cell);
            continue;
        }
        let chars = cell.chars().count();
        if chars >= *width {
            line.extend(cell.chars().take(width - 2));
            line.push_str("… ");
        } else {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - chars));
        }
    }
    writeln!(out, "{}", line.trim_end())
}
