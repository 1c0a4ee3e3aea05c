//! A pool of logged-in R/W sessions on one token, which heals itself.
//!
//! PKCS#11 login state belongs to the application, not to a session: once one
//! session logs in, every session of the process is logged in, and closing the
//! last session logs the application out. So a fresh session checks its state
//! and logs in only when needed. When the token or slot goes away every
//! session is dropped (a generation counter stops old leases from coming back)
//! and the next checkout finds the token by label again.
//!
//! A PIN the token refuses is remembered: the pool stops trying until the
//! process is reconfigured, so that retries cannot lock the token's PIN.
//!
//! Dropping sessions is not always enough: a module may keep its own picture
//! of the token. SoftHSM marks a token whose files went away as invalid for
//! good and scans for tokens only in `C_Initialize`, so a token that comes back
//! is seen only by a fresh `C_Finalize` + `C_Initialize` (and the client
//! library of a network or USB HSM may need the same after losing its device).
//! So when the token is lost the pool re-initializes the module — at most once
//! per [`REINIT_BACKOFF`], only when it initialized the module itself, and only
//! once every lease is back, because `C_Finalize` while another thread is
//! inside the module is undefined behaviour (PKCS#11 §5.4). New checkouts wait
//! meanwhile.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::description::{Description, describe, described_slots};
use super::error::{ck_name, rv_of, to_hsm_error};
use super::{HsmConfig, HsmError};
use crate::secret::SecretString;

struct PoolState {
    /// Slot of the token, once found. `None` after the token went away.
    slot: Option<Slot>,
    /// Bumped on every reconnect; leases of an older generation are dropped.
    generation: u64,
    idle: Vec<Session>,
    /// Sessions currently leased or being opened.
    busy: usize,
    /// Set when the token refused the PIN: never try it again.
    pin_refused: Option<HsmError>,
    /// Whether this pool initialized the module (and so may finalize it).
    owns_module: bool,
    /// The token was lost: re-initialize the module before the next session.
    needs_reinit: bool,
    /// A re-initialization is under way: checkouts wait.
    reinitializing: bool,
    last_reinit: Option<Instant>,
}

/// Least time between two module re-initializations: a token that stays away
/// costs one `C_Finalize` + `C_Initialize` per interval, not one per request,
/// and a token that comes back is found within it (plus the next call).
pub(crate) const REINIT_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct SessionPool {
    ctx: Pkcs11,
    token: super::TokenSelector,
    pin: SecretString,
    size: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A session on loan from the pool; goes back on drop unless discarded.
pub(crate) struct Lease<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    generation: u64,
}

impl Lease<'_> {
    /// The pool generation this session belongs to (bumped by every reconnect).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn session(&self) -> Result<&Session, HsmError> {
        self.session
            .as_ref()
            .ok_or_else(|| HsmError::Other("session lease already discarded".into()))
    }

    /// Close this session instead of returning it (its state is unknown).
    pub(crate) fn discard(mut self) {
        self.session = None;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        if let Some(session) = self.session.take()
            && state.generation == self.generation
        {
            state.idle.push(session);
        }
        state.busy = state.busy.saturating_sub(1);
        drop(state);
        // All: a re-initialization waiting for the last lease must hear it.
        self.pool.freed.notify_all();
    }
}

