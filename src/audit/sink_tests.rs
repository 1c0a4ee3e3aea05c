use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use super::*;
use crate::audit::{AuditResult, EventKind};

const WAIT: Duration = Duration::from_secs(10);

fn get(id: &str) -> AuditEvent {
    AuditEvent::new(EventKind::Kmip, "Get").object(Some(id))
}

#[test]
fn a_full_queue_drops_counts_and_reports_the_count() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (open_gate, gate) = mpsc::channel();
    let sink = AuditSink::spawn(4, vec![Destination::Capture(Arc::clone(&events))], Some(gate)).unwrap();
    // The writer has not started reading: 4 fit, 6 are dropped, and emit never waits.
    let started = Instant::now();
    for i in 0..10 {
        sink.emit(get(&i.to_string()));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(sink.dropped_total(), 6);

    open_gate.send(()).unwrap();
    assert!(sink.flush(WAIT));
    let written = events.lock().unwrap().clone();
    let ids: Vec<_> = written.iter().filter_map(|e| e.object_id.clone()).collect();
    assert_eq!(ids, ["0", "1", "2", "3"]);
    let report = written.last().unwrap();
    assert_eq!(report.kind, EventKind::Trail);
    assert_eq!(report.operation, "EventsDropped");
    assert_eq!(report.result, AuditResult::OperationFailed);
    assert_eq!(report.dropped, Some(6));
    assert!(
        report
            .message
            .as_deref()
            .unwrap()
            .contains("6 audit events dropped")
    );

    // Reported once: later traffic carries no second report.
    sink.emit(get("later"));
    assert!(sink.flush(WAIT));
    let written = events.lock().unwrap().clone();
    assert_eq!(written.iter().filter(|e| e.kind == EventKind::Trail).count(), 1);
    assert_eq!(sink.dropped_total(), 6);
}

#[test]
fn queue_depth_and_drops_reach_the_metrics() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (open_gate, gate) = mpsc::channel();
    let sink = AuditSink::spawn(4, vec![Destination::Capture(Arc::clone(&events))], Some(gate)).unwrap();
    let metrics = Metrics::new();
    sink.report_to(&metrics);
    for i in 0..10 {
        sink.emit(get(&i.to_string()));
    }
    assert_eq!(sink.queue_depth(), 4);
    let text = metrics.encode();
    assert!(text.contains("keyward_audit_queue_depth 4\n"), "{text}");
    assert!(text.contains("keyward_audit_dropped_total 6\n"), "{text}");

    open_gate.send(()).unwrap();
    assert!(sink.flush(WAIT));
    assert_eq!(sink.queue_depth(), 0);
    assert!(metrics.encode().contains("keyward_audit_queue_depth 0\n"));
}

#[test]
fn a_drop_is_reported_even_when_no_event_follows() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (open_gate, gate) = mpsc::channel();
    let sink = AuditSink::spawn(1, vec![Destination::Capture(Arc::clone(&events))], Some(gate)).unwrap();
    sink.emit(get("a"));
    sink.emit(get("b"));
    open_gate.send(()).unwrap();
    let deadline = Instant::now() + WAIT;
    while events.lock().unwrap().iter().all(|e| e.kind != EventKind::Trail) {
        assert!(Instant::now() < deadline, "no drop report");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(events.lock().unwrap().last().unwrap().dropped, Some(1));
}

#[test]
fn capture_keeps_events_in_order_and_bounds_fields() {
    let (sink, captured) = AuditSink::capture().unwrap();
    let long = "x".repeat(crate::limits::AUDIT_FIELD_MAX_BYTES * 3);
    for i in 0..1000 {
        sink.emit(get(&i.to_string()));
    }
    sink.emit(AuditEvent::new(EventKind::Kmip, "Locate").x_name(Some(&long)));
    assert!(sink.flush(WAIT));
    let events = captured.events();
    assert_eq!(events.len(), 1001);
    assert_eq!(events[999].object_id.as_deref(), Some("999"));
    let cut = events[1000].x_name.as_deref().unwrap();
    assert!(cut.len() <= crate::limits::AUDIT_FIELD_MAX_BYTES);
    assert!(cut.ends_with('…'));
    assert_eq!(sink.destinations(), ["memory"]);
}

#[test]
fn clones_feed_one_writer() {
    let (sink, captured) = AuditSink::capture().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    sink.emit(get(&format!("{t}-{i}")));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(sink.flush(WAIT));
    assert_eq!(captured.events().len(), 400);
}

#[test]
fn without_journal_or_file_events_go_to_stderr_only() {
    let sink = AuditSink::start(AuditSettings {
        file: None,
        journal: JournalTarget::Off,
        queue_capacity: 16,
    })
    .unwrap();
    assert_eq!(sink.destinations(), ["stderr"]);
    sink.emit(get("k"));
    assert!(sink.flush(WAIT));
}

#[test]
fn a_file_is_enough_and_an_unusable_one_stops_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = AuditSink::start(AuditSettings {
        file: Some(path.clone()),
        journal: JournalTarget::Off,
        queue_capacity: 16,
    })
    .unwrap();
    assert_eq!(sink.destinations(), [format!("file {}", path.display())]);

    let missing = dir.path().join("no/such/dir/audit.jsonl");
    let err = AuditSink::start(AuditSettings::new(Some(missing))).unwrap_err();
    assert!(err.to_string().starts_with("audit file "), "{err}");
}

#[test]
fn a_named_journal_socket_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let err = AuditSink::start(AuditSettings {
        file: None,
        journal: JournalTarget::Socket(dir.path().join("nothing")),
        queue_capacity: 16,
    })
    .unwrap_err();
    assert!(matches!(err, AuditError::Journal(..)), "{err}");
}

#[test]
fn record_writes_one_admin_event_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let settings = AuditSettings {
        file: Some(path.clone()),
        journal: JournalTarget::Off,
        queue_capacity: 16,
    };
    AuditSink::record(settings, AuditEvent::admin("KeyDestroy").object(Some("k9"))).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let event: AuditEvent = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(
        (event.kind, event.operation.as_str()),
        (EventKind::Admin, "KeyDestroy")
    );
    assert_eq!(event.object_id.as_deref(), Some("k9"));
}
