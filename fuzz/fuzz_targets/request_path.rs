//! The whole request path a client reaches once its TLS handshake is done:
//! TTLV decode → request model → Username/Password check → operations →
//! response, against a memory store and a software sealer (AES-256-GCM), as
//! the server runs it (`ops::Operations::handle`, the listener's handler).
//!
//! What must hold, whatever the bytes:
//! - no panic, and every message that decodes as TTLV gets an answer;
//! - every answer decodes (TTLV and the response model), within the maximum
//!   message size, one batch item per outcome reported to the audit trail;
//! - group isolation: a key of another group, present in the store from the
//!   start: its material and its identifier never appear in an answer (unless
//!   the input itself carried them), and no operation on it succeeds.
//!
//! Input: byte 0 picks the client (bit 0: a password-protected client of group
//! `tenant`, else one of the default group); the rest is one connection's
//! messages, one after another (TTLV frames; trailing bytes that frame no
//! message are sent as a last message).
#![no_main]

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use keyward::auth::{Caller, ClientIdentity, TrustSnapshot, TrustSource};
use keyward::hsm::{AsyncHsm, CrkVersion, Hsm, HsmError, HsmStatus};
use keyward::keys::KeyService;
use keyward::kmip::message::ResponseMessage;
use keyward::kmip::object::{KeyBlock, ManagedObject};
use keyward::kmip::{CryptographicAlgorithm, ObjectType};
use keyward::ops::{Operations, ServerInfo};
use keyward::password::{ClientPassword, MIN_ITERATIONS, PasswordHash};
use keyward::pki::CertificateAuthority;
use keyward::secret::SecretBytes;
use keyward::store::MemoryStore;
use keyward::ttlv::{DecodeLimits, HEADER_LEN, decode_with, frame_len};
use libfuzzer_sys::fuzz_target;

/// Bytes of the other group's key: what must never come back.
const FOREIGN_KEY: [u8; 32] = *b"\x9e\x17other-group-key-material\x01\x02\x03\x04\x05\x06";
const TENANT_USER: &str = "vcenter";
const TENANT_PASSWORD: &[u8] = b"fuzz-tenant-password";

/// A sealer in software: AES-256-GCM under a key made at start, the AAD bound,
/// a counter as nonce (unique per process). Random bytes come from a counter
/// too. (Runs do not repeat exactly: the credential cache and failure window
/// carry over from input to input as in a server, and uids are random.)
struct SoftwareSealer {
    key: LessSafeKey,
    nonces: AtomicU64,
    random: AtomicU64,
}

impl SoftwareSealer {
    fn new() -> Self {
        let key = UnboundKey::new(&AES_256_GCM, &[0x42; 32]).expect("a 32-byte key");
        SoftwareSealer {
            key: LessSafeKey::new(key),
            nonces: AtomicU64::new(1),
            random: AtomicU64::new(1),
        }
    }
}

impl Hsm for SoftwareSealer {
    fn seal(&self, _: CrkVersion, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[4..].copy_from_slice(&self.nonces.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut sealed)
            .map_err(|_| HsmError::Other("seal".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }
    fn unseal(&self, _: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError> {
        if blob.len() < NONCE_LEN {
            return Err(HsmError::BadBlob);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| HsmError::BadBlob)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| HsmError::BadBlob)?;
        Ok(SecretBytes::from_slice(plain))
    }
    fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
        let n = self.random.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(len);
        let mut block = 0u64;
        while out.len() < len {
            let d = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                &[n.to_be_bytes(), block.to_be_bytes()].concat(),
            );
            out.extend_from_slice(d.as_ref());
            block += 1;
        }
        out.truncate(len);
        Ok(SecretBytes::new(out))
    }
    fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
        Ok(vec![CrkVersion(1)])
    }
    fn create_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
        Err(HsmError::Other("not in the fuzz harness".into()))
    }
    fn destroy_crk(&self, _: CrkVersion) -> Result<(), HsmError> {
        Err(HsmError::Other("not in the fuzz harness".into()))
    }
    fn health(&self) -> Result<HsmStatus, HsmError> {
        Err(HsmError::Unavailable("software sealer".into()))
    }
}

/// What lives as long as the process: the runtime, the sealer, the verified
/// identities and the operations (whose credential cache and failure counts
/// carry over from input to input, as they do in a server).
struct Harness {
    rt: tokio::runtime::Runtime,
    hsm: AsyncHsm,
    ops: std::sync::Mutex<Operations>,
    open: ClientIdentity,
    tenant: ClientIdentity,
    limits: DecodeLimits,
}

