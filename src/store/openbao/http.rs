//! The HTTP/1.1 client under the OpenBao store: a pooled hyper client whose
//! connector speaks TLS (rustls, the store's CA only) or, for a loopback dev
//! server, plain TCP; per-attempt deadlines; and the one table that turns an
//! HTTP answer or a transport failure into a [`StoreError`].

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::store::{Conflict, StoreError};

/// Largest answer read from the store (a LIST of ~100k uids fits).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Longest server message kept in an error (Vault's `errors` strings).
const MAX_MESSAGE_CHARS: usize = 160;

/// Why one HTTP exchange with the store did not give a usable answer. Turned
/// into a [`StoreError`] by [`to_store_error`] only, so that the mapping lives
/// in one place.
#[derive(Debug, Clone)]
pub(super) enum Fault {
    /// No connection, reset, or a malformed HTTP exchange.
    Transport(String),
    /// No complete answer before the call's deadline.
    Timeout(Duration),
    /// The server answered with a non-success status.
    Status {
        status: StatusCode,
        /// The server's first error string, shortened; never request data.
        message: String,
        retry_after: Option<Duration>,
    },
    /// The answer was not what the KV v2 API promises.
    Decode(String),
    /// A local refusal (configuration, invalid uid, read-only store).
    Local(String),
}

