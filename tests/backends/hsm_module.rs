//! The HSM layer against a real PKCS#11 module: SoftHSM2 by default, and the
//! same tests against Kryoptic and openCryptoki's soft token when
//! `$KEYWARD_TEST_PKCS11` names one (`scripts/test` runs all three; see
//! `keyward::hsm::test_module`). Each test runs in its own child process with
//! a fresh token. A module that cannot be loaded is a failure, not a skip.
// Helpers below are test code too (clippy.toml only exempts #[test] fns).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use keyward::hsm::seal::SealingProfile;
use keyward::hsm::test_module::{Implementation, TestToken, run_isolated};
use keyward::hsm::{AsyncHsm, CrkVersion, Hsm, HsmError, Pkcs11Hsm, TokenSelector, provision, seal};
use keyward::secret::SecretString;

fn isolated(body: impl FnOnce(&TestToken)) {
    if let Err(report) = run_isolated(body) {
        panic!("{report}");
    }
}

fn connect(token: &TestToken) -> Pkcs11Hsm {
    Pkcs11Hsm::connect(&token.config()).unwrap()
}

const KEK: [u8; 32] = [0x5a; 32];

/// openCryptoki's soft token (3.8, Debian 12) has no AES-GCM.
fn expected_profile(token: &TestToken) -> SealingProfile {
    match token.implementation {
        Implementation::OpenCryptoki => SealingProfile::AesCbcHmacSha256,
        _ => SealingProfile::AesGcm,
    }
}

#[test]
fn create_crk_and_refuse_duplicate() {
    isolated(|token| {
        let hsm = connect(token);
        assert_eq!(hsm.crk_versions().unwrap(), vec![]);
        hsm.create_crk(CrkVersion(1)).unwrap();
        assert_eq!(hsm.create_crk(CrkVersion(1)), Err(HsmError::AlreadyExists));
        hsm.create_crk(CrkVersion(7)).unwrap();
        assert_eq!(hsm.crk_versions().unwrap(), vec![CrkVersion(1), CrkVersion(7)]);
        hsm.destroy_crk(CrkVersion(1)).unwrap();
        assert_eq!(hsm.destroy_crk(CrkVersion(1)), Err(HsmError::NotFound));
        assert_eq!(hsm.crk_versions().unwrap(), vec![CrkVersion(7)]);
    });
}

#[test]
fn seal_unseal_round_trip_and_bad_blobs() {
    isolated(|token| {
        let hsm = connect(token);
        let crk = CrkVersion(1);
        hsm.create_crk(crk).unwrap();
        let aad = b"uid=1234|type=SymmetricKey|crk=1";
        let blob = hsm.seal(crk, aad, &KEK).unwrap();
        assert_eq!(blob.len(), hsm.sealing_profile().sealed_len(KEK.len()));
        assert_eq!(hsm.sealing_profile(), expected_profile(token));
        assert_eq!(seal::blob_crk_version(&blob), Some(crk));
        assert!(
            !blob.windows(8).any(|w| w == &KEK[..8]),
            "plaintext visible in blob"
        );
        assert_eq!(hsm.unseal(crk, aad, &blob).unwrap().expose(), &KEK);

        // Two seals of the same key differ (fresh IV each time).
        assert_ne!(hsm.seal(crk, aad, &KEK).unwrap(), blob);

        // Other identity → bad blob.
        assert_eq!(
            hsm.unseal(crk, b"uid=9999|type=SymmetricKey|crk=1", &blob).err(),
            Some(HsmError::BadBlob)
        );
        // Any flipped bit → bad blob (header, IV, ciphertext, tag).
        for i in [0, 3, 5, 16, 17, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let got = hsm.unseal(crk, aad, &bad).err();
            assert_eq!(got, Some(HsmError::BadBlob), "flip at byte {i}");
        }
        // Truncated → bad blob.
        assert_eq!(
            hsm.unseal(crk, aad, &blob[..blob.len() - 1]).err(),
            Some(HsmError::BadBlob)
        );
        assert_eq!(hsm.unseal(crk, aad, &blob[..10]).err(), Some(HsmError::BadBlob));
        // Still works after all those failures (sessions not left broken).
        assert_eq!(hsm.unseal(crk, aad, &blob).unwrap().expose(), &KEK);
    });
}

