//! The KMIP listener: TCP + TLS, one task per connection, a connection cap,
//! timeouts at every step, and a graceful drain on shutdown.
//!
//! Before authentication a peer is only an address, so the listener bounds what
//! it can hold then: connections still handshaking have their own, smaller
//! budget ([`ListenerSettings::max_handshakes`]) and a per-source-address cap
//! (a connection over it is closed as soon as it is accepted), and a connection
//! that sends no byte of its ClientHello within
//! [`ListenerSettings::first_byte_timeout`] is closed. A request's buffer grows
//! with the bytes that actually arrive (never from the announced length alone),
//! and the part of it beyond a small per-connection allowance comes from one
//! budget of request bytes shared by all connections.
//!
//! The listener knows framing (TTLV's 8-byte header) and nothing else of KMIP:
//! each complete message goes to a [`RequestHandler`], whose answer is written
//! back. A connection that cannot be framed — garbage, a length over the limit, a
//! truncated message, a client too slow to finish one — is closed; everyone else
//! keeps being served.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::framing::read_message;
use super::tls::{ServerConfigSource, client_identity};
use crate::auth::{Caller, ClientIdentity};
use rustls_pki_types::CertificateDer;

/// Bounds of the listener. Defaults are safe for an appliance facing vCenter.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Connections open at once, handshaking or established.
    pub max_connections: usize,
    /// Connections still handshaking at once (a part of `max_connections`):
    /// unauthenticated peers cannot take every slot.
    pub max_handshakes: usize,
    /// Connections still handshaking at once from one source (an IPv4 address
    /// or an IPv6 /64); one more is closed as soon as it is accepted.
    pub max_handshakes_per_source: usize,
    /// From TCP accept to the first byte of the ClientHello.
    pub first_byte_timeout: Duration,
    /// From the first ClientHello byte to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// From the first byte of a message to its last: stops slow-loris clients.
    pub read_timeout: Duration,
    /// For writing one response: stops a client that sends requests but never reads
    /// the answers from pinning its connection (and a drain) forever once the
    /// socket buffers are full.
    pub write_timeout: Duration,
    /// Between messages on a kept-alive connection.
    pub idle_timeout: Duration,
    pub max_message_bytes: usize,
    /// Bytes of requests being read or handled at once, over all connections,
    /// beyond [`crate::limits::UNBUDGETED_REQUEST_BYTES`] each (raised to
    /// `max_message_bytes` if smaller, so that a largest message can be read).
    pub max_request_bytes_in_flight: usize,
    /// How long a shutdown waits for in-flight connections before dropping them.
    pub drain_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_connections: 1024,
            max_handshakes: crate::limits::MAX_HANDSHAKES,
            max_handshakes_per_source: crate::limits::MAX_HANDSHAKES_PER_SOURCE,
            first_byte_timeout: crate::limits::FIRST_BYTE_TIMEOUT,
            handshake_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_message_bytes: crate::limits::MAX_MESSAGE_BYTES,
            max_request_bytes_in_flight: crate::limits::MAX_REQUEST_BYTES_IN_FLIGHT,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// What the handler knows about the connection a message came on.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub identity: ClientIdentity,
    /// The authenticated caller, made once per connection from the verified
    /// identity (and again if trust reloads); it remembers a credential proved
    /// on this connection, so later messages on it need not repeat it.
    pub caller: Caller,
}

/// Answers complete TTLV messages. `None` closes the connection without answer
/// (used when a message cannot even be read as KMIP).
pub trait RequestHandler: Send + Sync + 'static {
    fn handle(&self, conn: &ConnectionInfo, request: Vec<u8>)
    -> impl Future<Output = Option<Vec<u8>>> + Send;

    /// A connection was refused or failed before any message (bad handshake, no or
    /// untrusted certificate). For the audit trail; the default ignores it.
    fn refused(&self, _peer: SocketAddr, _reason: &str) {}
}

