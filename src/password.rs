//! Client passwords at rest: a salted, slow PBKDF2-HMAC-SHA256 hash and the
//! username it belongs to (KMIP's Username/Password credential, required on top
//! of a client certificate when an administrator sets one).
//!
//! The trust file holds only the hash, as one self-describing string
//! `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`, so a stolen clients folder
//! costs an attacker [`ITERATIONS`] HMAC computations per guess. Verification
//! compares in constant time (aws-lc-rs `pbkdf2::verify`). Neither the password
//! nor the hash is ever printed: `Debug` shows only the scheme.

use std::fmt;
use std::num::NonZeroU32;

use aws_lc_rs::pbkdf2;

/// PBKDF2 rounds for new hashes. High enough that offline guessing is slow,
/// low enough that a verification (once per client and process, see the ops
/// layer's cache) costs well under a second on a small appliance.
pub const ITERATIONS: u32 = 600_000;
/// Fewest rounds a stored hash may claim; a weaker file entry is refused.
pub const MIN_ITERATIONS: u32 = 100_000;
/// Most rounds a stored hash may claim: bounds the CPU one verification takes.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Longest password accepted on the wire or from a file.
pub const MAX_PASSWORD_BYTES: usize = 1024;

const SCHEME: &str = "pbkdf2-sha256";
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;

/// Why a hash could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    /// The stored string is not a hash this build understands.
    Malformed(String),
    Empty,
    TooLong,
    /// The system random generator failed.
    Random,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::Malformed(why) => write!(f, "not a keyward password hash: {why}"),
            PasswordError::Empty => f.write_str("the password is empty"),
            PasswordError::TooLong => write!(f, "the password is longer than {MAX_PASSWORD_BYTES} bytes"),
            PasswordError::Random => f.write_str("the random generator failed"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// A salted PBKDF2-HMAC-SHA256 hash of a password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PasswordHash {
    iterations: u32,
    salt: [u8; SALT_BYTES],
    hash: [u8; HASH_BYTES],
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({SCHEME}, {} iterations)", self.iterations)
    }
}

impl PasswordHash {
    /// Hashes `password` under a fresh random salt with [`ITERATIONS`] rounds.
    pub fn new(password: &[u8]) -> Result<PasswordHash, PasswordError> {
        Self::with_iterations(password, ITERATIONS)
    }

    /// A hash with the fewest accepted rounds, so unit tests elsewhere stay fast.
    #[cfg(test)]
    pub(crate) fn for_tests(password: &[u8]) -> PasswordHash {
        #[allow(clippy::unwrap_used)]
        Self::with_iterations(password, MIN_ITERATIONS).unwrap()
    }

    fn with_iterations(password: &[u8], iterations: u32) -> Result<PasswordHash, PasswordError> {
        check_password(password)?;
        let mut salt = [0u8; SALT_BYTES];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Random)?;
        let rounds =
            NonZeroU32::new(iterations).ok_or_else(|| PasswordError::Malformed("zero iterations".into()))?;
        let mut hash = [0u8; HASH_BYTES];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, &salt, password, &mut hash);
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `password` is the one hashed, compared in constant time. Costs
    /// `iterations` HMAC computations: call it off the async executor.
    pub fn verify(&self, password: &[u8]) -> bool {
        let Some(rounds) = NonZeroU32::new(self.iterations) else {
            return false;
        };
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &self.salt,
            password,
            &self.hash,
        )
        .is_ok()
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The stored form, `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
    pub fn encode(&self) -> String {
        format!(
            "{SCHEME}${}${}${}",
            self.iterations,
            hex::encode(self.salt),
            hex::encode(self.hash)
        )
    }

    /// Reads the stored form, refusing weak or absurd iteration counts.
    pub fn parse(text: &str) -> Result<PasswordHash, PasswordError> {
        let malformed = |why: &str| PasswordError::Malformed(why.to_owned());
        let mut parts = text.split('$');
        if parts.next() != Some(SCHEME) {
            return Err(malformed("expected pbkdf2-sha256$<iterations>$<salt>$<hash>"));
        }
        let iterations: u32 = parts
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| malformed("bad iteration count"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(malformed(&format!(
                "iteration count must be {MIN_ITERATIONS} to {MAX_ITERATIONS}"
            )));
        }
        let mut salt = [0u8; SALT_BYTES];
        let mut hash = [0u8; HASH_BYTES];
        hex::decode_to_slice(parts.next().unwrap_or(""), &mut salt)
            .map_err(|_| malformed("salt must be 32 hex digits"))?;
        hex::decode_to_slice(parts.next().unwrap_or(""), &mut hash)
            .map_err(|_| malformed("hash must be 64 hex digits"))?;
        if parts.next().is_some() {
            return Err(malformed("trailing fields"));
        }
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }
}

fn check_password(password: &[u8]) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The credential a client must present: its username and the hash of its password.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientPassword {
    pub username: String,
    pub hash: PasswordHash,
}

impl ClientPassword {
    /// Whether `username`/`password` is this credential. The slow hash runs even
    /// when the username is wrong, so timing does not tell which part failed.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        let password_ok = self.hash.verify(password);
        let username_ok =
            aws_lc_rs::constant_time::verify_slices_are_equal(username.as_bytes(), self.username.as_bytes())
                .is_ok();
        password_ok & username_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_its_password() {
        let h = PasswordHash::with_iterations(b"correct horse", MIN_ITERATIONS).unwrap();
        assert!(h.verify(b"correct horse"));
        assert!(!h.verify(b"correct horsf"));
        assert!(!h.verify(b""));
        let again = PasswordHash::with_iterations(b"correct horse", MIN_ITERATIONS).unwrap();
        assert_ne!(h.salt, again.salt, "a fresh salt per hash");
        assert_ne!(h.hash, again.hash);
    }

    #[test]
    fn stored_form_round_trips_and_holds_no_password() {
        let h = PasswordHash::with_iterations(b"s3cret-pw", MIN_ITERATIONS).unwrap();
        let text = h.encode();
        assert!(text.starts_with("pbkdf2-sha256$100000$"));
        assert!(!text.contains("s3cret"));
        let back = PasswordHash::parse(&text).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(b"s3cret-pw"));
        assert!(!format!("{h:?}").contains(&hex::encode(h.hash)));
    }

    #[test]
    fn malformed_or_weak_hashes_are_refused() {
        let salt = "00".repeat(16);
        let hash = "11".repeat(32);
        for bad in [
            String::new(),
            "plain-password".to_owned(),
            format!("pbkdf2-sha256$1000${salt}${hash}"),
            format!("pbkdf2-sha256$99999999999${salt}${hash}"),
            format!("pbkdf2-sha256$200000$zz${hash}"),
            format!("pbkdf2-sha256$200000${salt}$11"),
            format!("pbkdf2-sha256$200000${salt}${hash}$x"),
            format!("pbkdf2-sha1$200000${salt}${hash}"),
        ] {
            assert!(PasswordHash::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(PasswordHash::parse(&format!("pbkdf2-sha256$200000${salt}${hash}")).is_ok());
    }

    #[test]
    fn client_password_needs_both_parts() {
        let c = ClientPassword {
            username: "vcenter".into(),
            hash: PasswordHash::with_iterations(b"pw", MIN_ITERATIONS).unwrap(),
        };
        assert!(c.verify("vcenter", b"pw"));
        assert!(!c.verify("vcenter2", b"pw"));
        assert!(!c.verify("vcenter", b"pw2"));
    }
}
