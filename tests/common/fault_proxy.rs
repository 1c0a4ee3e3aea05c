//! A fault-injecting HTTP/1 proxy on 127.0.0.1:0 in front of one backend (an
//! OpenBao node, a fake or an emulator), driven by the test: pass through, cut
//! (every connection refused with a reset, the ones in flight shut down),
//! delay, answer the next requests itself (429/503 with Retry-After, 401), or
//! forward a request and reset the connection before its answer reaches the
//! client (the write happened, the client cannot know).
//!
//! One request per client connection: the proxy reads one request, forwards it
//! with `Connection: close` on a fresh backend connection, relays the answer
//! to its end, and closes. The client sees `Connection: close` in the answer
//! and opens a new connection for its next request, so every request passes
//! here on its own and a fault hits exactly the request it was meant for.
//! Plain threads (no runtime): usable from sync and async tests alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer this status itself (not forwarded), with `Retry-After: secs` if given.
    Answer { status: u16, retry_after: Option<u32> },
    /// Forward, let the backend answer, then reset the client connection
    /// instead of relaying the answer.
    ResetAfterForward,
    /// Reset the client connection before forwarding anything.
    ResetBeforeForward,
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// When the request was read.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// "forwarded", "cut", "answered 503", "reset after forward", ...
    pub outcome: String,
}

struct Queued {
    fault: Fault,
    /// Only requests with this method (e.g. "POST") take this fault.
    method: Option<String>,
    /// Only requests whose path contains this text take this fault.
    path_contains: Option<String>,
}

#[derive(Default)]
struct State {
    cut: bool,
    delay: Duration,
    queue: VecDeque<Queued>,
    seen: Vec<Seen>,
    /// Client ends of connections in flight, to shut down on a cut.
    open: Vec<(u64, TcpStream)>,
}

/// Health routing: the backend is whichever candidate answers `path` with 200.
struct Routing {
    candidates: Vec<SocketAddr>,
    path: String,
    checked: Option<Instant>,
}

struct Shared {
    backend: Mutex<SocketAddr>,
    routing: Mutex<Option<Routing>>,
    state: Mutex<State>,
    stop: AtomicBool,
    next_id: AtomicU64,
}

/// The proxy; its threads stop when it is dropped.
pub(crate) struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 passing everything to `backend`.
    pub(crate) fn start(backend: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            backend: Mutex::new(backend),
            routing: Mutex::new(None),
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || handle(&shared, stream));
            }
        });
        FaultProxy { addr, shared }
    }

    /// Parses `http://host:port` (what a store configuration holds) and starts
    /// a proxy in front of it.
    pub(crate) fn start_for_url(url: &str) -> FaultProxy {
        let hostport = url
            .strip_prefix("http://")
            .expect("the proxy speaks plain HTTP")
            .trim_end_matches('/');
        Self::start(hostport.parse().unwrap())
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the address to configure instead of the backend's.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points the proxy at another backend (connections in flight finish).
    pub(crate) fn set_backend(&self, backend: SocketAddr) {
        *self.shared.backend.lock().unwrap() = backend;
    }

    /// Routes like a load balancer with a health check: to whichever of
    /// `candidates` answers `GET health_path` with 200 (an OpenBao cluster's
    /// active node: `/v1/sys/health`). Checked again before a request when
    /// the last check is older than 250 ms, and when the backend refuses a
    /// connection. With no healthy candidate, requests are reset.
    pub(crate) fn route_by_health(&self, candidates: Vec<SocketAddr>, health_path: &str) {
        *self.shared.routing.lock().unwrap() = Some(Routing {
            candidates,
            path: health_path.to_owned(),
            checked: None,
        });
    }

    pub(crate) fn backend(&self) -> SocketAddr {
        *self.shared.backend.lock().unwrap()
    }

    /// Clears every fault: cut, delay and queued faults.
    pub(crate) fn pass(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.cut = false;
        state.delay = Duration::ZERO;
        state.queue.clear();
    }

    /// Cuts the backend off: new connections are reset at once, the ones in
    /// flight are shut down. [`FaultProxy::pass`] restores.
    pub(crate) fn cut(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.cut = true;
        for (_, stream) in state.open.drain(..) {
            let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Every request waits this long before it is forwarded (or answered).
    pub(crate) fn delay(&self, delay: Duration) {
        self.shared.state.lock().unwrap().delay = delay;
    }

    /// Queues `fault` for the next `n` requests (any method, any path).
    pub(crate) fn fault_next(&self, n: usize, fault: Fault) {
        self.fault_next_matching(n, fault, None, None);
    }

    /// Queues `fault` for the next `n` requests with this method (e.g. "POST")
    /// and/or whose path contains `path_contains`; other requests pass.
    pub(crate) fn fault_next_matching(
        &self,
        n: usize,
        fault: Fault,
        method: Option<&str>,
        path_contains: Option<&str>,
    ) {
        let mut state = self.shared.state.lock().unwrap();
        for _ in 0..n {
            state.queue.push_back(Queued {
                fault: fault.clone(),
                method: method.map(str::to_owned),
                path_contains: path_contains.map(str::to_owned),
            });
        }
    }

    /// The next `n` requests are answered `status` (429, 503, ...) by the
    /// proxy, with `Retry-After: <secs>` when given.
    pub(crate) fn answer_next(&self, n: usize, status: u16, retry_after: Option<u32>) {
        self.fault_next(n, Fault::Answer { status, retry_after });
    }

    /// The next request is answered 401 (a token refused once).
    pub(crate) fn unauthorized_once(&self) {
        self.answer_next(1, 401, None);
    }

    /// The next request with `method` is forwarded, processed by the backend,
    /// and its connection reset before the answer reaches the client.
    pub(crate) fn reset_after_forward_next(&self, method: &str) {
        self.fault_next_matching(1, Fault::ResetAfterForward, Some(method), None);
    }

    /// Faults still queued (not yet taken by a request).
    pub(crate) fn pending(&self) -> usize {
        self.shared.state.lock().unwrap().queue.len()
    }

    /// Every request seen so far, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// Forgets the requests seen so far.
    pub(crate) fn clear_seen(&self) {
        self.shared.state.lock().unwrap().seen.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

/// Resets a connection (RST, not FIN): linger 0, then close.
fn reset(stream: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO));
    drop(stream);
}

/// One request: head (up to the blank line) and body (Content-Length).
struct Request {
    method: String,
    path: String,
    head_lines: Vec<String>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut first = String::new();
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut words = first.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut head_lines = vec![first.trim_end().to_owned()];
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        // Replaced below: one request per connection.
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        head_lines.push(line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        head_lines,
        body,
    })
}

fn handle(shared: &Shared, client: TcpStream) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut state = shared.state.lock().unwrap();
        if state.cut {
            drop(state);
            reset(client);
            return;
        }
        state.open.push((id, client.try_clone().unwrap()));
    }
    let forget = |shared: &Shared| {
        shared.state.lock().unwrap().open.retain(|(i, _)| *i != id);
    };
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let Some(request) = read_request(&mut reader) else {
        forget(shared);
        return;
    };
    let (delay, fault, index) = {
        let mut state = shared.state.lock().unwrap();
        // Logged when read, so that the log is in the order requests came.
        let index = state.seen.len();
        state.seen.push(Seen {
            at: Instant::now(),
            method: request.method.clone(),
            path: request.path.clone(),
            outcome: "pending".to_owned(),
        });
        let position = state.queue.iter().position(|q| {
            q.method.as_deref().is_none_or(|m| m == request.method)
                && q.path_contains
                    .as_deref()
                    .is_none_or(|p| request.path.contains(p))
        });
        let fault = position.and_then(|i| state.queue.remove(i)).map(|q| q.fault);
        (state.delay, fault, index)
    };
    // The outcome is logged before the client hears of it.
    let note = |outcome: &str| {
        if let Some(seen) = shared.state.lock().unwrap().seen.get_mut(index) {
            outcome.clone_into(&mut seen.outcome);
        }
    };
    if !delay.is_zero() {
        // The injected fault itself (a slow store), not a wait in a test.
        std::thread::sleep(delay);
    }
    let cut_meanwhile = shared.state.lock().unwrap().cut;
    if cut_meanwhile {
        note("cut");
        reset(client);
    } else {
        match fault {
            Some(Fault::Answer { status, retry_after }) => {
                note(&format!("answered {status}"));
                answer(client, status, retry_after);
            }
            Some(Fault::ResetBeforeForward) => {
                note("reset before forward");
                reset(client);
            }
            Some(Fault::ResetAfterForward) => {
                let outcome = match forward(shared, &request) {
                    Some(_) => "reset after forward",
                    None => "backend unreachable",
                };
                note(outcome);
                reset(client);
            }
            None => match forward(shared, &request) {
                Some(response) => {
                    note("forwarded");
                    let mut client = client;
                    let _ = client.write_all(&response);
                    let _ = client.shutdown(Shutdown::Write);
                }
                None => {
                    note("backend unreachable");
                    reset(client);
                }
            },
        }
    }
    shared.state.lock().unwrap().open.retain(|(i, _)| *i != id);
}

