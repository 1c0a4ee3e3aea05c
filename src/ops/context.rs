//! Per-message state: the caller, the clock, the protocol version and the ID
//! Placeholder that links the items of one batch (KMIP 1.4 §3 "ID Placeholder").

use super::error::OpError;
use super::support::ServerInfo;
use crate::auth::Caller;
use crate::keys::KeyService;
use crate::keys::{KeyError, StoredObject};
use crate::kmip::ResultReason;
use crate::kmip::message::ProtocolVersion;
use crate::ttlv::Item;

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
    pub(super) fn uid(&self, given: &Option<String>) -> Result<String, OpError> {
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

    /// KMIP 2.x names some failures that 1.x folds into a general reason
    /// (Permission Denied, Illegal Operation): `from` becomes `to` when the
    /// message speaks 2.x, and stays as it is for 1.x clients and their
    /// test cases.
    pub(super) fn v2_reason(&self, mut e: OpError, from: ResultReason, to: ResultReason) -> OpError {
        if crate::kmip::v2::is_v2(self.version) && e.reason == from {
            e.reason = to;
        }
        e
    }

    /// Changes an object of the caller's group (see [`KeyService::update`]).
    pub(super) async fn update<R>(
        &self,
        uid: &str,
        change: impl FnMut(&mut StoredObject) -> Result<R, KeyError>,
    ) -> Result<R, KeyError> {
        let target = self.keys.load(self.caller, uid, self.now).await?;
        self.keys.update(target, self.now, change).await
    }
}

/// Tags a failure with the identifier it concerns, for the audit trail.
pub(super) fn about<E: Into<OpError>>(uid: &str) -> impl FnOnce(E) -> (OpError, Option<String>) + '_ {
    move |e| (e.into(), Some(uid.to_owned()))
}
