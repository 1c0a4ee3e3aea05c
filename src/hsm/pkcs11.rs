//! [`Hsm`] over a PKCS#11 module (cryptoki): CRKs, seal/unseal, RNG, health.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cryptoki::context::{Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::TokenInfo;
use cryptoki::types::Ulong;

use super::cbc_hmac;
use super::description::{Description, describe};
use super::error::{Recovery, ck_name, recovery_for, rv_of, to_hsm_error};
use super::pool::{SessionPool, initialize};
use super::seal::{self, IV_LEN, SealingProfile, TAG_LEN};
use super::{CRK_LABEL_PREFIX, CrkVersion, Hsm, HsmConfig, HsmError, HsmStatus, MAX_RANDOM_LEN};
use crate::secret::SecretBytes;

/// How many times one call may recover (new session, re-login, re-find,
/// reconnect) before its error is reported.
const MAX_ATTEMPTS: usize = 3;

/// Least time between two module re-initializations because a root key was
/// not found (see [`Pkcs11Hsm::crk_handle`]): a client asking for records under
/// a destroyed root key cannot make the module start over more often than this.
const STALE_VIEW_REFRESH: Duration = Duration::from_secs(10);

/// One key object of a root key version: its cipher key, or (CBC + HMAC
/// profile) its MAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyPart {
    Cipher(CrkVersion),
    Mac(CrkVersion),
}

/// Outcome of one attempt: a PKCS#11 error the pool may recover from, a
/// token that is gone (re-initialize the module and retry), or a final answer.
enum Fail {
    Ck(CkError),
    TokenLost(HsmError),
    Final(HsmError),
}

impl From<CkError> for Fail {
    fn from(e: CkError) -> Self {
        Fail::Ck(e)
    }
}

impl From<HsmError> for Fail {
    fn from(e: HsmError) -> Self {
        Fail::Final(e)
    }
}

/// The PKCS#11 implementation of [`Hsm`]. One per module per process: it
/// initializes the module (`C_Initialize`) and finalizes it when dropped, if
/// it was the one that initialized it.
pub struct Pkcs11Hsm {
    pool: SessionPool,
    /// CRK object handles by version, for the pool generation they were found
    /// in; valid for every session of this application until the token goes
    /// away or the module is re-initialized (then cleared and re-found).
    handles: Mutex<(u64, HashMap<KeyPart, ObjectHandle>)>,
    /// How new seals are made, chosen from the token's mechanisms at connect.
    profile: SealingProfile,
    /// The last IV drawn, to catch an RNG that repeats itself.
    last_iv: Mutex<[u8; IV_LEN]>,
    /// When a root key that was not found last made the module start over.
    last_stale_refresh: Mutex<Option<Instant>>,
    /// [`HsmConfig::restart_on_missing_root_key`].
    restart_on_missing_root_key: bool,
}

impl Pkcs11Hsm {
    /// Load the module, find the token by label (or slot), and log in.
    /// Fails if any step fails, so that a wrong PIN or label shows at start-up.
    pub fn connect(cfg: &HsmConfig) -> Result<Self, HsmError> {
        let ctx = Pkcs11::new(&cfg.module)
            .map_err(|e| HsmError::Unavailable(format!("{} ({})", ck_name(&e), cfg.module.display())))?;
        let initialized_here = initialize(&ctx)?;
        let mut hsm = Pkcs11Hsm {
            pool: SessionPool::new(ctx, cfg, initialized_here),
            handles: Mutex::new((0, HashMap::new())),
            profile: SealingProfile::AesGcm,
            last_iv: Mutex::new([0; IV_LEN]),
            last_stale_refresh: Mutex::new(None),
            restart_on_missing_root_key: cfg.restart_on_missing_root_key,
        };
        // Open (and log in) one session now, and ask the token what it can do.
        let offered = hsm.run(|session| {
            let slot = session.get_session_info()?.slot_id();
            Ok(offered_mechanisms(
                hsm.pool.ctx(),
                slot,
                &SealingProfile::CANDIDATE_MECHANISMS,
            )?)
        })?;
        // A token that can do neither profile still connects, so that
        // `hsm status` and `check-config` can say what it lacks; its seals fail.
        let profile = SealingProfile::choose(&offered).unwrap_or(SealingProfile::AesGcm);
        hsm.profile = profile;
        Ok(hsm)
    }

