//! Key material types: zeroized when dropped, never shown by `Debug`.

use std::fmt;
use zeroize::Zeroize;

/// Bytes that may be key material (or a password, or plaintext data).
///
/// The buffer is wiped when the value is dropped and `Debug` prints only its
/// length, so a stray `{:?}` in a log line or a panic message cannot leak it.
/// `Clone` is deliberate and explicit: each copy is wiped independently.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes(bytes.to_vec())
    }

    /// The bytes themselves. Call sites are the places that handle key material;
    /// keep them few.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
}

/// A text secret (a KMIP credential password).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let s = SecretBytes::new(vec![0x41; 32]);
        let shown = format!("{s:?}");
        assert_eq!(shown, "<redacted 32 bytes>");
        assert!(!shown.contains("65"));
        let p = SecretString::new("hunter2".into());
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
