//! Query: what this server supports (vCenter asks when an administrator adds
//! the KMS).

use super::context::{Context, ItemResult};
use super::support::{SUPPORTED_OBJECT_TYPES, SUPPORTED_OPERATIONS};
use crate::kmip::QueryFunction;
use crate::kmip::payload::Payload;
use crate::kmip::payload::query::{Request, Response};
use crate::kmip::tags;
use crate::ttlv::{Item, Value};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let wants = |f: QueryFunction| request.query_functions.contains(&f);
    let mut response = Response::default();
    if wants(QueryFunction::QUERY_OPERATIONS) {
        response.operations = SUPPORTED_OPERATIONS.to_vec();
    }
    if wants(QueryFunction::QUERY_OBJECTS) {
        response.object_types = SUPPORTED_OBJECT_TYPES.to_vec();
    }
    if wants(QueryFunction::QUERY_SERVER_INFORMATION) {
        response.vendor_identification = Some(ctx.info.vendor_identification.clone());
        response.server_information = Some(Item::structure(
            tags::SERVER_INFORMATION,
            vec![Item::new(
                tags::SERVER_NAME,
                Value::TextString(ctx.info.server_information.clone()),
            )],
        ));
    }
    Ok((Some(response.to_payload()), None))
}