    /// Run `op` on a pooled session, recovering from dead sessions, lost
    /// login, stale handles and a vanished token, up to [`MAX_ATTEMPTS`].
    fn run<T>(&self, mut op: impl FnMut(&Session) -> Result<T, Fail>) -> Result<T, HsmError> {
        let mut last = HsmError::Unavailable("no attempt made".into());
        for _ in 0..MAX_ATTEMPTS {
            let lease = self.pool.checkout()?;
            self.handles_for(lease.generation());
            let result = op(lease.session()?);
            let err = match result {
                Ok(value) => return Ok(value),
                Err(Fail::Final(e)) => return Err(e),
                Err(Fail::TokenLost(e)) => {
                    lease.discard();
                    self.forget_handles();
                    self.pool.token_lost();
                    last = e;
                    continue;
                }
                Err(Fail::Ck(e)) => e,
            };
            last = to_hsm_error(&err);
            match recovery_for(&err) {
                Recovery::NewSession => lease.discard(),
                Recovery::Relogin => self.pool.relogin(lease.session()?)?,
                Recovery::RefindObjects => self.forget_handles(),
                Recovery::Reconnect => {
                    lease.discard();
                    self.forget_handles();
                    if rv_of(&err) == Some(RvError::CryptokiNotInitialized) {
                        self.pool.adopt_module();
                    }
                    self.pool.token_lost();
                }
                Recovery::None => {
                    // The session may hold a half-done operation; do not reuse it.
                    lease.discard();
                    return Err(last);
                }
            }
        }
        Err(last)
    }

