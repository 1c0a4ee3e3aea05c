//! Create: a new symmetric key, generated from the HSM's random number
//! generator and stored sealed under the root key.

use super::attributes::client_attributes;
use super::context::{Context, ItemResult, parse};
use super::error::OpError;
use crate::keys::names;
use crate::kmip::attribute::Attribute;
use crate::kmip::object::{KeyBlock, ManagedObject};
use crate::kmip::payload::Payload;
use crate::kmip::payload::create::{Request, Response};
use crate::kmip::{CryptographicAlgorithm, ObjectType, ResultReason};
use crate::ttlv::{Item, Value};

pub(super) async fn run(ctx: &mut Context<'_>, payload: &Item) -> ItemResult {
    let request: Request = parse(payload)?;
    let uid = create(ctx, request).await.map_err(|e| (e, None))?;
    Ok((
        Some(
            Response {
                object_type: ObjectType::SYMMETRIC_KEY,
                unique_identifier: uid.clone(),
                template_attribute: None,
                extra: Vec::new(),
            }
            .to_payload(),
        ),
        Some(uid),
    ))
}

async fn create(ctx: &Context<'_>, request: Request) -> Result<String, OpError> {
    if request.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::new(
            ResultReason::INVALID_FIELD,
            "Create makes symmetric keys only",
        ));
    }
    if !request.template_attribute.names.is_empty() {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "templates are not supported",
        ));
    }
    let attributes = client_attributes(request.template_attribute.attributes)?;
    let (algorithm, length) = algorithm_and_length(&attributes)?;
    let material = ctx.ops.keys.generate_material(length / 8).await?;
    let mut block = KeyBlock::raw(algorithm, material);
    block.cryptographic_length = Some(length as i32);
    let object = ManagedObject::SymmetricKey { key_block: block }.to_item();
    Ok(ctx
        .ops
        .keys
        .create(
            ctx.group(),
            ObjectType::SYMMETRIC_KEY,
            &object,
            attributes,
            ctx.now,
        )
        .await?)
}

/// The algorithm and length a new symmetric key must have: AES of 128, 192 or
/// 256 bits (what vCenter and the KMIP symmetric key profiles use).
pub(super) fn algorithm_and_length(
    attributes: &[Attribute],
) -> Result<(CryptographicAlgorithm, usize), OpError> {
    let find = |name: &str| attributes.iter().find(|a| a.name == name).map(|a| &a.value.value);
    let algorithm = match find(names::CRYPTOGRAPHIC_ALGORITHM) {
        Some(Value::Enumeration(v)) => CryptographicAlgorithm(*v),
        Some(_) => {
            return Err(OpError::invalid_field(
                "Cryptographic Algorithm must be an enumeration",
            ));
        }
        None => {
            return Err(OpError::new(
                ResultReason::INVALID_FIELD,
                "Cryptographic Algorithm is required",
            ));
        }
    };
    if algorithm != CryptographicAlgorithm::AES {
        return Err(OpError::invalid_field(format!(
            "Cryptographic Algorithm {} is not supported (AES only)",
            algorithm.name().unwrap_or("unknown")
        )));
    }
    let length = match find(names::CRYPTOGRAPHIC_LENGTH) {
        Some(Value::Integer(v)) => *v,
        Some(_) => return Err(OpError::invalid_field("Cryptographic Length must be an integer")),
        None => return Err(OpError::invalid_field("Cryptographic Length is required")),
    };
    match length {
        128 | 192 | 256 => Ok((algorithm, length as usize)),
        other => Err(OpError::invalid_field(format!(
            "Cryptographic Length {other} is not supported for AES"
        ))),
    }
}
