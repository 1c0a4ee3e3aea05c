//! Who is calling: the set of trusted client certificates and the identity derived from
//! the certificate a peer presented.
//!
//! [`TrustStore`] holds the current [`TrustSnapshot`] behind a lock that is read once per
//! handshake, so adding or removing a client (`keyward clients add|remove`, SIGHUP)
//! takes effect on the next connection without a restart. [`ClientIdentity`] is built
//! after the handshake and re-checks the chain against the *current* snapshot, so a
//! resumed TLS session cannot outlive the removal of its client's trust.

mod caller;
pub mod credential;
mod identity;
pub mod last_seen;
mod trust;

pub use caller::{Caller, DEFAULT_GROUP};
pub use identity::{ClientIdentity, IdentityError, TrustMatch};
pub use last_seen::LastSeen;
pub use trust::{TrustError, TrustSnapshot, TrustSnapshotBuilder, TrustSource, TrustStore};

#[cfg(test)]
mod tests;
