//! Register: a client-supplied object (symmetric, public or private key,
//! X.509 certificate, secret data, opaque object), stored sealed like a
//! generated one.

use super::attributes::{client_attributes, stamp_creator};
use super::context::{Context, ItemResult};
use super::error::OpError;
use super::support::SUPPORTED_OBJECT_TYPES;
use crate::keys::names;
use crate::kmip::attribute::Attribute;
use crate::kmip::object::{KeyValue, ManagedObject};
use crate::kmip::payload::Payload;
use crate::kmip::payload::register::{Request, Response};
use crate::kmip::{KeyFormatType, ResultReason};
use crate::ttlv::Value;

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = register(ctx, request).await.map_err(|e| (e, None))?;
    let response = Response {
        unique_identifier: uid.clone(),
        template_attribute: None,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(uid)))
}

async fn register(ctx: &Context<'_>, request: Request) -> Result<String, OpError> {
    let object_type = request.object.object_type();
    if object_type != request.object_type {
        return Err(OpError::invalid_field("Object Type does not match the object"));
    }
    if !SUPPORTED_OBJECT_TYPES.contains(&object_type) {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            format!(
                "objects of type {} cannot be registered",
                object_type.name().unwrap_or("unknown")
            ),
        ));
    }
    if !request.template_attribute.names.is_empty() {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "templates are not supported",
        ));
    }
    // A certificate's type is the object's: a client may repeat it (2.x
    // clients do), not contradict it.
    let mut given = request.template_attribute.attributes;
    if let ManagedObject::Certificate { certificate_type, .. } = &request.object {
        let name = crate::kmip::attribute::attr::CERTIFICATE_TYPE;
        if given
            .iter()
            .any(|a| a.name == name && a.value.as_enum() != Some(certificate_type.0))
        {
            return Err(OpError::invalid_field(
                "Certificate Type is not the certificate's",
            ));
        }
        given.retain(|a| a.name != name);
    }
    let mut attributes = client_attributes(given)?;
    let mut object = request.object;
    // Material wrapped under a managed key is unwrapped, then stored like any.
    if object.key_block().is_some_and(|b| b.key_wrapping_data.is_some()) {
        object = super::wrap::unwrap_registered(ctx, object).await?;
    }
    if let Some(block) = object.key_block() {
        if matches!(block.key_value, Some(KeyValue::Wrapped(_)) | None) || block.key_wrapping_data.is_some() {
            return Err(OpError::new(
                ResultReason::FEATURE_NOT_SUPPORTED,
                "wrapped key material needs its Key Wrapping Data, naming a managed key",
            ));
        }
        let asymmetric = matches!(
            object,
            ManagedObject::PublicKey { .. } | ManagedObject::PrivateKey { .. }
        );
        if asymmetric {
            // The material must parse and be what the key block says.
            let implied: Vec<Attribute> = super::asymmetric::inspect_registered(&object)?
                .into_iter()
                .filter(|a| !attributes.iter().any(|b| b.name == a.name))
                .collect();
            attributes.extend(implied);
        } else if !matches!(
            block.key_format_type,
            KeyFormatType::RAW | KeyFormatType::OPAQUE | KeyFormatType::TRANSPARENT_SYMMETRIC_KEY
        ) {
            return Err(OpError::new(
                ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
                "key format type not supported",
            ));
        }
        // The key block's algorithm and length become attributes unless the client
        // gave them.
        let has = |n: &str, attrs: &[Attribute]| attrs.iter().any(|a| a.name == n);
        if let Some(alg) = block.cryptographic_algorithm
            && !has(names::CRYPTOGRAPHIC_ALGORITHM, &attributes)
        {
            attributes.push(Attribute::new(
                names::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(alg.0),
            ));
        }
        if let Some(len) = block.cryptographic_length
            && !has(names::CRYPTOGRAPHIC_LENGTH, &attributes)
        {
            attributes.push(Attribute::new(names::CRYPTOGRAPHIC_LENGTH, Value::Integer(len)));
        }
    }
    attributes.extend(super::certificate::inspect_certificate(&object)?);
    stamp_creator(&mut attributes, ctx.caller.name());
    // Moved, not copied: the client's key material is encoded once, to be sealed.
    let object = object.into_item();
    Ok(ctx
        .keys
        .create(ctx.caller.group(), object_type, &object, attributes, ctx.now)
        .await?)
}
