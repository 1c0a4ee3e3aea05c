//! KMIP operations: one file per operation, one exhaustive dispatch, and one
//! place ([`error`]) that turns failures into Result Reasons.
//!
//! [`Operations::handle`] takes a whole request message (TTLV bytes) from a
//! verified [`Caller`] and returns the response message, plus one
//! [`ItemOutcome`] per batch item for the audit trail. It does no I/O of its
//! own beyond the key service.
//!
//! The message is decoded once ([`DecodedRequest`]): each batch item becomes a
//! typed [`crate::kmip::request::Request`], which `dispatch` hands by value to
//! its operation file. The operation files import only the leaves they share
//! (`context`, `error`, `attributes`, `support`); nothing imports `dispatch`
//! but this module.

mod activate;
mod add_attribute;
mod asymmetric;
mod attributes;
mod certificate;
mod check;
mod cipher;
mod context;
mod create;
mod create_key_pair;
mod decrypt;
mod delete_attribute;
mod destroy;
mod discover_versions;
mod dispatch;
mod encrypt;
pub mod error;
mod get;
mod get_attribute_list;
mod get_attributes;
mod interop;
mod locate;
mod mac;
mod mac_verify;
mod modify_attribute;
mod query;
mod register;
mod rekey;
mod revoke;
mod sign;
mod signature_verify;
mod support;
mod undo;
mod wrap;

use std::sync::Arc;

use context::Context;
pub use error::{Internal, OpError};
pub use support::{SUPPORTED_OPERATIONS, SUPPORTED_VERSIONS, ServerInfo};

use crate::auth::Caller;
use crate::auth::credential;
use crate::keys::KeyService;
use crate::kmip::message::{
    ProtocolVersion, ResponseBatchItem, ResponseHeader, ResponseMessage, request_protocol_version,
};
use crate::kmip::request::{DecodedItem, DecodedRequest};
use crate::kmip::{BatchErrorContinuationOption, Operation, ResultReason};
use crate::limits::RESPONSE_ITEM_MIN_ROOM;
use crate::ttlv::{self, DecodeLimits};

/// One batch item's result, for the audit trail. Holds no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemOutcome {
    pub operation: Operation,
    pub unique_identifier: Option<String>,
    pub result: Result<(), OpError>,
}

impl ItemOutcome {
    /// For a server-side failure: the correlation reference the client's
    /// Result Message names and the detail only operators see (for the audit
    /// trail and the log; [`OpError::audit_message`] joins them).
    pub fn internal(&self) -> Option<&Internal> {
        self.result.as_ref().err().and_then(|e| e.internal.as_ref())
    }
}

/// A handled message: the response to send (or `None`: close the connection,
/// the request could not be read at all) and what happened to each item.
#[derive(Debug)]
pub struct Handled {
    pub response: Option<Vec<u8>>,
    pub outcomes: Vec<ItemOutcome>,
}

pub struct Operations {
    pub keys: Arc<KeyService>,
    pub info: ServerInfo,
    pub limits: DecodeLimits,
    /// Client credentials that verified in this process (see [`credential`]).
    pub credentials: credential::AcceptedCredentials,
}

impl Operations {
    pub fn new(keys: Arc<KeyService>, info: ServerInfo, limits: DecodeLimits) -> Self {
        Operations {
            keys,
            info,
            limits,
            credentials: credential::AcceptedCredentials::default(),
        }
    }

