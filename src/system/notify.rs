//! The systemd notification protocol (`sd_notify`), for a `Type=notify` service.
//!
//! systemd passes a datagram socket in `NOTIFY_SOCKET` (a path, or an abstract socket
//! name written with a leading `@`); the service sends newline-separated `VAR=value`
//! assignments to it: `READY=1` once it serves, `STOPPING=1` when it drains,
//! `STATUS=...` for `systemctl status`, and `WATCHDOG=1` at least once per
//! `WATCHDOG_USEC` while healthy, or systemd restarts it.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing and returns
//! `Ok(false)`, so `keyward serve` calls them unconditionally.
//!
//! Hand-written rather than the `sd-notify` crate, which cannot reach an abstract
//! socket (`@name`); see CONTRIBUTING.md, "Dependencies".

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// Longest `STATUS=` text sent; `systemctl status` shows one line.
const MAX_STATUS_BYTES: usize = 512;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
}

impl Notifier {
    /// The notifier named by `NOTIFY_SOCKET`, or `None` when it is unset or empty.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(target) if !target.is_empty() => Notifier::connect(&target).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for an explicit socket: a filesystem path, or `@name` for an
    /// abstract socket.
    pub fn connect(target: &OsStr) -> io::Result<Notifier> {
        let bytes = target.as_bytes();
        let target = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(target)?,
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "NOTIFY_SOCKET is neither an absolute path nor an abstract socket (@name)",
                ));
            }
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Notifier { socket, target })
    }

    /// Sends one notification message (one or more `VAR=value` lines).
    pub fn send(&self, message: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(message.as_bytes(), &self.target)?;
        if sent != message.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification datagram truncated",
            ));
        }
        Ok(())
    }
}

/// The process-wide notifier, read from the environment once.
fn global() -> io::Result<Option<&'static Notifier>> {
    static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
    if let Some(notifier) = NOTIFIER.get() {
        return Ok(notifier.as_ref());
    }
    let notifier = Notifier::from_env()?;
    Ok(NOTIFIER.get_or_init(|| notifier).as_ref())
}

/// Sends `message` to systemd; `Ok(false)` when not run by systemd.
pub fn notify(message: &str) -> io::Result<bool> {
    match global()? {
        Some(notifier) => notifier.send(message).map(|()| true),
        None => Ok(false),
    }
}

/// The service is up: listener bound, HSM and store reachable.
pub fn ready() -> io::Result<bool> {
    notify("READY=1")
}

/// The service is shutting down (draining connections).
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// One-line status shown by `systemctl status`. Line breaks become spaces (a newline
/// would start another assignment) and long text is cut at a character boundary.
pub fn status(text: &str) -> io::Result<bool> {
    notify(&status_message(text))
}

/// Asks for more start-up (or shutdown) time, e.g. while waiting for a slow HSM.
pub fn extend_timeout(by: Duration) -> io::Result<bool> {
    notify(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()))
}

/// One watchdog keep-alive.
pub fn watchdog_ping() -> io::Result<bool> {
    notify("WATCHDOG=1")
}

fn status_message(text: &str) -> String {
    let mut end = text.len().min(MAX_STATUS_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let line: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("STATUS={line}")
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as systemd recommends, or
/// `None` when no watchdog is set for this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var_os("WATCHDOG_USEC"),
        std::env::var_os("WATCHDOG_PID"),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<OsString>, pid: Option<OsString>, own_pid: u32) -> Option<Duration> {
    // WATCHDOG_PID names the process the watchdog is meant for; a child that inherited
    // the variables must not ping on its parent's behalf.
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.parse().ok()?;
        if pid != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// Starts a tokio task that sends `WATCHDOG=1` every half watchdog period while
/// `healthy()` returns true. Running on the server's own runtime means a stalled
/// runtime stops the pings too, and systemd restarts the service.
///
/// Returns `None` when systemd set no watchdog for this process, or when called
/// outside a tokio runtime.
pub fn spawn_watchdog<F>(healthy: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn() -> bool + Send + 'static,
{
    let period = watchdog_interval()?;
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if healthy() {
                // A lost ping is retried on the next tick; there is nowhere to report it.
                let _ = watchdog_ping();
            }
        }
    }))
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
