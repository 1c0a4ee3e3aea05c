use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use super::*;
use crate::system::child::{is_child, run_in_child};

/// Every datagram waiting on `socket`, as text.
fn drain(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buffer) {
        messages.push(String::from_utf8(buffer[..n].to_vec()).unwrap());
    }
    messages
}

#[test]
fn a_notifier_sends_to_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let receiver = UnixDatagram::bind(&path).unwrap();
    let notifier = Notifier::connect(path.as_os_str()).unwrap();
    notifier.send("READY=1").unwrap();
    notifier.send("STATUS=ok").unwrap();
    assert_eq!(drain(&receiver), ["READY=1", "STATUS=ok"]);
}

#[test]
fn a_notifier_sends_to_an_abstract_socket() {
    let name = format!("keyward-notify-test-{}", uuid::Uuid::new_v4().simple());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let receiver = UnixDatagram::bind_addr(&address).unwrap();
    let notifier = Notifier::connect(OsStr::new(&format!("@{name}"))).unwrap();
    notifier.send("WATCHDOG=1").unwrap();
    assert_eq!(drain(&receiver), ["WATCHDOG=1"]);
}

#[test]
fn a_relative_or_unknown_socket_address_is_refused() {
    for bad in ["notify", "vsock:2:1234", ""] {
        let err = Notifier::connect(OsStr::new(bad)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{bad:?}");
    }
}

#[test]
fn status_text_cannot_inject_assignments_and_is_bounded() {
    assert_eq!(status_message("serving\nREADY=1"), "STATUS=serving READY=1");
    let long = "é".repeat(MAX_STATUS_BYTES);
    let message = status_message(&long);
    assert!(message.len() <= "STATUS=".len() + MAX_STATUS_BYTES);
    assert!(message.ends_with('é'));
}

#[test]
fn watchdog_interval_is_half_the_period_for_this_process_only() {
    let us = |s: &str| Some(OsString::from(s));
    assert_eq!(
        watchdog_interval_from(us("30000000"), None, 42),
        Some(Duration::from_secs(15))
    );
    assert_eq!(
        watchdog_interval_from(us("30000000"), us("42"), 42),
        Some(Duration::from_secs(15))
    );
    assert_eq!(watchdog_interval_from(us("30000000"), us("41"), 42), None);
    assert_eq!(watchdog_interval_from(us("0"), None, 42), None);
    assert_eq!(watchdog_interval_from(us("soon"), None, 42), None);
    assert_eq!(watchdog_interval_from(None, None, 42), None);
}

/// What the child process sends through the environment-driven functions.
fn send_a_service_lifetime() {
    assert!(ready().unwrap());
    assert!(status("serving on 127.0.0.1:5696").unwrap());
    assert!(extend_timeout(Duration::from_secs(2)).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The watchdog asks for health, then pings: once it has asked a third
        // time, two pings have been sent, however slowly the machine runs.
        let (asked, mut asks) = tokio::sync::mpsc::unbounded_channel();
        let watchdog = spawn_watchdog(move || {
            let _ = asked.send(());
            true
        })
        .expect("WATCHDOG_USEC is set");
        for _ in 0..3 {
            asks.recv().await.unwrap();
        }
        watchdog.abort();
    });
    assert!(stopping().unwrap());
}

#[test]
fn environment_driven_notifications_reach_the_socket() {
    if is_child() {
        send_a_service_lifetime();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let receiver = UnixDatagram::bind(&path).unwrap();
    run_in_child(
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            ("WATCHDOG_USEC", OsStr::new("100000")),
        ],
        send_a_service_lifetime,
    );
    let messages = drain(&receiver);
    assert_eq!(messages[0], "READY=1");
    assert_eq!(messages[1], "STATUS=serving on 127.0.0.1:5696");
    assert_eq!(messages[2], "EXTEND_TIMEOUT_USEC=2000000");
    let pings = &messages[3..messages.len() - 1];
    assert!(pings.len() >= 2, "{messages:?}");
    assert!(pings.iter().all(|m| m == "WATCHDOG=1"), "{messages:?}");
    assert_eq!(messages.last().unwrap(), "STOPPING=1");
}

#[test]
fn an_unhealthy_service_stops_pinging() {
    if is_child() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            // Three ticks that each found the service unhealthy: no ping.
            let (asked, mut asks) = tokio::sync::mpsc::unbounded_channel();
            let watchdog = spawn_watchdog(move || {
                let _ = asked.send(());
                false
            })
            .unwrap();
            for _ in 0..3 {
                asks.recv().await.unwrap();
            }
            watchdog.abort();
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let receiver = UnixDatagram::bind(&path).unwrap();
    run_in_child(
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            ("WATCHDOG_USEC", OsStr::new("100000")),
        ],
        || {},
    );
    assert_eq!(drain(&receiver), Vec::<String>::new());
}

#[test]
fn without_notify_socket_every_call_is_a_no_op() {
    run_in_child(&[], || {
        assert!(!ready().unwrap());
        assert!(!status("x").unwrap());
        assert!(!watchdog_ping().unwrap());
        assert!(!stopping().unwrap());
        assert_eq!(watchdog_interval(), None);
    });
}