fn password_hash() -> PasswordHash {
    // The fewest rounds a trust file may hold, so that a wrong password costs
    // as little as the server allows.
    let salt = [7u8; 16];
    let mut hash = [0u8; 32];
    let rounds = NonZeroU32::new(MIN_ITERATIONS).expect("non-zero");
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        TENANT_PASSWORD,
        &mut hash,
    );
    let text = format!("pbkdf2-sha256${MIN_ITERATIONS}${}${}", hex(&salt), hex(&hash));
    PasswordHash::parse(&text).expect("a well-formed hash")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let hsm = AsyncHsm::new(Arc::new(SoftwareSealer::new()), Duration::from_secs(5));
        let open_cert = CertificateAuthority::generate("fuzz open client", 30).expect("a cert");
        let tenant_cert = CertificateAuthority::generate("fuzz tenant client", 30).expect("a cert");
        let mut trust = TrustSnapshot::builder();
        trust
            .add_pinned_cert(TrustSource::new("open", None), open_cert.cert_der())
            .expect("pin");
        let tenant_password = ClientPassword {
            username: TENANT_USER.to_owned(),
            hash: password_hash(),
        };
        trust
            .add_pinned_cert(
                TrustSource::new("tenant", Some("tenant".into())).with_password(Some(tenant_password)),
                tenant_cert.cert_der(),
            )
            .expect("pin");
        let trust = trust.build().expect("trust");
        let now = keyward::clock::unix_now();
        let open = ClientIdentity::from_chain(&[open_cert.cert_der().clone()], &trust, now).expect("trusted");
        let tenant =
            ClientIdentity::from_chain(&[tenant_cert.cert_der().clone()], &trust, now).expect("trusted");
        let limits = DecodeLimits::default();
        let keys = KeyService::new(hsm.clone(), Arc::new(MemoryStore::new()), CrkVersion(1));
        let ops = Operations::new(Arc::new(keys), ServerInfo::default(), limits);
        Harness {
            rt,
            hsm,
            ops: std::sync::Mutex::new(ops),
            open,
            tenant,
            limits,
        }
    })
}

/// The input's messages: whole frames, then whatever is left as one more.
fn messages(mut rest: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= HEADER_LEN {
        let header: [u8; HEADER_LEN] = rest[..HEADER_LEN].try_into().expect("8 bytes");
        match frame_len(&header, max) {
            Ok(total) if total <= rest.len() => {
                out.push(&rest[..total]);
                rest = &rest[total..];
            }
            _ => break,
        }
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let h = harness();
    let mut ops = h.ops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A fresh store per input, holding one key of a group neither client is in.
    let keys = KeyService::new(h.hsm.clone(), Arc::new(MemoryStore::new()), CrkVersion(1));
    let foreign = ManagedObject::SymmetricKey {
        key_block: KeyBlock::raw(CryptographicAlgorithm::AES, SecretBytes::from_slice(&FOREIGN_KEY)),
    }
    .into_item();
    let foreign_uid =
        h.rt.block_on(keys.create(
            "other",
            ObjectType::SYMMETRIC_KEY,
            &foreign,
            Vec::new(),
            1_700_000_000,
        ))
        .expect("the foreign key is stored");
    ops.keys = Arc::new(keys);
    // One connection: its caller (and its proved credential) spans the messages.
    let identity = if selector & 1 == 1 { &h.tenant } else { &h.open };
    let caller = Caller::new(identity);
    let input_has_foreign_key = contains(data, &FOREIGN_KEY);
    let input_names_foreign_uid = contains(data, foreign_uid.as_bytes());
    for message in messages(stream, h.limits.max_message_bytes) {
        let handled = h.rt.block_on(ops.handle(&caller, message));
        let decodes = decode_with(message, &h.limits).is_ok();
        let Some(response) = handled.response else {
            assert!(!decodes, "a TTLV message got no answer");
            continue;
        };
        assert!(
            response.len() <= h.limits.max_message_bytes,
            "answer over the maximum size"
        );
        let tree = decode_with(&response, &h.limits).expect("the answer decodes");
        let model = ResponseMessage::from_item(&tree).expect("the answer is a response message");
        assert_eq!(
            model.batch_items.len(),
            handled.outcomes.len(),
            "an answer without its audit outcome"
        );
        assert!(
            input_has_foreign_key || !contains(&response, &FOREIGN_KEY),
            "another group's key material reached a client"
        );
        // Nor does any operation succeed on it, nor its identifier reach the
        // client (a Locate that found it, say).
        assert!(
            !handled
                .outcomes
                .iter()
                .any(|o| o.result.is_ok() && o.unique_identifier.as_deref() == Some(foreign_uid.as_str())),
            "an operation on another group's key succeeded"
        );
        assert!(
            input_names_foreign_uid || !contains(&response, foreign_uid.as_bytes()),
            "another group's key identifier reached a client"
        );
    }
});