    /// Answers one request message.
    pub async fn handle(&self, caller: &Caller, request: &[u8]) -> Handled {
        let now = crate::clock::unix_now();
        let Ok(mut tree) = ttlv::decode_with(request, &self.limits) else {
            // Not even TTLV: nothing to answer in, no version to answer with.
            return Handled {
                response: None,
                outcomes: Vec::new(),
            };
        };
        let decoded = DecodedRequest::from_item(&tree);
        let tree_version = request_protocol_version(&tree);
        // The request tree may hold a password (the typed request keeps its own
        // copy, wiped on drop) and key material (Register; byte strings wipe
        // themselves): the typed request owns what it needs from here on.
        crate::kmip::message::wipe_passwords(&mut tree);
        drop(tree);
        let message = match decoded {
            Ok(m) => m,
            Err(e) => {
                let version = tree_version.unwrap_or(ProtocolVersion::V1_0);
                let error = OpError::from(e);
                let item = ResponseBatchItem::failure(None, None, error.reason, error.message.clone());
                let outcome = ItemOutcome {
                    operation: Operation(0),
                    unique_identifier: None,
                    result: Err(error),
                };
                return Handled {
                    response: Some(self.response(version, now, vec![item])),
                    outcomes: vec![outcome],
                };
            }
        };
        let DecodedRequest { header, mut items } = message;
        let version = header.protocol_version;
        let operations: Vec<Operation> = items.iter().map(|i| i.operation).collect();

        if let Err(refused) = credential::authenticate(&self.credentials, caller, &header, &operations).await
        {
            let error = OpError::new(ResultReason::AUTHENTICATION_NOT_SUCCESSFUL, refused.to_string());
            let responses = items.iter().map(|b| failure_item(b, &error)).collect();
            let outcomes = items
                .iter()
                .map(|b| ItemOutcome {
                    operation: b.operation,
                    unique_identifier: None,
                    result: Err(error.clone()),
                })
                .collect();
            return Handled {
                response: Some(self.response(version, now, responses)),
                outcomes,
            };
        }

        let mut ctx = Context {
            keys: &self.keys,
            info: &self.info,
            caller,
            now,
            version,
            id_placeholder: None,
        };
        let continue_on_error =
            header.batch_error_continuation_option == Some(BatchErrorContinuationOption::CONTINUE);
        let undoing = header.batch_error_continuation_option == Some(BatchErrorContinuationOption::UNDO);
        // Only an Undo batch plans its undoing (nothing is kept otherwise).
        let plans: Vec<undo::Plan> = if undoing {
            items
                .iter()
                .map(|b| b.request.as_ref().map_or(undo::Plan::Nothing, undo::plan))
                .collect()
        } else {
            Vec::new()
        };
        let plan_of = |index: usize| plans.get(index).unwrap_or(&undo::Plan::Nothing);
        let mut undo_log = undo::UndoLog::default();
        let mut succeeded = Vec::new();
        // The response budget: the configured maximum message size, or the
        // client's Maximum Response Size when smaller. It is spent while the
        // batch is built, so that no response larger than it is ever held.
        let client_max = header
            .maximum_response_size
            .map(|m| usize::try_from(m).unwrap_or(0));
        let server_max = self.limits.max_message_bytes;
        let mut budget = match client_max {
            // The client chose a smaller budget: its items run whenever their
            // failure answer still fits.
            Some(max) if max < server_max => Budget::new(max, 0, version, now, &items),
            _ => Budget::new(server_max, RESPONSE_ITEM_MIN_ROOM, version, now, &items),
        };
        let mut responses = Vec::with_capacity(items.len());
        let mut outcomes = Vec::with_capacity(items.len());
        for (index, batch_item) in items.iter_mut().enumerate() {
            let (response, outcome) = match budget.room_for_next() {
                // Spent: answered without running (no side effect without an answer).
                None => too_large(batch_item, None),
                Some(room) => {
                    undo_log.before(&ctx, index, plan_of(index)).await;
                    let result = run_item(&mut ctx, batch_item).await;
                    let (response, outcome) = answer(batch_item, result, version);
                    if encoded_item_len(&response) > room {
                        // The refused payload may hold key material (Get): its
                        // secrets are wiped when it drops.
                        too_large(batch_item, outcome.unique_identifier)
                    } else {
                        (response, outcome)
                    }
                }
            };
            let failed = outcome.result.is_err();
            if undoing && !failed && *plan_of(index) != undo::Plan::Irreversible {
                undo_log.made(index, plan_of(index), outcome.unique_identifier.as_deref());
                succeeded.push(index);
            }
            budget.spend(&response);
            responses.push(response);
            outcomes.push(outcome);
            // Stop (the default) and Undo both end the batch at the first
            // failure; Undo then takes back what the items before it did.
            if failed && !continue_on_error {
                if undoing {
                    for i in undo_log.undo(&ctx, &succeeded).await {
                        responses[i].result_status = crate::kmip::ResultStatus::OPERATION_UNDONE;
                    }
                }
                break;
            }
        }
        let mut response = self.response(version, now, responses);
        if let Some(max) = client_max
            && response.len() > max
        {
            // Even the failures do not fit a tiny Maximum Response Size.
            let error = OpError::new(
                ResultReason::RESPONSE_TOO_LARGE,
                "response exceeds Maximum Response Size",
            );
            let responses = items.iter().map(|b| failure_item(b, &error)).collect();
            zeroize::Zeroize::zeroize(&mut response);
            response = self.response(version, now, responses);
        }
        Handled {
            response: Some(response),
            outcomes,
        }
    }

    fn response(&self, version: ProtocolVersion, now: i64, items: Vec<ResponseBatchItem>) -> Vec<u8> {
        let count = i32::try_from(items.len()).unwrap_or(i32::MAX);
        let message = ResponseMessage {
            header: ResponseHeader::new(version, crate::kmip::fields::DateTime(now), count),
            batch_items: items,
            unknown: Vec::new(),
        };
        // Moved, not copied, into the tree: a Get's key material is encoded once.
        ttlv::encode_to_vec(&message.into_item())
    }
}

/// Runs one decoded batch item: its payload decode error, a critical extension
/// keyward does not know, or the operation's own answer.
async fn run_item(ctx: &mut Context<'_>, batch_item: &mut DecodedItem) -> context::ItemResult {
    if batch_item.critical_extension {
        return Err((
            OpError::new(
                ResultReason::FEATURE_NOT_SUPPORTED,
                "critical message extension not recognized",
            ),
            None,
        ));
    }
    // Taken out of the item, not cloned; the item keeps its operation and id
    // for the response.
    let request = std::mem::replace(
        &mut batch_item.request,
        Ok(crate::kmip::request::Request::Unknown(batch_item.operation)),
    );
    match request {
        Ok(request) => dispatch::dispatch(ctx, request).await,
        Err(e) => Err((e.into(), None)),
    }
}

