//! The AWS SDK client as the store uses it, and what its failures mean.
//!
//! - **No chains**: the region, the endpoint and the credentials are exactly
//!   the configured ones; nothing is read from the environment, `~/.aws` or
//!   the instance metadata service (the SDK's `aws-config` crate, which does
//!   that, is not a dependency). The HTTP client has no proxy.
//! - **Credentials**: an access key id and a secret access key, each from a
//!   file refused when world-readable, held zeroized (the SDK's `Credentials`
//!   keeps them in zeroizing strings too, and never shows them in `Debug`).
//! - **TLS**: rustls on aws-lc-rs; the system roots, or only the CA of
//!   `ca_file`. Plain http is accepted only to a loopback IP (a test server).
//! - **Deadlines and retries**: the SDK's own retries are off
//!   (`RetryConfig::disabled`): the store retries itself, so that it decides
//!   which calls may be repeated, honours `Retry-After` (seconds, what a
//!   proxy or load balancer sends) as well as `x-amz-retry-after`
//!   (milliseconds, AWS's own), and stops at the call's deadline. Every
//!   exchange runs under that deadline (and the SDK's operation timeout).

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager as sm;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls;
use zeroize::Zeroizing;

use super::SecretsManagerConfig;
use crate::store::StoreError;

/// Most attempts of one retried exchange (the deadline bounds them too).
const MAX_ATTEMPTS: u32 = 6;

/// Largest secret file read (an AWS key is 20 or 40 characters).
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Why one exchange with Secrets Manager failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fault {
    /// The service answered with an error.
    Service {
        status: u16,
        /// The AWS error code (`ResourceNotFoundException`, ...), empty when
        /// the body had none (a proxy's 503).
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No answer within the deadline; the call may or may not have landed.
    Timeout(String),
    /// The connection failed or broke; the call may or may not have landed.
    Transport(String),
    /// A record too large for one secret.
    TooLarge(String),
    /// What the store holds is not a record.
    Decode(String),
    /// Configuration, input or internal failure; nothing was sent.
    Local(String),
    /// Create-if-absent lost: another record holds the uid.
    Exists,
    /// Compare-and-swap lost: the record is not at the expected version.
    VersionConflict,
    /// No record with this uid.
    NotFound,
}

/// AWS error codes that mean "slow down" (HTTP 400 with a throttling code).
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "ProvisionedThroughputExceededException",
];

/// AWS error codes that mean the credentials or permissions were refused.
const DENIED: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AccessDeniedException",
    "AccessDenied",
    "ExpiredTokenException",
    "KMSAccessDeniedException",
];

impl Fault {
    /// True when the same exchange may succeed if repeated later.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            Fault::Timeout(_) | Fault::Transport(_) => true,
            Fault::Service { status, code, .. } => {
                *status == 429
                    || (*status >= 500 && *status != 501)
                    || THROTTLING.contains(&code.as_str())
                    || code == "InternalServiceError"
            }
            _ => false,
        }
    }

    /// The credentials or their permissions were refused.
    pub(super) fn is_denied(&self) -> bool {
        match self {
            Fault::Service { status, code, .. } => {
                DENIED.contains(&code.as_str()) || (!self.is_transient() && matches!(status, 401 | 403))
            }
            _ => false,
        }
    }

    pub(super) fn has_code(&self, want: &str) -> bool {
        matches!(self, Fault::Service { code, .. } if code == want)
    }

    /// The secret does not exist (or never had a value at `AWSCURRENT`).
    pub(super) fn is_not_found(&self) -> bool {
        self.has_code("ResourceNotFoundException")
    }

    /// The secret is scheduled for deletion (deleted in the console with a
    /// recovery window): `InvalidRequestException` whose message says so.
    pub(super) fn is_marked_deleted(&self) -> bool {
        matches!(self, Fault::Service { code, message, .. }
            if code == "InvalidRequestException" && message.to_ascii_lowercase().contains("delet"))
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The `StoreError` a fault is for the caller.
pub(super) fn to_store_error(fault: Fault) -> StoreError {
    use crate::store::Conflict;
    match fault {
        Fault::Exists => StoreError::Conflict(Conflict::Exists),
        Fault::VersionConflict => StoreError::Conflict(Conflict::Version),
        Fault::NotFound => StoreError::NotFound,
        Fault::TooLarge(why) => StoreError::TooLarge(why),
        Fault::Decode(why) => StoreError::Corrupt(why),
        Fault::Local(why) => StoreError::Other(why),
        Fault::Timeout(why) => StoreError::Timeout(why),
        Fault::Transport(why) => StoreError::unavailable(why),
        ref service @ Fault::Service {
            status,
            ref code,
            ref message,
            retry_after,
        } => {
            let shown = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status} {code}")
            };
            if service.is_denied() {
                StoreError::Auth(format!("Secrets Manager answered {shown}"))
            } else if service.is_transient() {
                StoreError::Unavailable {
                    retry_after,
                    detail: format!("Secrets Manager answered {shown}"),
                }
            } else if code == "LimitExceededException" || status == 413 {
                StoreError::TooLarge(format!("Secrets Manager answered {shown}"))
            } else if service.is_not_found() {
                StoreError::NotFound
            } else {
                // AWS messages name resources, never secret values; bounded anyway.
                let message: String = message.chars().take(200).collect();
                StoreError::Other(format!("Secrets Manager answered {shown}: {message}"))
            }
        }
    }
}