/// Sends the request to the backend on a fresh connection and reads its whole
/// answer (the backend closes after it: `Connection: close`).
fn forward(shared: &Shared, request: &Request) -> Option<Vec<u8>> {
    let backend = choose(shared, false)?;
    let mut upstream = match TcpStream::connect_timeout(&backend, Duration::from_secs(5)) {
        Ok(upstream) => upstream,
        Err(_) => TcpStream::connect_timeout(&choose(shared, true)?, Duration::from_secs(5)).ok()?,
    };
    upstream.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    let mut head = request.head_lines.join("\r\n");
    head.push_str("\r\nConnection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).ok()?;
    upstream.write_all(&request.body).ok()?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).ok()?;
    (!response.is_empty()).then_some(response)
}

/// The backend for the next request (see [`FaultProxy::route_by_health`]).
fn choose(shared: &Shared, force: bool) -> Option<SocketAddr> {
    let mut routing = shared.routing.lock().unwrap();
    let Some(routing) = routing.as_mut() else {
        return Some(*shared.backend.lock().unwrap());
    };
    let fresh = routing
        .checked
        .is_some_and(|at| at.elapsed() < Duration::from_millis(250));
    if fresh && !force {
        return Some(*shared.backend.lock().unwrap());
    }
    let current = *shared.backend.lock().unwrap();
    let mut order = vec![current];
    order.extend(routing.candidates.iter().filter(|c| **c != current));
    let healthy = order
        .into_iter()
        .find(|c| health_status(*c, &routing.path) == 200);
    match healthy {
        Some(backend) => {
            *shared.backend.lock().unwrap() = backend;
            routing.checked = Some(Instant::now());
            Some(backend)
        }
        None => {
            routing.checked = None;
            None
        }
    }
}

/// The status `GET path` answers on `addr` (0: no answer within 1 s).
fn health_status(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).is_err() {
        return 0;
    }
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn answer(mut client: TcpStream, status: u16, retry_after: Option<u32>) {
    let reason = match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Fault",
    };
    let body = format!(r#"{{"errors":["injected by the test proxy: {status}"]}}"#);
    let mut text = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(secs) = retry_after {
        text.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    let _ = client.write_all(text.as_bytes());
    let _ = client.shutdown(Shutdown::Write);
}
