//! KMIP Username/Password on top of the client certificate (KMIP 1.4 §6.1
//! Authentication), for clients whose trust entry sets a password.
//!
//! Which requests need the credential follows what vCenter sends with
//! "password protection" on (DESIGN §2): it opens each connection with Discover
//! Versions (and registers with Query) before any credential, and within a flow
//! it sends the credential on the requests that create keys, return key
//! material or change attributes, but not on its `Get Attributes` (State, `x-`
//! tags) and `Activate` steps — each on its own short connection. So:
//!
//! - a request that carries a credential has it checked; a wrong one refuses
//!   the whole batch (Authentication Not Successful), whatever the operations;
//! - a request without one is accepted when every item is one of
//!   [`NO_CREDENTIAL_NEEDED`] (nothing in it reveals key material, creates,
//!   destroys or changes more than the Pre-Active → Active step), or when an
//!   earlier message on the same connection carried the right credential;
//! - anything else without a credential is refused.
//!
//! The stored hash is slow by design (PBKDF2, see [`crate::password`]). A
//! credential that verified is remembered for the process as an HMAC under a
//! random per-process key, so vCenter's next connection costs one HMAC, not
//! 600,000; a wrong password never hits that cache and always costs the full
//! hash. Verification runs on the blocking pool, never on an executor thread.
//!
//! Slow checks queue per client (trust entry): each client runs at most one at
//! a time, and all clients together at most
//! [`crate::limits::SLOW_CREDENTIAL_CHECKS`]; a check that waits in its
//! client's queue longer than [`crate::limits::SLOW_CREDENTIAL_QUEUE_TIMEOUT`]
//! is refused. So one client's wrong passwords delay its own logins, and any
//! other client's first login waits for at most the checks already running.
//! A client that presented [`crate::limits::MAX_CREDENTIAL_FAILURES`] wrong
//! credentials within [`crate::limits::CREDENTIAL_FAILURE_WINDOW`] is refused
//! without the slow hash until the window has passed (a remembered, correct
//! credential still passes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lc_rs::hmac;

use super::Caller;
use crate::kmip::Operation;
use crate::kmip::message::{CredentialValue, RequestHeader};
use crate::password::ClientPassword;
use crate::secret::SecretString;

/// Operations a password-protected client may send without a credential.
pub const NO_CREDENTIAL_NEEDED: [Operation; 5] = [
    Operation::DISCOVER_VERSIONS,
    Operation::QUERY,
    Operation::GET_ATTRIBUTES,
    Operation::GET_ATTRIBUTE_LIST,
    Operation::ACTIVATE,
];

use crate::limits::MAX_REMEMBERED_CREDENTIALS as MAX_REMEMBERED;

/// Credentials that verified, per client name, as an HMAC under a key that
/// exists only in this process's memory.
pub struct AcceptedCredentials {
    key: Option<hmac::Key>,
    accepted: Mutex<HashMap<String, Vec<u8>>>,
    /// Slow checks (a full PBKDF2 each) of all clients together: wrong passwords
    /// sent in parallel queue here instead of taking every core.
    slow_checks: tokio::sync::Semaphore,
    /// Per client: its own queue of slow checks and its recent failures.
    clients: Mutex<HashMap<String, Arc<ClientChecks>>>,
}

/// One client's slow-check queue and failure count.
struct ClientChecks {
    queue: tokio::sync::Semaphore,
    /// Start of the current failure window and the failures counted in it.
    failures: Mutex<(Instant, u32)>,
}

