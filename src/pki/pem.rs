//! Writing DER as PEM (RFC 7468): base64 in 64-column lines between BEGIN/END labels.
//! Used to store just the certificate of a PEM file an administrator handed over,
//! never anything else that file held.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `-----BEGIN {label}-----` … `-----END {label}-----\n`.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let encoded = base64(der);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 64 + 2 * label.len() + 40);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn certificate_round_trips() {
        let ca = crate::pki::CertificateAuthority::generate("x", 1).unwrap();
        let pem = der_to_pem("CERTIFICATE", ca.cert_der());
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back = crate::pki::certs_from_pem(&pem).unwrap();
        assert_eq!(back, vec![ca.cert_der().clone()]);
    }
}
