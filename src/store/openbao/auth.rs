//! keyward's OpenBao token: read from a file or obtained by AppRole login,
//! renewed (or logged in again) when two thirds of its TTL have passed, and
//! replaced once when the server refuses it.
//!
//! Secrets are read from files only, at start and again whenever a new token is
//! needed, so an operator (or an agent) can rotate them in place. The token is
//! held in a zeroizing string and sent as a header value marked sensitive; it
//! never appears in an error or in Debug output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::Method;
use http::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use super::http::{Endpoint, Fault};

/// How keyward authenticates to OpenBao.
#[derive(Clone, PartialEq, Eq)]
pub enum OpenBaoAuth {
    /// A token in a file (`store.token_file`).
    TokenFile(PathBuf),
    /// AppRole login with the role and secret ids in files, at `auth/<mount>`.
    AppRole {
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
        /// The AppRole auth mount, `approle` unless configured.
        mount: String,
    },
}

impl std::fmt::Debug for OpenBaoAuth {
    // Paths only; never the contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenBaoAuth::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
            OpenBaoAuth::AppRole {
                role_id_file,
                secret_id_file,
                mount,
            } => f
                .debug_struct("AppRole")
                .field("role_id_file", role_id_file)
                .field("secret_id_file", secret_id_file)
                .field("mount", mount)
                .finish(),
        }
    }
}

/// The token in use and when to refresh it.
struct Session {
    header: HeaderValue,
    /// Zeroized on drop; compared when a token file is read again.
    value: Zeroizing<String>,
    /// Renew or log in again after this; `None`: the token does not expire.
    refresh_at: Option<Instant>,
    renewable: bool,
    /// Bumped on every new or renewed token: a refusal of an older one is
    /// answered by retrying, not by another login.
    generation: u64,
}

/// The token source and the current session.
pub(super) struct Authenticator {
    auth: OpenBaoAuth,
    session: Mutex<Option<Session>>,
}

impl Authenticator {
    /// Reads a token file at once so that a missing or empty file is an
    /// error at start-up; AppRole logs in on first use.
    pub(super) fn new(auth: OpenBaoAuth) -> Result<Authenticator, Fault> {
        let session = match &auth {
            // Due at once: the first call learns the token's TTL.
            OpenBaoAuth::TokenFile(path) => Some(session_from(
                read_secret(path, "token_file")?,
                Some(Instant::now()),
                false,
                0,
            )?),
            OpenBaoAuth::AppRole { .. } => None,
        };
        Ok(Authenticator {
            auth,
            session: Mutex::new(session),
        })
    }

