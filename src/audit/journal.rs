//! The systemd journal's native protocol, spoken directly: one datagram per event
//! to `/run/systemd/journal/socket`, holding `KEY=VALUE` lines (see
//! systemd's "Native Journal Protocol"). An entry too large for one datagram goes
//! the protocol's other way: written to a sealed memfd whose descriptor is sent
//! instead (an empty datagram carrying `SCM_RIGHTS`).
//!
//! Why not a journald crate (CONTRIBUTING.md, "Dependencies"): `tracing-journald`
//! and `systemd-journal-logger` are process-wide log backends with a fixed socket
//! path; an audit sink sends one record of its own fields (`KEYWARD_*`) with its
//! own priority, to a socket tests can choose. The system calls (memfd, seals,
//! descriptor passing) go through `rustix`'s safe wrappers; no unsafe code here.
//! A value with a newline uses the binary-safe form `KEY\n<u64 LE length><bytes>\n`.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::event::{AuditEvent, AuditResult, EventKind};

/// Where journald listens for native-protocol datagrams.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// `SYSLOG_IDENTIFIER` of every audit entry; `keyward audit` reads entries by it.
pub const SYSLOG_IDENTIFIER: &str = "keyward";

/// Marks an entry as an audit event (keyward's ordinary log lines share the
/// identifier when the service's stderr goes to the journal).
pub const AUDIT_MARKER_FIELD: &str = "KEYWARD_AUDIT";

/// Longest a stalled journald may hold up the audit writer per event.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Event field name → journal field name. The reader maps them back.
pub const JOURNAL_FIELDS: [(&str, &str); 13] = [
    ("time", "KEYWARD_TIME"),
    ("kind", "KEYWARD_KIND"),
    ("client_name", "KEYWARD_CLIENT"),
    ("client_fingerprint", "KEYWARD_CLIENT_FINGERPRINT"),
    ("client_group", "KEYWARD_CLIENT_GROUP"),
    ("source_address", "KEYWARD_SOURCE_ADDRESS"),
    ("operation", "KEYWARD_OPERATION"),
    ("object_id", "KEYWARD_OBJECT_ID"),
    ("x_name", "KEYWARD_X_NAME"),
    ("result", "KEYWARD_RESULT"),
    ("reason", "KEYWARD_REASON"),
    ("message", "KEYWARD_MESSAGE"),
    ("dropped", "KEYWARD_DROPPED"),
];

/// syslog priority: refusals and lost events stand out from routine traffic.
pub fn priority(event: &AuditEvent) -> u8 {
    match (event.kind, event.result) {
        (EventKind::Trail, _) => 3,             // err: the trail has a gap
        (_, AuditResult::Refused) => 4,         // warning
        (_, AuditResult::OperationFailed) => 5, // notice
        (_, AuditResult::Success) => 6,         // info
    }
}

/// The datagram journald receives for `event`.
pub fn encode(event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    put(&mut out, "MESSAGE", &event.summary());
    put(&mut out, "PRIORITY", &priority(event).to_string());
    put(&mut out, "SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER);
    put(&mut out, AUDIT_MARKER_FIELD, "1");
    for (name, value) in event.fields() {
        if let Some((_, journal_name)) = JOURNAL_FIELDS.iter().find(|(n, _)| *n == name) {
            put(&mut out, journal_name, &value);
        }
    }
    out
}

fn put(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    } else {
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'\n');
}

/// A connected journal socket.
pub struct JournalSocket {
    path: PathBuf,
    socket: UnixDatagram,
}

impl JournalSocket {
    /// Connects to the journal at `path`; an error means "no journal there".
    pub fn connect(path: &Path) -> io::Result<JournalSocket> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(JournalSocket {
            path: path.to_path_buf(),
            socket,
        })
    }

    /// Connects to the system journal when this machine runs one.
    ///
    /// "No journal" means the socket is absent or refuses us — not that
    /// `JOURNAL_STREAM` is unset: that variable only says whether *stderr* goes to
    /// the journal, and an administrator's `keyward` command run from a shell has
    /// no `JOURNAL_STREAM` yet its events belong in the journal all the same.
    pub fn system() -> Option<JournalSocket> {
        JournalSocket::connect(Path::new(JOURNAL_SOCKET)).ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one event; reconnects once if journald was restarted meanwhile.
    pub fn send(&mut self, event: &AuditEvent) -> io::Result<()> {
        let datagram = encode(event);
        match self.send_entry(&datagram) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => Err(e),
            Err(_) => {
                *self = JournalSocket::connect(&self.path)?;
                self.send_entry(&datagram)
            }
        }
    }

    /// One entry as a datagram, or through a memfd when it is too large for one.
    fn send_entry(&self, entry: &[u8]) -> io::Result<()> {
        match self.socket.send(entry) {
            Ok(_) => Ok(()),
            Err(e) if is_too_large(&e) => send_through_memfd(&self.socket, entry),
            Err(e) => Err(e),
        }
    }
}

/// The kernel refused the datagram for its size (`EMSGSIZE`; `ENOBUFS` when it
/// exceeds the socket's send buffer on some kernels).
fn is_too_large(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::MSGSIZE.raw_os_error())
        || code == Some(rustix::io::Errno::NOBUFS.raw_os_error())
}

/// The native protocol's way for large entries: the entry in a memfd sealed
/// against any change, its descriptor sent alone in an empty datagram. journald
/// reads the file and the descriptor is closed on our side when this returns.
fn send_through_memfd(socket: &UnixDatagram, entry: &[u8]) -> io::Result<()> {
    use rustix::fs::{MemfdFlags, SealFlags};
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

    let fd = rustix::fs::memfd_create(
        "keyward-audit-entry",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(entry)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    let fds = [file.as_fd()];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    rustix::net::sendmsg(socket, &[], &mut control, SendFlags::empty())?;
    Ok(())
}
