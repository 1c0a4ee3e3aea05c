//! Per-message state: the caller, the clock, the protocol version and the ID
//! Placeholder that links the items of one batch (KMIP 1.4 §3 "ID Placeholder").

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::error::OpError;
use super::support::ServerInfo;
use crate::keys::KeyService;
use crate::kmip::ResultReason;
use crate::kmip::message::ProtocolVersion;
use crate::password::ClientPassword;
use crate::ttlv::Item;

/// Who is asking: derived by the network layer from the verified client
/// certificate and the trust entry that accepted it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The trust entry's name (for the audit trail).
    pub name: String,
    /// Objects belong to a group; a caller sees only its own group's objects.
    pub group: String,
    /// When set, requests must carry this Username/Password, except those
    /// [`super::credential`] exempts (what vCenter sends without it).
    pub password: Option<ClientPassword>,
    /// Shared by every message of one connection: set once a message on it
    /// carried the right credential.
    pub credential_verified: Arc<AtomicBool>,
}

impl Caller {
    /// A caller with no password and a fresh connection state.
    pub fn new(name: impl Into<String>, group: impl Into<String>) -> Caller {
        Caller {
            name: name.into(),
            group: group.into(),
            password: None,
            credential_verified: Arc::new(AtomicBool::new(false)),
        }
    }
}

pub(super) struct Context<'a> {
    pub keys: &'a KeyService,
    pub info: &'a ServerInfo,
    pub caller: &'a Caller,
    pub now: i64,
    pub version: ProtocolVersion,
    pub id_placeholder: Option<String>,
}

/// A batch item's answer: the response payload and the object it concerns, or
/// the failure and the object it concerns (for the audit trail).
pub(super) type ItemResult = Result<(Option<Item>, Option<String>), (OpError, Option<String>)>;

impl Context<'_> {
    /// The identifier an item names, or the ID Placeholder when it names none.
    pub fn uid(&self, given: &Option<String>) -> Result<String, OpError> {
        match given {
            Some(uid) => Ok(uid.clone()),
            None => self.id_placeholder.clone().ok_or_else(|| {
                OpError::new(
                    ResultReason::ITEM_NOT_FOUND,
                    "no Unique Identifier and no ID Placeholder",
                )
            }),
        }
    }

    pub fn group(&self) -> &str {
        &self.caller.group
    }
}

/// Tags a failure with the identifier it concerns, for the audit trail.
pub(super) fn about<E: Into<OpError>>(uid: &str) -> impl FnOnce(E) -> (OpError, Option<String>) + '_ {
    move |e| (e.into(), Some(uid.to_owned()))
}