/// The response bytes a batch is allowed, spent item by item.
///
/// Room is always kept for a Response Too Large answer to every item not yet
/// answered, so the whole response stays within the budget whatever the items
/// do; an item runs only when at least `min_room` ([`RESPONSE_ITEM_MIN_ROOM`]
/// under the server's budget) is left beyond that, and its answer is kept only
/// when it fits.
struct Budget {
    left: usize,
    /// What the failure answers of the items not yet answered would take.
    reserved: usize,
    /// Each item's failure answer size, in batch order.
    failures: std::vec::IntoIter<usize>,
    /// The room an item needs left to run at all.
    min_room: usize,
    spent: bool,
}

impl Budget {
    fn new(
        limit: usize,
        min_room: usize,
        version: ProtocolVersion,
        now: i64,
        items: &[DecodedItem],
    ) -> Budget {
        let header = ResponseHeader::new(
            version,
            crate::kmip::fields::DateTime(now),
            i32::try_from(items.len()).unwrap_or(i32::MAX),
        );
        // The message's own structure header and the response header.
        let fixed = 8 + ttlv::encoded_len(&header.to_item());
        let failures: Vec<usize> = items
            .iter()
            .map(|b| encoded_item_len(&too_large(b, None).0))
            .collect();
        Budget {
            left: limit.saturating_sub(fixed),
            reserved: failures.iter().sum(),
            failures: failures.into_iter(),
            min_room,
            spent: false,
        }
    }

    /// The room the next item's answer may take, or `None` once the budget is
    /// spent (that item and all after it fail with Response Too Large).
    fn room_for_next(&mut self) -> Option<usize> {
        let own = self.failures.next().unwrap_or(0);
        self.reserved = self.reserved.saturating_sub(own);
        let room = self.left.saturating_sub(self.reserved);
        if self.spent || room < self.min_room || room < own {
            self.spent = true;
            return None;
        }
        Some(room)
    }

    fn spend(&mut self, answer: &ResponseBatchItem) {
        if answer.result_reason == Some(ResultReason::RESPONSE_TOO_LARGE) {
            self.spent = true;
        }
        self.left = self.left.saturating_sub(encoded_item_len(answer));
    }
}

/// The encoded size of one response batch item, payload included, without
/// encoding (or copying) the payload.
fn encoded_item_len(item: &ResponseBatchItem) -> usize {
    let payload = item.payload.as_ref().map_or(0, ttlv::encoded_len);
    let shell = ResponseBatchItem {
        operation: item.operation,
        unique_batch_item_id: item.unique_batch_item_id.clone(),
        result_status: item.result_status,
        result_reason: item.result_reason,
        result_message: item.result_message.clone(),
        asynchronous_correlation_value: item.asynchronous_correlation_value.clone(),
        payload: None,
        message_extension: item.message_extension.clone(),
        unknown: item.unknown.clone(),
    };
    ttlv::encoded_len(&shell.to_item()) + payload
}

/// The answer and outcome of an item that ran.
fn answer(
    batch_item: &DecodedItem,
    result: context::ItemResult,
    version: ProtocolVersion,
) -> (ResponseBatchItem, ItemOutcome) {
    match result {
        Ok((payload, uid)) => {
            // The operations answer in the 1.x forms; 2.x clients get theirs.
            let payload = match payload {
                Some(p) if crate::kmip::v2::is_v2(version) => {
                    Some(crate::kmip::v2::response_to_v2(batch_item.operation, p))
                }
                other => other,
            };
            (
                ResponseBatchItem::success(
                    batch_item.operation,
                    batch_item.unique_batch_item_id.clone(),
                    payload,
                ),
                ItemOutcome {
                    operation: batch_item.operation,
                    unique_identifier: uid,
                    result: Ok(()),
                },
            )
        }
        Err((mut error, uid)) => (
            {
                // 2.x names a missing object Object Not Found.
                if crate::kmip::v2::is_v2(version) && error.reason == ResultReason::ITEM_NOT_FOUND {
                    error.reason = ResultReason::OBJECT_NOT_FOUND;
                }
                failure_item(batch_item, &error)
            },
            ItemOutcome {
                operation: batch_item.operation,
                unique_identifier: uid,
                result: Err(error),
            },
        ),
    }
}

/// Response Too Large for an item whose answer does not fit the budget.
fn too_large(batch_item: &DecodedItem, uid: Option<String>) -> (ResponseBatchItem, ItemOutcome) {
    let error = OpError::new(
        ResultReason::RESPONSE_TOO_LARGE,
        "response exceeds the response size budget",
    );
    (
        failure_item(batch_item, &error),
        ItemOutcome {
            operation: batch_item.operation,
            unique_identifier: uid,
            result: Err(error),
        },
    )
}

fn failure_item(batch_item: &DecodedItem, error: &OpError) -> ResponseBatchItem {
    ResponseBatchItem::failure(
        Some(batch_item.operation),
        batch_item.unique_batch_item_id.clone(),
        error.reason,
        error.message.clone(),
    )
}

#[cfg(test)]
mod tests;