    /// The token header to send and its generation, refreshing the token
    /// first when it is due (or missing).
    pub(super) async fn current(
        &self,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<(HeaderValue, u64), Fault> {
        let mut session = self.session.lock().await;
        let due = match session.as_ref() {
            None => true,
            Some(s) => s.refresh_at.is_some_and(|at| Instant::now() >= at),
        };
        if due {
            let generation = session.as_ref().map_or(0, |s| s.generation);
            let fresh = self.refresh(session.as_ref(), endpoint, deadline).await?;
            *session = Some(Session {
                generation: generation + 1,
                ..fresh
            });
        }
        let s = session
            .as_ref()
            .ok_or_else(|| Fault::Local("no OpenBao token".to_owned()))?;
        Ok((s.header.clone(), s.generation))
    }

    /// The server refused the token of `generation`: get another one (read
    /// the token file again, or log in again). `Ok(false)`: nothing new to
    /// try (the same token file content), so the refusal stands.
    pub(super) async fn replace_refused(
        &self,
        generation: u64,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<bool, Fault> {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| s.generation != generation) {
            return Ok(true); // another call already replaced it
        }
        let fresh = match &self.auth {
            OpenBaoAuth::TokenFile(path) => {
                let value = read_secret(path, "token_file")?;
                if session.as_ref().is_some_and(|s| *s.value == *value) {
                    return Ok(false);
                }
                let mut fresh = session_from(value, None, false, 0)?;
                self.learn_ttl(&mut fresh, endpoint, deadline).await?;
                fresh
            }
            OpenBaoAuth::AppRole { .. } => self.login(endpoint, deadline).await?,
        };
        *session = Some(Session {
            generation: generation + 1,
            ..fresh
        });
        Ok(true)
    }

    /// A new session: renew the current token when it is renewable (falling
    /// back to a login for AppRole), else read the file or log in.
    async fn refresh(
        &self,
        current: Option<&Session>,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<Session, Fault> {
        if let Some(current) = current.filter(|s| s.renewable) {
            // A failed renewal falls back to what a first use does: read the
            // token file again (an agent may have rotated it) or log in.
            if let Ok(renewed) = renew(current, endpoint, deadline).await {
                return Ok(renewed);
            }
        }
        match &self.auth {
            OpenBaoAuth::TokenFile(path) => {
                // First use, or a token that cannot be renewed: read the file
                // (it may hold a rotated token) and learn its TTL.
                let mut fresh = session_from(read_secret(path, "token_file")?, None, false, 0)?;
                self.learn_ttl(&mut fresh, endpoint, deadline).await?;
                Ok(fresh)
            }
            OpenBaoAuth::AppRole { .. } => self.login(endpoint, deadline).await,
        }
    }

    /// `auth/token/lookup-self`: sets when a token read from a file is due.
    async fn learn_ttl(
        &self,
        session: &mut Session,
        endpoint: &Endpoint,
        deadline: Instant,
    ) -> Result<(), Fault> {
        #[derive(Deserialize)]
        struct Lookup {
            data: LookupData,
        }
        #[derive(Deserialize)]
        struct LookupData {
            #[serde(default)]
            ttl: u64,
            #[serde(default)]
            renewable: bool,
        }
        let reply = endpoint
            .send(
                Method::GET,
                "/v1/auth/token/lookup-self",
                Some(&session.header),
                None,
                deadline,
            )
            .await?;
        let lookup: Lookup = serde_json::from_slice(&reply.body)
            .map_err(|_| Fault::Decode("token lookup answer without data.ttl".to_owned()))?;
        session.refresh_at = due_at(lookup.data.ttl);
        session.renewable = lookup.data.renewable;
        Ok(())
    }

    async fn login(&self, endpoint: &Endpoint, deadline: Instant) -> Result<Session, Fault> {
        let OpenBaoAuth::AppRole {
            role_id_file,
            secret_id_file,
            mount,
        } = &self.auth
        else {
            return Err(Fault::Local("AppRole login without AppRole settings".to_owned()));
        };
        let role_id = read_secret(role_id_file, "role_id_file")?;
        let secret_id = read_secret(secret_id_file, "secret_id_file")?;
        let body = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({ "role_id": *role_id, "secret_id": *secret_id }))
                .map_err(|e| Fault::Local(format!("cannot encode the AppRole login: {e}")))?,
        );
        let reply = endpoint
            .send(
                Method::POST,
                &format!("/v1/auth/{}/login", mount.trim_matches('/')),
                None,
                Some(body.to_vec()),
                deadline,
            )
            .await
            .map_err(|fault| match fault {
                Fault::Status { status, message, .. } if status.is_client_error() => Fault::Status {
                    status: http::StatusCode::FORBIDDEN,
                    message: format!("AppRole login refused (HTTP {}): {message}", status.as_u16()),
                    retry_after: None,
                },
                other => other,
            })?;
        session_from_auth(&reply.body)
    }
}

#[derive(Deserialize)]
struct AuthReply {
    auth: AuthData,
}

