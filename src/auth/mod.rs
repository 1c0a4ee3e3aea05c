//! Who is calling: the set of trusted client certificates and the identity derived from
//! the certificate a peer presented.
//!
//! [`TrustStore`] holds the current [`TrustSnapshot`] behind a lock that is read once per
//! handshake, so adding or removing a client (`keyward clients add|remove`, SIGHUP)
//! takes effect on the next connection without a restart. [`ClientIdentity`] is built
//! after the handshake and re-checks the chain against the *current* snapshot, so a
//! resumed TLS session cannot outlive the removal of its client's trust.

mod identity;
mod trust;

pub use identity::{ClientIdentity, IdentityError, TrustMatch};
pub use trust::{TrustError, TrustSnapshot, TrustSnapshotBuilder, TrustSource, TrustStore};

#[cfg(test)]
mod tests;