impl Fault {
    pub(super) fn status(&self) -> Option<StatusCode> {
        match self {
            Fault::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server said "no such secret" (and not "no such mount").
    pub(super) fn is_not_found(&self) -> bool {
        matches!(self, Fault::Status { status, message, .. }
            if *status == StatusCode::NOT_FOUND && !message.contains("no handler for route"))
    }

    /// A `cas` precondition failed: the secret's current version is another.
    pub(super) fn is_cas_mismatch(&self) -> bool {
        matches!(self, Fault::Status { status, message, .. }
            if *status == StatusCode::BAD_REQUEST && message.contains("check-and-set"))
    }

    /// The token was refused (expired, revoked, or lacks the policy).
    pub(super) fn is_denied(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        )
    }

    /// Worth another attempt later: the outcome of a write is then unknown.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            Fault::Transport(_) | Fault::Timeout(_) => true,
            Fault::Status { status, .. } => is_transient_status(*status),
            Fault::Decode(_) | Fault::Local(_) => false,
        }
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// 412 is Vault's "this node has not caught up with the index you sent";
/// 429 a rate limit (or a standby's health answer); 5xx but 501 an outage or
/// a sealed server.
fn is_transient_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::PRECONDITION_FAILED
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// THE mapping from store faults to the store's error variants.
pub(super) fn to_store_error(fault: Fault) -> StoreError {
    match fault {
        Fault::Timeout(after) => StoreError::Timeout(format!(
            "OpenBao gave no answer within {} ms; retry",
            after.as_millis()
        )),
        Fault::Transport(why) => StoreError::unavailable(format!("cannot reach OpenBao: {why}; retry")),
        Fault::Status {
            status,
            message,
            retry_after,
        } => {
            let code = status.as_u16();
            let said = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            match status {
                // Callers turn a missing secret into `None` first.
                StatusCode::NOT_FOUND if !message.contains("no handler for route") => StoreError::NotFound,
                StatusCode::NOT_FOUND => StoreError::Other(format!(
                    "OpenBao has no KV v2 mount at the configured path (HTTP 404{said})"
                )),
                StatusCode::BAD_REQUEST if message.contains("check-and-set") => {
                    StoreError::Conflict(Conflict::Version)
                }
                // Only raised locally: a create-if-absent that found other content
                // under the uid.
                StatusCode::CONFLICT => StoreError::Conflict(Conflict::Exists),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StoreError::Auth(format!(
                    "OpenBao refused keyward's token (HTTP {code}{said}): check the token or AppRole \
                     credentials and the policy on the store's mount and prefix"
                )),
                // 413, or the listener's JSON complexity limits.
                StatusCode::PAYLOAD_TOO_LARGE => {
                    StoreError::TooLarge(format!("record too large for OpenBao (HTTP 413{said})"))
                }
                StatusCode::BAD_REQUEST if message.contains("complexity") => {
                    StoreError::TooLarge(format!("record too large for OpenBao (HTTP 400{said})"))
                }
                s if is_transient_status(s) => {
                    let after = retry_after
                        .map(|d| format!("; retry after {} s", d.as_secs().max(1)))
                        .unwrap_or_else(|| "; retry".to_owned());
                    StoreError::Unavailable {
                        retry_after,
                        detail: format!("OpenBao answered HTTP {code}{said}{after}"),
                    }
                }
                _ => StoreError::Other(format!("OpenBao answered HTTP {code}{said}")),
            }
        }
        Fault::Decode(why) => StoreError::Corrupt(why),
        Fault::Local(why) => StoreError::Other(why),
    }
}

/// One HTTP answer with a success status.
#[derive(Debug)]
pub(super) struct Reply {
    pub body: Bytes,
}

/// Where the store is: scheme, authority and how to secure the connection.
#[derive(Clone)]
pub(super) struct Endpoint {
    /// `http://host:port` or `https://host:port`, no trailing slash.
    base: String,
    client: Client<BaoConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A checked store address.
pub(super) struct Address {
    /// `scheme://host:port`
    base: String,
    /// The host, without IPv6 brackets (the TLS server name).
    host: String,
    tls: bool,
}

impl Address {
    /// Plain `http` only to a loopback address (a dev server); `https` needs
    /// the store's CA (`has_ca`).
    pub(super) fn parse(address: &str, has_ca: bool) -> Result<Address, String> {
        let uri: Uri = address
            .parse()
            .map_err(|_| format!("store address {address:?} is not a URL (https://host:8200)"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("store address {address:?} has no host"))?
            .clone();
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "store address {address:?} must be scheme://host:port only (the mount is store.mount)"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match uri.scheme_str() {
            Some("https") if has_ca => true,
            Some("https") => {
                return Err(format!(
                    "store address {address:?} is https: set store.ca_file to the CA that issued OpenBao's certificate"
                ));
            }
            Some("http") if is_loopback(&host) => false,
            Some("http") => {
                return Err(format!(
                    "store address {address:?}: plain http is allowed only to a loopback address \
                     (a dev server); use https with store.ca_file"
                ));
            }
            _ => {
                return Err(format!(
                    "store address {address:?} must start with https:// (or http:// to loopback)"
                ));
            }
        };
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let scheme = if tls { "https" } else { "http" };
        Ok(Address {
            base: format!("{scheme}://{}:{port}", authority.host()),
            host,
            tls,
        })
    }
}

impl Endpoint {
    /// Checks `address` and builds the client. Plain `http` only to a
    /// loopback address (a dev server); `https` needs the store's CA.
    pub(super) fn new(address: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, String> {
        let parsed = Address::parse(address, ca_pem.is_some())?;
        let tls = match (parsed.tls, ca_pem) {
            (true, Some(pem)) => {
                let name = ServerName::try_from(parsed.host.clone()).map_err(|_| {
                    format!(
                        "store address {address:?}: {:?} is not a valid server name",
                        parsed.host
                    )
                })?;
                Some((tls_connector(pem)?, name))
            }
            _ => None,
        };
        let base = parsed.base;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = BaoConnector {
            http,
            tls: tls.map(Arc::new),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build(connector);
        Ok(Endpoint { base, client })
    }

    /// One exchange, bounded by `deadline` (connect, send and the whole body).
    /// Non-success statuses are returned as [`Fault::Status`].
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&HeaderValue>,
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Reply, Fault> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Fault::Timeout(Duration::ZERO));
        }
        let started = Instant::now();
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            builder = builder.header("X-Vault-Token", token.clone());
        }
        let request = match body {
            Some(bytes) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(bytes))),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|e| Fault::Local(format!("cannot build a request to OpenBao: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Fault::Transport(transport_reason(&e)))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                // Whatever the store says, no wait is longer than an hour (a
                // call's deadline ends it long before).
                .map(|s| Duration::from_secs(s.min(3600)));
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| Fault::Transport(format!("answer cut short: {e}")))?
                .to_bytes();
            if status.is_success() {
                Ok(Reply { body })
            } else {
                Err(Fault::Status {
                    status,
                    message: server_message(&body),
                    retry_after,
                })
            }
        };
        match tokio::time::timeout(remaining, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Fault::Timeout(started.elapsed())),
        }
    }
}

/// The first entry of Vault's `{"errors": [...]}`, shortened and on one line.
fn server_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let first = serde_json::from_slice::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
        .unwrap_or_default();
    let line: String = first.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// The innermost cause of a client error, which names what went wrong
/// (refused, reset, certificate) where the outer one only says "connect".
fn transport_reason(err: &hyper_util::client::legacy::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let reason = cause.to_string();
    if err.is_connect() {
        format!("connect: {reason}")
    } else {
        reason
    }
}

