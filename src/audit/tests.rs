use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

use super::journal::{self, JournalSocket};
use super::reader::{self, parse_time};
use super::*;

const FINGERPRINT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const UID: &str = "4d3c5e2a-8b1f-4c6e-9d2a-1f0e3b5a7c90";
const X_NAME: &str = "52 8c 1e 0a 63 f0 2a 9e-b1 7d 2c 11 09 4e 3f 55";

fn peer() -> SocketAddr {
    "10.0.0.5:50432".parse().unwrap()
}

/// An event as the server builds it for a failed Get.
fn failed_get(time: OffsetDateTime) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::Kmip, "Get")
        .client(
            Some("vcenter-1"),
            Some(&FINGERPRINT.to_uppercase()),
            Some("tenant-a"),
        )
        .source(peer())
        .object(Some(UID))
        .x_name(Some(X_NAME))
        .failed("ItemNotFound", "no object with this identifier");
    event.time = time;
    event
}

fn event_at(time: OffsetDateTime, client: &str, operation: &str, object: &str) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::Kmip, operation)
        .client(Some(client), Some(FINGERPRINT), None)
        .object(Some(object));
    event.time = time;
    event
}

#[test]
fn summary_and_display_are_one_readable_line() {
    let event = failed_get(datetime!(2025-03-01 12:00:00.25 UTC));
    assert_eq!(
        event.summary(),
        format!(
            "Get {UID} ({X_NAME}) by vcenter-1 from 10.0.0.5:50432: OperationFailed ItemNotFound - no object with this identifier"
        )
    );
    assert_eq!(
        event.to_string(),
        format!(
            "audit time=2025-03-01T12:00:00.25Z kind=Kmip client_name=vcenter-1 client_fingerprint={FINGERPRINT} \
             client_group=tenant-a source_address=10.0.0.5:50432 operation=Get object_id={UID} x_name={X_NAME:?} \
             result=OperationFailed reason=ItemNotFound message=\"no object with this identifier\""
        )
    );
    // A newline in a message cannot split the line.
    let odd = AuditEvent::new(EventKind::Admin, "KeyRevoke").message("line one\nline two");
    assert!(!odd.to_string().contains('\n'));
    assert!(!odd.summary().contains('\n'));
}

#[test]
fn refused_connection_and_admin_events() {
    let refused = AuditEvent::new(EventKind::Connection, "Connect")
        .source(peer())
        .refused("certificate not trusted");
    assert_eq!(refused.result, AuditResult::Refused);
    assert_eq!(
        refused.summary(),
        "Connect from 10.0.0.5:50432: Refused certificate not trusted"
    );
    assert_eq!(journal::priority(&refused), 4);

    let admin = AuditEvent::admin("KeyDestroy").object(Some(UID));
    assert_eq!(admin.kind, EventKind::Admin);
    assert!(admin.client_name.as_deref().is_some_and(|n| !n.is_empty()));
    assert_eq!(journal::priority(&admin), 6);
    assert_eq!(journal::priority(&AuditEvent::dropped_report(3)), 3);
}

#[test]
fn json_round_trips_and_leaves_absent_fields_out() {
    let event = failed_get(datetime!(2025-03-01 12:00:00 UTC));
    let line = serde_json::to_string(&event).unwrap();
    assert!(
        line.starts_with(r#"{"time":"2025-03-01T12:00:00Z","kind":"Kmip","client_name":"vcenter-1""#),
        "{line}"
    );
    assert_eq!(serde_json::from_str::<AuditEvent>(&line).unwrap(), event);
    let bare = serde_json::to_value(AuditEvent::new(EventKind::Kmip, "Query")).unwrap();
    let keys: Vec<_> = bare.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["kind", "operation", "result", "time"]);
}

/// The structural guarantee: every field of a fully filled event is text (or the
/// drop count); there is no byte array, list or nested object that key material
/// could be put in.
#[test]
fn no_field_can_hold_bytes() {
    let mut event = failed_get(OffsetDateTime::now_utc());
    event.dropped = Some(1);
    let json = serde_json::to_value(&event).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(
        object.len(),
        13,
        "a new field? check it cannot carry key material"
    );
    for (name, value) in object {
        match value {
            Value::String(_) => {}
            Value::Number(_) if name == "dropped" => {}
            other => panic!("field {name} is not text: {other}"),
        }
    }
    // Debug and Display show the identifiers they were given and nothing else.
    let key_hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    for text in [format!("{event:?}"), event.to_string(), event.summary()] {
        assert!(text.contains(UID) && text.contains("vcenter-1"));
        assert!(!text.to_lowercase().contains(key_hex));
        assert!(!text.to_lowercase().contains("pin"));
    }
}