#[test]
fn wrong_or_missing_crk_version() {
    isolated(|token| {
        let hsm = connect(token);
        hsm.create_crk(CrkVersion(1)).unwrap();
        hsm.create_crk(CrkVersion(2)).unwrap();
        let blob = hsm.seal(CrkVersion(1), b"id", &KEK).unwrap();
        // Asking for another version than the blob names.
        assert_eq!(
            hsm.unseal(CrkVersion(2), b"id", &blob).err(),
            Some(HsmError::BadBlob)
        );
        // Rewriting the version in the blob: authenticated, and another key.
        let mut relabelled = blob.clone();
        relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            hsm.unseal(CrkVersion(2), b"id", &relabelled).err(),
            Some(HsmError::BadBlob)
        );
        // A version that does not exist.
        assert_eq!(
            hsm.seal(CrkVersion(3), b"id", &KEK).err(),
            Some(HsmError::NotFound)
        );
        let mut v3 = blob.clone();
        v3[1..5].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(
            hsm.unseal(CrkVersion(3), b"id", &v3).err(),
            Some(HsmError::NotFound)
        );
        // Destroying the CRK shreds what it sealed.
        hsm.destroy_crk(CrkVersion(1)).unwrap();
        assert_eq!(
            hsm.unseal(CrkVersion(1), b"id", &blob).err(),
            Some(HsmError::NotFound)
        );
    });
}

#[test]
fn random_lengths() {
    isolated(|token| {
        let hsm = connect(token);
        for len in [0, 1, 12, 32, 1024] {
            assert_eq!(hsm.random(len).unwrap().len(), len);
        }
        assert_ne!(hsm.random(32).unwrap(), hsm.random(32).unwrap());
        assert!(matches!(hsm.random(1025), Err(HsmError::InvalidRequest(_))));
    });
}

#[test]
fn crk_is_sensitive_and_never_extractable() {
    isolated(|token| {
        let hsm = connect(token);
        hsm.create_crk(CrkVersion(4)).unwrap();
        drop(hsm);
        // Read the attributes back with plain cryptoki.
        let ctx = Pkcs11::new(&token.module).unwrap();
        // Kryoptic stays loaded, and initialized, after the HSM above let go of it.
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| token.selector.slot_only().is_none_or(|id| id == s.id()))
            .unwrap();
        let session = ctx.open_ro_session(slot).unwrap();
        // Private: invisible before login.
        let label = Attribute::Label(b"keyward-crk-4".to_vec());
        assert!(
            session
                .find_objects(std::slice::from_ref(&label))
                .unwrap()
                .is_empty()
        );
        session
            .login(UserType::User, Some(&AuthPin::from(token.user_pin.expose())))
            .unwrap();
        let found = session
            .find_objects(&[label, Attribute::Id(4u32.to_be_bytes().to_vec())])
            .unwrap();
        assert_eq!(found.len(), 1);
        let attrs = session
            .get_attributes(
                found[0],
                &[
                    AttributeType::Class,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::ValueLen,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                    AttributeType::Derive,
                    AttributeType::Sign,
                    AttributeType::Value,
                ],
            )
            .unwrap();
        let mut seen = 0;
        for attr in attrs {
            seen += 1;
            match attr {
                Attribute::Class(c) => assert_eq!(c, ObjectClass::SECRET_KEY),
                Attribute::Token(b)
                | Attribute::Private(b)
                | Attribute::Sensitive(b)
                | Attribute::AlwaysSensitive(b)
                | Attribute::NeverExtractable(b)
                | Attribute::Encrypt(b)
                | Attribute::Decrypt(b) => assert!(b),
                Attribute::Extractable(b)
                | Attribute::Wrap(b)
                | Attribute::Unwrap(b)
                | Attribute::Derive(b)
                | Attribute::Sign(b) => {
                    assert!(!b)
                }
                Attribute::ValueLen(n) => assert_eq!(u64::from(n), 32),
                Attribute::Value(_) => panic!("CRK value readable"),
                other => panic!("unexpected attribute {other:?}"),
            }
        }
        // Value is sensitive: the module omits it.
        assert_eq!(seen, 14);
        // The CBC + HMAC profile's MAC key: sensitive, never extractable, MAC only.
        let mac = session
            .find_objects(&[Attribute::Label(b"keyward-crk-mac-4".to_vec())])
            .unwrap();
        if expected_profile(token) == SealingProfile::AesCbcHmacSha256 {
            assert_eq!(mac.len(), 1);
            let attrs = session
                .get_attributes(
                    mac[0],
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Sign,
                        AttributeType::Encrypt,
                        AttributeType::Value,
                    ],
                )
                .unwrap();
            for attr in &attrs {
                match attr {
                    Attribute::Sensitive(b) | Attribute::Sign(b) => assert!(b),
                    Attribute::Extractable(b) | Attribute::Encrypt(b) => assert!(!b),
                    other => panic!("unexpected MAC key attribute {other:?}"),
                }
            }
            assert_eq!(attrs.len(), 4, "{attrs:?}");
        } else {
            assert!(mac.is_empty());
        }
        drop(session);
        ctx.finalize().unwrap();
    });
}

