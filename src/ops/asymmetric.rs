//! Public and private keys: what keyward makes (RSA 2048/3072/4096, EC
//! P-256/P-384), what it accepts on Register (PKCS#1, PKCS#8, X.509 DER that
//! parses and says what the key block claims), and the signing schemes Sign
//! and Signature Verify run.
//!
//! Private keys are stored like every key: sealed under the root key; their
//! DER is opened for one call and wiped when dropped (`SecretBytes`).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKey as RsaPublicKey};
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _};
use x509_parser::prelude::FromDer;

use super::error::OpError;
use crate::kmip::attribute::Attribute;
use crate::kmip::object::{KeyBlock, KeyMaterial, KeyValue, ManagedObject};
use crate::kmip::{CryptographicAlgorithm, KeyFormatType, RecommendedCurve, ResultReason, tags};
use crate::secret::SecretBytes;
use crate::ttlv::Value;

/// A key pair keyward generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairSpec {
    Rsa(u32),
    Ec(Curve),
}

/// The curves offered (NIST P-256 and P-384, what TLS and code signing use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
}

impl Curve {
    pub(super) fn bits(self) -> i32 {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
        }
    }

    fn from_bits(bits: i32) -> Option<Curve> {
        match bits {
            256 => Some(Curve::P256),
            384 => Some(Curve::P384),
            _ => None,
        }
    }

    fn from_recommended(curve: RecommendedCurve) -> Option<Curve> {
        match curve {
            RecommendedCurve::P_256 => Some(Curve::P256),
            RecommendedCurve::P_384 => Some(Curve::P384),
            _ => None,
        }
    }

    /// The one signing algorithm aws-lc offers per curve: the curve's own hash.
    pub(super) fn signing(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }
}

/// A new pair, each half as the managed object it is stored as.
pub(super) struct NewPair {
    pub private: ManagedObject,
    pub public: ManagedObject,
}

fn invalid(what: impl Into<String>) -> OpError {
    OpError::invalid_field(what)
}

/// The pair Create Key Pair is asked for: Cryptographic Algorithm RSA with a
/// Cryptographic Length of 2048, 3072 or 4096; or EC/ECDSA on P-256 or P-384,
/// named by Cryptographic Domain Parameters' Recommended Curve or by length.
pub(super) fn pair_spec(attributes: &[Attribute]) -> Result<(CryptographicAlgorithm, PairSpec), OpError> {
    let find = |name: &str| attributes.iter().find(|a| a.name == name).map(|a| &a.value);
    let algorithm = find(crate::keys::names::CRYPTOGRAPHIC_ALGORITHM)
        .and_then(|v| v.as_enum())
        .map(CryptographicAlgorithm)
        .ok_or_else(|| invalid("Cryptographic Algorithm (RSA, EC or ECDSA) is required"))?;
    let length = find(crate::keys::names::CRYPTOGRAPHIC_LENGTH).and_then(|v| v.as_i32());
    let curve = find(crate::kmip::attribute::attr::CRYPTOGRAPHIC_DOMAIN_PARAMETERS)
        .and_then(|v| v.children_with(tags::RECOMMENDED_CURVE).next())
        .and_then(|i| i.as_enum())
        .map(RecommendedCurve);
    let spec = match algorithm {
        CryptographicAlgorithm::RSA => match length {
            Some(bits @ (2048 | 3072 | 4096)) => PairSpec::Rsa(bits as u32),
            Some(bits) => {
                return Err(invalid(format!(
                    "RSA keys of {bits} bits are not made here (2048, 3072, 4096)"
                )));
            }
            None => return Err(invalid("Cryptographic Length is required for RSA")),
        },
        CryptographicAlgorithm::EC | CryptographicAlgorithm::ECDSA => {
            let by_curve = match curve {
                Some(c) => Some(
                    Curve::from_recommended(c)
                        .ok_or_else(|| invalid("EC keys are made on P-256 or P-384 here"))?,
                ),
                None => None,
            };
            let by_length = match length {
                Some(bits) => Some(
                    Curve::from_bits(bits)
                        .ok_or_else(|| invalid("EC keys are made on P-256 or P-384 here"))?,
                ),
                None => None,
            };
            match (by_curve, by_length) {
                (Some(a), Some(b)) if a != b => {
                    return Err(invalid("the curve and the Cryptographic Length disagree"));
                }
                (Some(c), _) | (None, Some(c)) => PairSpec::Ec(c),
                (None, None) => return Err(invalid("name a curve (Recommended Curve) or a length")),
            }
        }
        other => {
            return Err(invalid(format!(
                "{} key pairs are not made here (RSA, EC, ECDSA)",
                other.name().unwrap_or("unknown")
            )));
        }
    };
    Ok((algorithm, spec))
}