/// Splits a native-protocol datagram into fields, both forms.
fn parse_datagram(mut data: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        let end = data.iter().position(|b| *b == b'\n' || *b == b'=').unwrap();
        let name = String::from_utf8(data[..end].to_vec()).unwrap();
        if data[end] == b'=' {
            let rest = &data[end + 1..];
            let nl = rest.iter().position(|b| *b == b'\n').unwrap();
            fields.push((name, String::from_utf8(rest[..nl].to_vec()).unwrap()));
            data = &rest[nl + 1..];
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.push((name, String::from_utf8(rest[8..8 + len].to_vec()).unwrap()));
            assert_eq!(rest[8 + len], b'\n');
            data = &rest[8 + len + 1..];
        }
    }
    fields
}

#[test]
fn journal_datagram_fields_reach_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.socket");
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let sink = AuditSink::start(AuditSettings {
        file: None,
        journal: JournalTarget::Socket(path.clone()),
        queue_capacity: 16,
    })
    .unwrap();
    assert_eq!(sink.destinations(), [format!("journal {}", path.display())]);
    let event = failed_get(datetime!(2025-03-01 12:00:00 UTC)).message("first line\nsecond line");
    sink.emit(event.clone());
    assert!(sink.flush(Duration::from_secs(10)));

    let mut buf = vec![0u8; 65536];
    let n = server.recv(&mut buf).unwrap();
    let fields = parse_datagram(&buf[..n]);
    let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(get("SYSLOG_IDENTIFIER"), Some("keyward"));
    assert_eq!(get("KEYWARD_AUDIT"), Some("1"));
    assert_eq!(get("PRIORITY"), Some("5"));
    assert_eq!(get("MESSAGE"), Some(event.summary().as_str()));
    assert_eq!(get("KEYWARD_CLIENT"), Some("vcenter-1"));
    assert_eq!(get("KEYWARD_CLIENT_FINGERPRINT"), Some(FINGERPRINT));
    assert_eq!(get("KEYWARD_CLIENT_GROUP"), Some("tenant-a"));
    assert_eq!(get("KEYWARD_SOURCE_ADDRESS"), Some("10.0.0.5:50432"));
    assert_eq!(get("KEYWARD_OPERATION"), Some("Get"));
    assert_eq!(get("KEYWARD_OBJECT_ID"), Some(UID));
    assert_eq!(get("KEYWARD_X_NAME"), Some(X_NAME));
    assert_eq!(get("KEYWARD_RESULT"), Some("OperationFailed"));
    assert_eq!(get("KEYWARD_REASON"), Some("ItemNotFound"));
    assert_eq!(get("KEYWARD_MESSAGE"), Some("first line\nsecond line")); // binary-safe form
    assert_eq!(get("KEYWARD_TIME"), Some("2025-03-01T12:00:00Z"));
    // Every name is a valid journal field name.
    for (name, _) in &fields {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        assert!(!name.starts_with('_') && name.len() <= 64);
    }
}

#[test]
fn journal_socket_reconnects_after_journald_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.socket");
    let first = UnixDatagram::bind(&path).unwrap();
    let mut socket = JournalSocket::connect(&path).unwrap();
    socket.send(&AuditEvent::new(EventKind::Kmip, "Query")).unwrap();
    drop(first);
    std::fs::remove_file(&path).unwrap();
    let second = UnixDatagram::bind(&path).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    socket.send(&AuditEvent::new(EventKind::Kmip, "Create")).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = second.recv(&mut buf).unwrap();
    assert!(parse_datagram(&buf[..n]).contains(&("KEYWARD_OPERATION".into(), "Create".into())));
}

