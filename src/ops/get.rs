//! Get: the object with its key material, in Raw form unless the client asks
//! for Transparent Symmetric Key. vCenter sends only the Unique Identifier.

use super::context::{Context, ItemResult, about};
use super::error::OpError;
use crate::keys::lifecycle;
use crate::kmip::object::{KeyMaterial, KeyValue, ManagedObject};
use crate::kmip::payload::get::{Request, Response};
use crate::kmip::{KeyFormatType, ResultReason};

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let response = get(ctx, &uid, &request).await.map_err(about(&uid))?;
    Ok((Some(response.into_payload()), Some(uid)))
}

async fn get(ctx: &Context<'_>, uid: &str, request: &Request) -> Result<Response, OpError> {
    if request.key_wrap_type.is_some() {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "Key Wrap Type is not supported (ask for a Key Wrapping Specification)",
        ));
    }
    // Read before anything is loaded: a specification keyward cannot follow
    // is refused without touching the key.
    let wrap_spec = request
        .key_wrapping_specification
        .as_ref()
        .map(super::wrap::read_spec)
        .transpose()?;
    if request.key_compression_type.is_some() {
        return Err(OpError::new(
            ResultReason::KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
            "key compression is not supported",
        ));
    }
    let stored = ctx.keys.load(ctx.caller, uid, ctx.now).await?;
    let v2 = crate::kmip::v2::is_v2(ctx.version);
    // A destroyed object is gone as far as Get is concerned: Item Not Found
    // in 1.x, as the OASIS case TC-314 expects (and PyKMIP's suite), Object
    // Destroyed in 2.x (BL-M-8); its attributes stay readable.
    if !lifecycle::material_available(stored.state) {
        return Err(OpError::new(
            if v2 {
                ResultReason::OBJECT_DESTROYED
            } else {
                ResultReason::ITEM_NOT_FOUND
            },
            "the object was destroyed; only its attributes remain",
        ));
    }
    // A Sensitive object leaves the server only wrapped (KMIP 1.4 §3.47).
    let flag = |name: &str| stored.attribute(name).and_then(|a| a.value.as_bool()) == Some(true);
    if wrap_spec.is_none() && flag(crate::kmip::attribute::attr::SENSITIVE) {
        return Err(OpError::new(
            if v2 {
                ResultReason::SENSITIVE
            } else {
                ResultReason::PERMISSION_DENIED
            },
            "the object is Sensitive: ask for it wrapped (Key Wrapping Specification)",
        ));
    }
    let fresh = flag(crate::kmip::attribute::attr::FRESH);
    let object = ctx.keys.open(&stored).await?;
    let object = convert(object, request.key_format_type)?;
    let object = match &wrap_spec {
        Some(spec) => super::wrap::wrap(ctx, uid, spec, object).await?,
        None => object,
    };
    // Fresh holds until the object is first served (KMIP 1.4 §3.34).
    if fresh {
        ctx.update(uid, |o| {
            o.set_single(
                crate::kmip::attribute::attr::FRESH,
                crate::ttlv::Value::Boolean(false),
            );
            Ok(())
        })
        .await?;
    }
    Ok(Response {
        object_type: stored.object_type,
        unique_identifier: uid.to_owned(),
        object,
        extra: Vec::new(),
    })
}

/// Returns the object in the requested key format.
fn convert(object: ManagedObject, wanted: Option<KeyFormatType>) -> Result<ManagedObject, OpError> {
    let Some(wanted) = wanted else { return Ok(object) };
    let unsupported = || {
        OpError::new(
            ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            "key format type not supported for this object",
        )
    };
    match object {
        ManagedObject::SymmetricKey { mut key_block } => {
            if key_block.key_format_type == wanted {
                return Ok(ManagedObject::SymmetricKey { key_block });
            }
            let Some(KeyValue::Plain {
                key_material,
                attributes,
            }) = key_block.key_value
            else {
                return Err(unsupported());
            };
            let key = match key_material {
                KeyMaterial::Bytes(b) => b,
                KeyMaterial::TransparentSymmetric { key } => key,
                KeyMaterial::Other(_) => return Err(unsupported()),
            };
            let key_material = match wanted {
                KeyFormatType::RAW => KeyMaterial::Bytes(key),
                KeyFormatType::TRANSPARENT_SYMMETRIC_KEY => KeyMaterial::TransparentSymmetric { key },
                _ => return Err(unsupported()),
            };
            key_block.key_value = Some(KeyValue::Plain {
                key_material,
                attributes,
            });
            key_block.key_format_type = wanted;
            Ok(ManagedObject::SymmetricKey { key_block })
        }
        other => match other.key_block() {
            Some(block) if block.key_format_type == wanted => Ok(other),
            None if wanted == KeyFormatType::OPAQUE => Ok(other),
            _ => Err(unsupported()),
        },
    }
}
