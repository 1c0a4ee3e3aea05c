//! The authenticated caller of one connection, as the KMIP operations see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ClientIdentity;
use crate::password::ClientPassword;

/// The group of clients whose trust entry names none.
pub const DEFAULT_GROUP: &str = "default";

/// Who is asking: the trust entry that accepted the verified client
/// certificate. Made only from a [`ClientIdentity`] — which only TLS
/// verification produces — so code that did not get a finished, verified
/// handshake cannot make one; the network layer builds one per connection.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The trust entry's name (for the audit trail).
    name: String,
    /// Objects belong to a group; a caller sees only its own group's objects.
    group: String,
    /// When set, requests must carry this Username/Password, except those
    /// [`super::credential`] exempts (what vCenter sends without it).
    password: Option<ClientPassword>,
    /// Shared by every message of one connection: set once a message on it
    /// carried the right credential.
    credential_verified: Arc<AtomicBool>,
}

impl Caller {
    /// The caller a verified identity speaks for, with a fresh connection state.
    pub fn new(identity: &ClientIdentity) -> Caller {
        let source = identity.matched.source();
        Caller {
            name: source.name.clone(),
            group: source.group.clone().unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            password: source.password.clone(),
            credential_verified: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same connection's caller after its identity was verified again
    /// (trust reloaded): name, group and password follow the new trust entry.
    /// A credential already proved on the connection stays proved only while the
    /// required credential is unchanged: after a password change (or a password
    /// newly required) the connection must present the new one.
    pub fn reverified(&self, identity: &ClientIdentity) -> Caller {
        let fresh = Caller::new(identity);
        if fresh.password == self.password {
            Caller {
                credential_verified: Arc::clone(&self.credential_verified),
                ..fresh
            }
        } else {
            fresh
        }
    }

    /// A caller for unit tests, which have no TLS handshake to verify.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, group: &str) -> Caller {
        Caller {
            name: name.to_owned(),
            group: group.to_owned(),
            password: None,
            credential_verified: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The Username/Password its trust entry requires, if any.
    pub fn password(&self) -> Option<&ClientPassword> {
        self.password.as_ref()
    }

    /// Whether a message on this connection already carried the right credential.
    pub fn credential_verified(&self) -> bool {
        self.credential_verified.load(Ordering::Acquire)
    }

    /// Records that a message on this connection carried the right credential.
    pub(super) fn set_credential_verified(&self) {
        self.credential_verified.store(true, Ordering::Release);
    }
}
