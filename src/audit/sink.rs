//! [`AuditSink`]: where events go, without ever making the caller wait.
//!
//! `emit` puts the event on a bounded queue and returns at once; one writer thread
//! drains the queue into the destinations. When the queue is full the event is
//! dropped and counted, and the writer reports the count as an event of its own
//! (kind `Trail`, operation `EventsDropped`) as soon as it catches up — so a gap in
//! the trail is always visible in the trail.
//!
//! Destinations: the systemd journal when this machine runs one, and the JSON-lines
//! file when `[audit] path` is configured — both when both are there. Only when
//! neither is available do events go to stderr, so that they always go somewhere
//! (and an administrator's terminal is not cluttered when they are kept anyway).
//! A destination that fails passes the batch on to stderr with one warning line.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::event::AuditEvent;
use super::file::JsonlFile;
use super::journal::JournalSocket;
use crate::limits::AUDIT_QUEUE_EVENTS;
use crate::metrics::Metrics;

/// Most events written (and synced) as one batch.
pub const MAX_BATCH: usize = 256;

/// How long [`AuditSink::record`] waits for its event to be written.
const RECORD_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon a drop is reported when no further event arrives to carry it.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Which journal to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalTarget {
    /// `/run/systemd/journal/socket` if the machine runs a journal; else none.
    System,
    /// This socket, which must accept a connection (tests; unusual setups).
    Socket(PathBuf),
    /// No journal.
    Off,
}

/// How to build an [`AuditSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The JSON-lines file (`[audit] path`).
    pub file: Option<PathBuf>,
    pub journal: JournalTarget,
    /// Events queued before new ones are dropped.
    pub queue_capacity: usize,
}

impl AuditSettings {
    /// The system journal (if any), plus `file` when configured
    /// (`AuditSettings::new(config.audit.path.clone())`).
    pub fn new(file: Option<PathBuf>) -> AuditSettings {
        AuditSettings {
            file,
            journal: JournalTarget::System,
            queue_capacity: AUDIT_QUEUE_EVENTS,
        }
    }
}

#[derive(Debug)]
pub enum AuditError {
    /// The audit file cannot be opened for appending.
    File(PathBuf, io::Error),
    /// An explicitly named journal socket refused the connection.
    Journal(PathBuf, io::Error),
    /// The writer thread could not be started.
    Thread(io::Error),
    /// [`AuditSink::record`]: the event was not written in time.
    Timeout,
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::File(p, e) => write!(f, "audit file {}: {e}", p.display()),
            AuditError::Journal(p, e) => write!(f, "journal socket {}: {e}", p.display()),
            AuditError::Thread(e) => write!(f, "cannot start the audit writer: {e}"),
            AuditError::Timeout => f.write_str("the audit event was not written in time"),
        }
    }
}

impl std::error::Error for AuditError {}

enum Destination {
    Journal(JournalSocket),
    File(JsonlFile),
    Stderr,
    Capture(Arc<Mutex<Vec<AuditEvent>>>),
}

impl Destination {
    fn describe(&self) -> String {
        match self {
            Destination::Journal(j) => format!("journal {}", j.path().display()),
            Destination::File(f) => format!("file {}", f.path().display()),
            Destination::Stderr => "stderr".to_owned(),
            Destination::Capture(_) => "memory".to_owned(),
        }
    }

    fn write(&mut self, batch: &[AuditEvent]) {
        match self {
            Destination::Journal(journal) => {
                for (i, event) in batch.iter().enumerate() {
                    if let Err(e) = journal.send(event) {
                        write_stderr(&format!("journal: {e}"), &batch[i..]);
                        break;
                    }
                }
            }
            Destination::File(file) => {
                if let Err(e) = file.append(batch) {
                    write_stderr(&format!("{}: {e}", file.path().display()), batch);
                }
            }
            Destination::Stderr => write_stderr("", batch),
            Destination::Capture(events) => events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(batch),
        }
    }
}

/// Events to stderr, one line each, after a warning line when `failure` is given.
fn write_stderr(failure: &str, events: &[AuditEvent]) {
    let mut err = io::stderr().lock();
    if !failure.is_empty() {
        let _ = writeln!(
            err,
            "keyward: audit destination failed ({failure}); events follow on stderr"
        );
    }
    for event in events {
        let _ = writeln!(err, "{event}");
    }
}

enum Command {
    Event(Box<AuditEvent>),
    /// Answer once everything queued before is written.
    Flush(mpsc::Sender<()>),
}

#[derive(Default)]
struct Counters {
    /// Dropped since the last report.
    unreported: AtomicU64,
    dropped_total: AtomicU64,
    /// Events in the queue (counted before they enter it, so it never underflows).
    queued: AtomicU64,
}

/// The audit trail's entrance. Cheap to clone; all clones feed one writer, which
/// ends once every clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct AuditSink {
    tx: SyncSender<Command>,
    counters: Arc<Counters>,
    destinations: Arc<[String]>,
}

impl fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSink")
            .field("destinations", &self.destinations)
            .finish_non_exhaustive()
    }
}

