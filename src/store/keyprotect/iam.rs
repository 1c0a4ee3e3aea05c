//! The IAM bearer token Key Protect wants: an API key (read from a file,
//! refused when world-readable, held zeroized) exchanged at the IAM token
//! endpoint, refreshed once two thirds of its lifetime have passed by the one
//! call that finds it due (single-flight: the others keep using the still
//! valid token, or wait for that refresh when there is none), and replaced
//! once when Key Protect answers 401.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::HeaderValue;
use http::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::store::remote::http::{Body, Endpoint, Fault, one_short_line};
use crate::store::remote::secret_file::read_secret;

/// The token in use.
#[derive(Clone)]
struct Token {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    /// Refresh after this (two thirds of the lifetime).
    refresh_at: Instant,
    /// Not usable after this (a few seconds before IAM's expiry).
    expires_at: Instant,
    /// Bumped on every new token: a 401 on an older one is answered by
    /// retrying with the new one, not by another grant.
    generation: u64,
}

pub(super) struct Iam {
    endpoint: Endpoint,
    /// The token endpoint's path (`/identity/token`).
    path: String,
    api_key_file: PathBuf,
    token: Mutex<Option<Token>>,
    /// Held by the one call that asks IAM for a new token.
    refreshing: tokio::sync::Mutex<()>,
}

impl Iam {
    /// Reads the API key file once so that a missing, empty or
    /// world-readable file is an error at start-up.
    pub(super) fn new(endpoint: Endpoint, path: String, api_key_file: PathBuf) -> Result<Iam, Fault> {
        read_secret(&api_key_file, "api_key_file").map_err(Fault::Local)?;
        Ok(Iam {
            endpoint,
            path,
            api_key_file,
            token: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Option<Token> {
        self.token.lock().ok().and_then(|t| t.clone())
    }

    /// The `authorization` header to send and its generation.
    pub(super) async fn current(&self, deadline: Instant) -> Result<(HeaderValue, u64), Fault> {
        if let Some(token) = self.snapshot().filter(|t| Instant::now() < t.refresh_at) {
            return Ok((token.header, token.generation));
        }
        let valid = |t: &Token| Instant::now() < t.expires_at;
        // Due: one call refreshes; while it does, the others use the old
        // token if it is still valid rather than queueing behind it.
        let _refreshing = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(token) = self.snapshot().filter(valid) {
                    return Ok((token.header, token.generation));
                }
                self.refreshing.lock().await
            }
        };
        let old = self.snapshot();
        if let Some(token) = old.clone().filter(|t| Instant::now() < t.refresh_at) {
            return Ok((token.header, token.generation)); // refreshed meanwhile
        }
        match self.grant(deadline).await {
            Ok((header, lifetime)) => {
                let now = Instant::now();
                let generation = old.as_ref().map_or(0, |t| t.generation) + 1;
                let token = Token {
                    header: header.clone(),
                    refresh_at: now + lifetime * 2 / 3,
                    expires_at: now + lifetime.saturating_sub(Duration::from_secs(5)).max(lifetime / 2),
                    generation,
                };
                if let Ok(mut slot) = self.token.lock() {
                    *slot = Some(token);
                }
                Ok((header, generation))
            }
            // IAM is down but the token still works: keep using it.
            Err(fault) => match old.filter(valid) {
                Some(token) if fault.is_transient() => Ok((token.header, token.generation)),
                _ => Err(fault),
            },
        }
    }

    /// Key Protect refused the token of `generation` (401): the next call
    /// to [`current`](Self::current) asks IAM for another.
    pub(super) fn refused(&self, generation: u64) {
        if let Ok(mut slot) = self.token.lock()
            && slot.as_ref().is_some_and(|t| t.generation == generation)
            && let Some(token) = slot.as_mut()
        {
            let now = Instant::now();
            token.refresh_at = now;
            token.expires_at = now;
        }
    }

    /// One grant: the API key for a token and its lifetime.
    async fn grant(&self, deadline: Instant) -> Result<(HeaderValue, Duration), Fault> {
        #[derive(Deserialize)]
        struct Grant {
            access_token: String,
            #[serde(default)]
            expires_in: u64,
        }
        let api_key = read_secret(&self.api_key_file, "api_key_file").map_err(Fault::Local)?;
        let mut form = Zeroizing::new(String::from(
            "grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey=",
        ));
        percent_encode_into(&api_key, &mut form);
        let headers = [(http::header::ACCEPT, HeaderValue::from_static("application/json"))];
        let body = Body {
            content_type: "application/x-www-form-urlencoded",
            bytes: form.as_bytes().to_vec(),
        };
        let reply = self
            .endpoint
            .send(Method::POST, &self.path, &headers, Some(body), deadline)
            .await
            .map_err(|fault| match fault {
                // IAM answers 400 for an unknown or disabled API key.
                Fault::Status { status, message, .. } if status.is_client_error() => Fault::Status {
                    status: StatusCode::UNAUTHORIZED,
                    message: format!(
                        "IAM refused the API key in store.api_key_file (HTTP {}{})",
                        status.as_u16(),
                        if message.is_empty() {
                            String::new()
                        } else {
                            format!(": {message}")
                        }
                    ),
                    retry_after: None,
                },
                other => other,
            })?;
        let grant: Zeroizing<Vec<u8>> = Zeroizing::new(reply.body.to_vec());
        let grant: Grant = serde_json::from_slice(&grant)
            .map_err(|_| Fault::Decode("IAM token answer without access_token".to_owned()))?;
        let access = Zeroizing::new(grant.access_token);
        let mut header = HeaderValue::from_str(&format!("Bearer {}", *access))
            .map_err(|_| Fault::Decode("IAM token holds characters a header cannot carry".to_owned()))?;
        header.set_sensitive(true);
        // IBM's tokens live an hour; a missing or absurd lifetime is taken as
        // a minute (refreshing early costs one grant).
        let lifetime = Duration::from_secs(match grant.expires_in {
            0 => 60,
            s => s.min(24 * 3600),
        });
        Ok((header, lifetime))
    }
}

/// IAM's error text: `errorMessage` (with `errorCode`), shortened.
pub(super) fn iam_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct IamError {
        #[serde(default, rename = "errorCode")]
        code: String,
        #[serde(default, rename = "errorMessage")]
        message: String,
    }
    match serde_json::from_slice::<IamError>(body) {
        Ok(e) if !e.code.is_empty() => one_short_line(&format!("{}: {}", e.code, e.message)),
        Ok(e) => one_short_line(&e.message),
        Err(_) => String::new(),
    }
}

/// Form encoding (RFC 3986 unreserved characters kept) of `text`.
fn percent_encode_into(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_and_iam_errors() {
        let mut out = String::new();
        percent_encode_into("a-b_c.d~e f+g/h=", &mut out);
        assert_eq!(out, "a-b_c.d~e%20f%2Bg%2Fh%3D");
        let body = br#"{"errorCode":"BXNIM0415E","errorMessage":"Provided API key could not be found."}"#;
        assert_eq!(
            iam_message(body),
            "BXNIM0415E: Provided API key could not be found."
        );
        assert_eq!(iam_message(b"nope"), "");
    }
}
