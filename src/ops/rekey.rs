//! Re-key: a new symmetric key that replaces an existing one, linked both ways.

use super::attributes::client_attributes;
use super::context::{Context, ItemResult, about, parse};
use super::create::algorithm_and_length;
use super::error::OpError;
use crate::keys::{KeyError, names};
use crate::kmip::attribute::{self, Attribute, Link};
use crate::kmip::object::{KeyBlock, ManagedObject};
use crate::kmip::payload::Payload;
use crate::kmip::payload::rekey::{Request, Response};
use crate::kmip::{LinkType, ObjectType, ResultReason, tags};
use crate::ttlv::{Item, Value};

/// Attributes the replacement key inherits from the key it replaces.
const INHERITED: [&str; 5] = [
    names::CRYPTOGRAPHIC_ALGORITHM,
    names::CRYPTOGRAPHIC_LENGTH,
    names::CRYPTOGRAPHIC_USAGE_MASK,
    names::NAME,
    names::OBJECT_GROUP,
];

pub(super) async fn run(ctx: &mut Context<'_>, payload: &Item) -> ItemResult {
    let request: Request = parse(payload)?;
    let old_uid = ctx.uid(&request.unique_identifier).map_err(|e| (e, None))?;
    let new_uid = rekey(ctx, &old_uid, request).await.map_err(about(&old_uid))?;
    let response = Response {
        unique_identifier: new_uid.clone(),
        template_attribute: None,
        extra: Vec::new(),
    };
    Ok((Some(response.to_payload()), Some(new_uid)))
}

async fn rekey(ctx: &Context<'_>, old_uid: &str, request: Request) -> Result<String, OpError> {
    let old = ctx.ops.keys.load(ctx.group(), old_uid, ctx.now).await?;
    if old.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::invalid_field("Re-key applies to symmetric keys"));
    }
    let extra = match request.template_attribute {
        Some(t) => client_attributes(t.attributes)?,
        None => Vec::new(),
    };
    let mut attributes: Vec<Attribute> = old
        .attributes
        .iter()
        .filter(|a| {
            (INHERITED.contains(&a.name.as_str()) || crate::keys::is_custom(&a.name))
                && !extra.iter().any(|e| e.name == a.name)
        })
        .cloned()
        .collect();
    attributes.extend(extra);
    let (algorithm, length) = algorithm_and_length(&attributes)?;
    let offset = i64::from(request.offset.map(|o| o.0).unwrap_or(0));
    attributes.retain(|a| a.name != names::ACTIVATION_DATE);
    attributes.push(Attribute::new(
        names::ACTIVATION_DATE,
        Value::DateTime(ctx.now + offset),
    ));
    let link = |kind: LinkType, target: &str| {
        let value = Link {
            link_type: kind,
            linked_object_identifier: target.to_owned(),
        }
        .to_value(tags::ATTRIBUTE_VALUE);
        Attribute {
            name: names::LINK.to_owned(),
            index: None,
            value,
        }
    };
    attributes.push(link(LinkType::REPLACED_OBJECT_LINK, old_uid));
    for a in &attributes {
        attribute::validate_value(a)?;
    }
    let material = ctx.ops.keys.generate_material(length / 8).await?;
    let mut block = KeyBlock::raw(algorithm, material);
    block.cryptographic_length = Some(length as i32);
    let object = ManagedObject::SymmetricKey { key_block: block }.to_item();
    let new_uid = ctx
        .ops
        .keys
        .create(
            ctx.group(),
            ObjectType::SYMMETRIC_KEY,
            &object,
            attributes,
            ctx.now,
        )
        .await?;
    let back = link(LinkType::REPLACEMENT_OBJECT_LINK, &new_uid);
    ctx.ops
        .keys
        .update(ctx.group(), old_uid, ctx.now, |object| {
            object.add_instance(&back.name, back.value.clone());
            Ok(())
        })
        .await
        .map_err(|e: KeyError| {
            OpError::new(
                ResultReason::GENERAL_FAILURE,
                format!("new key {new_uid} made, but linking the old one failed: {e}"),
            )
        })?;
    Ok(new_uid)
}
