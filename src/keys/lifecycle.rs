//! The KMIP object lifecycle (KMIP 1.4 §3.22 "State" and its transitions), as
//! pure functions of the current state, dates and the clock.

use crate::kmip::{RevocationReasonCode, State};

/// Why a lifecycle transition was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionError {
    /// The object is not in a state the operation applies to.
    WrongState(State),
    /// The operation is forbidden in this state for policy reasons (KMIP answers
    /// Permission Denied: destroying an Active key, for example).
    NotPermitted(State),
}

/// The state an object is in at `now`, given its stored state and dates: a
/// Pre-Active object whose Activation Date has passed is Active, an Active one
/// whose Deactivation Date has passed is Deactivated (KMIP transitions 3 and 6).
pub fn effective_state(stored: State, activation: Option<i64>, deactivation: Option<i64>, now: i64) -> State {
    let mut state = stored;
    if state == State::PRE_ACTIVE && activation.is_some_and(|t| t <= now) {
        state = State::ACTIVE;
    }
    if (state == State::ACTIVE || state == State::PRE_ACTIVE) && deactivation.is_some_and(|t| t <= now) {
        state = State::DEACTIVATED;
    }
    state
}

/// Activate: only a Pre-Active object may be activated.
pub fn activate(current: State) -> Result<State, TransitionError> {
    if current == State::PRE_ACTIVE {
        Ok(State::ACTIVE)
    } else {
        Err(TransitionError::WrongState(current))
    }
}

/// Revoke: a compromise reason moves any live or deactivated object to
/// Compromised; any other reason deactivates a Pre-Active or Active object.
pub fn revoke(current: State, reason: RevocationReasonCode) -> Result<State, TransitionError> {
    let compromise =
        reason == RevocationReasonCode::KEY_COMPROMISE || reason == RevocationReasonCode::CA_COMPROMISE;
    match current {
        s if compromise && (s == State::PRE_ACTIVE || s == State::ACTIVE || s == State::DEACTIVATED) => {
            Ok(State::COMPROMISED)
        }
        s if compromise && s == State::COMPROMISED => Ok(State::COMPROMISED),
        s if !compromise && (s == State::ACTIVE || s == State::PRE_ACTIVE) => Ok(State::DEACTIVATED),
        s if !compromise && s == State::DEACTIVATED => Ok(State::DEACTIVATED),
        s => Err(TransitionError::WrongState(s)),
    }
}

/// Destroy: refused while Active (the key may be protecting data in use; it
/// must be revoked first); a compromised object becomes Destroyed Compromised.
pub fn destroy(current: State) -> Result<State, TransitionError> {
    match current {
        s if s == State::ACTIVE => Err(TransitionError::NotPermitted(s)),
        s if s == State::PRE_ACTIVE || s == State::DEACTIVATED => Ok(State::DESTROYED),
        s if s == State::COMPROMISED => Ok(State::DESTROYED_COMPROMISED),
        s => Err(TransitionError::WrongState(s)),
    }
}

/// Whether key material may be returned (Get) in this state.
pub fn material_available(state: State) -> bool {
    state != State::DESTROYED && state != State::DESTROYED_COMPROMISED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcenter_path_pre_active_to_active() {
        assert_eq!(activate(State::PRE_ACTIVE), Ok(State::ACTIVE));
        assert_eq!(
            activate(State::ACTIVE),
            Err(TransitionError::WrongState(State::ACTIVE))
        );
    }

    #[test]
    fn dates_move_state_forward() {
        assert_eq!(
            effective_state(State::PRE_ACTIVE, Some(100), None, 99),
            State::PRE_ACTIVE
        );
        assert_eq!(
            effective_state(State::PRE_ACTIVE, Some(100), None, 100),
            State::ACTIVE
        );
        assert_eq!(
            effective_state(State::ACTIVE, Some(100), Some(200), 250),
            State::DEACTIVATED
        );
        assert_eq!(
            effective_state(State::COMPROMISED, Some(1), Some(2), 250),
            State::COMPROMISED
        );
    }

    #[test]
    fn revoke_and_destroy_follow_the_spec() {
        let c = RevocationReasonCode::KEY_COMPROMISE;
        let u = RevocationReasonCode::CESSATION_OF_OPERATION;
        assert_eq!(revoke(State::ACTIVE, c), Ok(State::COMPROMISED));
        assert_eq!(revoke(State::ACTIVE, u), Ok(State::DEACTIVATED));
        assert_eq!(
            revoke(State::DESTROYED, u),
            Err(TransitionError::WrongState(State::DESTROYED))
        );
        assert_eq!(
            destroy(State::ACTIVE),
            Err(TransitionError::NotPermitted(State::ACTIVE))
        );
        assert_eq!(destroy(State::DEACTIVATED), Ok(State::DESTROYED));
        assert_eq!(destroy(State::COMPROMISED), Ok(State::DESTROYED_COMPROMISED));
        assert_eq!(
            destroy(State::DESTROYED),
            Err(TransitionError::WrongState(State::DESTROYED))
        );
        assert!(!material_available(State::DESTROYED_COMPROMISED));
    }
}
