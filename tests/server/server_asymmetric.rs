//! Public and private keys and certificates against the running server:
//! Create Key Pair (RSA and EC), Sign and Signature Verify checked against
//! aws-lc-rs with the keys' own bytes, Register of certificates and keys; and
//! what a client may not do — another group's key, a key whose mask or state
//! forbids it, a public key to sign, material that is not what it claims —
//! each refused. The private key is stored only sealed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use common::TestServer;
use common::admin::{audit_file_once, call, failure, issue_client, runtime, with_audit_file};
use common::kmip_client::ClientTls;
use common::vcenter::{expect_success, uid_payload};
use keyward::kmip::attribute::{Attribute, TemplateAttribute};
use keyward::kmip::message::ResponseBatchItem;
use keyward::kmip::object::{KeyBlock, KeyMaterial, KeyValue, ManagedObject};
use keyward::kmip::payload::Payload;
use keyward::kmip::payload::create_key_pair;
use keyward::kmip::payload::crypt::CryptographicParameters;
use keyward::kmip::payload::proof::{SignRequest, SignResponse, VerifyRequest, VerifyResponse};
use keyward::kmip::payload::register;
use keyward::kmip::{
    CertificateType, CryptographicAlgorithm, DigitalSignatureAlgorithm, HashingAlgorithm, KeyFormatType,
    ObjectType, Operation, PaddingMethod, ResultReason, ValidityIndicator, tags,
};
use keyward::secret::SecretBytes;
use keyward::ttlv::{Item, Value};

const MESSAGE: &[u8] = b"release 4.2.0 manifest";
const SIGN: i32 = 0x1;
const VERIFY: i32 = 0x2;

async fn ask(server: &TestServer, tls: &ClientTls, operation: Operation, payload: Item) -> ResponseBatchItem {
    call(server.addr, tls, None, operation, payload).await
}

fn pair_request(algorithm: CryptographicAlgorithm, length: i32, private_mask: i32, public_mask: i32) -> Item {
    create_key_pair::Request {
        common: TemplateAttribute::new(vec![
            Attribute::new("Cryptographic Algorithm", Value::Enumeration(algorithm.0)),
            Attribute::new("Cryptographic Length", Value::Integer(length)),
        ]),
        private_key: TemplateAttribute::new(vec![Attribute::new(
            "Cryptographic Usage Mask",
            Value::Integer(private_mask),
        )]),
        public_key: TemplateAttribute::new(vec![Attribute::new(
            "Cryptographic Usage Mask",
            Value::Integer(public_mask),
        )]),
        extra: Vec::new(),
    }
    .to_payload()
}

async fn create_pair(
    server: &TestServer,
    tls: &ClientTls,
    algorithm: CryptographicAlgorithm,
    length: i32,
) -> (String, String) {
    let answer = ask(
        server,
        tls,
        Operation::CREATE_KEY_PAIR,
        pair_request(algorithm, length, SIGN, VERIFY),
    )
    .await;
    let r = create_key_pair::Response::from_payload(expect_success(&answer)).unwrap();
    (r.private_key_unique_identifier, r.public_key_unique_identifier)
}

/// The object's key block by Get.
async fn key_block(server: &TestServer, tls: &ClientTls, uid: &str) -> KeyBlock {
    let got = ask(server, tls, Operation::GET, uid_payload(uid)).await;
    match keyward::kmip::payload::get::Response::from_payload(expect_success(&got))
        .unwrap()
        .object
    {
        ManagedObject::PublicKey { key_block } | ManagedObject::PrivateKey { key_block } => key_block,
        other => panic!("{other:?}"),
    }
}

fn der(block: &KeyBlock) -> Vec<u8> {
    match &block.key_value {
        Some(KeyValue::Plain {
            key_material: KeyMaterial::Bytes(b),
            ..
        }) => b.expose().to_vec(),
        other => panic!("{other:?}"),
    }
}

fn params(
    dsa: Option<DigitalSignatureAlgorithm>,
    padding: Option<PaddingMethod>,
) -> Option<CryptographicParameters> {
    Some(CryptographicParameters {
        digital_signature_algorithm: dsa,
        padding_method: padding,
        hashing_algorithm: padding.map(|_| HashingAlgorithm::SHA_256),
        cryptographic_algorithm: padding.map(|_| CryptographicAlgorithm::RSA),
        ..CryptographicParameters::default()
    })
}

fn sign_request(uid: &str, p: Option<CryptographicParameters>, data: &[u8]) -> Item {
    SignRequest {
        unique_identifier: Some(uid.to_owned()),
        cryptographic_parameters: p,
        data: SecretBytes::from_slice(data),
        extra: Vec::new(),
    }
    .to_payload()
}

