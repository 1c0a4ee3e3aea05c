//! Seal/unseal throughput on SoftHSM2: AES-256-GCM via `C_Encrypt`/`C_Decrypt`
//! (what `keyward::hsm` ships) against AES key wrap with padding (RFC 5649,
//! `CKM_AES_KEY_WRAP_PAD`) via `C_WrapKey`/`C_UnwrapKey` of a temporary
//! session object, with 1 and 2 threads. Run: `cargo bench --bench seal`.
//!
//! The bench re-runs itself with `SOFTHSM2_CONF` pointing at a private token
//! directory (the variable must be set before the module initializes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::{AuthPin, Ulong};
use keyward::hsm::{CrkVersion, Hsm, Pkcs11Hsm, provision, softhsm};
use keyward::secret::SecretString;

const DIR_ENV: &str = "KEYWARD_BENCH_SOFTHSM_DIR";
const LABEL: &str = "keyward-bench";
const KEK: [u8; 32] = [0x11; 32];
const AAD: &[u8] = b"uid=6f1c0c9e-2b7e-4c55-9d0e-6a1f3e7f2b10|type=SymmetricKey|crk=1";

fn main() {
    match std::env::var_os(DIR_ENV) {
        None => std::process::exit(rerun_with_private_token()),
        Some(_) => run_benches(),
    }
}

fn rerun_with_private_token() -> i32 {
    let dir = std::env::temp_dir().join(format!("keyward-bench-{}", uuid::Uuid::new_v4().simple()));
    let conf = softhsm::write_conf(&dir).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(std::env::args_os().skip(1))
        .env("SOFTHSM2_CONF", conf)
        .env(DIR_ENV, &dir)
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    status.code().unwrap_or(1)
}

/// The KWP alternative, with plain cryptoki: a wrapping key in the token and
/// one session per thread.
struct Kwp {
    ctx: Pkcs11,
    slot: cryptoki::slot::Slot,
    wrapping_key: ObjectHandle,
}

impl Kwp {
    /// The KWP state and the session that owns the login for it.
    fn new(module: &PathBuf, pin: &SecretString) -> (Kwp, Session) {
        let ctx = Pkcs11::new(module).unwrap();
        // Already initialized by Pkcs11Hsm in this process: that is fine.
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = ctx
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == LABEL)
            .unwrap();
        let owner = ctx.open_rw_session(slot).unwrap();
        let _ = owner.login(UserType::User, Some(&AuthPin::from(pin.expose())));
        let wrapping_key = owner
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(Ulong::new(32)),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Wrap(true),
                    Attribute::Unwrap(true),
                    Attribute::Label(b"bench-kwp".to_vec()),
                ],
            )
            .unwrap();
        (
            Kwp {
                ctx,
                slot,
                wrapping_key,
            },
            owner,
        )
    }

    fn session(&self) -> Session {
        self.ctx.open_rw_session(self.slot).unwrap()
    }

    fn seal(&self, s: &Session, plaintext: &[u8]) -> Vec<u8> {
        let tmp = s
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Value(plaintext.to_vec()),
            ])
            .unwrap();
        let wrapped = s
            .wrap_key(&Mechanism::AesKeyWrapPad, self.wrapping_key, tmp)
            .unwrap();
        s.destroy_object(tmp).unwrap();
        wrapped
    }

    fn unseal(&self, s: &Session, blob: &[u8]) -> Vec<u8> {
        let tmp = s
            .unwrap_key(
                &Mechanism::AesKeyWrapPad,
                self.wrapping_key,
                blob,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                ],
            )
            .unwrap();
        let mut value = s.get_attributes(tmp, &[AttributeType::Value]).unwrap();
        s.destroy_object(tmp).unwrap();
        match value.pop() {
            Some(Attribute::Value(v)) => v,
            other => panic!("no value: {other:?}"),
        }
    }
}

/// Time `iters` calls spread over `threads` threads, each with its own state.
fn timed<S: Send>(iters: u64, threads: u64, mut make: impl FnMut() -> S, op: impl Fn(&S) + Sync) -> Duration {
    let states: Vec<S> = (0..threads).map(|_| make()).collect();
    let per_thread = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for state in states {
            let op = &op;
            scope.spawn(move || {
                for _ in 0..per_thread {
                    op(&state);
                }
            });
        }
    });
    start.elapsed()
}

fn run_benches() {
    let module = softhsm::find_module().expect("SoftHSM2 module not found");
    let so_pin = SecretString::new(uuid::Uuid::new_v4().simple().to_string());
    let pin = SecretString::new(uuid::Uuid::new_v4().simple().to_string());
    provision::init_token(&module, LABEL, &so_pin, &pin).unwrap();
    let mut cfg = keyward::hsm::HsmConfig::new(module.clone(), LABEL, pin.clone());
    cfg.session_pool_size = 4;
    let hsm = Pkcs11Hsm::connect(&cfg).unwrap();
    let crk = CrkVersion(1);
    hsm.create_crk(crk).unwrap();
    let gcm_blob = hsm.seal(crk, AAD, &KEK).unwrap();
    let (kwp, _owner) = Kwp::new(&module, &pin);
    let kwp_blob = {
        let s = kwp.session();
        let blob = kwp.seal(&s, &KEK);
        assert_eq!(kwp.unseal(&s, &blob), KEK);
        blob
    };

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 2] {
        group.bench_function(format!("gcm_seal/{threads}t"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    threads,
                    || (),
                    |_| drop(black_box(hsm.seal(crk, AAD, &KEK).unwrap())),
                )
            })
        });
        group.bench_function(format!("gcm_unseal/{threads}t"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    threads,
                    || (),
                    |_| drop(black_box(hsm.unseal(crk, AAD, &gcm_blob).unwrap())),
                )
            })
        });
        group.bench_function(format!("kwp_seal/{threads}t"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    threads,
                    || kwp.session(),
                    |s| drop(black_box(kwp.seal(s, &KEK))),
                )
            })
        });
        group.bench_function(format!("kwp_unseal/{threads}t"), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    threads,
                    || kwp.session(),
                    |s| drop(black_box(kwp.unseal(s, &kwp_blob))),
                )
            })
        });
    }
    group.finish();
    c.final_summary();
}