    fn forget_handles(&self) {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).1.clear();
    }

    /// Start the handle cache afresh when the pool moved to a new generation
    /// (sessions dropped, module perhaps re-initialized: old handles mean nothing).
    fn handles_for(&self, generation: u64) {
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        if handles.0 != generation {
            *handles = (generation, HashMap::new());
        }
    }

    /// Whether a root key that was not found may make the module start over
    /// now; if so, the next one may only after [`STALE_VIEW_REFRESH`].
    fn may_refresh_stale_view(&self) -> bool {
        if !self.restart_on_missing_root_key {
            return false;
        }
        let mut last = self.last_stale_refresh.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= STALE_VIEW_REFRESH);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// How this token seals new records.
    pub fn sealing_profile(&self) -> SealingProfile {
        self.profile
    }

    /// Seal new records another way than the token's mechanisms chose (tests
    /// of blobs of both formats on one token).
    #[cfg(test)]
    pub(super) fn force_profile(&mut self, profile: SealingProfile) {
        self.profile = profile;
    }

    /// The session pool, for tests that look into the token.
    #[cfg(test)]
    pub(super) fn pool_for_tests(&self) -> &SessionPool {
        &self.pool
    }

    /// Opens a CBC + HMAC blob: the tag is checked in the token before
    /// anything is decrypted.
    fn unseal_cbc_hmac(&self, crk: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError> {
        let parsed = cbc_hmac::parse(blob)?;
        if parsed.crk != crk {
            return Err(HsmError::BadBlob);
        }
        let mac_input = cbc_hmac::mac_input(parsed.header_and_iv, aad, parsed.ciphertext);
        self.run(|session| {
            let mac_key = self.key_handle(session, KeyPart::Mac(crk))?;
            session
                .verify(&Mechanism::Sha256Hmac, mac_key, &mac_input, parsed.tag)
                .map_err(decrypt_failure)?;
            let key = self.crk_handle(session, crk)?;
            let opened = session
                .decrypt(&Mechanism::AesCbcPad(parsed.iv), key, parsed.ciphertext)
                .map_err(decrypt_failure)?;
            Ok(SecretBytes::new(opened))
        })
    }

    /// The CRK's handle, from the cache or by label + id.
    fn crk_handle(&self, session: &Session, crk: CrkVersion) -> Result<ObjectHandle, Fail> {
        self.key_handle(session, KeyPart::Cipher(crk))
    }

    /// A root key object's handle, from the cache or by label + id.
    fn key_handle(&self, session: &Session, part: KeyPart) -> Result<ObjectHandle, Fail> {
        if let Some(h) = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(&part)
        {
            return Ok(*h);
        }
        let found = match part {
            KeyPart::Cipher(crk) => find_crk(session, crk)?,
            KeyPart::Mac(crk) => cbc_hmac::find_mac_key(session, crk)?,
        };
        let handle = match found.as_slice() {
            [] => {
                // Private objects are invisible when logged out, and a token
                // whose storage went away finds nothing: make sure "not found"
                // is not really "not logged in" or "token gone" before saying
                // the CRK is missing (which would mean crypto-shredding).
                ensure_logged_in(session)?;
                ensure_token_readable(self.pool.ctx(), session)?;
                // A module may keep a picture of the token that another process's
                // changes no longer reach: SoftHSM stops re-reading a token's
                // folder for good once it read its token file while another
                // process was rewriting it (a login does), and a root rotation
                // runs in another process. Before saying a root key is missing,
                // let the module read the token afresh (at most once per
                // STALE_VIEW_REFRESH) and look again.
                if self.may_refresh_stale_view() {
                    return Err(Fail::TokenLost(HsmError::NotFound));
                }
                return Err(HsmError::NotFound.into());
            }
            [h] => *h,
            _ => {
                return Err(HsmError::Other(format!("several objects for {part:?}")).into());
            }
        };
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .insert(part, handle);
        Ok(handle)
    }

    /// 12 fresh bytes from the HSM's RNG, refusing a repeat of the last draw.
    fn fresh_iv(&self, session: &Session) -> Result<[u8; IV_LEN], Fail> {
        let mut iv = [0u8; IV_LEN];
        session.generate_random_slice(&mut iv)?;
        self.note_iv(iv)?;
        Ok(iv)
    }

    /// Refuses an IV equal to the last one seen (a stuck RNG, or a token that
    /// generates its own GCM IVs badly); remembers this one.
    fn note_iv(&self, iv: [u8; IV_LEN]) -> Result<(), Fail> {
        let mut last = self.last_iv.lock().unwrap_or_else(|p| p.into_inner());
        if iv == *last {
            return Err(HsmError::Other("HSM returned a repeated GCM IV".into()).into());
        }
        *last = iv;
        Ok(())
    }
}

impl Drop for Pkcs11Hsm {
    fn drop(&mut self) {
        // Close our sessions (a network HSM frees them at once), but leave the module
        // initialized: C_Finalize at the end of a process that used the token from
        // several threads crashed SoftHSM intermittently ("double free" as its crypto
        // back end was torn down twice, once by C_Finalize and once at exit). The
        // module's state ends with the process; a later connect in the same process
        // finds it initialized and uses it (see `pool::initialize`).
        self.pool.reconnect();
    }
}

/// [`Fail::TokenLost`] unless the module can still describe the session's
/// token. SoftHSM answers a token whose files went away with empty searches
/// and `CKR_GENERAL_ERROR` from `C_GetTokenInfo`, never with a device error.
fn ensure_token_readable(ctx: &Pkcs11, session: &Session) -> Result<(), Fail> {
    let slot = session.get_session_info()?.slot_id();
    // SoftHSM can fail to describe a token for a moment while another process
    // rewrites its token file (every login does): ask again before calling the
    // token lost, which re-initializes the module.
    let mut attempt = 1;
    loop {
        match describe(ctx, slot) {
            // A malformed description is still an answer from the token.
            Ok(_) => return Ok(()),
            Err(e) if attempt >= TOKEN_INFO_ATTEMPTS => return Err(token_lost(&e)),
            Err(_) => {
                attempt += 1;
                std::thread::sleep(TOKEN_INFO_RETRY);
            }
        }
    }
}