/// The fault an SDK error is. The response's status and headers are read
/// first: a 429 or 503 from a proxy has no AWS error body.
pub(super) fn fault_of<E>(err: SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(raw) = err.raw_response() {
        let status = raw.status().as_u16();
        let headers = raw.headers();
        let retry_after = headers
            .get("x-amz-retry-after")
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .or_else(|| {
                headers
                    .get("retry-after")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
            })
            // A store asking for more than a minute is treated as asking a minute.
            .map(|d| d.min(Duration::from_secs(60)));
        let (code, message) = match &err {
            SdkError::ServiceError(service) => (
                service.err().code().unwrap_or_default().to_owned(),
                service.err().message().unwrap_or_default().to_owned(),
            ),
            _ => (String::new(), String::new()),
        };
        return Fault::Service {
            status,
            code,
            message,
            retry_after,
        };
    }
    let context = sm::error::DisplayErrorContext(&err).to_string();
    match err {
        SdkError::TimeoutError(_) => Fault::Timeout("the SDK's operation timeout passed".to_owned()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            Fault::Timeout("connecting or reading timed out".to_owned())
        }
        SdkError::DispatchFailure(_) => {
            Fault::Transport(format!("no answer from Secrets Manager: {context}"))
        }
        SdkError::ConstructionFailure(_) => Fault::Local(format!("cannot build the request: {context}")),
        _ => Fault::Transport(context),
    }
}

/// Runs one SDK exchange under `deadline`.
pub(super) async fn exchange<T, E, F>(deadline: Instant, send: F) -> Result<T, Fault>
where
    F: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // Boxed: the SDK's futures are large, and they are moved between tasks.
    match tokio::time::timeout_at(deadline.into(), Box::pin(send)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(fault_of(err)),
        Err(_) => Err(Fault::Timeout(
            "no answer from Secrets Manager before the deadline".to_owned(),
        )),
    }
}

/// Runs `attempt` again on transient faults, with backoff and jitter,
/// honouring the store's retry hint, until `deadline`: for exchanges that
/// may be repeated as they are (reads, listings, deletes, writes carrying a
/// `ClientRequestToken`).
pub(super) async fn retrying<T, F, Fut>(deadline: Instant, mut attempt: F) -> Result<T, Fault>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Fault>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(fault) if fault.is_transient() && wait_to_retry(tries, &fault, deadline).await => tries += 1,
            other => return other,
        }
    }
}

/// Sleeps before retry `attempt` unless that would pass the deadline.
pub(super) async fn wait_to_retry(attempt: u32, fault: &Fault, deadline: Instant) -> bool {
    if attempt + 1 >= MAX_ATTEMPTS {
        return false;
    }
    let wait = backoff(attempt, fault.retry_after());
    if Instant::now().checked_add(wait).is_none_or(|at| at >= deadline) {
        return false;
    }
    tokio::time::sleep(wait).await;
    true
}

/// Exponential backoff with jitter (50 ms doubling, capped at 2 s, each wait
/// between half and all of it), never shorter than the store's retry hint.
pub(super) fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling_ms = 50u64.saturating_mul(1u64 << attempt.min(10)).min(2_000);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let jittered = Duration::from_millis(ceiling_ms / 2 + random % (ceiling_ms / 2 + 1));
    retry_after.map_or(jittered, |after| after.max(jittered))
}

/// The configured endpoint, checked: `https://host[:port]`, or
/// `http://<loopback IP>[:port]` (a local test server). No path or query.
pub(super) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: ::http::Uri = endpoint
        .parse()
        .map_err(|_| format!("{endpoint:?} is not a URL (https://secretsmanager.<region>.amazonaws.com)"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{endpoint:?} has no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{endpoint:?} must be scheme://host[:port] only"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) => Ok(()),
        Some("http") => Err(format!(
            "{endpoint:?}: plain http is allowed only to a loopback IP address (a test server); use https"
        )),
        _ => Err(format!(
            "{endpoint:?} must start with https:// (or http:// to a loopback IP)"
        )),
    }
}

