//! Writing DER as PEM (RFC 7468): base64 in 64-column lines between BEGIN/END labels.
//! Used to store just the certificate of a PEM file an administrator handed over,
//! never anything else that file held. Encoding through the `pem` crate (which rcgen
//! already uses); reading PEM goes through `rustls-pki-types`' `PemObject`.

/// `-----BEGIN {label}-----` … `-----END {label}-----\n`, Unix line endings.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let block = ::pem::Pem::new(label, der);
    ::pem::encode_config(
        &block,
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        assert_eq!(
            der_to_pem("TEST", b"foobar"),
            "-----BEGIN TEST-----\nZm9vYmFy\n-----END TEST-----\n"
        );
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