fn failure(what: &str) -> OpError {
    OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, what)
}

fn block(format: KeyFormatType, algorithm: CryptographicAlgorithm, bits: i32, der: SecretBytes) -> KeyBlock {
    KeyBlock {
        key_format_type: format,
        key_compression_type: None,
        key_value: Some(KeyValue::Plain {
            key_material: KeyMaterial::Bytes(der),
            attributes: Vec::new(),
        }),
        cryptographic_algorithm: Some(algorithm),
        cryptographic_length: Some(bits),
        key_wrapping_data: None,
    }
}

/// Generates a pair (CPU-bound: an RSA-4096 key takes up to seconds; the
/// caller runs this off the async threads). The private key is PKCS#8; the
/// public key PKCS#1 for RSA (what PyKMIP and the 1.x test cases use) and
/// X.509 SubjectPublicKeyInfo for EC.
pub(super) fn generate(algorithm: CryptographicAlgorithm, spec: PairSpec) -> Result<NewPair, OpError> {
    match spec {
        PairSpec::Rsa(bits) => {
            let size = match bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let pair = RsaKeyPair::generate(size).map_err(|_| failure("RSA key generation failed"))?;
            let pkcs8 = pair.as_der().map_err(|_| failure("RSA key encoding failed"))?;
            let private = SecretBytes::from_slice(pkcs8.as_ref());
            let public = SecretBytes::from_slice(pair.public_key().as_ref());
            let bits = bits as i32;
            Ok(NewPair {
                private: ManagedObject::PrivateKey {
                    key_block: block(KeyFormatType::PKCS_8, algorithm, bits, private),
                },
                public: ManagedObject::PublicKey {
                    key_block: block(KeyFormatType::PKCS_1, algorithm, bits, public),
                },
            })
        }
        PairSpec::Ec(curve) => {
            let pair =
                EcdsaKeyPair::generate(curve.signing()).map_err(|_| failure("EC key generation failed"))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| failure("EC key encoding failed"))?;
            let spki = pair
                .public_key()
                .as_der()
                .map_err(|_| failure("EC key encoding failed"))?;
            Ok(NewPair {
                private: ManagedObject::PrivateKey {
                    key_block: block(
                        KeyFormatType::PKCS_8,
                        algorithm,
                        curve.bits(),
                        SecretBytes::from_slice(pkcs8.as_ref()),
                    ),
                },
                public: ManagedObject::PublicKey {
                    key_block: block(
                        KeyFormatType::X_509,
                        algorithm,
                        curve.bits(),
                        SecretBytes::from_slice(spki.as_ref()),
                    ),
                },
            })
        }
    }
}

/// A private key opened for one signature.
pub(super) enum PrivateKey {
    Rsa(RsaKeyPair),
    /// Parsed for its curve's own hash, the one it signs with.
    Ec(Curve, EcdsaKeyPair),
}

/// A public key read for one verification.
pub(super) enum PublicKey {
    /// PKCS#1 RSAPublicKey DER.
    Rsa(Vec<u8>),
    /// The uncompressed point.
    Ec(Curve, Vec<u8>),
}

fn der_of(block: &KeyBlock) -> Result<&SecretBytes, OpError> {
    match &block.key_value {
        Some(KeyValue::Plain {
            key_material: KeyMaterial::Bytes(der),
            ..
        }) => Ok(der),
        _ => Err(OpError::new(
            ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "asymmetric keys are taken as PKCS#1, PKCS#8 or X.509 DER here",
        )),
    }
}

