//! [`AuditSink`]: where events go, without ever making the caller wait.
//!
//! `emit` puts the event on a bounded queue and returns at once; one writer thread
//! drains the queue into the destinations, in batches and without a wake-up per
//! event (see [`Mailbox`]). When the queue is full the event is
//! dropped and counted, and the writer reports the count as an event of its own
//! (kind `Trail`, operation `EventsDropped`) as soon as it catches up — so a gap in
//! the trail is always visible in the trail.
//!
//! Destinations: the systemd journal when this machine runs one, and the JSON-lines
//! file when `[audit] path` is configured — both when both are there. Only when
//! neither is available do events go to stderr, so that they always go somewhere
//! (and an administrator's terminal is not cluttered when they are kept anyway).
//! A destination that fails passes the batch on to stderr with one warning line.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

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
/// The batch goes out in one write: stderr is unbuffered, and a write per line
/// was most of the writer's time.
fn write_stderr(failure: &str, events: &[AuditEvent]) {
    let mut lines = Vec::with_capacity(events.len() * 256);
    if !failure.is_empty() {
        let _ = writeln!(
            lines,
            "keyward: audit destination failed ({failure}); events follow on stderr"
        );
    }
    for event in events {
        let _ = writeln!(lines, "{event}");
    }
    let _ = io::stderr().lock().write_all(&lines);
}

/// What waits for the writer. Events are bounded by the capacity; flush
/// requests (a handful, from commands and shutdown) are not.
struct Inbox {
    events: VecDeque<AuditEvent>,
    /// Answered once every event queued before each was written.
    flushes: Vec<(usize, mpsc::Sender<()>)>,
    /// Events taken by the writer so far (flush requests count against it).
    taken: usize,
    /// The writer sleeps until woken (it is not lingering): the next event must wake it.
    parked: bool,
    /// Every sink handle is gone: write what is queued, then stop.
    closed: bool,
}

/// The queue between [`AuditSink::emit`] and the writer thread.
///
/// Why not a channel: a channel wakes the writer for every event, and at one
/// client's pace (thousands of Gets a second, one at a time) that wake-up was an
/// eighth of the server's CPU. After writing a batch the writer lingers for
/// [`LINGER`] and takes whatever came meanwhile; only a writer that found
/// nothing to do sleeps until the next event wakes it, and a queue filling
/// towards [`MAX_BATCH`] or a flush request wakes it at once.
struct Mailbox {
    inbox: Mutex<Inbox>,
    wake: Condvar,
    capacity: usize,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long the writer waits for more events after a batch before it sleeps
/// until woken. An event reaches its destinations at most this much later
/// than it would with a wake-up per event.
const LINGER: Duration = Duration::from_millis(10);

/// Queued events that wake a lingering writer at once.
const WAKE_AT: usize = MAX_BATCH / 2;

#[derive(Default)]
struct Counters {
    /// Dropped since the last report.
    unreported: AtomicU64,
    dropped_total: AtomicU64,
    /// Events in the queue.
    queued: AtomicU64,
}

/// Closes the mailbox when the last [`AuditSink`] clone is dropped.
struct Entrance {
    mailbox: Arc<Mailbox>,
}

impl Drop for Entrance {
    fn drop(&mut self) {
        self.mailbox.lock().closed = true;
        self.mailbox.wake.notify_all();
    }
}

/// The audit trail's entrance. Cheap to clone; all clones feed one writer, which
/// ends once every clone is dropped and the queue is drained.
#[derive(Clone)]
pub struct AuditSink {
    entrance: Arc<Entrance>,
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
        let mailbox = Arc::new(Mailbox {
            inbox: Mutex::new(Inbox {
                events: VecDeque::new(),
                flushes: Vec::new(),
                taken: 0,
                parked: false,
                closed: false,
            }),
            wake: Condvar::new(),
            capacity: capacity.max(1),
        });
        let writer_mailbox = Arc::clone(&mailbox);
        let counters = Arc::new(Counters::default());
        let described: Arc<[String]> = destinations.iter().map(Destination::describe).collect();
        let writer_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("keyward-audit".to_owned())
            .spawn(move || {
                if let Some(gate) = start_gate {
                    let _ = gate.recv();
                }
                write_loop(&writer_mailbox, destinations, &writer_counters);
            })?;
        Ok(AuditSink {
            entrance: Arc::new(Entrance { mailbox }),
            counters,
            destinations: described,
        })
    }

    /// Queues `event` (fields cut to their bound) and returns at once; never
    /// blocks, never fails. A full queue drops the event and counts it.
    pub fn emit(&self, event: AuditEvent) {
        let event = event.bounded();
        let mailbox = &self.entrance.mailbox;
        let mut inbox = mailbox.lock();
        if inbox.events.len() >= mailbox.capacity {
            drop(inbox);
            self.counters.unreported.fetch_add(1, Ordering::Relaxed);
            self.counters.dropped_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        inbox.events.push_back(event);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let wake = inbox.parked || inbox.events.len() == WAKE_AT;
        if wake {
            inbox.parked = false;
        }
        drop(inbox);
        if wake {
            mailbox.wake.notify_one();
        }
    }

    /// Waits (blocking the thread, at most `timeout`) until every event emitted
    /// before is written and synced. For CLI commands before they exit and for
    /// the server's shutdown; not for request paths. False on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = mpsc::channel();
        let mailbox = &self.entrance.mailbox;
        {
            let mut inbox = mailbox.lock();
            let upto = inbox.taken + inbox.events.len();
            inbox.flushes.push((upto, ack_tx));
            inbox.parked = false;
        }
        mailbox.wake.notify_one();
        ack_rx.recv_timeout(timeout).is_ok()
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

fn write_loop(mailbox: &Mailbox, mut destinations: Vec<Destination>, counters: &Counters) {
    let mut batch = Vec::new();
    let mut answered = Vec::new();
    // Whether the last round wrote something: then linger rather than sleep.
    let mut lingering = false;
    loop {
        let ended = {
            let mut inbox = mailbox.lock();
            let nothing_to_do = |i: &Inbox| i.events.is_empty() && i.flushes.is_empty() && !i.closed;
            if nothing_to_do(&inbox) {
                if lingering {
                    inbox = mailbox
                        .wake
                        .wait_timeout(inbox, LINGER)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                } else {
                    // Asleep until an event comes; awake once a while anyway
                    // to report drops that no event follows.
                    inbox.parked = true;
                    inbox = mailbox
                        .wake
                        .wait_timeout(inbox, DROP_REPORT_INTERVAL)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    inbox.parked = false;
                }
            }
            let n = inbox.events.len().min(MAX_BATCH);
            batch.extend(inbox.events.drain(..n));
            inbox.taken += n;
            let taken = inbox.taken;
            let mut i = 0;
            while i < inbox.flushes.len() {
                if inbox.flushes[i].0 <= taken {
                    answered.push(inbox.flushes.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            inbox.closed && inbox.events.is_empty()
        };
        counters.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        let dropped = counters.unreported.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.push(AuditEvent::dropped_report(dropped));
        }
        lingering = !batch.is_empty();
        if !batch.is_empty() {
            for destination in &mut destinations {
                destination.write(&batch);
            }
            batch.clear();
        }
        for ack in answered.drain(..) {
            // The flusher may have given up waiting; nothing to do then.
            let _ = ack.send(());
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
