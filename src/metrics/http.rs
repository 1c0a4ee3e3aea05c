//! The metrics and health listener: HTTP/1 through hyper, on its own socket.
//!
//! `GET /metrics` (text exposition), `GET /health/live` (200 while the process
//! runs), `GET /health/ready` (200, or 503 with a one-line reason); anything else
//! 404. Each connection serves one request and closes.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::Metrics;

// Its denial-of-service bounds live in `crate::limits` with the others.
use crate::limits::{
    METRICS_CONNECTION_TIMEOUT as CONNECTION_TIMEOUT, METRICS_HEADER_READ_TIMEOUT as HEADER_READ_TIMEOUT,
    METRICS_MAX_CONNECTIONS as MAX_CONNECTIONS, METRICS_MAX_HEADERS as MAX_HEADERS,
    METRICS_MAX_REQUEST_HEAD_BYTES as MAX_REQUEST_HEAD_BYTES,
};

/// Pause after a failed accept (e.g. out of file descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The running listener. Dropping it stops accepting (connections in flight end
/// within [`CONNECTION_TIMEOUT`]).
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The bound address (the port chosen when `addr` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves metrics and health on it from a task of the current
/// tokio runtime. `ready` answers `/health/ready`: `Ok` for 200, `Err(reason)` for
/// 503 (e.g. `move || metrics.readiness()`, or the service's shared health state).
pub async fn serve<F>(addr: SocketAddr, metrics: Metrics, ready: F) -> io::Result<MetricsServer>
where
    F: Fn() -> Result<(), String> + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let ready: Readiness = Arc::new(ready);
    let task = tokio::spawn(accept_loop(listener, metrics, ready));
    Ok(MetricsServer { local_addr, task })
}

async fn accept_loop(listener: TcpListener, metrics: Metrics, ready: Readiness) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream); // over the cap: closed at once
            continue;
        };
        let metrics = metrics.clone();
        let ready = Arc::clone(&ready);
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&metrics, ready.as_ref(), request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .max_headers(MAX_HEADERS)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // Either way the connection is over; there is no one to tell.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn respond(
    metrics: &Metrics,
    ready: &(dyn Fn() -> Result<(), String> + Send + Sync),
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return text(StatusCode::NOT_FOUND, "not found\n".to_owned());
    }
    match path {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(super::CONTENT_TYPE));
            response
        }
        "/health/live" => text(StatusCode::OK, "live\n".to_owned()),
        "/health/ready" => match ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, one_line(&reason)),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

/// A reason as one short line of text.
fn one_line(reason: &str) -> String {
    let mut line: String = reason
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.push('\n');
    line
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