/// An entry larger than any datagram arrives as a sealed memfd, the way journald
/// takes large entries: an empty datagram carrying one descriptor.
#[test]
fn an_entry_larger_than_a_datagram_goes_through_a_sealed_memfd() {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::{Read, Seek};
    use std::mem::MaybeUninit;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.socket");
    let server = UnixDatagram::bind(&path).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut socket = JournalSocket::connect(&path).unwrap();

    // Far above the kernel's largest Unix datagram (the send buffer, ~208 KiB).
    let long = "L".repeat(4 * 1024 * 1024);
    let event = AuditEvent::new(EventKind::Admin, "KeyImport").message(&long);
    socket.send(&event).unwrap();

    let mut payload = [0u8; 16];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        &server,
        &mut [std::io::IoSliceMut::new(&mut payload)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    assert_eq!(received.bytes, 0, "the entry itself must not be in the datagram");
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received_fds) = message {
            fds.extend(received_fds);
        }
    }
    assert_eq!(fds.len(), 1);
    let fd = fds.pop().unwrap();
    let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
    assert!(seals.contains(
        rustix::fs::SealFlags::WRITE | rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW
    ));
    // journald reads the file from its start (the offset is shared with ours).
    let mut file = std::fs::File::from(fd);
    file.rewind().unwrap();
    let mut entry = Vec::new();
    file.read_to_end(&mut entry).unwrap();
    assert!(
        entry == journal::encode(&event),
        "the memfd holds {} bytes, not the entry",
        entry.len()
    );
    let fields = parse_datagram(&entry);
    assert!(fields.contains(&("KEYWARD_MESSAGE".into(), long)), "message lost");
    assert!(fields.contains(&("KEYWARD_OPERATION".into(), "KeyImport".into())));

    // Small entries still go as plain datagrams.
    socket.send(&AuditEvent::new(EventKind::Kmip, "Query")).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = server.recv(&mut buf).unwrap();
    assert!(parse_datagram(&buf[..n]).contains(&("KEYWARD_OPERATION".into(), "Query".into())));
}

