//! A registered certificate: an X.509 DER certificate that parses, nothing
//! after it; its type, length and (KMIP 2.x) name fields become attributes.

use super::error::OpError;
use crate::kmip::attribute::Attribute;
use crate::kmip::attribute::attr as a;
use crate::kmip::object::ManagedObject;
use crate::kmip::{CertificateType, ResultReason};
use crate::ttlv::Value;

/// The name fields KMIP 2.x reads out of a certificate, by attribute type
/// OID, in the order of [`SUBJECT_FIELDS`] and [`ISSUER_FIELDS`].
const NAME_FIELD_OIDS: [&str; 12] = [
    "2.5.4.3",                    // CN
    "2.5.4.10",                   // O
    "2.5.4.11",                   // OU
    "1.2.840.113549.1.9.1",       // Email
    "2.5.4.6",                    // C
    "2.5.4.8",                    // ST
    "2.5.4.7",                    // L
    "0.9.2342.19200300.100.1.1",  // UID
    "2.5.4.5",                    // Serial Number
    "2.5.4.12",                   // Title
    "0.9.2342.19200300.100.1.25", // DC
    "2.5.4.46",                   // DN Qualifier
];

const SUBJECT_FIELDS: [&str; 12] = [
    a::CERTIFICATE_SUBJECT_CN,
    a::CERTIFICATE_SUBJECT_O,
    a::CERTIFICATE_SUBJECT_OU,
    a::CERTIFICATE_SUBJECT_EMAIL,
    a::CERTIFICATE_SUBJECT_C,
    a::CERTIFICATE_SUBJECT_ST,
    a::CERTIFICATE_SUBJECT_L,
    a::CERTIFICATE_SUBJECT_UID,
    a::CERTIFICATE_SUBJECT_SERIAL_NUMBER,
    a::CERTIFICATE_SUBJECT_TITLE,
    a::CERTIFICATE_SUBJECT_DC,
    a::CERTIFICATE_SUBJECT_DN_QUALIFIER,
];

const ISSUER_FIELDS: [&str; 12] = [
    a::CERTIFICATE_ISSUER_CN,
    a::CERTIFICATE_ISSUER_O,
    a::CERTIFICATE_ISSUER_OU,
    a::CERTIFICATE_ISSUER_EMAIL,
    a::CERTIFICATE_ISSUER_C,
    a::CERTIFICATE_ISSUER_ST,
    a::CERTIFICATE_ISSUER_L,
    a::CERTIFICATE_ISSUER_UID,
    a::CERTIFICATE_ISSUER_SERIAL_NUMBER,
    a::CERTIFICATE_ISSUER_TITLE,
    a::CERTIFICATE_ISSUER_DC,
    a::CERTIFICATE_ISSUER_DN_QUALIFIER,
];

/// At most this many name fields are kept per name, each cut to
/// [`MAX_NAME_FIELD_CHARS`]: a certificate is client input, and its
/// attributes count toward the object's bounds.
const MAX_NAME_FIELDS: usize = 24;
const MAX_NAME_FIELD_CHARS: usize = 256;

fn invalid(what: &str) -> OpError {
    OpError::invalid_field(what)
}

/// Checks a registered certificate and returns the attributes it implies:
/// Certificate Type, Certificate Length and the subject's and issuer's name
/// fields.
pub(super) fn inspect_certificate(object: &ManagedObject) -> Result<Vec<Attribute>, OpError> {
    let ManagedObject::Certificate {
        certificate_type,
        value,
    } = object
    else {
        return Ok(Vec::new());
    };
    if *certificate_type != CertificateType::X_509 {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "only X.509 certificates are registered here",
        ));
    }
    let (rest, certificate) = x509_parser::parse_x509_certificate(value.expose())
        .map_err(|_| invalid("the certificate is not an X.509 DER certificate"))?;
    if !rest.is_empty() {
        return Err(invalid("bytes follow the certificate"));
    }
    let length = i32::try_from(value.len()).unwrap_or(i32::MAX);
    let mut derived = vec![
        Attribute::new(a::CERTIFICATE_TYPE, Value::Enumeration(certificate_type.0)),
        Attribute::new(a::CERTIFICATE_LENGTH, Value::Integer(length)),
    ];
    name_fields(certificate.subject(), &SUBJECT_FIELDS, &mut derived);
    name_fields(certificate.issuer(), &ISSUER_FIELDS, &mut derived);
    Ok(derived)
}

fn name_fields(name: &x509_parser::x509::X509Name<'_>, attributes: &[&str; 12], out: &mut Vec<Attribute>) {
    let mut kept = 0;
    for field in name.iter_attributes() {
        let oid = field.attr_type().to_id_string();
        let Some(at) = NAME_FIELD_OIDS.iter().position(|o| *o == oid) else {
            continue;
        };
        let Ok(text) = field.as_str() else { continue };
        if kept == MAX_NAME_FIELDS {
            break;
        }
        kept += 1;
        let text: String = text.chars().take(MAX_NAME_FIELD_CHARS).collect();
        out.push(Attribute::new(attributes[at], Value::TextString(text)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    #[test]
    fn names_become_attributes_and_garbage_is_refused() {
        let mut params = rcgen::CertificateParams::new(vec!["kms.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keyward test");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "ops");
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let cert = ManagedObject::Certificate {
            certificate_type: CertificateType::X_509,
            value: SecretBytes::from_slice(&der),
        };
        let got = inspect_certificate(&cert).unwrap();
        let find = |n: &str| {
            got.iter()
                .find(|x| x.name == n)
                .and_then(|x| x.value.as_text().map(str::to_owned))
        };
        assert_eq!(find(a::CERTIFICATE_SUBJECT_CN).as_deref(), Some("keyward test"));
        assert_eq!(find(a::CERTIFICATE_ISSUER_O).as_deref(), Some("ops"));
        let garbage = ManagedObject::Certificate {
            certificate_type: CertificateType::X_509,
            value: SecretBytes::from_slice(&[0x30, 0x03, 0x02, 0x01, 0x01]),
        };
        assert!(inspect_certificate(&garbage).is_err());
    }
}