/// Which of `wanted` the token offers, asked one by one (`C_GetMechanismInfo`):
/// the whole list (`C_GetMechanismList`) would make cryptoki log an error for
/// every vendor-defined mechanism it has no name for, at every start.
fn offered_mechanisms(
    ctx: &Pkcs11,
    slot: cryptoki::slot::Slot,
    wanted: &[MechanismType],
) -> Result<Vec<MechanismType>, CkError> {
    let mut offered = Vec::new();
    for mechanism in wanted {
        match ctx.get_mechanism_info(slot, *mechanism) {
            Ok(_) => offered.push(*mechanism),
            Err(e) if rv_of(&e) == Some(RvError::MechanismInvalid) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(offered)
}

/// One field of a token's description; empty when it could not be parsed.
fn field(token: &Description, get: fn(&TokenInfo) -> &str) -> String {
    match token {
        Description::Read(info) => get(info).trim_end().to_string(),
        Description::Malformed(_) => String::new(),
    }
}

/// How often a token that cannot be described is asked before it counts as lost.
const TOKEN_INFO_ATTEMPTS: usize = 3;
/// The pause between those attempts.
const TOKEN_INFO_RETRY: Duration = Duration::from_millis(20);

fn token_lost(err: &CkError) -> Fail {
    Fail::TokenLost(HsmError::Unavailable(format!(
        "token cannot be read ({})",
        ck_name(err)
    )))
}

/// `CKR_USER_NOT_LOGGED_IN` (so that `run` logs in again) unless the
/// application is logged in.
fn ensure_logged_in(session: &Session) -> Result<(), CkError> {
    match session.get_session_info()?.session_state() {
        SessionState::RwUser | SessionState::RoUser => Ok(()),
        _ => Err(CkError::Pkcs11(
            RvError::UserNotLoggedIn,
            Function::GetSessionInfo,
        )),
    }
}

fn find_crk(session: &Session, crk: CrkVersion) -> Result<Vec<ObjectHandle>, CkError> {
    session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(crk.label().into_bytes()),
        Attribute::Id(crk.object_id().to_vec()),
    ])
}

/// Template of a new CRK: AES-256 token object, private, sensitive, never
/// extractable, usable only to encrypt and decrypt, not modifiable.
fn crk_template(crk: CrkVersion) -> Vec<Attribute> {
    root_key_template(KeyPart::Cipher(crk))
}

/// Template of a root key object: 256 bits, a private token object, sensitive,
/// never extractable, not modifiable, usable for one thing only — the cipher
/// key to encrypt and decrypt, the MAC key (CBC + HMAC profile) to sign and verify.
fn root_key_template(part: KeyPart) -> Vec<Attribute> {
    let (key_type, cipher, crk, label) = match part {
        KeyPart::Cipher(crk) => (KeyType::AES, true, crk, crk.label()),
        KeyPart::Mac(crk) => (KeyType::GENERIC_SECRET, false, crk, cbc_hmac::mac_label(crk)),
    };
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::ValueLen(Ulong::new(32)),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Encrypt(cipher),
        Attribute::Decrypt(cipher),
        Attribute::Sign(!cipher),
        Attribute::Verify(!cipher),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.into_bytes()),
        Attribute::Id(crk.object_id().to_vec()),
    ]
}

/// Errors from `C_Decrypt` that say nothing about the blob: keep them for
/// recovery or report them as they are. Everything else is a bad blob
/// (SoftHSM reports a failed GCM tag check as `CKR_GENERAL_ERROR`).
fn decrypt_failure(err: CkError) -> Fail {
    let infrastructure = recovery_for(&err) != Recovery::None
        || matches!(
            rv_of(&err),
            Some(
                RvError::HostMemory
                    | RvError::DeviceMemory
                    | RvError::FunctionCanceled
                    | RvError::OperationActive
            )
        )
        || rv_of(&err).is_none();
    if infrastructure {
        Fail::Ck(err)
    } else {
        Fail::Final(HsmError::BadBlob)
    }
}

fn tag_bits() -> Ulong {
    Ulong::new((TAG_LEN * 8) as u64)
}