/// Counters the listener keeps; readable while it runs.
///
/// Every accepted connection ends up counted once in `refused` or `established`
/// (or is still handshaking); `open` is how many connection tasks are alive now.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// Refused before any message: failed or timed-out handshake, no or untrusted
    /// certificate.
    pub refused: AtomicU64,
    /// Handshakes that gave a verified caller.
    pub established: AtomicU64,
    /// Complete messages read and handed to the handler.
    pub messages: AtomicU64,
    /// Connections closed because of what the client sent (or failed to send in
    /// time): unframeable, oversized, truncated, unreadable, too slow.
    pub closed_bad_input: AtomicU64,
    /// Connections whose answer could not be written in time.
    pub closed_write_timeout: AtomicU64,
    /// Connection tasks alive now (a gauge, not a counter).
    pub open: AtomicU64,
}

/// A running server's shared pieces.
pub struct Listener<H> {
    pub settings: ListenerSettings,
    /// Read on every accept, so that trust and certificate changes apply to the
    /// next handshake.
    pub tls: Arc<ServerConfigSource>,
    pub handler: Arc<H>,
    pub stats: Arc<ListenerStats>,
    /// Connections, refusals and handshakes for the metrics listener.
    pub metrics: crate::metrics::Metrics,
}

/// Why a connection ended; counted in [`ListenerStats`].
#[derive(Debug)]
enum ConnEnd {
    Closed,
    BadInput(String),
    WriteTimeout,
}

/// Why a connection was refused, as the metrics label it (a fixed set, so a
/// client cannot mint new series).
#[derive(Debug, Clone, Copy)]
enum Refusal {
    ShuttingDown,
    /// Over the per-source cap of handshaking connections.
    SourceCap,
    /// No ClientHello byte in time (or closed before sending one).
    FirstByteTimeout,
    Handshake,
    HandshakeTimeout,
    Untrusted,
    TrustWithdrawn,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::ShuttingDown => "shutting_down",
            Refusal::SourceCap => "source_cap",
            Refusal::FirstByteTimeout => "first_byte_timeout",
            Refusal::Handshake => "handshake_failed",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::Untrusted => "untrusted_client",
            Refusal::TrustWithdrawn => "trust_withdrawn",
        }
    }
}

/// Keeps [`ListenerStats::open`] right however a connection task ends.
struct OpenGuard(Arc<ListenerStats>);

impl OpenGuard {
    fn new(stats: &Arc<ListenerStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(Arc::clone(stats))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the listener shares between its connections: the handshake budget, the
/// per-source counts of handshaking connections and the request-bytes budget.
struct Budgets {
    handshakes: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    per_source_cap: usize,
    request_bytes: Semaphore,
}

impl Budgets {
    fn new(settings: &ListenerSettings) -> Arc<Budgets> {
        let request_bytes = settings
            .max_request_bytes_in_flight
            .max(settings.max_message_bytes)
            .min(Semaphore::MAX_PERMITS);
        Arc::new(Budgets {
            handshakes: Arc::new(Semaphore::new(settings.max_handshakes.max(1))),
            per_source: Mutex::new(HashMap::new()),
            per_source_cap: settings.max_handshakes_per_source.max(1),
            request_bytes: Semaphore::new(request_bytes),
        })
    }

    /// Counts one more handshaking connection from `source`, unless it already
    /// has as many as the cap allows.
    fn admit(self: &Arc<Self>, source: IpAddr, permit: OwnedSemaphorePermit) -> Option<Handshaking> {
        let mut counts = self.per_source.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(source).or_insert(0);
        if *count >= self.per_source_cap {
            return None;
        }
        *count += 1;
        Some(Handshaking {
            budgets: Arc::clone(self),
            source,
            _permit: permit,
        })
    }
}

/// The "source" a per-source cap counts: an IPv4 address (also when it arrives
/// IPv4-mapped on a dual-stack socket), or an IPv6 /64 — one host usually holds
/// a whole /64, and counting single IPv6 addresses would make the cap free to
/// evade.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// A connection's place in the handshake budget and its source's count; both
/// are given back when the handshake ends, whatever its outcome.
struct Handshaking {
    budgets: Arc<Budgets>,
    source: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        let mut counts = self
            .budgets
            .per_source
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// Socket options of every accepted connection. vCenter's connections are short
/// request/response exchanges; Nagle plus a delayed ACK would add 40 ms to each.
pub fn configure_socket(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)
}

impl<H: RequestHandler> Listener<H> {
    /// Serves on every listener until `shutdown` turns true, then stops accepting,
    /// lets open connections finish the message they are on, and returns once they
    /// have closed (or the drain timeout passed).
    pub async fn serve(self: Arc<Self>, sockets: Vec<TcpListener>, shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.settings.max_connections));
        let budgets = Budgets::new(&self.settings);
        let next_id = Arc::new(AtomicU64::new(1));
        let mut acceptors = JoinSet::new();
        for socket in sockets {
            let this = Arc::clone(&self);
            let permits = Arc::clone(&permits);
            let budgets = Arc::clone(&budgets);
            let next_id = Arc::clone(&next_id);
            let shutdown = shutdown.clone();
            acceptors.spawn(async move {
                this.accept_loop(socket, permits, budgets, next_id, shutdown)
                    .await
            });
        }
        while acceptors.join_next().await.is_some() {}
        // Every connection task holds a permit: all permits back means all closed.
        // (Handshake permits are given back before the connection permit.)
        let all = u32::try_from(self.settings.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.settings.drain_timeout, permits.acquire_many(all)).await;
    }