#[test]
fn jsonl_file_is_private_appended_and_read_back_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let t0 = datetime!(2025-03-01 12:00:00 UTC);
    let minute = time::Duration::minutes(1);
    let events = [
        event_at(t0, "vcenter-1", "Create", "k1"),
        event_at(t0 + minute, "vcenter-1", "Get", "k1"),
        event_at(t0 + minute * 2, "vcenter-2", "Get", "k2"),
        event_at(t0 + minute * 3, "vcenter-1", "Destroy", "k1"),
    ];
    let mut file = JsonlFile::open(&path).unwrap();
    file.append(&events[..2]).unwrap();
    drop(file);
    // Reopened after a crash mid-line: the damaged line is skipped, nothing else lost.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"time\":\"2025"))
        .unwrap();
    let mut file = JsonlFile::open(&path).unwrap();
    file.append(&events[2..]).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let read = |filter: AuditFilter| {
        let mut got = Vec::new();
        let stats = reader::read_file(&path, &filter, |e| {
            got.push(format!(
                "{}/{}/{}",
                e.client_name.as_deref().unwrap(),
                e.operation,
                e.object_id.as_deref().unwrap()
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(stats.unreadable, 1);
        assert_eq!(stats.matched, got.len() as u64);
        got
    };
    assert_eq!(read(AuditFilter::default()).len(), 4);
    let client = |c: &str| AuditFilter {
        client: Some(c.into()),
        ..AuditFilter::default()
    };
    assert_eq!(read(client("vcenter-2")), ["vcenter-2/Get/k2"]);
    // By fingerprint: colon form, upper case, or a prefix of 8+ hex digits.
    assert_eq!(read(client("9F:86:D0:81")).len(), 4);
    assert_eq!(read(client("9f86d0")).len(), 0);
    let op = AuditFilter {
        operation: Some("get".into()),
        key: Some("k1".into()),
        ..AuditFilter::default()
    };
    assert_eq!(read(op), ["vcenter-1/Get/k1"]);
    let window = AuditFilter {
        since: Some(t0 + minute),
        until: Some(t0 + minute * 2),
        ..AuditFilter::default()
    };
    assert_eq!(read(window), ["vcenter-1/Get/k1", "vcenter-2/Get/k2"]);
}

#[test]
fn key_filter_matches_unique_identifier_or_x_name() {
    let event = failed_get(OffsetDateTime::now_utc());
    let by = |key: &str| AuditFilter {
        key: Some(key.into()),
        ..AuditFilter::default()
    };
    assert!(by(UID).matches(&event));
    assert!(by(X_NAME).matches(&event));
    assert!(!by("other").matches(&event));
}

#[test]
fn over_long_lines_are_skipped_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let good = serde_json::to_string(&event_at(OffsetDateTime::now_utc(), "a", "Get", "k")).unwrap();
    let huge = "x".repeat(crate::limits::AUDIT_LINE_MAX_BYTES + 10);
    std::fs::write(&path, format!("{good}\n{huge}\n\n{good}")).unwrap();
    let stats = reader::read_file(&path, &AuditFilter::default(), |_| Ok(())).unwrap();
    assert_eq!(
        stats,
        ReadStats {
            matched: 2,
            unreadable: 1
        }
    );
}

#[test]
fn times_parse_absolute_and_relative() {
    let now = datetime!(2025-03-01 12:00:00 UTC);
    assert_eq!(parse_time("now", now).unwrap(), now);
    assert_eq!(
        parse_time("-1h", now).unwrap(),
        datetime!(2025-03-01 11:00:00 UTC)
    );
    assert_eq!(
        parse_time("-90s", now).unwrap(),
        datetime!(2025-03-01 11:58:30 UTC)
    );
    assert_eq!(
        parse_time("-15m", now).unwrap(),
        datetime!(2025-03-01 11:45:00 UTC)
    );
    assert_eq!(
        parse_time("-2d", now).unwrap(),
        datetime!(2025-02-27 12:00:00 UTC)
    );
    assert_eq!(
        parse_time("-1w", now).unwrap(),
        datetime!(2025-02-22 12:00:00 UTC)
    );
    assert_eq!(
        parse_time("2025-02-01T08:30:00+01:00", now).unwrap(),
        datetime!(2025-02-01 07:30:00 UTC)
    );
    assert_eq!(
        parse_time("2025-02-01", now).unwrap(),
        datetime!(2025-02-01 00:00:00 UTC)
    );
    for bad in ["-1y", "-h", "yesterday", "2025-13-01", ""] {
        assert!(parse_time(bad, now).is_err(), "{bad}");
    }
}

#[test]
fn journalctl_entries_become_events() {
    let since = datetime!(2025-03-01 12:00:00.5 UTC);
    let args = reader::journalctl_args(&AuditFilter {
        since: Some(since),
        until: Some(since + time::Duration::hours(1)),
        ..AuditFilter::default()
    });
    assert_eq!(
        args,
        [
            "--output=json",
            "--no-pager",
            "--quiet",
            "--since=@1740830400",
            "--until=@1740834001",
            "SYSLOG_IDENTIFIER=keyward",
            "KEYWARD_AUDIT=1"
        ]
    );

    // As journalctl prints them: strings, a multi-line value as bytes, a repeated field as a list.
    let message: Vec<u8> = b"a\nb".to_vec();
    let entry = serde_json::json!({
        "__REALTIME_TIMESTAMP": "1740830400000000",
        "MESSAGE": "Get ...",
        "SYSLOG_IDENTIFIER": "keyward",
        "KEYWARD_AUDIT": "1",
        "KEYWARD_TIME": "2025-03-01T12:00:00.123Z",
        "KEYWARD_KIND": "Kmip",
        "KEYWARD_CLIENT": ["vcenter-1", "duplicate"],
        "KEYWARD_CLIENT_FINGERPRINT": FINGERPRINT,
        "KEYWARD_SOURCE_ADDRESS": "[::1]:4000",
        "KEYWARD_OPERATION": "Get",
        "KEYWARD_OBJECT_ID": UID,
        "KEYWARD_RESULT": "OperationFailed",
        "KEYWARD_REASON": "ItemNotFound",
        "KEYWARD_MESSAGE": message,
    });
    let event = reader::event_from_journal(&entry).unwrap();
    assert_eq!(event.time, datetime!(2025-03-01 12:00:00.123 UTC));
    assert_eq!(event.client_name.as_deref(), Some("vcenter-1"));
    assert_eq!(event.source_address, Some("[::1]:4000".parse().unwrap()));
    assert_eq!(event.message.as_deref(), Some("a\nb"));
    assert_eq!(event.result, AuditResult::OperationFailed);

    // Without our time field the journal's own timestamp is used.
    let mut bare = entry.clone();
    bare.as_object_mut().unwrap().remove("KEYWARD_TIME");
    assert_eq!(
        reader::event_from_journal(&bare).unwrap().time,
        datetime!(2025-03-01 12:00:00 UTC)
    );
    // An ordinary log line is not an event.
    assert!(reader::event_from_journal(&serde_json::json!({"MESSAGE": "keyward serving"})).is_none());
}

#[test]
fn journal_encoding_of_a_datagram_matches_its_fields() {
    let event = failed_get(datetime!(2025-03-01 12:00:00 UTC));
    let fields = parse_datagram(&journal::encode(&event));
    // Every event field is there under its journal name, and nothing else than
    // the four journal fields is added.
    assert_eq!(fields.len(), event.fields().len() + 4);
}