#[test]
fn handles_are_found_again_by_a_new_module_instance() {
    isolated(|token| {
        let first = connect(token);
        first.create_crk(CrkVersion(1)).unwrap();
        first.create_crk(CrkVersion(2)).unwrap();
        let blob1 = first.seal(CrkVersion(1), b"a", &KEK).unwrap();
        let blob2 = first.seal(CrkVersion(2), b"b", &KEK).unwrap();
        drop(first); // closes sessions and C_Finalize: like a process exit

        let second = connect(token);
        assert_eq!(second.crk_versions().unwrap(), vec![CrkVersion(1), CrkVersion(2)]);
        assert_eq!(second.unseal(CrkVersion(2), b"b", &blob2).unwrap().expose(), &KEK);
        assert_eq!(second.unseal(CrkVersion(1), b"a", &blob1).unwrap().expose(), &KEK);
    });
}

#[test]
fn health_report() {
    isolated(|token| {
        let hsm = connect(token);
        hsm.create_crk(CrkVersion(3)).unwrap();
        let status = hsm.health().unwrap();
        let (library, described) = match token.implementation {
            Implementation::SoftHsm2 => ("SoftHSM", true),
            Implementation::Kryoptic => ("Kryoptic", true),
            // Its token description does not parse (a malformed clock field).
            Implementation::OpenCryptoki => ("IBM", false),
        };
        assert!(status.library.contains(library), "{status:?}");
        if described {
            assert_eq!(status.token_label, token.label);
            assert!(!status.token_serial.is_empty());
        } else {
            assert!(
                status
                    .token_unreadable
                    .as_ref()
                    .is_some_and(|why| why.contains("malformed")),
                "{status:?}"
            );
        }
        assert!(status.logged_in);
        assert_eq!(status.sealing_profile, Some(expected_profile(token)));
        assert_eq!(status.mechanisms_needed, expected_profile(token).mechanisms());
        assert!(status.mechanisms_missing.is_empty(), "{status:?}");
        assert_eq!(status.crk_versions, vec![CrkVersion(3)]);
        let shown = format!("{status:?}");
        assert!(!shown.contains(token.user_pin.expose()));
    });
}