/// Plain http is allowed only to a literal loopback address: a name such as
/// `localhost` is resolved by the system and could lead elsewhere, taking the
/// token with it in clear.
fn is_loopback(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn tls_connector(ca_pem: &[u8]) -> Result<TlsConnector, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("store.ca_file is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("store.ca_file holds an unusable certificate: {e}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("store.ca_file holds no certificate".to_owned());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Opens TCP (hyper-util's connector: DNS, happy eyeballs) and, for https,
/// the TLS session on it.
#[derive(Clone)]
struct BaoConnector {
    http: HttpConnector,
    tls: Option<Arc<(TlsConnector, ServerName<'static>)>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for BaoConnector {
    type Response = TokioIo<BaoStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let stream = match tls {
                None => BaoStream::Plain(tcp),
                Some(tls) => {
                    let (connector, name) = &*tls;
                    BaoStream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// A connection to the store, plain (loopback dev server) or TLS.
enum BaoStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for BaoStream {
    fn connected(&self) -> Connected {
        match self {
            BaoStream::Plain(tcp) => tcp.connected(),
            BaoStream::Tls(tls) => tls.get_ref().0.connected(),
        }
    }
}

impl AsyncRead for BaoStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BaoStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BaoStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BaoStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            BaoStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BaoStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BaoStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BaoStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            BaoStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BaoStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The wait before retry number `attempt` (0-based): exponential from 50 ms,
/// capped at 2 s, with full jitter, and never shorter than the server's
/// `Retry-After`.
pub(super) fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling_ms = 50u64.saturating_mul(1u64 << attempt.min(10)).min(2_000);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let jittered = Duration::from_millis(ceiling_ms / 2 + random % (ceiling_ms / 2 + 1));
    retry_after.map_or(jittered, |after| after.max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in ["http://127.0.0.1:8200", "http://[::1]:8200"] {
            assert!(Endpoint::new(ok, None).is_ok(), "{ok}");
        }
        // A name is resolved by the system and could lead off the host.
        for refused in [
            "http://10.0.0.5:8200",
            "http://vault.example:8200",
            "http://localhost:8200",
        ] {
            let err = Endpoint::new(refused, None).unwrap_err();
            assert!(err.contains("plain http is allowed only to a loopback"), "{err}");
        }
        let err = Endpoint::new("https://vault.example:8200", None).unwrap_err();
        assert!(err.contains("store.ca_file"), "{err}");
        let err = Endpoint::new("https://vault.example:8200", Some(b"nothing")).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        for bad in [
            "ftp://127.0.0.1",
            "127.0.0.1:8200",
            "http://127.0.0.1:8200/v1/secret",
        ] {
            assert!(Endpoint::new(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_store_errors() {
        let status = |code: u16, message: &str, retry_after| Fault::Status {
            status: StatusCode::from_u16(code).unwrap(),
            message: message.to_owned(),
            retry_after,
        };
        assert_eq!(to_store_error(status(404, "", None)), StoreError::NotFound);
        assert!(matches!(
            to_store_error(status(404, "no handler for route \"x/data/y\"", None)),
            StoreError::Other(m) if m.contains("no KV v2 mount")
        ));
        assert_eq!(
            to_store_error(status(
                400,
                "check-and-set parameter did not match the current version",
                None
            )),
            StoreError::Conflict(Conflict::Version)
        );
        let denied = to_store_error(status(403, "permission denied", None));
        assert!(
            matches!(&denied, StoreError::Auth(m) if m.contains("refused keyward's token")),
            "{denied}"
        );
        let busy = to_store_error(status(429, "", Some(Duration::from_secs(3))));
        assert!(
            busy.is_transient() && busy.to_string().contains("retry after 3 s"),
            "{busy}"
        );
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert!(matches!(
            to_store_error(status(413, "", None)),
            StoreError::TooLarge(_)
        ));
        assert!(matches!(
            to_store_error(Fault::Timeout(Duration::from_secs(1))),
            StoreError::Timeout(_)
        ));
        assert!(to_store_error(status(503, "Vault is sealed", None)).is_transient());
        assert!(!to_store_error(status(501, "", None)).is_transient());
        assert!(to_store_error(Fault::Timeout(Duration::from_secs(1))).is_transient());
        assert!(to_store_error(Fault::Transport("reset".into())).is_transient());
        assert!(matches!(
            to_store_error(Fault::Decode("x".into())),
            StoreError::Corrupt(_)
        ));
    }

    #[test]
    fn server_message_is_one_short_line() {
        let long = format!("{{\"errors\":[\"a\\nb {}\"]}}", "x".repeat(500));
        let shown = server_message(long.as_bytes());
        assert!(shown.starts_with("a b "), "{shown}");
        assert_eq!(shown.chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(server_message(b"{\"errors\":[]}"), "");
        assert_eq!(server_message(b"not json"), "");
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        for attempt in 0..20 {
            let wait = backoff(attempt, None);
            assert!(wait <= Duration::from_secs(2), "{wait:?}");
            assert!(wait >= Duration::from_millis(25), "{wait:?}");
        }
        assert!(backoff(0, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
    }
}
