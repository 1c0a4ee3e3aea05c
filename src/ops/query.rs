//! Query: what this server supports (vCenter asks when an administrator adds
//! the KMS).

use super::SUPPORTED_OPERATIONS;
use super::context::{Context, ItemResult, parse};
use crate::kmip::payload::Payload;
use crate::kmip::payload::query::{Request, Response};
use crate::kmip::tags;
use crate::kmip::{ObjectType, QueryFunction};
use crate::ttlv::{Item, Value};

/// Object types Create, Register and Get handle.
pub(super) const SUPPORTED_OBJECT_TYPES: [ObjectType; 3] = [
    ObjectType::SYMMETRIC_KEY,
    ObjectType::SECRET_DATA,
    ObjectType::OPAQUE_OBJECT,
];

pub(super) async fn run(ctx: &mut Context<'_>, payload: &Item) -> ItemResult {
    let request: Request = parse(payload)?;
    let wants = |f: QueryFunction| request.query_functions.contains(&f);
    let mut response = Response::default();
    if wants(QueryFunction::QUERY_OPERATIONS) {
        response.operations = SUPPORTED_OPERATIONS.to_vec();
    }
    if wants(QueryFunction::QUERY_OBJECTS) {
        response.object_types = SUPPORTED_OBJECT_TYPES.to_vec();
    }
    if wants(QueryFunction::QUERY_SERVER_INFORMATION) {
        response.vendor_identification = Some(ctx.ops.info.vendor_identification.clone());
        response.server_information = Some(Item::structure(
            tags::SERVER_INFORMATION,
            vec![Item::new(
                tags::SERVER_NAME,
                Value::TextString(ctx.ops.info.server_information.clone()),
            )],
        ));
    }
    Ok((Some(response.to_payload()), None))
}