#[derive(Deserialize)]
struct AuthData {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

/// A session from a login or renewal answer (`auth.client_token`, ...).
fn session_from_auth(body: &[u8]) -> Result<Session, Fault> {
    let reply: AuthReply = serde_json::from_slice(body)
        .map_err(|_| Fault::Decode("login answer without auth.client_token".to_owned()))?;
    let AuthData {
        client_token,
        lease_duration,
        renewable,
    } = reply.auth;
    session_from(Zeroizing::new(client_token), due_at(lease_duration), renewable, 0)
}

async fn renew(current: &Session, endpoint: &Endpoint, deadline: Instant) -> Result<Session, Fault> {
    let reply = endpoint
        .send(
            Method::POST,
            "/v1/auth/token/renew-self",
            Some(&current.header),
            Some(b"{}".to_vec()),
            deadline,
        )
        .await?;
    let renewed = session_from_auth(&reply.body)?;
    // A token at its maximum TTL renews to a shorter lease each time; once it
    // would be due again at once, report failure so AppRole logs in anew.
    if renewed
        .refresh_at
        .is_some_and(|at| at <= Instant::now() + Duration::from_secs(1))
    {
        return Err(Fault::Local("token reached its maximum TTL".to_owned()));
    }
    Ok(renewed)
}

/// Refresh when two thirds of `ttl_secs` have passed; 0 means no expiry.
fn due_at(ttl_secs: u64) -> Option<Instant> {
    // A TTL beyond a year is treated as a year: refreshing early costs nothing,
    // and no arithmetic on a value the store sent can overflow.
    let ttl = Duration::from_secs(ttl_secs.min(365 * 24 * 3600));
    (ttl_secs > 0)
        .then(|| Instant::now().checked_add(ttl * 2 / 3))
        .flatten()
}

fn session_from(
    value: Zeroizing<String>,
    refresh_at: Option<Instant>,
    renewable: bool,
    generation: u64,
) -> Result<Session, Fault> {
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| Fault::Local("the OpenBao token holds characters a header cannot carry".to_owned()))?;
    header.set_sensitive(true);
    Ok(Session {
        header,
        value,
        refresh_at,
        renewable,
        generation,
    })
}

/// The trimmed content of a secret file; never echoed in an error (the
/// rules every remote store shares: `store::remote::secret_file`).
fn read_secret(path: &std::path::Path, key: &str) -> Result<Zeroizing<String>, Fault> {
    crate::store::remote::secret_file::read_secret(path, key).map_err(Fault::Local)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::tests::write_secret;

    #[test]
    fn a_world_readable_secret_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_secret(&path, "s.secret-token\n").unwrap();
        assert!(read_secret(&path, "token_file").is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let Err(Fault::Local(why)) = read_secret(&path, "token_file") else {
            panic!("a world-readable token file must be refused")
        };
        assert!(
            why.contains("world-readable") && !why.contains("s.secret"),
            "{why}"
        );
    }

    #[test]
    fn token_files_are_checked_at_start_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let missing = Authenticator::new(OpenBaoAuth::TokenFile(path.clone()))
            .err()
            .unwrap();
        assert!(
            matches!(&missing, Fault::Local(m) if m.contains("token_file")),
            "{missing:?}"
        );
        write_secret(&path, "  \n").unwrap();
        let empty = Authenticator::new(OpenBaoAuth::TokenFile(path.clone()))
            .err()
            .unwrap();
        assert!(
            matches!(&empty, Fault::Local(m) if m.contains("empty")),
            "{empty:?}"
        );
        write_secret(&path, "s.secret-token\n").unwrap();
        let auth = Authenticator::new(OpenBaoAuth::TokenFile(path.clone())).unwrap();
        let shown = format!("{:?}", auth.auth);
        assert!(!shown.contains("secret-token"), "{shown}");
        write_secret(&path, "bad\x01token").unwrap();
        let err = Authenticator::new(OpenBaoAuth::TokenFile(path)).err().unwrap();
        assert!(matches!(&err, Fault::Local(m) if !m.contains("bad")), "{err:?}");
    }

    #[test]
    fn refresh_is_due_after_two_thirds_of_the_ttl() {
        assert!(due_at(0).is_none());
        let at = due_at(30).unwrap();
        let left = at.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(18) && left <= Duration::from_secs(20),
            "{left:?}"
        );
    }
}