    async fn accept_loop(
        self: Arc<Self>,
        socket: TcpListener,
        permits: Arc<Semaphore>,
        budgets: Arc<Budgets>,
        next_id: Arc<AtomicU64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            // Take a permit before accepting: past the cap, new connections wait in
            // the kernel's backlog instead of costing us memory.
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = stop_requested(&mut shutdown) => return,
            };
            // The same for the smaller budget of connections still handshaking.
            let handshake_permit = tokio::select! {
                p = Arc::clone(&budgets.handshakes).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = stop_requested(&mut shutdown) => return,
            };
            let accepted = tokio::select! {
                a = socket.accept() => a,
                _ = stop_requested(&mut shutdown) => return,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    // Out of file descriptors and the like: back off briefly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            // Counted here, in accept order, so the cap holds exactly. A source over
            // it is closed at once and not audited one connection at a time (that
            // would hand the audit trail to the flood); the metrics count it.
            let Some(handshaking) = budgets.admit(source_of(peer.ip()), handshake_permit) else {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                self.metrics.connection_refused(Refusal::SourceCap.label());
                drop(stream);
                continue;
            };
            let this = Arc::clone(&self);
            let budgets = Arc::clone(&budgets);
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let shutdown = shutdown.clone();
            let open = OpenGuard::new(&self.stats);
            let counted = self.metrics.connection_opened();
            tokio::spawn(async move {
                let _permit = permit;
                let _open = (open, counted);
                this.connection(stream, peer, id, handshaking, &budgets, shutdown)
                    .await;
            });
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        id: u64,
        handshaking: Handshaking,
        budgets: &Budgets,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = configure_socket(&stream);
        // A peer that opens a connection and sends nothing holds a handshake slot
        // for nothing: a real client's ClientHello follows its connect at once.
        let mut probe = [0u8; 1];
        let first = tokio::select! {
            f = tokio::time::timeout(self.settings.first_byte_timeout, stream.peek(&mut probe)) => f,
            _ = stop_requested(&mut shutdown) => {
                self.refuse(peer, Refusal::ShuttingDown, "shutting down");
                return;
            }
        };
        match first {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) | Ok(Err(_)) => {
                return self.refuse(peer, Refusal::Handshake, "closed before the TLS handshake");
            }
            Err(_) => {
                return self.refuse(peer, Refusal::FirstByteTimeout, "no TLS ClientHello in time");
            }
        }
        let acceptor = TlsAcceptor::from(self.tls.current());
        let handshake_started = std::time::Instant::now();
        // A handshake still under way when shutdown starts has no request in flight:
        // drop it rather than hold the drain for up to the handshake timeout.
        let handshake = tokio::select! {
            h = tokio::time::timeout(self.settings.handshake_timeout, acceptor.accept(stream)) => h,
            _ = stop_requested(&mut shutdown) => {
                self.refuse(peer, Refusal::ShuttingDown, "shutting down");
                return;
            }
        };
        let handshake_took = handshake_started.elapsed();
        // Handshake over, whatever its outcome: its slot is free for the next peer.
        drop(handshaking);
        let mut tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.metrics.tls_handshake("failed", handshake_took);
                return self.refuse(peer, Refusal::Handshake, &format!("TLS handshake failed: {e}"));
            }
            Err(_) => {
                self.metrics.tls_handshake("timeout", handshake_took);
                return self.refuse(peer, Refusal::HandshakeTimeout, "TLS handshake timed out");
            }
        };
        self.metrics.tls_handshake("ok", handshake_took);
        let identity = client_identity(tls.get_ref().1, self.tls.trust());
        let identity = match identity {
            Ok(identity) => identity,
            Err(e) => {
                self.refuse(peer, Refusal::Untrusted, &e.to_string());
                let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
                return;
            }
        };
        self.stats.established.fetch_add(1, Ordering::Relaxed);
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default();
        let mut info = ConnectionInfo {
            id,
            peer,
            caller: Caller::new(&identity),
            identity,
        };
        match self
            .messages(&mut tls, &mut info, &chain, &budgets.request_bytes, shutdown)
            .await
        {
            ConnEnd::Closed => {}
            ConnEnd::BadInput(_reason) => {
                self.stats.closed_bad_input.fetch_add(1, Ordering::Relaxed);
            }
            // The peer is not reading: a close_notify would only wait in turn.
            ConnEnd::WriteTimeout => {
                self.stats.closed_write_timeout.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
    }

    fn refuse(&self, peer: SocketAddr, kind: Refusal, reason: &str) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics.connection_refused(kind.label());
        self.handler.refused(peer, reason);
    }

    async fn messages<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        info: &mut ConnectionInfo,
        chain: &[CertificateDer<'static>],
        request_bytes: &Semaphore,
        mut shutdown: watch::Receiver<bool>,
    ) -> ConnEnd {
        let mut trust_generation = self.tls.trust().generation();
        loop {
            let mut first_byte = [0u8; 1];
            // Idle wait for the first byte of the next message; a shutdown ends it.
            // Biased towards the read: a request that had already arrived when the
            // shutdown began is in flight, and gets its answer (a client that keeps
            // sending is bounded by the drain timeout).
            let first = tokio::select! {
                biased;
                r = tokio::time::timeout(self.settings.idle_timeout, io.read(&mut first_byte)) => r,
                _ = stop_requested(&mut shutdown) => return ConnEnd::Closed,
            };
            match first {
                Ok(Ok(0)) | Err(_) => return ConnEnd::Closed,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return ConnEnd::BadInput(e.to_string()),
            }
            let message = tokio::time::timeout(
                self.settings.read_timeout,
                read_message(io, first_byte[0], self.settings.max_message_bytes, request_bytes),
            )
            .await;
            // `_budget` is held until the request has been handled.
            let (message, _budget) = match message {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return ConnEnd::BadInput(e.to_string()),
                Err(_) => return ConnEnd::BadInput("message not completed in time".into()),
            };
            self.stats.messages.fetch_add(1, Ordering::Relaxed);
            // Trust changed since this connection was accepted (a client removed or
            // moved to another group): apply it to the next request, not the next
            // connection.
            let generation = self.tls.trust().generation();
            if generation != trust_generation {
                trust_generation = generation;
                let snapshot = self.tls.trust().snapshot();
                match ClientIdentity::from_chain(chain, &snapshot, crate::clock::unix_now()) {
                    Ok(identity) => {
                        info.caller = info.caller.reverified(&identity);
                        info.identity = identity;
                    }
                    Err(e) => {
                        self.refuse(info.peer, Refusal::TrustWithdrawn, &e.to_string());
                        return ConnEnd::Closed;
                    }
                }
            }
            let Some(response) = self.handler.handle(info, message).await else {
                return ConnEnd::BadInput("unreadable message".into());
            };
            // A Get response carries key material: wipe the buffer once it is sent.
            let response = zeroize::Zeroizing::new(response);
            let write = tokio::time::timeout(self.settings.write_timeout, async {
                io.write_all(&response).await?;
                io.flush().await
            })
            .await;
            match write {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return ConnEnd::Closed,
                Err(_) => return ConnEnd::WriteTimeout,
            }
        }
    }
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_tcp_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(TcpStream::connect(addr));
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "the kernel default is Nagle on");
        configure_socket(&accepted).unwrap();
        assert!(accepted.nodelay().unwrap());
        drop(client.await.unwrap().unwrap());
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(source_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            source_of(ip("2001:db8:1:2:ffff::9")),
            source_of(ip("2001:db8:1:2::1"))
        );
        assert_ne!(source_of(ip("2001:db8:1:3::1")), source_of(ip("2001:db8:1:2::1")));
    }
}
