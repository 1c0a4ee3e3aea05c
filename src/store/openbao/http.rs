//! OpenBao's side of the shared HTTP client ([`crate::store::remote::http`]):
//! the `X-Vault-Token` header, Vault's `{"errors": [...]}` bodies, what a
//! status means for KV v2 (a missing secret, a lost `cas`), and the one table
//! that turns a [`Fault`] into a [`StoreError`].

use std::time::Instant;

use http::header::HeaderValue;
use http::{Method, StatusCode};

use crate::store::remote::http as remote;
pub(super) use crate::store::remote::http::{Fault, Reply, backoff};
use crate::store::{Conflict, StoreError};

/// What only KV v2 gives a meaning to.
pub(super) trait BaoFault {
    /// The server said "no such secret" (and not "no such mount").
    fn is_not_found(&self) -> bool;
    /// A `cas` precondition failed: the secret's current version is another.
    fn is_cas_mismatch(&self) -> bool;
}

impl BaoFault for Fault {
    fn is_not_found(&self) -> bool {
        matches!(self, Fault::Status { status, message, .. }
            if *status == StatusCode::NOT_FOUND && !message.contains("no handler for route"))
    }

    fn is_cas_mismatch(&self) -> bool {
        matches!(self, Fault::Status { status, message, .. }
            if *status == StatusCode::BAD_REQUEST && message.contains("check-and-set"))
    }
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
                s if remote::is_transient_status(s) => {
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

/// The address rules of [`remote::Address`], with OpenBao's hint.
pub(super) struct Address;

impl Address {
    /// Plain `http` only to a loopback address (a dev server); `https` needs
    /// the store's CA (`has_ca`); no path (the mount is configured apart).
    pub(super) fn parse(address: &str, has_ca: bool) -> Result<remote::Address, String> {
        remote::Address::parse(address, has_ca, "the mount is store.mount")
    }
}

/// The OpenBao server: the shared client plus Vault's token header.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    inner: remote::Endpoint,
}

impl Endpoint {
    /// Checks `address` and builds the client. Plain `http` only to a
    /// loopback address (a dev server); `https` needs the store's CA.
    pub(super) fn new(address: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, String> {
        let inner = remote::Endpoint::new(address, ca_pem, "the mount is store.mount", server_message)?;
        Ok(Endpoint { inner })
    }

    /// One exchange, bounded by `deadline`, with the token (if any) and a
    /// JSON body (if any).
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&HeaderValue>,
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Reply, Fault> {
        let headers: Vec<(http::header::HeaderName, HeaderValue)> = token
            .map(|t| (http::header::HeaderName::from_static("x-vault-token"), t.clone()))
            .into_iter()
            .collect();
        let body = body.map(|bytes| remote::Body {
            content_type: "application/json",
            bytes,
        });
        self.inner.send(method, path, &headers, body, deadline).await
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
    remote::one_short_line(&first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert_eq!(shown.chars().count(), remote::MAX_MESSAGE_CHARS);
        assert_eq!(server_message(b"{\"errors\":[]}"), "");
        assert_eq!(server_message(b"not json"), "");
    }

    #[test]
    fn not_found_and_cas_mismatch_are_told_apart() {
        let status = |code: u16, message: &str| Fault::Status {
            status: StatusCode::from_u16(code).unwrap(),
            message: message.to_owned(),
            retry_after: None,
        };
        assert!(status(404, "").is_not_found());
        assert!(!status(404, "no handler for route \"x\"").is_not_found());
        assert!(status(400, "check-and-set parameter did not match").is_cas_mismatch());
        assert!(!status(400, "other").is_cas_mismatch());
    }
}