impl ClientChecks {
    fn new() -> Self {
        ClientChecks {
            queue: tokio::sync::Semaphore::new(crate::limits::SLOW_CREDENTIAL_CHECKS_PER_CLIENT),
            failures: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Whether the client has used up its failures in the current window.
    fn locked_out(&self) -> bool {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.0.elapsed() >= crate::limits::CREDENTIAL_FAILURE_WINDOW {
            *f = (Instant::now(), 0);
        }
        f.1 >= crate::limits::MAX_CREDENTIAL_FAILURES
    }

    fn failed(&self) {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if f.0.elapsed() >= crate::limits::CREDENTIAL_FAILURE_WINDOW {
            *f = (Instant::now(), 0);
        }
        f.1 = f.1.saturating_add(1);
    }
}

impl Default for AcceptedCredentials {
    fn default() -> Self {
        let mut raw = [0u8; 32];
        // Without randomness there is no safe key: then nothing is remembered and
        // every credential takes the slow path.
        let key = aws_lc_rs::rand::fill(&mut raw)
            .ok()
            .map(|()| hmac::Key::new(hmac::HMAC_SHA256, &raw));
        zeroize::Zeroize::zeroize(&mut raw);
        AcceptedCredentials {
            key,
            accepted: Mutex::new(HashMap::new()),
            slow_checks: tokio::sync::Semaphore::new(crate::limits::SLOW_CREDENTIAL_CHECKS),
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for AcceptedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptedCredentials(..)")
    }
}

impl AcceptedCredentials {
    /// The per-process tag of `username`/`password` presented against `stored`
    /// (the stored hash takes part, so a changed password forgets the old one).
    fn tag(&self, stored: &ClientPassword, username: &str, password: &str) -> Option<hmac::Tag> {
        let key = self.key.as_ref()?;
        let mut ctx = hmac::Context::with_key(key);
        for part in [
            stored.hash.encode().as_bytes(),
            username.as_bytes(),
            password.as_bytes(),
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        Some(ctx.sign())
    }

    fn remembered(&self, client: &str, tag: &hmac::Tag) -> bool {
        let accepted = match self.accepted.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        accepted.get(client).is_some_and(|known| {
            aws_lc_rs::constant_time::verify_slices_are_equal(known, tag.as_ref()).is_ok()
        })
    }

    fn remember(&self, client: &str, tag: &hmac::Tag) {
        let mut accepted = match self.accepted.lock() {
            Ok(a) => a,
            Err(poisoned) => poisoned.into_inner(),
        };
        if accepted.len() >= MAX_REMEMBERED && !accepted.contains_key(client) {
            accepted.clear();
        }
        accepted.insert(client.to_owned(), tag.as_ref().to_vec());
    }

    /// `client`'s queue and failure count (made on first use; the map is bounded
    /// like the accepted-credential memory, and starts afresh past it).
    fn checks_of(&self, client: &str) -> Arc<ClientChecks> {
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if clients.len() >= MAX_REMEMBERED && !clients.contains_key(client) {
            clients.clear();
        }
        Arc::clone(
            clients
                .entry(client.to_owned())
                .or_insert_with(|| Arc::new(ClientChecks::new())),
        )
    }

    /// Whether `username`/`password` is `client`'s credential.
    pub async fn verify(
        &self,
        client: &str,
        stored: &ClientPassword,
        username: &str,
        password: &SecretString,
    ) -> bool {
        let tag = self.tag(stored, username, password.expose());
        if tag.as_ref().is_some_and(|t| self.remembered(client, t)) {
            return true;
        }
        let checks = self.checks_of(client);
        if checks.locked_out() {
            return false;
        }
        // The client's own queue first (bounded in time), then the shared slots:
        // one client's wrong passwords wait behind each other, not in front of
        // other clients.
        let queued = tokio::time::timeout(crate::limits::SLOW_CREDENTIAL_QUEUE_TIMEOUT, async {
            let own = checks.queue.acquire().await.ok()?;
            let shared = self.slow_checks.acquire().await.ok()?;
            Some((own, shared))
        })
        .await;
        let Ok(Some(_slots)) = queued else {
            return false;
        };
        // Another connection may have proved the same credential while we waited,
        // or used up the client's failures.
        if tag.as_ref().is_some_and(|t| self.remembered(client, t)) {
            return true;
        }
        if checks.locked_out() {
            return false;
        }
        let stored_copy = stored.clone();
        let username_copy = username.to_owned();
        let password_copy = SecretString::new(password.expose().to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            stored_copy.verify(&username_copy, password_copy.expose().as_bytes())
        })
        .await
        .unwrap_or(false);
        if ok && let Some(t) = &tag {
            self.remember(client, t);
        }
        if !ok {
            checks.failed();
        }
        ok
    }
}

/// Why a request's credential was not accepted (KMIP: Authentication Not
/// Successful, for the whole batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// The request needs a credential and neither it nor an earlier message on
    /// the connection carried one.
    Required,
    /// The credential it carried is wrong or incomplete.
    Refused,
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CredentialError::Required => "credential required",
            CredentialError::Refused => "credential refused",
        })
    }
}

impl std::error::Error for CredentialError {}

/// Applies the rules of the module documentation to one request message whose
/// batch items name `operations`.
pub async fn authenticate(
    accepted: &AcceptedCredentials,
    caller: &Caller,
    header: &RequestHeader,
    operations: &[Operation],
) -> Result<(), CredentialError> {
    let Some(stored) = caller.password() else {
        return Ok(());
    };
    let presented = header.authentication.as_ref().map(|auth| {
        auth.credentials.iter().find_map(|c| match &c.value {
            CredentialValue::UsernamePassword { username, password } => Some((username, password)),
            CredentialValue::Other(_) => None,
        })
    });
    match presented {
        None => {
            let exempt = operations.iter().all(|op| NO_CREDENTIAL_NEEDED.contains(op));
            if exempt || caller.credential_verified() {
                Ok(())
            } else {
                Err(CredentialError::Required)
            }
        }
        Some(Some((username, Some(password)))) => {
            if accepted.verify(caller.name(), stored, username, password).await {
                caller.set_credential_verified();
                Ok(())
            } else {
                Err(CredentialError::Refused)
            }
        }
        // An Authentication without a Username/Password, or without its password.
        Some(_) => Err(CredentialError::Refused),
    }
}
