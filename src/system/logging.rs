//! Where operational logs go, chosen once at start-up ([`init`]):
//!
//! - under systemd, when stderr *is* the journal stream (`JOURNAL_STREAM` names
//!   stderr's device and inode): structured journal entries with a syslog
//!   priority per level, through `tracing-journald` — no colour codes and no
//!   second timestamp in the journal;
//! - on a terminal: coloured text;
//! - otherwise (a file, a pipe, a container's log collector): plain text without
//!   ANSI escapes.
//!
//! `KEYWARD_LOG` sets the most verbose level logged (`error`, `warn`, `info`,
//! `debug`, `trace`; `info` when unset or unreadable).
//!
//! Audit events do not go through here: they have their own sink (`audit`).

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable holding the log level.
pub const LEVEL_VARIABLE: &str = "KEYWARD_LOG";

/// `SYSLOG_IDENTIFIER` of operational log entries (audit entries share it and are
/// told apart by their `KEYWARD_AUDIT` field).
const SYSLOG_IDENTIFIER: &str = "keyward";

/// Where logs were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    /// Native journal entries.
    Journal,
    /// Coloured text on stderr.
    Terminal,
    /// Plain text on stderr.
    Plain,
}

/// Sets the process's log subscriber as described in the module documentation and
/// returns where logs go. Does nothing (and returns the choice) when a subscriber
/// is already set.
pub fn init() -> LogOutput {
    let level = level_from(std::env::var(LEVEL_VARIABLE).ok().as_deref());
    let stderr_identity = rustix::fs::fstat(std::io::stderr())
        .ok()
        .map(|stat| (stat.st_dev, stat.st_ino));
    let wanted = choose(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        stderr_identity,
        std::io::stderr().is_terminal(),
    );
    let filter = LevelFilter::from_level(level);
    if wanted == LogOutput::Journal
        && let Ok(journal) = tracing_journald::layer()
    {
        let journal = journal.with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned());
        let _ = tracing_subscriber::registry()
            .with(journal.with_filter(filter))
            .try_init();
        return LogOutput::Journal;
    }
    // The journal was wanted but cannot be reached: stderr still goes to it, as text.
    let output = if wanted == LogOutput::Terminal {
        LogOutput::Terminal
    } else {
        LogOutput::Plain
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(output == LogOutput::Terminal)
        .try_init();
    output
}

/// The level named by `KEYWARD_LOG`'s value, `info` when unset or unreadable.
pub fn level_from(value: Option<&str>) -> Level {
    value
        .and_then(|v| v.trim().parse::<Level>().ok())
        .unwrap_or(Level::INFO)
}

/// The choice [`init`] makes, from `JOURNAL_STREAM`, stderr's `(device, inode)`
/// and whether stderr is a terminal.
///
/// `JOURNAL_STREAM` (`"<device>:<inode>"`, decimal) is inherited by children
/// whose stderr may have been redirected elsewhere, so it counts only when it
/// names the file stderr is now.
pub fn choose(
    journal_stream: Option<&OsStr>,
    stderr: Option<(u64, u64)>,
    stderr_is_terminal: bool,
) -> LogOutput {
    let journal = journal_stream
        .and_then(OsStr::to_str)
        .and_then(|value| value.split_once(':'))
        .and_then(|(dev, ino)| Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?)));
    match (journal, stderr) {
        (Some(named), Some(actual)) if named == actual => LogOutput::Journal,
        _ if stderr_is_terminal => LogOutput::Terminal,
        _ => LogOutput::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_only_when_it_is_stderr() {
        let stream = Some(OsStr::new("8:12345"));
        assert_eq!(choose(stream, Some((8, 12345)), false), LogOutput::Journal);
        // Inherited from a parent whose stderr was the journal; ours is not.
        assert_eq!(choose(stream, Some((8, 999)), false), LogOutput::Plain);
        assert_eq!(choose(stream, Some((8, 999)), true), LogOutput::Terminal);
        assert_eq!(choose(stream, None, false), LogOutput::Plain);
        for bad in ["", "8", "8:", ":1", "x:y", "8:12345:1"] {
            assert_eq!(
                choose(Some(OsStr::new(bad)), Some((8, 12345)), false),
                LogOutput::Plain,
                "{bad:?}"
            );
        }
        assert_eq!(choose(None, Some((8, 12345)), true), LogOutput::Terminal);
        assert_eq!(choose(None, Some((8, 12345)), false), LogOutput::Plain);
    }

    #[test]
    fn the_level_comes_from_keyward_log() {
        assert_eq!(level_from(None), Level::INFO);
        assert_eq!(level_from(Some("debug")), Level::DEBUG);
        assert_eq!(level_from(Some("WARN")), Level::WARN);
        assert_eq!(level_from(Some(" trace ")), Level::TRACE);
        assert_eq!(level_from(Some("loud")), Level::INFO);
    }

    #[test]
    fn stderr_identity_is_readable() {
        // What `init` compares with JOURNAL_STREAM: stderr's device and inode.
        let stat = rustix::fs::fstat(std::io::stderr()).unwrap();
        assert!(stat.st_ino > 0);
    }
}
