//! KMIP operations: one file per operation, one exhaustive dispatch, and one
//! place ([`error`]) that turns failures into Result Reasons.
//!
//! [`Operations::handle`] takes a whole request message (TTLV bytes) from a
//! verified caller and returns the response message, plus one [`ItemOutcome`]
//! per batch item for the audit trail. It does no I/O of its own beyond the key
//! service.

mod activate;
mod add_attribute;
mod attributes;
mod check;
mod context;
mod create;
pub mod credential;
mod delete_attribute;
mod destroy;
mod discover_versions;
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

use std::sync::Arc;

pub use context::Caller;
use context::Context;
pub use error::OpError;

use crate::keys::KeyService;
use crate::kmip::message::{
    ProtocolVersion, RequestBatchItem, RequestMessage, ResponseBatchItem, ResponseHeader, ResponseMessage,
    request_protocol_version,
};
use crate::kmip::{BatchErrorContinuationOption, Operation, ResultReason};
use crate::ttlv::{self, DecodeLimits, Item};

/// The protocol versions this server speaks, most preferred first.
pub const SUPPORTED_VERSIONS: [ProtocolVersion; 5] = [
    ProtocolVersion::V1_4,
    ProtocolVersion::V1_3,
    ProtocolVersion::V1_2,
    ProtocolVersion::V1_1,
    ProtocolVersion::V1_0,
];

/// The operations the dispatch implements (Query reports these).
pub const SUPPORTED_OPERATIONS: [Operation; 16] = [
    Operation::CREATE,
    Operation::REGISTER,
    Operation::RE_KEY,
    Operation::LOCATE,
    Operation::CHECK,
    Operation::GET,
    Operation::GET_ATTRIBUTES,
    Operation::GET_ATTRIBUTE_LIST,
    Operation::ADD_ATTRIBUTE,
    Operation::MODIFY_ATTRIBUTE,
    Operation::DELETE_ATTRIBUTE,
    Operation::ACTIVATE,
    Operation::REVOKE,
    Operation::DESTROY,
    Operation::QUERY,
    Operation::DISCOVER_VERSIONS,
];

/// What the Query operation says about this server.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub vendor_identification: String,
    pub server_information: String,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            vendor_identification: "keyward".to_owned(),
            server_information: format!("keyward {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// One batch item's result, for the audit trail. Holds no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemOutcome {
    pub operation: Operation,
    pub unique_identifier: Option<String>,
    pub result: Result<(), OpError>,
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
        let message = match RequestMessage::from_item(&tree) {
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
        let version = message.header.protocol_version;
        let mut ctx = Context {
            ops: self,
            caller,
            now,
            version,
            id_placeholder: None,
        };

        if let Err(error) =
            credential::authenticate(&self.credentials, caller, &message.header, &message.batch_items).await
        {
            let items: Vec<ResponseBatchItem> = message
                .batch_items
                .iter()
                .map(|b| failure_item(b, &error))
                .collect();
            let outcomes = message
                .batch_items
                .iter()
                .map(|b| ItemOutcome {
                    operation: b.operation,
                    unique_identifier: None,
                    result: Err(error.clone()),
                })
                .collect();
            return Handled {
                response: Some(self.response(version, now, items)),
                outcomes,
            };
        }

        let continue_on_error =
            message.header.batch_error_continuation_option == Some(BatchErrorContinuationOption::CONTINUE);
        let mut items = Vec::with_capacity(message.batch_items.len());
        let mut outcomes = Vec::with_capacity(message.batch_items.len());
        for batch_item in &message.batch_items {
            let result = ctx.dispatch(batch_item).await;
            let failed = result.is_err();
            match result {
                Ok((payload, uid)) => {
                    items.push(ResponseBatchItem::success(
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
                    items.push(failure_item(batch_item, &error));
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
        let mut response = self.response(version, now, items);
        if let Some(max) = message.header.maximum_response_size
            && usize::try_from(max).is_ok_and(|max| response.len() > max)
        {
            let error = OpError::new(
                ResultReason::RESPONSE_TOO_LARGE,
                "response exceeds Maximum Response Size",
            );
            let items = message
                .batch_items
                .iter()
                .map(|b| failure_item(b, &error))
                .collect();
            response = self.response(version, now, items);
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
        ttlv::encode_to_vec(&message.to_item())
    }
}

fn failure_item(batch_item: &RequestBatchItem, error: &OpError) -> ResponseBatchItem {
    ResponseBatchItem::failure(
        Some(batch_item.operation),
        batch_item.unique_batch_item_id.clone(),
        error.reason,
        error.message.clone(),
    )
}

/// The payload of a batch item, or an empty Request Payload when it has none
/// (vCenter's first Discover Versions).
fn payload_of(batch_item: &RequestBatchItem) -> Item {
    batch_item
        .payload
        .clone()
        .unwrap_or_else(|| Item::structure(crate::kmip::tags::REQUEST_PAYLOAD, Vec::new()))
}
