//! The KMIP listener: TCP + TLS, one task per connection, a connection cap,
//! timeouts at every step, and a graceful drain on shutdown.
//!
//! The listener knows framing (TTLV's 8-byte header) and nothing else of KMIP:
//! each complete message goes to a [`RequestHandler`], whose answer is written
//! back. A connection that cannot be framed — garbage, a length over the limit, a
//! truncated message, a client too slow to finish one — is closed; everyone else
//! keeps being served.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::tls::{ServerConfigSource, client_identity};
use crate::auth::{Caller, ClientIdentity};
use crate::ttlv::{HEADER_LEN, frame_len};
use rustls_pki_types::CertificateDer;

/// Bounds of the listener. Defaults are safe for an appliance facing vCenter.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    pub max_connections: usize,
    /// From TCP accept to a finished TLS handshake.
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
    /// How long a shutdown waits for in-flight connections before dropping them.
    pub drain_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_message_bytes: crate::limits::MAX_MESSAGE_BYTES,
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
    Handshake,
    HandshakeTimeout,
    Untrusted,
    TrustWithdrawn,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::ShuttingDown => "shutting_down",
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
        let next_id = Arc::new(AtomicU64::new(1));
        let mut acceptors = JoinSet::new();
        for socket in sockets {
            let this = Arc::clone(&self);
            let permits = Arc::clone(&permits);
            let next_id = Arc::clone(&next_id);
            let shutdown = shutdown.clone();
            acceptors.spawn(async move { this.accept_loop(socket, permits, next_id, shutdown).await });
        }
        while acceptors.join_next().await.is_some() {}
        // Every connection task holds a permit: all permits back means all closed.
        let all = u32::try_from(self.settings.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(self.settings.drain_timeout, permits.acquire_many(all)).await;
    }

    async fn accept_loop(
        self: Arc<Self>,
        socket: TcpListener,
        permits: Arc<Semaphore>,
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
            let this = Arc::clone(&self);
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let shutdown = shutdown.clone();
            let open = OpenGuard::new(&self.stats);
            let counted = self.metrics.connection_opened();
            tokio::spawn(async move {
                let _permit = permit;
                let _open = (open, counted);
                this.connection(stream, peer, id, shutdown).await;
            });
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        id: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = configure_socket(&stream);
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
        match self.messages(&mut tls, &mut info, &chain, shutdown).await {
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
        mut shutdown: watch::Receiver<bool>,
    ) -> ConnEnd {
        let mut trust_generation = self.tls.trust().generation();
        loop {
            let mut header = [0u8; HEADER_LEN];
            // Idle wait for the first byte of the next message; a shutdown ends it.
            // Biased towards the read: a request that had already arrived when the
            // shutdown began is in flight, and gets its answer (a client that keeps
            // sending is bounded by the drain timeout).
            let first = tokio::select! {
                biased;
                r = tokio::time::timeout(self.settings.idle_timeout, io.read(&mut header[..1])) => r,
                _ = stop_requested(&mut shutdown) => return ConnEnd::Closed,
            };
            match first {
                Ok(Ok(0)) | Err(_) => return ConnEnd::Closed,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return ConnEnd::BadInput(e.to_string()),
            }
            let message = tokio::time::timeout(self.settings.read_timeout, async {
                io.read_exact(&mut header[1..]).await.map_err(|e| e.to_string())?;
                let total = frame_len(&header, self.settings.max_message_bytes).map_err(|e| e.to_string())?;
                let mut message = Vec::with_capacity(total);
                message.extend_from_slice(&header);
                message.resize(total, 0);
                io.read_exact(&mut message[HEADER_LEN..])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(message)
            })
            .await;
            let message = match message {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return ConnEnd::BadInput(e),
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
}
