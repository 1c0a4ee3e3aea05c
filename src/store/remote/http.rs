//! The HTTP/1.1 client every remote store backend shares (OpenBao, Key
//! Protect): a pooled hyper client whose connector speaks TLS (rustls, the
//! store's CA only) or, for a loopback test server, plain TCP; per-exchange
//! deadlines; the [`Fault`] an exchange ends with; and backoff with jitter
//! that honours `Retry-After`. What a status *means* (not found, a lost
//! precondition) is each backend's business: it maps [`Fault`] to
//! [`StoreError`](crate::store::StoreError) in one function of its own.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
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

/// Largest answer read from a store (a listing of ~100k records fits).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Longest server message kept in an error.
pub(in crate::store) const MAX_MESSAGE_CHARS: usize = 160;

/// Why one HTTP exchange with a store did not give a usable answer. Each
/// backend turns it into a `StoreError` in one function, so that the mapping
/// lives in one place.
#[derive(Debug, Clone)]
pub(in crate::store) enum Fault {
    /// No connection, reset, or a malformed HTTP exchange.
    Transport(String),
    /// No complete answer before the call's deadline.
    Timeout(Duration),
    /// The server answered with a non-success status.
    Status {
        status: StatusCode,
        /// The server's error text, shortened; never request data.
        message: String,
        retry_after: Option<Duration>,
    },
    /// The answer was not what the store's API promises.
    Decode(String),
    /// A local refusal (configuration, invalid uid, read-only store).
    Local(String),
}