/// A region name: lowercase letters, digits and '-'.
pub(super) fn check_region(region: &str) -> Result<(), String> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{region:?} is not a region name (like eu-central-1)"))
    }
}

/// Builds the SDK client `config` describes: reads the two key files and
/// the CA file, contacts nothing.
pub(super) fn build(config: &SecretsManagerConfig) -> Result<sm::Client, Fault> {
    let access_key_id = read_secret(&config.access_key_id_file, "access_key_id_file")?;
    let secret_access_key = read_secret(&config.secret_access_key_file, "secret_access_key_file")?;
    if !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Fault::Local(
            "store.access_key_id_file does not hold an access key id (letters and digits)".to_owned(),
        ));
    }
    if !secret_access_key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Fault::Local(
            "store.secret_access_key_file holds characters a secret access key never has".to_owned(),
        ));
    }
    let credentials = sm::config::Credentials::new(
        access_key_id.as_str(),
        secret_access_key.as_str(),
        None,
        None,
        "keyward-store-files",
    );
    let trust = match &config.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| Fault::Local(format!("store.ca_file {}: {e}", path.display())))?;
            tls::TrustStore::empty().with_pem_certificate(pem)
        }
        None => tls::TrustStore::empty().with_native_roots(true),
    };
    let tls_context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Fault::Local(format!("store TLS settings: {e}")))?;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls_context)
        .build_https();
    let timeouts = sm::config::timeout::TimeoutConfig::builder()
        .operation_timeout(config.timeout)
        .connect_timeout(config.timeout)
        .build();
    let mut builder = sm::Config::builder()
        .behavior_version(sm::config::BehaviorVersion::latest())
        .region(sm::config::Region::new(config.region.clone()))
        .credentials_provider(credentials)
        .http_client(http_client)
        .retry_config(sm::config::retry::RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint.trim_end_matches('/'));
    }
    Ok(sm::Client::from_conf(builder.build()))
}

/// The trimmed content of a secret file; never echoed in an error. Refused
/// when world-readable (checked on the opened file).
pub(super) fn read_secret(path: &Path, key: &str) -> Result<Zeroizing<String>, Fault> {
    use std::io::Read;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| Fault::Local(format!("store.{key} {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Fault::Local(format!("store.{key} {shown}: {e}")))?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(Fault::Local(format!(
                "store.{key} {shown} is world-readable; chmod o-r it"
            )));
        }
    }
    // Sized up front so that reading never reallocates (a reallocation would
    // leave an unwiped copy of the secret behind).
    let capacity = meta.len().min(MAX_SECRET_FILE_BYTES) as usize + 1;
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Fault::Local(format!("store.{key} {shown}: {e}")))?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(Fault::Local(format!(
            "store.{key} {shown}: larger than {MAX_SECRET_FILE_BYTES} bytes"
        )));
    }
    let trimmed = Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        return Err(Fault::Local(format!("store.{key} {shown} is empty")));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> Fault {
        Fault::Service {
            status,
            code: code.to_owned(),
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn faults_map_to_what_a_caller_decides_on() {
        assert!(matches!(
            to_store_error(service(400, "ThrottlingException")),
            StoreError::Unavailable { .. }
        ));
        let later = Fault::Service {
            status: 503,
            code: String::new(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(to_store_error(later).retry_after(), Some(Duration::from_secs(2)));
        assert!(matches!(
            to_store_error(service(400, "UnrecognizedClientException")),
            StoreError::Auth(_)
        ));
        assert!(matches!(to_store_error(service(403, "")), StoreError::Auth(_)));
        assert!(matches!(
            to_store_error(service(400, "ResourceNotFoundException")),
            StoreError::NotFound
        ));
        assert!(matches!(
            to_store_error(Fault::Timeout("t".into())),
            StoreError::Timeout(_)
        ));
        assert!(!service(501, "").is_transient());
        assert!(service(500, "InternalServiceError").is_transient());
        let marked = Fault::Service {
            status: 400,
            code: "InvalidRequestException".into(),
            message: "You can't perform this operation on the secret because it was marked for deletion."
                .into(),
            retry_after: None,
        };
        assert!(marked.is_marked_deleted());
    }

    #[test]
    fn plain_http_only_to_a_loopback_ip() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://[::1]:5000",
            "https://secretsmanager.eu-central-1.amazonaws.com",
            "https://vpce.example:8443/",
        ] {
            check_endpoint(ok).unwrap();
        }
        for bad in [
            "http://localhost:5000",
            "http://10.0.0.5",
            "ftp://127.0.0.1",
            "https://host/path",
            "https://host/?q=1",
            "not a url",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        check_region("eu-central-1").unwrap();
        for bad in ["", "EU", "eu central", "eu/1"] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
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
