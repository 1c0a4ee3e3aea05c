//! Encrypt and Decrypt against the running server: AES-GCM with additional
//! data and AES-CBC, the answers checked against aws-lc-rs with the key's own
//! bytes; and what a client may not do — another group's key, a key whose
//! usage mask or state forbids it, a forged tag, too much data — each refused
//! without the plaintext reaching the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::TestServer;
use common::admin::{audit_file_once, call, failure, issue_client, runtime, with_audit_file};
use common::kmip_client::ClientTls;
use common::vcenter::{Vcenter, expect_success, uid_payload};
use keyward::kmip::message::ResponseBatchItem;
use keyward::kmip::payload::Payload;
use keyward::kmip::payload::crypt::{
    CryptographicParameters, DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse,
};
use keyward::kmip::{
    BlockCipherMode, CryptographicAlgorithm, ObjectType, Operation, PaddingMethod, ResultReason, tags,
};
use keyward::secret::SecretBytes;
use keyward::ttlv::{Item, Value};

/// One request on its own connection, without a credential.
async fn ask(server: &TestServer, tls: &ClientTls, operation: Operation, payload: Item) -> ResponseBatchItem {
    call(server.addr, tls, None, operation, payload).await
}

/// A key's bytes by Get, whatever its algorithm (vCenter's helper expects AES).
async fn raw_key(server: &TestServer, tls: &ClientTls, uid: &str) -> SecretBytes {
    use keyward::kmip::object::{KeyMaterial, KeyValue, ManagedObject};
    let got = ask(server, tls, Operation::GET, uid_payload(uid)).await;
    match keyward::kmip::payload::get::Response::from_payload(expect_success(&got))
        .unwrap()
        .object
    {
        ManagedObject::SymmetricKey { key_block } => match key_block.key_value {
            Some(KeyValue::Plain {
                key_material: KeyMaterial::Bytes(b),
                ..
            }) => b,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

const PLAINTEXT: &[u8] = b"card 4111 1111 1111 1111, expires 12/29";

fn gcm() -> Option<CryptographicParameters> {
    Some(CryptographicParameters {
        block_cipher_mode: Some(BlockCipherMode::GCM),
        ..CryptographicParameters::default()
    })
}

fn encrypt(uid: &str, params: Option<CryptographicParameters>, data: &[u8], aad: Option<&[u8]>) -> Item {
    EncryptRequest {
        unique_identifier: Some(uid.to_owned()),
        cryptographic_parameters: params,
        data: SecretBytes::from_slice(data),
        iv_counter_nonce: None,
        aad: aad.map(<[u8]>::to_vec),
        tag: None,
        extra: Vec::new(),
    }
    .to_payload()
}

fn decrypt(uid: &str, sealed: &EncryptResponse, aad: &[u8], tag: Vec<u8>) -> Item {
    DecryptRequest {
        unique_identifier: Some(uid.to_owned()),
        cryptographic_parameters: gcm(),
        data: sealed.data.clone(),
        iv_counter_nonce: sealed.iv_counter_nonce.clone(),
        aad: Some(aad.to_vec()),
        tag: Some(tag),
        extra: Vec::new(),
    }
    .to_payload()
}

/// Create's payload for an AES-256 key with this usage mask.
fn create_with_mask(mask: i32) -> Item {
    let attribute = |name: &str, value: Value| {
        Item::structure(
            tags::ATTRIBUTE,
            vec![
                Item::new(tags::ATTRIBUTE_NAME, Value::TextString(name.into())),
                Item::new(tags::ATTRIBUTE_VALUE, value),
            ],
        )
    };
    Item::structure(
        tags::REQUEST_PAYLOAD,
        vec![
            Item::new(tags::OBJECT_TYPE, Value::Enumeration(ObjectType::SYMMETRIC_KEY.0)),
            Item::structure(
                tags::TEMPLATE_ATTRIBUTE,
                vec![
                    attribute(
                        "Cryptographic Algorithm",
                        Value::Enumeration(CryptographicAlgorithm::AES.0),
                    ),
                    attribute("Cryptographic Length", Value::Integer(256)),
                    attribute("Cryptographic Usage Mask", Value::Integer(mask)),
                ],
            ),
        ],
    )
}

fn created_uid(answer: &ResponseBatchItem) -> String {
    expect_success(answer)
        .child(tags::UNIQUE_IDENTIFIER)
        .and_then(Item::as_text)
        .unwrap()
        .to_owned()
}

#[test]
fn encrypt_and_decrypt_under_a_key_that_stays_in_the_server() {
    let server = TestServer::start_with(with_audit_file);
    let tls_a = issue_client(&server, "a", "g1", &[]);
    let tls_b = issue_client(&server, "b", "g2", &[]);
    let rt = runtime();
    rt.block_on(async {
        let vc = Vcenter::new(server.addr, tls_a.clone());
        // vCenter's kind of key: AES-256, Encrypt|Decrypt, Active.
        let (uid, key) = vc
            .encrypt_vm("564d0000-0000-0000-0000-0000000c0001", "db-01")
            .await;
        let aad = b"row 17";

        // GCM, the IV made by the server: standard AES-GCM under the key's bytes.
        let answer = ask(
            &server,
            &tls_a,
            Operation::ENCRYPT,
            encrypt(&uid, gcm(), PLAINTEXT, Some(aad)),
        )
        .await;
        let sealed = EncryptResponse::from_payload(expect_success(&answer)).unwrap();
        let iv: [u8; 12] = sealed.iv_counter_nonce.clone().unwrap().try_into().unwrap();
        let tag = sealed.tag.clone().unwrap();
        assert_eq!((sealed.data.len(), tag.len()), (PLAINTEXT.len(), 16));
        let local = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key.0).unwrap(),
        );
        let mut in_out = [sealed.data.expose(), &tag].concat();
        let opened = local
            .open_in_place(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(iv),
                aws_lc_rs::aead::Aad::from(aad),
                &mut in_out,
            )
            .unwrap();
        assert_eq!(opened, PLAINTEXT);

        let answer = ask(
            &server,
            &tls_a,
            Operation::DECRYPT,
            decrypt(&uid, &sealed, aad, tag.clone()),
        )
        .await;
        let back = DecryptResponse::from_payload(expect_success(&answer)).unwrap();
        assert_eq!(back.data.expose(), PLAINTEXT);

        // A forged tag, other additional data: Cryptographic Failure, nothing else said.
        let mut forged = tag.clone();
        forged[15] ^= 1;
        for (aad, tag) in [(&aad[..], forged), (&b"row 18"[..], tag.clone())] {
            let answer = ask(
                &server,
                &tls_a,
                Operation::DECRYPT,
                decrypt(&uid, &sealed, aad, tag),
            )
            .await;
            assert_eq!(failure(&answer), ResultReason::CRYPTOGRAPHIC_FAILURE);
        }

        // CBC with PKCS#5 padding, the client's IV.
        let cbc = Some(CryptographicParameters {
            block_cipher_mode: Some(BlockCipherMode::CBC),
            padding_method: Some(PaddingMethod::PKCS5),
            ..CryptographicParameters::default()
        });
        let mut request = EncryptRequest::from_payload(&encrypt(&uid, cbc.clone(), PLAINTEXT, None)).unwrap();
        request.iv_counter_nonce = Some(vec![7; 16]);
        let answer = ask(&server, &tls_a, Operation::ENCRYPT, request.to_payload()).await;
        let sealed = EncryptResponse::from_payload(expect_success(&answer)).unwrap();
        assert_eq!(sealed.iv_counter_nonce, None, "the client's IV is not sent back");
        // PKCS#5 always pads: one to sixteen bytes.
        assert_eq!(sealed.data.len(), (PLAINTEXT.len() / 16 + 1) * 16);

        // Another group's key: Item Not Found, as for an id never issued.
        let never = "00000000-0000-4000-8000-000000000000";
        for id in [uid.as_str(), never] {
            let answer = ask(
                &server,
                &tls_b,
                Operation::ENCRYPT,
                encrypt(id, gcm(), PLAINTEXT, None),
            )
            .await;
            assert_eq!(failure(&answer), ResultReason::ITEM_NOT_FOUND);
        }

        // No mode given, ECB asked for, too much data.
        let answer = ask(
            &server,
            &tls_a,
            Operation::ENCRYPT,
            encrypt(&uid, None, PLAINTEXT, None),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);
        let ecb = Some(CryptographicParameters {
            block_cipher_mode: Some(BlockCipherMode::ECB),
            ..CryptographicParameters::default()
        });
        let answer = ask(
            &server,
            &tls_a,
            Operation::ENCRYPT,
            encrypt(&uid, ecb, PLAINTEXT, None),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::FEATURE_NOT_SUPPORTED);
        let big = vec![0u8; 64 * 1024 + 1];
        let answer = ask(
            &server,
            &tls_a,
            Operation::ENCRYPT,
            encrypt(&uid, gcm(), &big, None),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);

        // A key whose mask allows Decrypt only, then one not yet Active.
        let decrypt_only = created_uid(&ask(&server, &tls_a, Operation::CREATE, create_with_mask(8)).await);
        expect_success(&ask(&server, &tls_a, Operation::ACTIVATE, uid_payload(&decrypt_only)).await);
        let answer = ask(
            &server,
            &tls_a,
            Operation::ENCRYPT,
            encrypt(&decrypt_only, gcm(), PLAINTEXT, None),
        )
        .await;
        assert_eq!(
            failure(&answer),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );
        let pre_active = created_uid(&ask(&server, &tls_a, Operation::CREATE, create_with_mask(12)).await);
        let answer = ask(
            &server,
            &tls_a,
            Operation::ENCRYPT,
            encrypt(&pre_active, gcm(), PLAINTEXT, None),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::WRONG_KEY_LIFECYCLE_STATE);
    });
    // Audited by operation and key, never with the data.
    let audit = audit_file_once(&server, "the Encrypt and Decrypt events", |t| {
        t.contains("Encrypt") && t.contains("Decrypt")
    });
    // Pieces of the plaintext long enough not to turn up by chance: "4111"
    // alone does, in a port, a time's nanoseconds or a fingerprint's hex.
    for piece in ["4111 1111", "expires 12/29"] {
        assert!(!audit.contains(piece), "plaintext in the audit trail");
    }
    assert!(
        !audit.contains(&hex::encode(PLAINTEXT)),
        "plaintext (hex) in the audit trail"
    );
}

/// Create's payload for an HMAC key.
fn create_hmac(algorithm: CryptographicAlgorithm, mask: i32) -> Item {
    let mut payload = create_with_mask(mask);
    if let Value::Structure(items) = &mut payload.value
        && let Some(template) = items.iter_mut().find(|i| i.tag == tags::TEMPLATE_ATTRIBUTE)
        && let Value::Structure(attributes) = &mut template.value
    {
        attributes[0] = Item::structure(
            tags::ATTRIBUTE,
            vec![
                Item::new(
                    tags::ATTRIBUTE_NAME,
                    Value::TextString("Cryptographic Algorithm".into()),
                ),
                Item::new(tags::ATTRIBUTE_VALUE, Value::Enumeration(algorithm.0)),
            ],
        );
    }
    payload
}

#[test]
fn mac_and_mac_verify_under_an_hmac_key_that_stays_in_the_server() {
    use keyward::kmip::ValidityIndicator;
    use keyward::kmip::payload::proof::{MacRequest, MacResponse, MacVerifyRequest, MacVerifyResponse};
    let server = TestServer::start();
    let tls = server.client_tls();
    runtime().block_on(async {
        // MAC Generate | MAC Verify.
        let created = ask(
            &server,
            &tls,
            Operation::CREATE,
            create_hmac(CryptographicAlgorithm::HMAC_SHA256, 0x180),
        )
        .await;
        let uid = created_uid(&created);
        expect_success(&ask(&server, &tls, Operation::ACTIVATE, uid_payload(&uid)).await);
        let key = raw_key(&server, &tls, &uid).await;
        let mac_request = |uid: &str, params: Option<CryptographicParameters>| MacRequest {
            unique_identifier: Some(uid.to_owned()),
            cryptographic_parameters: params,
            data: SecretBytes::from_slice(PLAINTEXT),
            extra: Vec::new(),
        };
        let answer = ask(
            &server,
            &tls,
            Operation::MAC,
            mac_request(&uid, None).to_payload(),
        )
        .await;
        let mac = MacResponse::from_payload(expect_success(&answer)).unwrap().proof;
        let local = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose()),
            PLAINTEXT,
        );
        assert_eq!(mac, local.as_ref());

        let verify = |mac_data: Vec<u8>| MacVerifyRequest {
            unique_identifier: Some(uid.clone()),
            cryptographic_parameters: None,
            data: SecretBytes::from_slice(PLAINTEXT),
            proof: mac_data,
            extra: Vec::new(),
        };
        let mut wrong = mac.clone();
        wrong[0] ^= 1;
        for (mac_data, expected) in [
            (mac.clone(), ValidityIndicator::VALID),
            (wrong, ValidityIndicator::INVALID),
        ] {
            let answer = ask(
                &server,
                &tls,
                Operation::MAC_VERIFY,
                verify(mac_data).to_payload(),
            )
            .await;
            let got = MacVerifyResponse::from_payload(expect_success(&answer))
                .unwrap()
                .validity_indicator;
            assert_eq!(got, expected);
        }

        // The parameters may not ask for another hash than the key's.
        let sha512 = Some(CryptographicParameters {
            cryptographic_algorithm: Some(CryptographicAlgorithm::HMAC_SHA512),
            ..CryptographicParameters::default()
        });
        let answer = ask(
            &server,
            &tls,
            Operation::MAC,
            mac_request(&uid, sha512).to_payload(),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);
        // An AES key makes no MAC; an HMAC key allowed only to verify makes none either.
        let (aes, _) = Vcenter::new(server.addr, tls.clone())
            .encrypt_vm("564d0000-0000-0000-0000-0000000c0002", "m")
            .await;
        let answer = ask(
            &server,
            &tls,
            Operation::MAC,
            mac_request(&aes, None).to_payload(),
        )
        .await;
        assert_eq!(
            failure(&answer),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );
        let verify_only = created_uid(
            &ask(
                &server,
                &tls,
                Operation::CREATE,
                create_hmac(CryptographicAlgorithm::HMAC_SHA256, 0x100),
            )
            .await,
        );
        expect_success(&ask(&server, &tls, Operation::ACTIVATE, uid_payload(&verify_only)).await);
        let answer = ask(
            &server,
            &tls,
            Operation::MAC,
            mac_request(&verify_only, None).to_payload(),
        )
        .await;
        assert_eq!(
            failure(&answer),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );
    });
}