impl SessionPool {
    /// `owns_module`: this process initialized `ctx` (see [`initialize`]).
    pub(crate) fn new(ctx: Pkcs11, cfg: &HsmConfig, owns_module: bool) -> Self {
        SessionPool {
            ctx,
            token: cfg.token.clone(),
            pin: cfg.pin.clone(),
            size: cfg.session_pool_size.max(1),
            wait: cfg.call_timeout,
            state: Mutex::new(PoolState {
                slot: None,
                generation: 0,
                idle: Vec::new(),
                busy: 0,
                pin_refused: None,
                owns_module,
                needs_reinit: false,
                reinitializing: false,
                last_reinit: None,
            }),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Borrow a logged-in session, opening one if the pool is not full and
    /// waiting (up to the call timeout) if it is.
    pub(crate) fn checkout(&self) -> Result<Lease<'_>, HsmError> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            if let Some(err) = &state.pin_refused {
                return Err(err.clone());
            }
            if state.reinitializing {
                state = self.wait_freed(state, deadline)?;
                continue;
            }
            if state.needs_reinit
                && state.owns_module
                && state.last_reinit.is_none_or(|t| t.elapsed() >= REINIT_BACKOFF)
            {
                state = self.reinitialize(state, deadline)?;
                continue;
            }
            if let Some(session) = state.idle.pop() {
                state.busy += 1;
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation: state.generation,
                });
            }
            if state.busy + state.idle.len() < self.size {
                state.busy += 1;
                let generation = state.generation;
                let slot = match state.slot {
                    Some(slot) => Ok(slot),
                    None => self.find_slot(),
                };
                match slot {
                    Ok(slot) => state.slot = Some(slot),
                    // The module may not see a token that came back until it
                    // scans again (SoftHSM scans only in C_Initialize).
                    Err(HsmError::Unavailable(_)) => state.needs_reinit = true,
                    Err(_) => {}
                }
                drop(state);
                let opened = slot.and_then(|slot| {
                    self.open_logged_in(slot)
                        .map_err(|err| self.unavailable_if_token_unreadable(slot, err))
                });
                return match opened {
                    Ok(session) => Ok(Lease {
                        pool: self,
                        session: Some(session),
                        generation,
                    }),
                    Err(err) => {
                        let mut state = self.lock();
                        state.busy = state.busy.saturating_sub(1);
                        if matches!(err, HsmError::Login(_)) {
                            state.pin_refused = Some(err.clone());
                        } else if state.generation == generation {
                            // Could not open a session: look for the token afresh next time.
                            state.slot = None;
                            if err.is_transient() {
                                state.needs_reinit = true;
                            }
                        }
                        drop(state);
                        self.freed.notify_all();
                        Err(err)
                    }
                };
            }
            state = self.wait_freed(state, deadline)?;
        }
    }

    /// Wait for a lease to come back (or a re-initialization to end), up to `deadline`.
    fn wait_freed<'a>(
        &'a self,
        state: MutexGuard<'a, PoolState>,
        deadline: Instant,
    ) -> Result<MutexGuard<'a, PoolState>, HsmError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(HsmError::Timeout);
        }
        let (next, _) = self
            .freed
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(next)
    }

    /// `C_Finalize` + `C_Initialize` once no lease is out, so that the module
    /// reads its tokens afresh. Every session dies with it; the next checkout
    /// finds the token and logs in again. A failed `C_Initialize` leaves
    /// `needs_reinit` set: the next checkout after [`REINIT_BACKOFF`] tries again.
    fn reinitialize<'a>(
        &'a self,
        mut state: MutexGuard<'a, PoolState>,
        deadline: Instant,
    ) -> Result<MutexGuard<'a, PoolState>, HsmError> {
        state.reinitializing = true;
        while state.busy > 0 {
            match self.wait_freed(state, deadline) {
                Ok(next) => state = next,
                Err(err) => {
                    // A call stuck in the module: give up this time, let others in.
                    let mut state = self.lock();
                    state.reinitializing = false;
                    state.last_reinit = Some(Instant::now());
                    drop(state);
                    self.freed.notify_all();
                    return Err(err);
                }
            }
        }
        state.generation = state.generation.wrapping_add(1);
        state.slot = None;
        let idle = std::mem::take(&mut state.idle);
        drop(state);
        drop(idle); // C_CloseSession on each, before the module goes away.
        // Not initialized (someone finalized it) is fine: initialize below.
        let _ = self.ctx.clone().finalize();
        let initialized = initialize(&self.ctx);
        let mut state = self.lock();
        state.reinitializing = false;
        state.last_reinit = Some(Instant::now());
        if initialized.is_ok() {
            state.needs_reinit = false;
        }
        self.freed.notify_all();
        Ok(state)
    }

    /// The token is gone or unreadable: drop every session and re-initialize
    /// the module before the next one (see [`SessionPool::reinitialize`]).
    pub(crate) fn token_lost(&self) {
        self.lock().needs_reinit = true;
        self.reconnect();
    }

    /// Someone finalized the module under us (`CKR_CRYPTOKI_NOT_INITIALIZED`):
    /// whoever initializes it next owns it, so this pool may.
    pub(crate) fn adopt_module(&self) {
        self.lock().owns_module = true;
    }

    /// A session that could not be opened on a token the module cannot even
    /// describe any more is an unavailable HSM, whatever the open call said
    /// (SoftHSM answers `CKR_GENERAL_ERROR` on a token whose files went away).
    fn unavailable_if_token_unreadable(&self, slot: Slot, err: HsmError) -> HsmError {
        match (&err, describe(&self.ctx, slot)) {
            (HsmError::Other(_), Err(e)) => {
                HsmError::Unavailable(format!("token cannot be read ({})", ck_name(&e)))
            }
            _ => err,
        }
    }

    /// Drop every idle session and forget the slot; leases out now are
    /// closed when they come back. Called when the token or library went away.
    pub(crate) fn reconnect(&self) {
        let mut state = self.lock();
        state.generation = state.generation.wrapping_add(1);
        state.slot = None;
        let idle = std::mem::take(&mut state.idle);
        drop(state);
        drop(idle); // C_CloseSession on each; errors are irrelevant here.
        self.freed.notify_all();
    }

    /// Log in on this session if the application is not logged in.
    pub(crate) fn relogin(&self, session: &Session) -> Result<(), HsmError> {
        if let Some(err) = &self.lock().pin_refused {
            return Err(err.clone());
        }
        match self.login(session) {
            Err(err @ HsmError::Login(_)) => {
                self.lock().pin_refused = Some(err.clone());
                Err(err)
            }
            other => other,
        }
    }

    fn login(&self, session: &Session) -> Result<(), HsmError> {
        let pin = AuthPin::from(self.pin.expose());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) => Ok(()),
            Err(e) if rv_of(&e) == Some(RvError::UserAlreadyLoggedIn) => Ok(()),
            // Only PIN return codes become `Login` (and stick); others stay transient.
            Err(e) => Err(to_hsm_error(&e)),
        }
    }

    fn open_logged_in(&self, slot: Slot) -> Result<Session, HsmError> {
        let session = self.ctx.open_rw_session(slot).map_err(|e| to_hsm_error(&e))?;
        let state = session
            .get_session_info()
            .map_err(|e| to_hsm_error(&e))?
            .session_state();
        if !matches!(state, SessionState::RwUser) {
            self.login(&session)?;
        }
        Ok(session)
    }

    /// The one slot whose token the configuration selects (by label, or by the
    /// fields of a PKCS#11 URI, slot id included). A token whose description
    /// cannot be parsed is selected only by its slot id alone.
    fn find_slot(&self) -> Result<Slot, HsmError> {
        let slots = described_slots(&self.ctx).map_err(|e| to_hsm_error(&e))?;
        let mut found = Vec::new();
        let mut undescribed = Vec::new();
        for (slot, description) in slots {
            match description {
                Description::Read(info) => {
                    let facts = super::TokenFacts {
                        slot_id: slot.id(),
                        label: info.label(),
                        manufacturer: info.manufacturer_id(),
                        model: info.model(),
                        serial: info.serial_number(),
                    };
                    if info.token_initialized() && self.token.matches(&facts) {
                        found.push(slot);
                    }
                }
                Description::Malformed(why) => {
                    if self.token.slot_only() == Some(slot.id()) {
                        found.push(slot);
                    } else {
                        undescribed.push(format!(
                            "the token in slot {} cannot be matched, {why} (select it by its slot id alone: \
                             token_uri = \"pkcs11:slot-id={}\")",
                            slot.id(),
                            slot.id()
                        ));
                    }
                }
            }
        }
        match found.as_slice() {
            [slot] => Ok(*slot),
            [] if undescribed.is_empty() => Err(HsmError::Unavailable(format!("no {}", self.token))),
            [] => Err(HsmError::Unavailable(format!(
                "no {}; {}",
                self.token,
                undescribed.join("; ")
            ))),
            _ => Err(HsmError::Other(format!(
                "{} slots hold {}; select one by serial or slot-id (a PKCS#11 URI in [hsm] token_uri, or [hsm] slot)",
                found.len(),
                self.token
            ))),
        }
    }
}

/// `C_Initialize` with OS locking. Ok(true) if this call initialized the
/// module, Ok(false) if someone in this process already had.
pub(crate) fn initialize(ctx: &Pkcs11) -> Result<bool, HsmError> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => Ok(true),
        Err(e) if rv_of(&e) == Some(RvError::CryptokiAlreadyInitialized) => Ok(false),
        Err(e) => Err(HsmError::Unavailable(ck_name(&e))),
    }
}