/// Reads a private key's DER: PKCS#8 (RSA or EC) or PKCS#1 (RSA).
pub(super) fn read_private(block: &KeyBlock) -> Result<PrivateKey, OpError> {
    let der = der_of(block)?.expose();
    let bad = || {
        invalid(
            "the key material is not a PKCS#8 or PKCS#1 private key keyward reads (RSA 2048-8192, EC P-256/P-384)",
        )
    };
    match block.key_format_type {
        KeyFormatType::PKCS_8 => {
            if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                return Ok(PrivateKey::Rsa(pair));
            }
            for curve in [Curve::P256, Curve::P384] {
                if let Ok(pair) = EcdsaKeyPair::from_pkcs8(curve.signing(), der) {
                    return Ok(PrivateKey::Ec(curve, pair));
                }
            }
            if RsaKeyPair::from_der(der).is_ok() {
                return Err(invalid(
                    "the material is a PKCS#1 RSAPrivateKey, not PKCS#8: give Key Format Type PKCS_1",
                ));
            }
            Err(bad())
        }
        KeyFormatType::PKCS_1 => RsaKeyPair::from_der(der).map(PrivateKey::Rsa).map_err(|_| bad()),
        // RFC 5915 ECPrivateKey (SEC 1), with its curve named inside.
        KeyFormatType::ECPRIVATEKEY => [Curve::P256, Curve::P384]
            .into_iter()
            .find_map(|curve| {
                EcdsaKeyPair::from_private_key_der(curve.signing(), der)
                    .ok()
                    .map(|pair| PrivateKey::Ec(curve, pair))
            })
            .ok_or_else(|| invalid("the key material is not an ECPrivateKey on P-256 or P-384")),
        _ => Err(OpError::new(
            ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "private keys are taken as PKCS#8, PKCS#1 or ECPrivateKey here",
        )),
    }
}

/// Reads a public key's DER: PKCS#1 RSAPublicKey, or X.509
/// SubjectPublicKeyInfo (RSA, or EC on P-256/P-384).
pub(super) fn read_public(block: &KeyBlock) -> Result<PublicKey, OpError> {
    let der = der_of(block)?.expose();
    let bad = |what: &str| invalid(format!("the key material is not {what}"));
    match block.key_format_type {
        KeyFormatType::PKCS_1 => {
            signature::RsaParameters::public_modulus_len(der).map_err(|_| bad("a PKCS#1 RSA public key"))?;
            Ok(PublicKey::Rsa(der.to_vec()))
        }
        KeyFormatType::X_509 => {
            let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
                .map_err(|_| bad("an X.509 SubjectPublicKeyInfo"))?;
            if !rest.is_empty() {
                return Err(bad("one X.509 SubjectPublicKeyInfo (bytes follow it)"));
            }
            let oid = spki.algorithm.algorithm.to_id_string();
            match oid.as_str() {
                "1.2.840.113549.1.1.1" => {
                    let key = RsaPublicKey::from_der(der).map_err(|_| bad("an RSA public key"))?;
                    Ok(PublicKey::Rsa(key.as_ref().to_vec()))
                }
                "1.2.840.10045.2.1" => {
                    let curve = spki
                        .algorithm
                        .parameters
                        .as_ref()
                        .and_then(|p| p.as_oid().ok())
                        .map(|o| o.to_id_string());
                    let curve = match curve.as_deref() {
                        Some("1.2.840.10045.3.1.7") => Curve::P256,
                        Some("1.3.132.0.34") => Curve::P384,
                        _ => return Err(bad("an EC key on P-256 or P-384")),
                    };
                    Ok(PublicKey::Ec(curve, spki.subject_public_key.data.to_vec()))
                }
                _ => Err(bad("an RSA or EC public key")),
            }
        }
        _ => Err(OpError::new(
            ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "public keys are taken as PKCS#1 or X.509 here",
        )),
    }
}

impl PrivateKey {
    fn algorithm_and_bits(&self) -> (CryptographicAlgorithm, i32) {
        match self {
            PrivateKey::Rsa(pair) => (
                CryptographicAlgorithm::RSA,
                i32::try_from(pair.public_modulus_len() * 8).unwrap_or(i32::MAX),
            ),
            PrivateKey::Ec(curve, _) => (CryptographicAlgorithm::EC, curve.bits()),
        }
    }
}

impl PublicKey {
    fn algorithm_and_bits(&self) -> Result<(CryptographicAlgorithm, i32), OpError> {
        match self {
            PublicKey::Rsa(der) => {
                let bits = signature::RsaParameters::public_modulus_len(der)
                    .map_err(|_| invalid("the key material is not an RSA public key"))?;
                Ok((
                    CryptographicAlgorithm::RSA,
                    i32::try_from(bits).unwrap_or(i32::MAX),
                ))
            }
            PublicKey::Ec(curve, _) => Ok((CryptographicAlgorithm::EC, curve.bits())),
        }
    }
}

/// The bit length of a big-endian unsigned integer (leading zeros ignored).
fn bit_length(bytes: &[u8]) -> i32 {
    let bytes = match bytes.iter().position(|b| *b != 0) {
        Some(first) => &bytes[first..],
        None => return 0,
    };
    let whole = i32::try_from(bytes.len().saturating_sub(1) * 8).unwrap_or(i32::MAX);
    whole.saturating_add(8 - bytes[0].leading_zeros() as i32)
}