/// A Get payload asking for the key wrapped under `wrapping` (AES key wrap).
fn get_wrapped(uid: &str, wrapping: &str, encoding: Option<u32>) -> Item {
    let mut spec = vec![
        Item::new(tags::WRAPPING_METHOD, Value::Enumeration(1)),
        Item::structure(
            tags::ENCRYPTION_KEY_INFORMATION,
            vec![
                Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString(wrapping.into())),
                Item::structure(
                    tags::CRYPTOGRAPHIC_PARAMETERS,
                    vec![Item::new(
                        tags::BLOCK_CIPHER_MODE,
                        Value::Enumeration(BlockCipherMode::NISTKEYWRAP.0),
                    )],
                ),
            ],
        ),
    ];
    if let Some(e) = encoding {
        spec.push(Item::new(tags::ENCODING_OPTION, Value::Enumeration(e)));
    }
    Item::structure(
        tags::REQUEST_PAYLOAD,
        vec![
            Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString(uid.into())),
            Item::structure(tags::KEY_WRAPPING_SPECIFICATION, spec),
        ],
    )
}

#[test]
fn get_hands_a_key_out_wrapped_under_a_key_that_stays_in_the_server() {
    use keyward::kmip::object::{KeyValue, ManagedObject};
    let server = TestServer::start();
    let tls_a = issue_client(&server, "a", "g1", &[]);
    let tls_b = issue_client(&server, "b", "g2", &[]);
    runtime().block_on(async {
        let vc = Vcenter::new(server.addr, tls_a.clone());
        let (uid, key) = vc.encrypt_vm("564d0000-0000-0000-0000-0000000c0003", "w").await;
        // Wrap Key (0x10) | Unwrap Key (0x20).
        let wrapping = created_uid(&ask(&server, &tls_a, Operation::CREATE, create_with_mask(0x30)).await);
        expect_success(&ask(&server, &tls_a, Operation::ACTIVATE, uid_payload(&wrapping)).await);
        let kek = vc.get(&wrapping).await;

        let answer = ask(
            &server,
            &tls_a,
            Operation::GET,
            get_wrapped(&uid, &wrapping, Some(1)),
        )
        .await;
        let got = keyward::kmip::payload::get::Response::from_payload(expect_success(&answer)).unwrap();
        let ManagedObject::SymmetricKey { key_block } = got.object else {
            panic!("not a symmetric key")
        };
        let Some(KeyValue::Wrapped(wrapped)) = key_block.key_value else {
            panic!("not wrapped")
        };
        assert!(key_block.key_wrapping_data.is_some());
        // It unwraps, under the wrapping key's bytes, to the key (RFC 3394).
        use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
        let mut out = [0u8; 40];
        let unwrapped = KeyEncryptionKey::new(&AES_256, &kek.0)
            .unwrap()
            .unwrap(wrapped.expose(), &mut out)
            .unwrap();
        assert_eq!(unwrapped, key.0.as_slice());

        // Refused: under itself, under a key not allowed to wrap, TTLV encoding,
        // and for another group (its own wrapping key or not): Item Not Found.
        let answer = ask(&server, &tls_a, Operation::GET, get_wrapped(&uid, &uid, None)).await;
        assert_eq!(failure(&answer), ResultReason::INVALID_FIELD);
        let (no_wrap, _) = vc.encrypt_vm("564d0000-0000-0000-0000-0000000c0004", "x").await;
        let answer = ask(&server, &tls_a, Operation::GET, get_wrapped(&uid, &no_wrap, None)).await;
        assert_eq!(
            failure(&answer),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );
        let answer = ask(
            &server,
            &tls_a,
            Operation::GET,
            get_wrapped(&uid, &wrapping, Some(2)),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::ENCODING_OPTION_ERROR);
        let theirs = created_uid(&ask(&server, &tls_b, Operation::CREATE, create_with_mask(0x30)).await);
        expect_success(&ask(&server, &tls_b, Operation::ACTIVATE, uid_payload(&theirs)).await);
        let answer = ask(&server, &tls_a, Operation::GET, get_wrapped(&uid, &theirs, None)).await;
        assert_eq!(
            failure(&answer),
            ResultReason::ITEM_NOT_FOUND,
            "another group's wrapping key"
        );
        let answer = ask(&server, &tls_b, Operation::GET, get_wrapped(&uid, &theirs, None)).await;
        assert_eq!(
            failure(&answer),
            ResultReason::ITEM_NOT_FOUND,
            "another group's key"
        );
    });
}