fn verify_request(uid: &str, p: Option<CryptographicParameters>, data: &[u8], sig: &[u8]) -> Item {
    VerifyRequest {
        unique_identifier: Some(uid.to_owned()),
        cryptographic_parameters: p,
        data: SecretBytes::from_slice(data),
        proof: sig.to_vec(),
        extra: Vec::new(),
    }
    .to_payload()
}

async fn activate(server: &TestServer, tls: &ClientTls, uid: &str) {
    expect_success(&ask(server, tls, Operation::ACTIVATE, uid_payload(uid)).await);
}

async fn signed(
    server: &TestServer,
    tls: &ClientTls,
    uid: &str,
    p: Option<CryptographicParameters>,
) -> Vec<u8> {
    let answer = ask(server, tls, Operation::SIGN, sign_request(uid, p, MESSAGE)).await;
    SignResponse::from_payload(expect_success(&answer)).unwrap().proof
}

async fn verdict(
    server: &TestServer,
    tls: &ClientTls,
    uid: &str,
    p: Option<CryptographicParameters>,
    data: &[u8],
    sig: &[u8],
) -> ValidityIndicator {
    let answer = ask(
        server,
        tls,
        Operation::SIGNATURE_VERIFY,
        verify_request(uid, p, data, sig),
    )
    .await;
    VerifyResponse::from_payload(expect_success(&answer))
        .unwrap()
        .validity_indicator
}

/// The Link of this type on the object, by Get Attributes.
async fn link_target(server: &TestServer, tls: &ClientTls, uid: &str) -> String {
    let answer = ask(server, tls, Operation::GET_ATTRIBUTES, uid_payload(uid)).await;
    let payload = expect_success(&answer);
    let link = payload
        .children_with(tags::ATTRIBUTE)
        .map(|a| Attribute::from_item(a).unwrap())
        .find(|a| a.name == "Link")
        .expect("a Link attribute");
    link.value
        .child(tags::LINKED_OBJECT_IDENTIFIER)
        .and_then(Item::as_text)
        .unwrap()
        .to_owned()
}

