//! SHA-256 certificate fingerprints, the way vCenter shows and pins them.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;

use super::PkiError;

/// SHA-256 over a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let hash = digest::digest(&digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(hash.as_ref());
        Fingerprint(out)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `AB:CD:…` upper-case colon hex, as vCenter and `openssl x509 -fingerprint` print it.
    pub fn to_colon_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{b:02X}"));
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_colon_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_colon_hex())
    }
}

/// Accepts 64 hex digits in either case, with or without colons.
impl FromStr for Fingerprint {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.trim().chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out)
            .map_err(|_| PkiError::Parse("a SHA-256 fingerprint is 64 hex digits".into()))?;
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_round_trip() {
        // SHA-256 of the empty string.
        let fp = Fingerprint::of_der(b"");
        let shown = fp.to_colon_hex();
        assert!(shown.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{shown}");
        assert_eq!(shown.len(), 95);
        assert_eq!(shown.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(
            shown
                .replace(':', "")
                .to_lowercase()
                .parse::<Fingerprint>()
                .unwrap(),
            fp
        );
        assert!("E3:B0".parse::<Fingerprint>().is_err());
    }
}