#[test]
fn wrong_pin_is_a_login_error_and_is_not_retried() {
    isolated(|token| {
        let mut cfg = token.config();
        cfg.pin = SecretString::new("not-the-pin".into());
        match Pkcs11Hsm::connect(&cfg) {
            Err(HsmError::Login(why)) => assert!(why.contains("CKR_PIN_INCORRECT"), "{why}"),
            Err(other) => panic!("expected Login, got {other}"),
            Ok(_) => panic!("connected with a wrong PIN"),
        }
        // The right PIN still works: one failed attempt did not lock the token.
        let hsm = connect(token);
        assert!(hsm.health().unwrap().logged_in);
    });
}

#[test]
fn unknown_label_is_unavailable_and_provisioning_refuses_a_second_token() {
    isolated(|token| {
        let mut cfg = token.config();
        cfg.token = TokenSelector::by_label("no-such-token");
        assert!(matches!(Pkcs11Hsm::connect(&cfg), Err(HsmError::Unavailable(_))));
        let status = connect(token).health().unwrap();
        if token.implementation == Implementation::OpenCryptoki {
            return undescribed_token_is_selected_by_slot_id_only(token, status.slot_id);
        }
        // By an RFC 7512 URI: the token's own serial and slot select it; the
        // right label with another serial selects nothing.
        let manufacturer = match token.implementation {
            Implementation::SoftHsm2 => "SoftHSM%20project",
            _ => "Kryoptic%20Project",
        };
        cfg.token = TokenSelector::from_uri(&format!(
            "pkcs11:token={};manufacturer={manufacturer};serial={};slot-id={}",
            token.label, status.token_serial, status.slot_id
        ))
        .unwrap();
        assert!(Pkcs11Hsm::connect(&cfg).unwrap().health().unwrap().logged_in);
        cfg.token = TokenSelector::from_uri(&format!("pkcs11:token={};serial=0000000000000000", token.label))
            .unwrap();
        match Pkcs11Hsm::connect(&cfg) {
            Err(HsmError::Unavailable(why)) => assert!(why.contains("serial \"0000000000000000\""), "{why}"),
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(_) => panic!("connected to a token of another serial"),
        }
        let again = provision::init_token(&token.module, &token.label, &token.so_pin, &token.user_pin);
        assert_eq!(again, Err(HsmError::AlreadyExists));
    });
}

/// A token whose description cannot be parsed: its label cannot be matched,
/// and the refusal says how to select it; `hsm init-token` does not
/// initialize it, since it cannot tell whether it holds keys.
fn undescribed_token_is_selected_by_slot_id_only(token: &TestToken, slot: u64) {
    let mut cfg = token.config();
    cfg.token = TokenSelector::by_label(token.label.clone());
    match Pkcs11Hsm::connect(&cfg) {
        Err(HsmError::Unavailable(why)) => {
            assert!(why.contains(&format!("pkcs11:slot-id={slot}")), "{why}")
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("matched a label the token cannot report"),
    }
    cfg.token = TokenSelector::from_uri(&format!("pkcs11:slot-id={slot}")).unwrap();
    assert!(Pkcs11Hsm::connect(&cfg).unwrap().health().unwrap().logged_in);
    match provision::init_token(&token.module, "another", &token.so_pin, &token.user_pin) {
        Err(HsmError::Other(why)) => assert!(why.contains("select it by slot id"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn async_wrapper_round_trip_on_blocking_threads() {
    isolated(|token| {
        let hsm: Arc<dyn Hsm> = Arc::new(connect(token));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let hsm = AsyncHsm::new(hsm, Duration::from_secs(5));
            hsm.create_crk(CrkVersion(1)).await.unwrap();
            let kek = hsm.random(32).await.unwrap();
            let mut tasks = Vec::new();
            for i in 0..16u32 {
                let hsm = hsm.clone();
                let kek = kek.clone();
                tasks.push(tokio::spawn(async move {
                    let aad = i.to_be_bytes().to_vec();
                    let blob = hsm.seal(CrkVersion(1), aad.clone(), kek.clone()).await.unwrap();
                    let back = hsm.unseal(CrkVersion(1), aad, blob).await.unwrap();
                    assert_eq!(back, kek);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(hsm.crk_versions().await.unwrap(), vec![CrkVersion(1)]);
        });
    });
}