#[test]
fn key_pairs_sign_and_verify_with_keys_that_stay_in_the_server() {
    let server = TestServer::start_with(with_audit_file);
    let tls_a = issue_client(&server, "a", "g1", &[]);
    let tls_b = issue_client(&server, "b", "g2", &[]);
    let rt = runtime();
    rt.block_on(async {
        // RSA-2048: PKCS#8 private, PKCS#1 public, linked to each other.
        let (private, public) = create_pair(&server, &tls_a, CryptographicAlgorithm::RSA, 2048).await;
        assert_eq!(link_target(&server, &tls_a, &private).await, public);
        assert_eq!(link_target(&server, &tls_a, &public).await, private);
        let private_block = key_block(&server, &tls_a, &private).await;
        let public_block = key_block(&server, &tls_a, &public).await;
        assert_eq!(private_block.key_format_type, KeyFormatType::PKCS_8);
        assert_eq!(public_block.key_format_type, KeyFormatType::PKCS_1);
        assert_eq!(public_block.cryptographic_length, Some(2048));
        let pkcs8 = der(&private_block);
        let pkcs1 = der(&public_block);
        let local = signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(
            aws_lc_rs::signature::KeyPair::public_key(&local).as_ref(),
            &pkcs1[..]
        );

        // A Pre-Active key signs nothing.
        let pss = params(None, Some(PaddingMethod::PSS));
        let answer = ask(
            &server,
            &tls_a,
            Operation::SIGN,
            sign_request(&private, pss.clone(), MESSAGE),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::WRONG_KEY_LIFECYCLE_STATE);
        activate(&server, &tls_a, &private).await;
        activate(&server, &tls_a, &public).await;

        // PSS and PKCS#1 v1.5, each checked with the public key's own bytes.
        let sig = signed(&server, &tls_a, &private, pss.clone()).await;
        UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, &pkcs1)
            .verify(MESSAGE, &sig)
            .expect("a PSS signature over the message");
        assert_eq!(
            verdict(&server, &tls_a, &public, pss.clone(), MESSAGE, &sig).await,
            ValidityIndicator::VALID
        );
        assert_eq!(
            verdict(&server, &tls_a, &public, pss.clone(), b"another manifest", &sig).await,
            ValidityIndicator::INVALID
        );
        let v15 = params(Some(DigitalSignatureAlgorithm::SHA_256_WITH_RSA_ENCRYPTION), None);
        let sig = signed(&server, &tls_a, &private, v15.clone()).await;
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &pkcs1)
            .verify(MESSAGE, &sig)
            .expect("a PKCS#1 v1.5 signature");

        // Refusals: no scheme guessed, a public key does not sign, another
        // group sees nothing, the public key's mask allows no signing,
        // pre-hashed data is not taken.
        let answer = ask(
            &server,
            &tls_a,
            Operation::SIGN,
            sign_request(&private, None, MESSAGE),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);
        let answer = ask(
            &server,
            &tls_a,
            Operation::SIGN,
            sign_request(&public, pss.clone(), MESSAGE),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::CRYPTOGRAPHIC_FAILURE);
        let answer = ask(
            &server,
            &tls_b,
            Operation::SIGN,
            sign_request(&private, pss.clone(), MESSAGE),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::ITEM_NOT_FOUND);
        let answer = ask(&server, &tls_b, Operation::GET, uid_payload(&private)).await;
        assert_eq!(failure(&answer), ResultReason::ITEM_NOT_FOUND);
        let mut digested = SignRequest::from_payload(&sign_request(&private, pss.clone(), MESSAGE)).unwrap();
        digested.extra.push(Item::new(
            tags::DIGESTED_DATA,
            Value::ByteString(SecretBytes::from_slice(&[0; 32])),
        ));
        let answer = ask(&server, &tls_a, Operation::SIGN, digested.to_payload()).await;
        assert_eq!(failure(&answer), ResultReason::FEATURE_NOT_SUPPORTED);
        let (verify_only, _) = {
            let answer = ask(
                &server,
                &tls_a,
                Operation::CREATE_KEY_PAIR,
                pair_request(CryptographicAlgorithm::RSA, 2048, VERIFY, VERIFY),
            )
            .await;
            let r = create_key_pair::Response::from_payload(expect_success(&answer)).unwrap();
            (r.private_key_unique_identifier, r.public_key_unique_identifier)
        };
        activate(&server, &tls_a, &verify_only).await;
        let answer = ask(
            &server,
            &tls_a,
            Operation::SIGN,
            sign_request(&verify_only, pss.clone(), MESSAGE),
        )
        .await;
        assert_eq!(
            failure(&answer),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );

        // Weak or unknown pairs are not made.
        for (alg, len) in [
            (CryptographicAlgorithm::RSA, 1024),
            (CryptographicAlgorithm::EC, 521),
            (CryptographicAlgorithm::AES, 256),
        ] {
            let answer = ask(
                &server,
                &tls_a,
                Operation::CREATE_KEY_PAIR,
                pair_request(alg, len, SIGN, VERIFY),
            )
            .await;
            assert_eq!(failure(&answer), ResultReason::INVALID_FIELD, "{alg:?} {len}");
        }

        // EC P-256: ECDSA with SHA-256, checked with the SubjectPublicKeyInfo's point.
        let (ec_private, ec_public) = create_pair(&server, &tls_a, CryptographicAlgorithm::EC, 256).await;
        activate(&server, &tls_a, &ec_private).await;
        activate(&server, &tls_a, &ec_public).await;
        let ecdsa = params(Some(DigitalSignatureAlgorithm::ECDSA_WITH_SHA256), None);
        let sig = signed(&server, &tls_a, &ec_private, ecdsa.clone()).await;
        assert_eq!(
            verdict(&server, &tls_a, &ec_public, ecdsa.clone(), MESSAGE, &sig).await,
            ValidityIndicator::VALID
        );
        let spki = der(&key_block(&server, &tls_a, &ec_public).await);
        let point = &spki[spki.len() - 65..];
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(MESSAGE, &sig)
            .expect("an ECDSA P-256 signature");

        // The private key is on disk only sealed.
        let db = std::fs::read(server.path("keyward.db")).unwrap_or_default();
        let wal = std::fs::read(server.path("keyward.db-wal")).unwrap_or_default();
        for file in [&db, &wal] {
            assert!(
                !file.windows(64).any(|w| w == &pkcs8[pkcs8.len() - 64..]),
                "private key material in the store's files"
            );
        }
    });
    let audit = audit_file_once(&server, "the key pair and signature events", |t| {
        t.contains(r#""operation":"CreateKeyPair""#) && t.contains(r#""operation":"SignatureVerify""#)
    });
    assert!(audit.contains(r#""operation":"Sign""#), "{audit}");
    // Neither the data nor a signature reaches the audit trail.
    assert!(!audit.contains("release 4.2.0"), "{audit}");
}

fn register_request(object: ManagedObject) -> Item {
    register::Request {
        object_type: object.object_type(),
        template_attribute: TemplateAttribute::default(),
        object,
        extra: Vec::new(),
    }
    .to_payload()
}

#[test]
fn register_checks_certificates_and_keys_against_what_they_claim() {
    let server = TestServer::start();
    let tls = server.client_tls();
    let rt = runtime();
    rt.block_on(async {
        // The server's own CA certificate, as DER.
        let pem = std::fs::read_to_string(server.path("pki/ca.pem")).unwrap();
        let cert_der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let certificate = ManagedObject::Certificate {
            certificate_type: CertificateType::X_509,
            value: SecretBytes::from_slice(&cert_der),
        };
        let answer = ask(
            &server,
            &tls,
            Operation::REGISTER,
            register_request(certificate.clone()),
        )
        .await;
        let uid = expect_success(&answer)
            .child(tags::UNIQUE_IDENTIFIER)
            .and_then(Item::as_text)
            .unwrap()
            .to_owned();
        let got = ask(&server, &tls, Operation::GET, uid_payload(&uid)).await;
        let got = keyward::kmip::payload::get::Response::from_payload(expect_success(&got)).unwrap();
        assert_eq!(got.object_type, ObjectType::CERTIFICATE);
        assert_eq!(got.object, certificate);
        // Found by its Certificate Type.
        let locate = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![Attribute::new("Certificate Type", Value::Enumeration(CertificateType::X_509.0)).to_item()],
        );
        let found = ask(&server, &tls, Operation::LOCATE, locate).await;
        let found: Vec<_> = expect_success(&found)
            .children_with(tags::UNIQUE_IDENTIFIER)
            .filter_map(Item::as_text)
            .collect();
        assert_eq!(found, vec![uid.as_str()]);

        // Not a certificate; a PKCS#1 key called PKCS#8; a length the key
        // does not have: each refused with what is wrong.
        let garbage = ManagedObject::Certificate {
            certificate_type: CertificateType::X_509,
            value: SecretBytes::from_slice(&cert_der[..cert_der.len() - 10]),
        };
        let answer = ask(&server, &tls, Operation::REGISTER, register_request(garbage)).await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);

        let pair = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs1_public = aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref().to_vec();
        let block = |format: KeyFormatType, bits: i32, bytes: &[u8]| KeyBlock {
            key_format_type: format,
            cryptographic_length: Some(bits),
            ..KeyBlock::raw(CryptographicAlgorithm::RSA, SecretBytes::from_slice(bytes))
        };
        let public = ManagedObject::PublicKey {
            key_block: block(KeyFormatType::PKCS_1, 2048, &pkcs1_public),
        };
        let answer = ask(&server, &tls, Operation::REGISTER, register_request(public)).await;
        expect_success(&answer);
        let wrong_length = ManagedObject::PublicKey {
            key_block: block(KeyFormatType::PKCS_1, 4096, &pkcs1_public),
        };
        let answer = ask(&server, &tls, Operation::REGISTER, register_request(wrong_length)).await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);
        assert!(
            answer
                .result_message
                .as_deref()
                .unwrap_or("")
                .contains("2048-bit"),
            "{answer:?}"
        );
        let raw_public = ManagedObject::PublicKey {
            key_block: block(KeyFormatType::RAW, 2048, &pkcs1_public),
        };
        let answer = ask(&server, &tls, Operation::REGISTER, register_request(raw_public)).await;
        assert_eq!(failure(&answer), ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED);
    });
}