impl Hsm for Pkcs11Hsm {
    fn seal(&self, crk: CrkVersion, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, HsmError> {
        seal::check_sizes(aad, plaintext.len())?;
        if self.profile == SealingProfile::AesCbcHmacSha256 {
            return self.run(|session| {
                let keys = (
                    self.crk_handle(session, crk)?,
                    self.key_handle(session, KeyPart::Mac(crk))?,
                );
                let mut iv = [0u8; cbc_hmac::IV_LEN];
                session.generate_random_slice(&mut iv)?;
                Ok(cbc_hmac::seal(session, keys, crk, iv, aad, plaintext)?)
            });
        }
        let header = seal::header(crk);
        let full_aad = seal::full_aad(&header, aad);
        self.run(|session| {
            let key = self.crk_handle(session, crk)?;
            let drawn = self.fresh_iv(session)?;
            let mut iv_param = drawn;
            let params = GcmParams::new(&mut iv_param, &full_aad, tag_bits())?;
            let sealed = session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?;
            // The IV the token used is the one in the parameters after the call. A
            // FIPS-mode HSM (AWS CloudHSM, for one) ignores the caller's IV, generates
            // its own inside the boundary and writes it back there (SP 800-38D §8.2
            // asks the module to make GCM IVs). Storing the drawn IV instead would
            // seal a key nobody can open.
            if iv_param != drawn {
                self.note_iv(iv_param)?;
            }
            Ok(seal::assemble(crk, &iv_param, &sealed))
        })
    }

    fn unseal(&self, crk: CrkVersion, aad: &[u8], blob: &[u8]) -> Result<SecretBytes, HsmError> {
        seal::check_sizes(aad, 0)?;
        // Whatever profile the token seals with now, a blob opens by its own format.
        if blob.first() == Some(&seal::FORMAT_AES256_CBC_HMAC_SHA256) {
            return self.unseal_cbc_hmac(crk, aad, blob);
        }
        let parsed = seal::parse(blob)?;
        if parsed.crk != crk {
            return Err(HsmError::BadBlob);
        }
        let full_aad = seal::full_aad(parsed.header, aad);
        self.run(|session| {
            let key = self.crk_handle(session, crk)?;
            let mut iv_param = parsed.iv;
            let params = GcmParams::new(&mut iv_param, &full_aad, tag_bits())?;
            let opened = session
                .decrypt(&Mechanism::AesGcm(params), key, parsed.ciphertext_and_tag)
                .map_err(decrypt_failure)?;
            Ok(SecretBytes::new(opened))
        })
    }

    fn random(&self, len: usize) -> Result<SecretBytes, HsmError> {
        if len > MAX_RANDOM_LEN {
            return Err(HsmError::InvalidRequest("too many random bytes requested"));
        }
        if len == 0 {
            return Ok(SecretBytes::default());
        }
        self.run(|session| {
            let mut buf = vec![0u8; len];
            let drawn = session.generate_random_slice(&mut buf);
            // Into the zeroizing type before any early return.
            let out = SecretBytes::new(buf);
            drawn?;
            Ok(out)
        })
    }

    fn crk_versions(&self) -> Result<Vec<CrkVersion>, HsmError> {
        self.run(|session| list_crks(self.pool.ctx(), session))
    }

    fn create_crk(&self, version: CrkVersion) -> Result<(), HsmError> {
        self.run(|session| {
            ensure_logged_in(session)?;
            if !find_crk(session, version)?.is_empty() {
                return Err(HsmError::AlreadyExists.into());
            }
            // With a recovery master in the token, root keys derive from it
            // (the custodians' shares then rebuild them); otherwise the token
            // generates them.
            let handle = match super::recovery::find_master(session)? {
                Some(master) => {
                    super::recovery::derive_crk(session, master, version, &crk_template(version))?
                }
                None => session.generate_key(&Mechanism::AesKeyGen, &crk_template(version))?,
            };
            self.handles
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .1
                .insert(KeyPart::Cipher(version), handle);
            if self.profile == SealingProfile::AesCbcHmacSha256 {
                // The version's second key. (A token without GCM that could
                // derive from a recovery master would need a derived MAC key
                // too; no such token is known, so that is refused.)
                if super::recovery::find_master(session)?.is_some() {
                    let _ = session.destroy_object(handle);
                    return Err(HsmError::Other(
                        "root keys from a recovery master need a token with AES-GCM".into(),
                    )
                    .into());
                }
                let mac = session.generate_key(
                    &Mechanism::GenericSecretKeyGen,
                    &root_key_template(KeyPart::Mac(version)),
                )?;
                self.handles
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .1
                    .insert(KeyPart::Mac(version), mac);
            }
            Ok(())
        })
    }

    fn install_recovery_master(&self, master: &SecretBytes) -> Result<(), HsmError> {
        if master.len() != super::custodian::SECRET_BYTES {
            return Err(HsmError::InvalidRequest("a recovery master is 32 bytes"));
        }
        self.run(|session| {
            ensure_logged_in(session)?;
            if super::recovery::find_master(session)?.is_some() {
                return Err(HsmError::AlreadyExists.into());
            }
            super::recovery::import_master(session, master, super::custodian::set_id(master))?;
            Ok(())
        })
    }

    fn can_derive_root_keys(&self) -> Result<bool, HsmError> {
        let ctx = self.pool.ctx();
        self.run(|session| {
            let slot = session.get_session_info()?.slot_id();
            let derive = [MechanismType::AES_CBC_ENCRYPT_DATA];
            Ok(!offered_mechanisms(ctx, slot, &derive)?.is_empty())
        })
    }

    fn recovery_master_set(&self) -> Result<Option<[u8; 8]>, HsmError> {
        self.run(|session| {
            ensure_logged_in(session)?;
            match super::recovery::find_master(session)? {
                None => Ok(None),
                Some(master) => match super::recovery::master_set_id(session, master)? {
                    Some(id) => Ok(Some(id)),
                    None => Err(HsmError::Other("the recovery master has no set id".into()).into()),
                },
            }
        })
    }

    fn destroy_crk(&self, version: CrkVersion) -> Result<(), HsmError> {
        self.run(|session| {
            ensure_logged_in(session)?;
            let found = find_crk(session, version)?;
            if found.is_empty() {
                return Err(HsmError::NotFound.into());
            }
            {
                let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
                handles.1.remove(&KeyPart::Cipher(version));
                handles.1.remove(&KeyPart::Mac(version));
            }
            // The MAC key of a CBC + HMAC version goes with it, whatever
            // profile the token seals with now.
            for handle in found.into_iter().chain(cbc_hmac::find_mac_key(session, version)?) {
                session.destroy_object(handle)?;
            }
            Ok(())
        })
    }

    fn health(&self) -> Result<HsmStatus, HsmError> {
        let ctx = self.pool.ctx();
        self.run(|session| {
            // Inside `run`: a lease keeps a re-initialization out while the module is used.
            let info = ctx.get_library_info()?;
            let slot = session.get_session_info()?.slot_id();
            let logged_in = matches!(session.get_session_info()?.session_state(), SessionState::RwUser);
            let token = describe(ctx, slot).map_err(|e| token_lost(&e))?;
            let offered = offered_mechanisms(ctx, slot, &SealingProfile::CANDIDATE_MECHANISMS)?;
            let profile = SealingProfile::choose(&offered);
            // A token that can do neither profile is told what GCM needs.
            let needed: Vec<String> = profile
                .unwrap_or(SealingProfile::AesGcm)
                .mechanisms()
                .iter()
                .map(|m| m.to_string())
                .collect();
            let offered_names: Vec<String> = offered.iter().map(|m| m.to_string()).collect();
            let mechanisms_missing = needed
                .iter()
                .filter(|m| !offered_names.contains(m))
                .cloned()
                .collect();
            Ok(HsmStatus {
                library: format!(
                    "{} / {}",
                    info.manufacturer_id().trim_end(),
                    info.library_description().trim_end()
                ),
                library_version: info.library_version().to_string(),
                cryptoki_version: info.cryptoki_version().to_string(),
                slot_id: slot.id(),
                token_label: field(&token, TokenInfo::label),
                token_unreadable: match &token {
                    Description::Read(_) => None,
                    Description::Malformed(why) => Some(why.clone()),
                },
                token_serial: field(&token, TokenInfo::serial_number),
                token_model: field(&token, TokenInfo::model),
                logged_in,
                sealing_profile: profile,
                mechanisms_needed: needed,
                mechanisms_missing,
                crk_versions: list_crks(ctx, session)?,
            })
        })
    }
}

/// Every AES secret key whose label is `keyward-crk-<n>` and whose id is `n`.
/// None at all is checked against a lost token (see [`ensure_token_readable`]).
fn list_crks(ctx: &Pkcs11, session: &Session) -> Result<Vec<CrkVersion>, Fail> {
    ensure_logged_in(session)?;
    let handles = session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
    ])?;
    let mut versions = Vec::new();
    for handle in handles {
        let attrs = session.get_attributes(handle, &[AttributeType::Label, AttributeType::Id])?;
        let mut label = None;
        let mut id = None;
        for attr in attrs {
            match attr {
                Attribute::Label(l) => label = Some(l),
                Attribute::Id(i) => id = Some(i),
                _ => {}
            }
        }
        let version = label
            .as_deref()
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| l.strip_prefix(CRK_LABEL_PREFIX))
            .and_then(|n| n.parse::<u32>().ok())
            .map(CrkVersion);
        if let (Some(v), Some(id)) = (version, id)
            && id.as_slice() == v.object_id()
        {
            versions.push(v);
        }
    }
    if versions.is_empty() {
        ensure_token_readable(ctx, session)?;
    }
    versions.sort();
    versions.dedup();
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hsm::softhsm::run_isolated;

    const KEK: [u8; 32] = [0x42; 32];

    #[test]
    fn logs_in_again_after_logout() {
        run_isolated(|token| {
            let hsm = Pkcs11Hsm::connect(&token.config()).unwrap();
            hsm.create_crk(CrkVersion(1)).unwrap();
            let blob = hsm.seal(CrkVersion(1), b"id", &KEK).unwrap();
            hsm.forget_handles();
            // Log the whole application out behind the pool's back.
            hsm.pool.checkout().unwrap().session().unwrap().logout().unwrap();
            assert_eq!(hsm.unseal(CrkVersion(1), b"id", &blob).unwrap().expose(), &KEK);
            hsm.pool.checkout().unwrap().session().unwrap().logout().unwrap();
            assert_eq!(hsm.crk_versions().unwrap(), vec![CrkVersion(1)]);
        })
        .unwrap();
    }

    #[test]
    fn refinds_a_crk_whose_cached_handle_went_stale() {
        run_isolated(|token| {
            let hsm = Pkcs11Hsm::connect(&token.config()).unwrap();
            hsm.create_crk(CrkVersion(1)).unwrap();
            hsm.seal(CrkVersion(1), b"id", &KEK).unwrap(); // handle cached
            {
                // Replace the object behind the cache's back, as another
                // process (a root rotation on another node) might.
                let lease = hsm.pool.checkout().unwrap();
                let session = lease.session().unwrap();
                for h in find_crk(session, CrkVersion(1)).unwrap() {
                    session.destroy_object(h).unwrap();
                }
                session
                    .generate_key(&Mechanism::AesKeyGen, &crk_template(CrkVersion(1)))
                    .unwrap();
            }
            let blob = hsm.seal(CrkVersion(1), b"id", &KEK).unwrap();
            assert_eq!(hsm.unseal(CrkVersion(1), b"id", &blob).unwrap().expose(), &KEK);
        })
        .unwrap();
    }

    /// The folder of the test token's files.
    fn token_folder(token: &crate::hsm::softhsm::TestToken) -> std::path::PathBuf {
        let tokens = token.dir.join("tokens");
        std::fs::read_dir(&tokens)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    }

    /// The token's object files, by name, with their bytes.
    fn token_files(token: &crate::hsm::softhsm::TestToken) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(token_folder(token))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect()
    }

    #[test]
    fn a_root_key_the_module_does_not_see_yet_is_looked_for_again_after_a_fresh_start() {
        run_isolated(|token| {
            let mut config = token.config();
            config.restart_on_missing_root_key = true;
            let hsm = Pkcs11Hsm::connect(&config).unwrap();
            hsm.create_crk(CrkVersion(1)).unwrap();
            let before = token_files(token);
            hsm.create_crk(CrkVersion(2)).unwrap();
            let blob = hsm.seal(CrkVersion(2), b"id", &KEK).unwrap();
            let with_crk2 = token_files(token);
            hsm.destroy_crk(CrkVersion(2)).unwrap();
            // CRK 2's files come back behind the module's back, as when another
            // process made them and this module's picture of the token went stale
            // (SoftHSM re-reads a token's folder only when its generation file moved).
            for (path, bytes) in with_crk2.iter().filter(|(p, _)| !before.contains_key(*p)) {
                std::fs::write(path, bytes).unwrap();
            }
            assert_eq!(
                hsm.crk_versions().unwrap(),
                vec![CrkVersion(1)],
                "premise: the module does not see CRK 2 yet"
            );
            // Opening a record sealed under CRK 2 makes the module start over.
            assert_eq!(hsm.unseal(CrkVersion(2), b"id", &blob).unwrap().expose(), &KEK);
            assert_eq!(hsm.crk_versions().unwrap(), vec![CrkVersion(1), CrkVersion(2)]);
            // A root key that is really gone stays "not found", and asking again
            // at once does not make the module start over again.
            hsm.destroy_crk(CrkVersion(2)).unwrap();
            assert_eq!(
                hsm.unseal(CrkVersion(2), b"id", &blob).unwrap_err(),
                HsmError::NotFound
            );
            let generation = hsm.pool.checkout().unwrap().generation();
            assert_eq!(
                hsm.unseal(CrkVersion(2), b"id", &blob).unwrap_err(),
                HsmError::NotFound
            );
            assert_eq!(hsm.pool.checkout().unwrap().generation(), generation);
        })
        .unwrap();
    }

    #[test]
    fn a_token_that_vanishes_is_unavailable_not_shredded_and_comes_back() {
        run_isolated(|token| {
            let hsm = Pkcs11Hsm::connect(&token.config()).unwrap();
            hsm.create_crk(CrkVersion(1)).unwrap();
            let blob = hsm.seal(CrkVersion(1), b"id", &KEK).unwrap();
            let folder = token_folder(token);
            let aside = token.dir.join("unplugged");
            std::fs::rename(&folder, &aside).unwrap();
            // SoftHSM finds no CRK in a token whose files are gone: that must
            // read as "HSM unavailable", never as "CRK destroyed".
            assert!(
                hsm.unseal(CrkVersion(1), b"id", &blob)
                    .unwrap_err()
                    .is_transient()
            );
            assert!(hsm.seal(CrkVersion(1), b"id", &KEK).unwrap_err().is_transient());
            assert!(hsm.crk_versions().unwrap_err().is_transient());
            std::fs::rename(&aside, &folder).unwrap();
            std::thread::sleep(super::super::pool::REINIT_BACKOFF);
            assert_eq!(hsm.unseal(CrkVersion(1), b"id", &blob).unwrap().expose(), &KEK);
            assert_eq!(hsm.crk_versions().unwrap(), vec![CrkVersion(1)]);
        })
        .unwrap();
    }

    #[test]
    fn reconnect_drops_sessions_and_recovers() {
        run_isolated(|token| {
            let mut cfg = token.config();
            cfg.session_pool_size = 2;
            cfg.call_timeout = std::time::Duration::from_millis(200);
            let hsm = Pkcs11Hsm::connect(&cfg).unwrap();
            hsm.create_crk(CrkVersion(1)).unwrap();
            let held = hsm.pool.checkout().unwrap();
            let other = hsm.pool.checkout().unwrap();
            // Pool full: a third caller times out instead of hanging.
            assert_eq!(hsm.random(4).err(), Some(HsmError::Timeout));
            drop(other);
            hsm.pool.reconnect(); // as after CKR_DEVICE_REMOVED
            drop(held); // an old-generation lease is closed, not pooled
            let blob = hsm.seal(CrkVersion(1), b"id", &KEK).unwrap();
            assert_eq!(hsm.unseal(CrkVersion(1), b"id", &blob).unwrap().expose(), &KEK);
        })
        .unwrap();
    }
}
