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
use crate::auth::ClientIdentity;
use crate::ttlv::{HEADER_LEN, frame_len};

/// Bounds of the listener. Defaults are safe for an appliance facing vCenter.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    pub max_connections: usize,
    /// From TCP accept to a finished TLS handshake.
    pub handshake_timeout: Duration,
    /// From the first byte of a message to its last: stops slow-loris clients.
    pub read_timeout: Duration,
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
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub accepted: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub messages: AtomicU64,
    pub closed_bad_input: AtomicU64,
}

/// A running server's shared pieces.
pub struct Listener<H> {
    pub settings: ListenerSettings,
    /// Read on every accept, so that trust and certificate changes apply to the
    /// next handshake.
    pub tls: Arc<ServerConfigSource>,
    pub handler: Arc<H>,
    pub stats: Arc<ListenerStats>,
}

/// Why a connection ended early; counted, and reported to the handler's audit hook.
#[derive(Debug)]
enum ConnEnd {
    Closed,
    BadInput(String),
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
            tokio::spawn(async move {
                let _permit = permit;
                this.connection(stream, peer, id, shutdown).await;
            });
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        id: u64,
        shutdown: watch::Receiver<bool>,
    ) {
        // vCenter's connections are short request/response exchanges; Nagle plus a
        // delayed ACK would add 40 ms to each.
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(self.tls.current());
        let handshake = tokio::time::timeout(self.settings.handshake_timeout, acceptor.accept(stream)).await;
        let mut tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                self.handler.refused(peer, &format!("TLS handshake failed: {e}"));
                return;
            }
            Err(_) => {
                self.stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                self.handler.refused(peer, "TLS handshake timed out");
                return;
            }
        };
        let identity = client_identity(tls.get_ref().1, self.tls.trust());
        let identity = match identity {
            Ok(identity) => identity,
            Err(e) => {
                self.handler.refused(peer, &e.to_string());
                let _ = tls.shutdown().await;
                return;
            }
        };
        let info = ConnectionInfo { id, peer, identity };
        if let ConnEnd::BadInput(_reason) = self.messages(&mut tls, &info, shutdown).await {
            self.stats.closed_bad_input.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
    }

    async fn messages<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        info: &ConnectionInfo,
        mut shutdown: watch::Receiver<bool>,
    ) -> ConnEnd {
        loop {
            if *shutdown.borrow() {
                return ConnEnd::Closed;
            }
            let mut header = [0u8; HEADER_LEN];
            // Idle wait for the first byte of the next message; a shutdown ends it.
            let first = tokio::select! {
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
            let Some(response) = self.handler.handle(info, message).await else {
                return ConnEnd::BadInput("unreadable message".into());
            };
            if io.write_all(&response).await.is_err() || io.flush().await.is_err() {
                return ConnEnd::Closed;
            }
        }
    }
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