impl Fault {
    pub(in crate::store) fn status(&self) -> Option<StatusCode> {
        match self {
            Fault::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The credentials were refused (expired, revoked, or lacking a policy).
    pub(in crate::store) fn is_denied(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        )
    }

    /// Worth another attempt later: the outcome of a write is then unknown.
    pub(in crate::store) fn is_transient(&self) -> bool {
        match self {
            Fault::Transport(_) | Fault::Timeout(_) => true,
            Fault::Status { status, .. } => is_transient_status(*status),
            Fault::Decode(_) | Fault::Local(_) => false,
        }
    }

    pub(in crate::store) fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// 412 is Vault's "this node has not caught up with the index you sent";
/// 429 a rate limit (or a standby's health answer); 5xx but 501 an outage or
/// a sealed server.
pub(in crate::store) fn is_transient_status(status: StatusCode) -> bool {
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

/// One HTTP answer with a success status.
#[derive(Debug)]
pub(in crate::store) struct Reply {
    pub(in crate::store) body: Bytes,
}

/// Reads the server's error text out of a non-success answer's body (each
/// API has its own error shape).
pub(in crate::store) type MessageReader = fn(&[u8]) -> String;

/// Where the store is: scheme, authority and how to secure the connection.
#[derive(Clone)]
pub(in crate::store) struct Endpoint {
    /// `http://host:port` or `https://host:port`, no trailing slash.
    base: String,
    client: Client<Connector, Full<Bytes>>,
    message: MessageReader,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A checked store address.
pub(in crate::store) struct Address {
    /// `scheme://host:port`
    pub(in crate::store) base: String,
    /// The host, without IPv6 brackets (the TLS server name).
    host: String,
    tls: bool,
    /// The path after the authority (`/identity/token`), `""` when none.
    pub(in crate::store) path: String,
}

impl Address {
    /// Plain `http` only to a loopback address (a dev server); `https` needs
    /// the store's CA (`has_ca`). `scheme://host:port` only: a path is
    /// refused with `path_hint` (where the path is configured instead).
    pub(in crate::store) fn parse(address: &str, has_ca: bool, path_hint: &str) -> Result<Address, String> {
        let parsed = Self::parse_url(address, has_ca)?;
        if !parsed.path.is_empty() {
            return Err(format!(
                "store address {address:?} must be scheme://host:port only ({path_hint})"
            ));
        }
        Ok(parsed)
    }

    /// As [`parse`](Self::parse), keeping a path (a token endpoint's URL).
    pub(in crate::store) fn parse_url(address: &str, has_ca: bool) -> Result<Address, String> {
        let uri: Uri = address
            .parse()
            .map_err(|_| format!("store address {address:?} is not a URL (https://host:port)"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("store address {address:?} has no host"))?
            .clone();
        if uri.query().is_some() {
            return Err(format!("store address {address:?} must not have a query"));
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
                    "store address {address:?} is https: set store.ca_file to the CA that issued the store's certificate"
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
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(Address {
            base: format!("{scheme}://{}:{port}", authority.host()),
            host,
            tls,
            path,
        })
    }
}

/// The body of a request and its media type.
pub(in crate::store) struct Body {
    pub(in crate::store) content_type: &'static str,
    pub(in crate::store) bytes: Vec<u8>,
}

impl Endpoint {
    /// Checks `address` (`scheme://host:port`, see [`Address::parse`]) and
    /// builds the client; `message` reads error bodies.
    pub(in crate::store) fn new(
        address: &str,
        ca_pem: Option<&[u8]>,
        path_hint: &str,
        message: MessageReader,
    ) -> Result<Endpoint, String> {
        let parsed = Address::parse(address, ca_pem.is_some(), path_hint)?;
        Self::from_address(address, parsed, ca_pem, message)
    }

    /// Builds the client for a checked address.
    pub(in crate::store) fn from_address(
        address: &str,
        parsed: Address,
        ca_pem: Option<&[u8]>,
        message: MessageReader,
    ) -> Result<Endpoint, String> {
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
        let connector = Connector {
            http,
            tls: tls.map(Arc::new),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build(connector);
        Ok(Endpoint {
            base,
            client,
            message,
        })
    }

    /// One exchange, bounded by `deadline` (connect, send and the whole body).
    /// Non-success statuses are returned as [`Fault::Status`]. Header values
    /// that carry credentials must be marked sensitive by the caller.
    pub(in crate::store) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Body>,
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
        for (name, value) in headers {
            builder = builder.header(name, value.clone());
        }
        let request = match body {
            Some(body) => builder
                .header(CONTENT_TYPE, body.content_type)
                .body(Full::new(Bytes::from(body.bytes))),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|e| Fault::Local(format!("cannot build a request to the store: {e}")))?;
        let message = self.message;
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
                    message: message(&body),
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

/// `text` on one line and at most [`MAX_MESSAGE_CHARS`] long.
pub(in crate::store) fn one_short_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
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
struct Connector {
    http: HttpConnector,
    tls: Option<Arc<(TlsConnector, ServerName<'static>)>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
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
                None => Stream::Plain(tcp),
                Some(tls) => {
                    let (connector, name) = &*tls;
                    Stream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// A connection to the store, plain (loopback dev server) or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(tcp) => tcp.connected(),
            Stream::Tls(tls) => tls.get_ref().0.connected(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The wait before retry number `attempt` (0-based): exponential from 50 ms,
/// capped at 2 s, with full jitter, and never shorter than the server's
/// `Retry-After`.
pub(in crate::store) fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling_ms = 50u64.saturating_mul(1u64 << attempt.min(10)).min(2_000);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let jittered = Duration::from_millis(ceiling_ms / 2 + random % (ceiling_ms / 2 + 1));
    retry_after.map_or(jittered, |after| after.max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &[u8]) -> String {
        String::new()
    }

    fn endpoint(address: &str, ca: Option<&[u8]>) -> Result<Endpoint, String> {
        Endpoint::new(address, ca, "the path is configured elsewhere", none)
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in ["http://127.0.0.1:8200", "http://[::1]:8200"] {
            assert!(endpoint(ok, None).is_ok(), "{ok}");
        }
        // A name is resolved by the system and could lead off the host.
        for refused in [
            "http://10.0.0.5:8200",
            "http://vault.example:8200",
            "http://localhost:8200",
        ] {
            let err = endpoint(refused, None).unwrap_err();
            assert!(err.contains("plain http is allowed only to a loopback"), "{err}");
        }
        let err = endpoint("https://vault.example:8200", None).unwrap_err();
        assert!(err.contains("store.ca_file"), "{err}");
        let err = endpoint("https://vault.example:8200", Some(b"nothing")).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        for bad in [
            "ftp://127.0.0.1",
            "127.0.0.1:8200",
            "http://127.0.0.1:8200/v1/secret",
            "http://127.0.0.1:8200/?a=b",
        ] {
            assert!(endpoint(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_url_keeps_its_path() {
        let parsed = Address::parse_url("http://127.0.0.1:9/identity/token", false).unwrap();
        assert_eq!(parsed.base, "http://127.0.0.1:9");
        assert_eq!(parsed.path, "/identity/token");
        let parsed = Address::parse_url("https://iam.example/identity/token", true).unwrap();
        assert_eq!(parsed.base, "https://iam.example:443");
    }

    #[test]
    fn transient_faults() {
        let status = |code: u16| Fault::Status {
            status: StatusCode::from_u16(code).unwrap(),
            message: String::new(),
            retry_after: None,
        };
        for code in [429, 500, 502, 503, 504] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [400, 401, 404, 409, 501] {
            assert!(!status(code).is_transient(), "{code}");
        }
        assert!(status(401).is_denied() && status(403).is_denied());
        assert!(Fault::Timeout(Duration::from_secs(1)).is_transient());
        assert!(Fault::Transport("reset".into()).is_transient());
        assert!(!Fault::Decode("x".into()).is_transient());
    }

    #[test]
    fn one_short_line_flattens_and_cuts() {
        let shown = one_short_line(&format!("a\nb {}", "x".repeat(500)));
        assert!(shown.starts_with("a b "), "{shown}");
        assert_eq!(shown.chars().count(), MAX_MESSAGE_CHARS);
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