/// One DER value and nothing after it.
fn der_value(der: &[u8]) -> Option<x509_parser::der_parser::ber::BerObject<'_>> {
    match x509_parser::der_parser::parse_der(der) {
        Ok((rest, value)) if rest.is_empty() => Some(value),
        _ => None,
    }
}

/// The modulus length of an RSA key aws-lc does not take (under 2048 bits),
/// read from its DER structure: RSAPrivateKey or RSAPublicKey (PKCS#1),
/// PrivateKeyInfo (PKCS#8) or SubjectPublicKeyInfo (X.509).
fn rsa_bits_from_structure(format: KeyFormatType, private: bool, der: &[u8]) -> Option<i32> {
    const RSA_OID: &str = "1.2.840.113549.1.1.1";
    let top = der_value(der)?;
    let fields = top.as_sequence().ok()?;
    let modulus = match (format, private) {
        (KeyFormatType::PKCS_1, true) if fields.len() >= 9 => fields[1].as_slice().ok()?,
        (KeyFormatType::PKCS_1, false) if fields.len() == 2 => fields[0].as_slice().ok()?,
        (KeyFormatType::PKCS_8, true) if fields.len() >= 3 => {
            let algorithm = fields[1]
                .as_sequence()
                .ok()?
                .first()?
                .as_oid()
                .ok()?
                .to_id_string();
            if algorithm != RSA_OID {
                return None;
            }
            return rsa_bits_from_structure(KeyFormatType::PKCS_1, true, fields[2].as_slice().ok()?);
        }
        _ => return None,
    };
    Some(bit_length(modulus))
}

/// A transparent key's family and length, its required fields checked: RSA
/// (Modulus, and Public or Private Exponent) and DSA (P, Q, G, and Y or X).
fn transparent_bits(block: &KeyBlock, private: bool) -> Result<(CryptographicAlgorithm, i32), OpError> {
    let Some(KeyValue::Plain {
        key_material: KeyMaterial::Other(material),
        ..
    }) = &block.key_value
    else {
        return Err(invalid("a transparent key's material is a structure"));
    };
    let big = |tag| match material.child(tag).map(|i| &i.value) {
        Some(crate::ttlv::Value::BigInteger(b)) => Ok(bit_length(b.expose())),
        _ => Err(invalid("the transparent key lacks a required field")),
    };
    match (block.key_format_type, private) {
        (KeyFormatType::TRANSPARENT_RSA_PUBLIC_KEY, false) => {
            big(tags::PUBLIC_EXPONENT)?;
            Ok((CryptographicAlgorithm::RSA, big(tags::MODULUS)?))
        }
        (KeyFormatType::TRANSPARENT_RSA_PRIVATE_KEY, true) => {
            big(tags::PRIVATE_EXPONENT).or_else(|_| big(tags::P).and(big(tags::Q)))?;
            Ok((CryptographicAlgorithm::RSA, big(tags::MODULUS)?))
        }
        (KeyFormatType::TRANSPARENT_DSA_PUBLIC_KEY, false)
        | (KeyFormatType::TRANSPARENT_DSA_PRIVATE_KEY, true) => {
            big(tags::Q)?;
            big(tags::G)?;
            big(if private { tags::X } else { tags::Y })?;
            Ok((CryptographicAlgorithm::DSA, big(tags::P)?))
        }
        _ => Err(OpError::new(
            ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "this key format type is not taken for this object",
        )),
    }
}

/// A key's family and length as Register checks it: keys keyward can use
/// are parsed whole; RSA keys under 2048 bits, transparent RSA and DSA keys
/// are stored (the Baseline profile asks a server to keep them) after their
/// structure is checked, and Sign and Signature Verify refuse them.
fn registered_bits(block: &KeyBlock, private: bool) -> Result<(CryptographicAlgorithm, i32), OpError> {
    let transparent = [
        KeyFormatType::TRANSPARENT_RSA_PUBLIC_KEY,
        KeyFormatType::TRANSPARENT_RSA_PRIVATE_KEY,
        KeyFormatType::TRANSPARENT_DSA_PUBLIC_KEY,
        KeyFormatType::TRANSPARENT_DSA_PRIVATE_KEY,
    ];
    if transparent.contains(&block.key_format_type) {
        return transparent_bits(block, private);
    }
    let parsed = if private {
        read_private(block).map(|k| k.algorithm_and_bits())
    } else {
        read_public(block).and_then(|k| k.algorithm_and_bits())
    };
    match parsed {
        Ok(found) => Ok(found),
        Err(e) => match der_of(block)
            .ok()
            .and_then(|der| rsa_bits_from_structure(block.key_format_type, private, der.expose()))
        {
            Some(bits) if bits < 2048 => Ok((CryptographicAlgorithm::RSA, bits)),
            _ => Err(e),
        },
    }
}