/// Register's payload for an AES-256 key whose value is `wrapped` under `wrapping`.
fn register_wrapped(wrapping: &str, wrapped: &[u8]) -> Item {
    let mask = Item::structure(
        tags::ATTRIBUTE,
        vec![
            Item::new(
                tags::ATTRIBUTE_NAME,
                Value::TextString("Cryptographic Usage Mask".into()),
            ),
            Item::new(tags::ATTRIBUTE_VALUE, Value::Integer(12)),
        ],
    );
    Item::structure(
        tags::REQUEST_PAYLOAD,
        vec![
            Item::new(tags::OBJECT_TYPE, Value::Enumeration(ObjectType::SYMMETRIC_KEY.0)),
            Item::structure(tags::TEMPLATE_ATTRIBUTE, vec![mask]),
            Item::structure(
                tags::SYMMETRIC_KEY,
                vec![Item::structure(
                    tags::KEY_BLOCK,
                    vec![
                        Item::new(tags::KEY_FORMAT_TYPE, Value::Enumeration(1)),
                        Item::new(
                            tags::KEY_VALUE,
                            Value::ByteString(SecretBytes::from_slice(wrapped)),
                        ),
                        Item::new(
                            tags::CRYPTOGRAPHIC_ALGORITHM,
                            Value::Enumeration(CryptographicAlgorithm::AES.0),
                        ),
                        Item::new(tags::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
                        Item::structure(
                            tags::KEY_WRAPPING_DATA,
                            vec![
                                Item::new(tags::WRAPPING_METHOD, Value::Enumeration(1)),
                                Item::structure(
                                    tags::ENCRYPTION_KEY_INFORMATION,
                                    vec![Item::new(
                                        tags::UNIQUE_IDENTIFIER,
                                        Value::TextString(wrapping.into()),
                                    )],
                                ),
                            ],
                        ),
                    ],
                )],
            ),
        ],
    )
}

#[test]
fn register_takes_key_material_wrapped_under_a_managed_key() {
    use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
    let server = TestServer::start();
    let tls = server.client_tls();
    runtime().block_on(async {
        let wrapping = created_uid(&ask(&server, &tls, Operation::CREATE, create_with_mask(0x30)).await);
        expect_success(&ask(&server, &tls, Operation::ACTIVATE, uid_payload(&wrapping)).await);
        let vc = Vcenter::new(server.addr, tls.clone());
        let kek = vc.get(&wrapping).await;
        let key = [0x3c_u8; 32];
        let mut out = [0u8; 40];
        let wrapped = KeyEncryptionKey::new(&AES_256, &kek.0)
            .unwrap()
            .wrap(&key, &mut out)
            .unwrap()
            .to_vec();

        let answer = ask(
            &server,
            &tls,
            Operation::REGISTER,
            register_wrapped(&wrapping, &wrapped),
        )
        .await;
        let uid = created_uid(&answer);
        expect_success(&ask(&server, &tls, Operation::ACTIVATE, uid_payload(&uid)).await);
        assert_eq!(
            vc.get(&uid).await.0,
            key,
            "stored unwrapped, handed out as registered"
        );

        // A value that does not unwrap, or a key not allowed to unwrap: refused, nothing stored.
        let mut forged = wrapped.clone();
        forged[5] ^= 1;
        let answer = ask(
            &server,
            &tls,
            Operation::REGISTER,
            register_wrapped(&wrapping, &forged),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::CRYPTOGRAPHIC_FAILURE);
        let (no_unwrap, _) = vc.encrypt_vm("564d0000-0000-0000-0000-0000000c0005", "u").await;
        let answer = ask(
            &server,
            &tls,
            Operation::REGISTER,
            register_wrapped(&no_unwrap, &wrapped),
        )
        .await;
        assert_eq!(
            failure(&answer),
            ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
        );
        // A 256-bit HMAC key allowed to unwrap is still no AES key-encryption
        // key, even for a value wrapped under its bytes.
        let hmac_unwrap = created_uid(
            &ask(
                &server,
                &tls,
                Operation::CREATE,
                create_hmac(CryptographicAlgorithm::HMAC_SHA256, 0x20),
            )
            .await,
        );
        expect_success(&ask(&server, &tls, Operation::ACTIVATE, uid_payload(&hmac_unwrap)).await);
        let hmac_bytes = raw_key(&server, &tls, &hmac_unwrap).await;
        let mut out = [0u8; 40];
        let under_hmac = KeyEncryptionKey::new(&AES_256, hmac_bytes.expose())
            .unwrap()
            .wrap(&key, &mut out)
            .unwrap()
            .to_vec();
        let answer = ask(
            &server,
            &tls,
            Operation::REGISTER,
            register_wrapped(&hmac_unwrap, &under_hmac),
        )
        .await;
        assert_eq!(failure(&answer), ResultReason::CRYPTOGRAPHIC_FAILURE);
    });
}