#[test]
fn the_new_operations_need_the_credential_of_a_password_client() {
    let server = TestServer::start();
    let password_file = server.path("signer.password");
    std::fs::write(&password_file, "correct horse battery staple\n").unwrap();
    let tls = issue_client(
        &server,
        "signer",
        "signers",
        &[
            "--username",
            "signer",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    );
    let credential = Some(("signer", "correct horse battery staple"));
    let rt = runtime();
    rt.block_on(async {
        let pair = pair_request(CryptographicAlgorithm::EC, 256, SIGN, VERIFY);
        let answer = call(server.addr, &tls, None, Operation::CREATE_KEY_PAIR, pair.clone()).await;
        assert_eq!(failure(&answer), ResultReason::AUTHENTICATION_NOT_SUCCESSFUL);
        let answer = call(server.addr, &tls, credential, Operation::CREATE_KEY_PAIR, pair).await;
        let made = create_key_pair::Response::from_payload(expect_success(&answer)).unwrap();
        let ecdsa = params(Some(DigitalSignatureAlgorithm::ECDSA_WITH_SHA256), None);
        for (op, payload) in [
            (
                Operation::SIGN,
                sign_request(&made.private_key_unique_identifier, ecdsa.clone(), MESSAGE),
            ),
            (
                Operation::SIGNATURE_VERIFY,
                verify_request(
                    &made.public_key_unique_identifier,
                    ecdsa.clone(),
                    MESSAGE,
                    &[0; 8],
                ),
            ),
        ] {
            let answer = call(server.addr, &tls, None, op, payload).await;
            assert_eq!(
                failure(&answer),
                ResultReason::AUTHENTICATION_NOT_SUCCESSFUL,
                "{op:?}"
            );
        }
    });
}
