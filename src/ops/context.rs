//! Per-message state: the caller, the clock, the protocol version and the ID
//! Placeholder that links the items of one batch (KMIP 1.4 §3 "ID Placeholder").

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::{OpError, Operations, payload_of};
use crate::kmip::message::{ProtocolVersion, RequestBatchItem};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, ResultReason};
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
    pub ops: &'a Operations,
    pub caller: &'a Caller,
    pub now: i64,
    pub version: ProtocolVersion,
    pub id_placeholder: Option<String>,
}

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

    pub async fn dispatch(&mut self, item: &RequestBatchItem) -> ItemResult {
        // keyward knows no vendor extensions: a critical one refuses the item,
        // a non-critical one is ignored (KMIP 1.4 §6.16).
        let critical = item.message_extension.as_ref().is_some_and(|ext| {
            ext.child(crate::kmip::tags::CRITICALITY_INDICATOR)
                .and_then(Item::as_bool)
                .unwrap_or(false)
        });
        if critical {
            return Err((
                OpError::new(
                    ResultReason::FEATURE_NOT_SUPPORTED,
                    "critical message extension not recognized",
                ),
                None,
            ));
        }
        let payload = payload_of(item);
        let op = item.operation;
        let result = match op {
            Operation::DISCOVER_VERSIONS => super::discover_versions::run(self, &payload).await,
            Operation::QUERY => super::query::run(self, &payload).await,
            Operation::CREATE => super::create::run(self, &payload).await,
            Operation::REGISTER => super::register::run(self, &payload).await,
            Operation::GET => super::get::run(self, &payload).await,
            Operation::GET_ATTRIBUTES => super::get_attributes::run(self, &payload).await,
            Operation::GET_ATTRIBUTE_LIST => super::get_attribute_list::run(self, &payload).await,
            Operation::ADD_ATTRIBUTE => super::add_attribute::run(self, &payload).await,
            Operation::MODIFY_ATTRIBUTE => super::modify_attribute::run(self, &payload).await,
            Operation::DELETE_ATTRIBUTE => super::delete_attribute::run(self, &payload).await,
            Operation::LOCATE => super::locate::run(self, &payload).await,
            Operation::ACTIVATE => super::activate::run(self, &payload).await,
            Operation::REVOKE => super::revoke::run(self, &payload).await,
            Operation::DESTROY => super::destroy::run(self, &payload).await,
            Operation::RE_KEY => super::rekey::run(self, &payload).await,
            Operation::CHECK => super::check::run(self, &payload).await,
            other => Err((
                OpError::not_supported(format!(
                    "operation {} is not supported",
                    other.name().unwrap_or("unknown")
                )),
                None,
            )),
        };
        if let Ok((_, Some(uid))) = &result {
            // Operations that create or find an object set the placeholder.
            if matches!(
                op,
                Operation::CREATE | Operation::REGISTER | Operation::RE_KEY | Operation::LOCATE
            ) {
                self.id_placeholder = Some(uid.clone());
            }
        }
        result
    }
}

/// Parses a payload; a failure carries no identifier.
pub(super) fn parse<P: Payload>(payload: &Item) -> Result<P, (OpError, Option<String>)> {
    P::from_payload(payload).map_err(|e| (e.into(), None))
}

/// Tags a failure with the identifier it concerns, for the audit trail.
pub(super) fn about<E: Into<OpError>>(uid: &str) -> impl FnOnce(E) -> (OpError, Option<String>) + '_ {
    move |e| (e.into(), Some(uid.to_owned()))
}