/// Checks a registered public or private key and returns the attributes its
/// material implies (algorithm, length) that the client did not give. A key
/// block that claims another algorithm family or length than the material
/// holds is refused.
pub(super) fn inspect_registered(object: &ManagedObject) -> Result<Vec<Attribute>, OpError> {
    let (block, found) = match object {
        ManagedObject::PrivateKey { key_block } => (key_block, registered_bits(key_block, true)?),
        ManagedObject::PublicKey { key_block } => (key_block, registered_bits(key_block, false)?),
        _ => return Ok(Vec::new()),
    };
    let (family, bits) = found;
    if let Some(claimed) = block.cryptographic_algorithm {
        let same_family = claimed == family
            || (family == CryptographicAlgorithm::EC
                && matches!(
                    claimed,
                    CryptographicAlgorithm::ECDSA | CryptographicAlgorithm::ECDH
                ));
        if !same_family {
            return Err(invalid(
                "the key block's Cryptographic Algorithm is not the key material's",
            ));
        }
    }
    if let Some(claimed) = block.cryptographic_length
        && claimed != bits
    {
        return Err(invalid(format!(
            "the key block says {claimed} bits; the key material holds a {bits}-bit key"
        )));
    }
    let mut implied = Vec::new();
    if block.cryptographic_algorithm.is_none() {
        implied.push(Attribute::new(
            crate::keys::names::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(family.0),
        ));
    }
    if block.cryptographic_length.is_none() {
        implied.push(Attribute::new(
            crate::keys::names::CRYPTOGRAPHIC_LENGTH,
            Value::Integer(bits),
        ));
    }
    Ok(implied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pairs_read_back() {
        for (alg, spec) in [
            (CryptographicAlgorithm::RSA, PairSpec::Rsa(2048)),
            (CryptographicAlgorithm::EC, PairSpec::Ec(Curve::P256)),
            (CryptographicAlgorithm::ECDSA, PairSpec::Ec(Curve::P384)),
        ] {
            let pair = generate(alg, spec).unwrap();
            assert!(inspect_registered(&pair.private).unwrap().is_empty());
            assert!(inspect_registered(&pair.public).unwrap().is_empty());
        }
    }

    #[test]
    fn a_claimed_length_must_be_the_material_s() {
        let pair = generate(CryptographicAlgorithm::RSA, PairSpec::Rsa(2048)).unwrap();
        let ManagedObject::PublicKey { mut key_block } = pair.public else {
            panic!()
        };
        key_block.cryptographic_length = Some(4096);
        let err = inspect_registered(&ManagedObject::PublicKey { key_block }).unwrap_err();
        assert!(err.message.contains("2048-bit"), "{}", err.message);
    }

    #[test]
    fn garbage_is_refused_clearly() {
        let key_block = block(
            KeyFormatType::PKCS_8,
            CryptographicAlgorithm::RSA,
            2048,
            SecretBytes::from_slice(b"not a key"),
        );
        assert!(inspect_registered(&ManagedObject::PrivateKey { key_block }).is_err());
    }

    #[test]
    fn pair_spec_reads_rsa_and_curves() {
        let attrs = |alg: CryptographicAlgorithm, len: i32| {
            vec![
                Attribute::new("Cryptographic Algorithm", Value::Enumeration(alg.0)),
                Attribute::new("Cryptographic Length", Value::Integer(len)),
            ]
        };
        assert_eq!(
            pair_spec(&attrs(CryptographicAlgorithm::RSA, 3072)).unwrap().1,
            PairSpec::Rsa(3072)
        );
        assert_eq!(
            pair_spec(&attrs(CryptographicAlgorithm::EC, 384)).unwrap().1,
            PairSpec::Ec(Curve::P384)
        );
        assert!(pair_spec(&attrs(CryptographicAlgorithm::RSA, 1024)).is_err());
        assert!(pair_spec(&attrs(CryptographicAlgorithm::AES, 256)).is_err());
    }
}
