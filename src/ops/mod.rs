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
mod attributes;
mod check;
mod context;
mod create;
mod delete_attribute;
mod destroy;
mod discover_versions;
mod dispatch;
pub mod error;
mod get;
mod get_attribute_list;
mod get_attributes;
mod locate;
mod modify_attribute;
mod query;
mod register;
mod rekey;
mod revoke;
mod support;

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
        let Ok(tree) = ttlv::decode_with(request, &self.limits) else {
            // Not even TTLV: nothing to answer in, no version to answer with.
            return Handled {
                response: None,
                outcomes: Vec::new(),
            };
        };
        let message = match DecodedRequest::from_item(&tree) {
            Ok(m) => m,
            Err(e) => {
                let version = request_protocol_version(&tree).unwrap_or(ProtocolVersion::V1_0);
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
        // The request tree may hold key material (Register): the typed request
        // owns what it needs from here on.
        drop(tree);
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
        let mut responses = Vec::with_capacity(items.len());
        let mut outcomes = Vec::with_capacity(items.len());
        for batch_item in &mut items {
            let result = run_item(&mut ctx, batch_item).await;
            let failed = result.is_err();
            match result {
                Ok((payload, uid)) => {
                    responses.push(ResponseBatchItem::success(
                        batch_item.operation,
                        batch_item.unique_batch_item_id.clone(),
                        payload,
                    ));
                    outcomes.push(ItemOutcome {
                        operation: batch_item.operation,
                        unique_identifier: uid,
                        result: Ok(()),
                    });
                }
                Err((error, uid)) => {
                    responses.push(failure_item(batch_item, &error));
                    outcomes.push(ItemOutcome {
                        operation: batch_item.operation,
                        unique_identifier: uid,
                        result: Err(error),
                    });
                }
            }
            // Stop (the default) and Undo both end the batch at the first failure;
            // nothing done before it is undone.
            if failed && !continue_on_error {
                break;
            }
        }
        let mut response = self.response(version, now, responses);
        if let Some(max) = header.maximum_response_size
            && usize::try_from(max).is_ok_and(|max| response.len() > max)
        {
            let error = OpError::new(
                ResultReason::RESPONSE_TOO_LARGE,
                "response exceeds Maximum Response Size",
            );
            let responses = items.iter().map(|b| failure_item(b, &error)).collect();
            // The refused response may hold key material (Get).
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