impl AuditSink {
    /// Opens the destinations and starts the writer thread. Fails when the
    /// configured file cannot be opened: a server must not run without the trail
    /// it was told to keep.
    pub fn start(settings: AuditSettings) -> Result<AuditSink, AuditError> {
        let mut destinations = Vec::new();
        match &settings.journal {
            JournalTarget::System => destinations.extend(JournalSocket::system().map(Destination::Journal)),
            JournalTarget::Socket(path) => destinations.push(Destination::Journal(
                JournalSocket::connect(path).map_err(|e| AuditError::Journal(path.clone(), e))?,
            )),
            JournalTarget::Off => {}
        }
        if let Some(path) = &settings.file {
            destinations.push(Destination::File(
                JsonlFile::open(path).map_err(|e| AuditError::File(path.clone(), e))?,
            ));
        }
        if destinations.is_empty() {
            destinations.push(Destination::Stderr);
        }
        Self::spawn(settings.queue_capacity, destinations, None).map_err(AuditError::Thread)
    }

    /// Writes one event and waits until it is written: for a `keyward` admin
    /// command, which exits right after (`AuditSink::record(AuditSettings::new(
    /// config.audit.path.clone()), AuditEvent::admin("KeyRevoke").object(Some(id)))`).
    pub fn record(settings: AuditSettings, event: AuditEvent) -> Result<(), AuditError> {
        let sink = AuditSink::start(settings)?;
        sink.emit(event);
        if sink.flush(RECORD_TIMEOUT) {
            Ok(())
        } else {
            Err(AuditError::Timeout)
        }
    }

    /// A sink that keeps events in memory, for tests of the code that emits them.
    /// Call [`AuditSink::flush`] before reading [`CapturedEvents::events`].
    pub fn capture() -> Result<(AuditSink, CapturedEvents), AuditError> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Self::spawn(
            AUDIT_QUEUE_EVENTS,
            vec![Destination::Capture(Arc::clone(&events))],
            None,
        )
        .map_err(AuditError::Thread)?;
        Ok((sink, CapturedEvents { events }))
    }

    /// `start_gate`: the writer waits for it before reading the queue (tests of
    /// overflow need a queue nobody drains yet).
    fn spawn(
        capacity: usize,
        destinations: Vec<Destination>,
        start_gate: Option<Receiver<()>>,
    ) -> io::Result<AuditSink> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let described: Arc<[String]> = destinations.iter().map(Destination::describe).collect();
        let writer_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("keyward-audit".to_owned())
            .spawn(move || {
                if let Some(gate) = start_gate {
                    let _ = gate.recv();
                }
                write_loop(&rx, destinations, &writer_counters);
            })?;
        Ok(AuditSink {
            tx,
            counters,
            destinations: described,
        })
    }

    /// Queues `event` (fields cut to their bound) and returns at once; never
    /// blocks, never fails. A full queue drops the event and counts it.
    pub fn emit(&self, event: AuditEvent) {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .try_send(Command::Event(Box::new(event.bounded())))
            .is_err()
        {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            self.counters.unreported.fetch_add(1, Ordering::Relaxed);
            self.counters.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (blocking the thread, at most `timeout`) until every event emitted
    /// before is written and synced. For CLI commands before they exit and for
    /// the server's shutdown; not for request paths. False on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut command = Command::Flush(ack_tx);
        loop {
            match self.tx.try_send(command) {
                Ok(()) => break,
                Err(TrySendError::Full(c)) if Instant::now() < deadline => {
                    command = c;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Events dropped because the queue was full, since start.
    pub fn dropped_total(&self) -> u64 {
        self.counters.dropped_total.load(Ordering::Relaxed)
    }

    /// Events emitted and not yet taken by the writer.
    pub fn queue_depth(&self) -> u64 {
        self.counters.queued.load(Ordering::Relaxed)
    }

    /// Exposes [`AuditSink::queue_depth`] and [`AuditSink::dropped_total`] as
    /// `keyward_audit_queue_depth` and `keyward_audit_dropped_total`, read when
    /// scraped (nothing is added to [`AuditSink::emit`]).
    pub fn report_to(&self, metrics: &Metrics) {
        let depth = Arc::clone(&self.counters);
        let dropped = Arc::clone(&self.counters);
        metrics.watch_audit_queue(
            move || depth.queued.load(Ordering::Relaxed),
            move || dropped.dropped_total.load(Ordering::Relaxed),
        );
    }

    /// Where events go, e.g. `["journal /run/systemd/journal/socket", "file /var/log/keyward/audit.jsonl"]`.
    pub fn destinations(&self) -> &[String] {
        &self.destinations
    }
}

/// What an [`AuditSink::capture`] sink has written so far.
#[derive(Debug, Clone)]
pub struct CapturedEvents {
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl CapturedEvents {
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

fn write_loop(rx: &Receiver<Command>, mut destinations: Vec<Destination>, counters: &Counters) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    loop {
        let ended = match rx.recv_timeout(DROP_REPORT_INTERVAL) {
            Ok(command) => {
                take(command, &mut batch, &mut flushes, counters);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(command) => take(command, &mut batch, &mut flushes, counters),
                Err(_) => break,
            }
        }
        let dropped = counters.unreported.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.push(AuditEvent::dropped_report(dropped));
        }
        if !batch.is_empty() {
            for destination in &mut destinations {
                destination.write(&batch);
            }
            batch.clear();
        }
        for ack in flushes.drain(..) {
            // The flusher may have given up waiting; nothing to do then.
            let _ = ack.send(());
        }
        if ended {
            return;
        }
    }
}

fn take(
    command: Command,
    batch: &mut Vec<AuditEvent>,
    flushes: &mut Vec<mpsc::Sender<()>>,
    counters: &Counters,
) {
    match command {
        Command::Event(event) => {
            counters.queued.fetch_sub(1, Ordering::Relaxed);
            batch.push(*event);
        }
        Command::Flush(ack) => flushes.push(ack),
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
