//! Re-key: a new symmetric key that replaces an existing one, linked both ways.

use std::collections::{HashMap, HashSet};

use super::attributes::{client_attributes, stamp_creator};
use super::context::{Context, ItemResult, about};
use super::create::{algorithm_and_length, generate_material};
use super::error::OpError;
use crate::keys::{KeyError, names};
use crate::kmip::attribute::{self, Attribute, Link, attr};
use crate::kmip::object::{KeyBlock, ManagedObject};
use crate::kmip::payload::Payload;
use crate::kmip::payload::rekey::{Request, Response};
use crate::kmip::{LinkType, ObjectType, ResultReason, tags};
use crate::ttlv::Value;

/// Attributes the replacement key inherits from the key it replaces.
const INHERITED: [&str; 5] = [
    names::CRYPTOGRAPHIC_ALGORITHM,
    names::CRYPTOGRAPHIC_LENGTH,
    names::CRYPTOGRAPHIC_USAGE_MASK,
    names::NAME,
    names::OBJECT_GROUP,
];

/// Dates of the old key that the replacement gets shifted by the Offset.
const LIFECYCLE_DATES: [&str; 3] = [
    attr::PROCESS_START_DATE,
    attr::PROTECT_STOP_DATE,
    names::DEACTIVATION_DATE,
];

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
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
    let old = ctx.keys.load(ctx.caller, old_uid, ctx.now).await?;
    if old.object_type != ObjectType::SYMMETRIC_KEY {
        return Err(OpError::invalid_field("Re-key applies to symmetric keys"));
    }
    let extra = match request.template_attribute {
        Some(t) => client_attributes(t.attributes)?,
        None => Vec::new(),
    };
    // Linear in the template (hash sets): it is client input, bounded at parse
    // time by `limits::MAX_ATTRIBUTES_PER_TEMPLATE`.
    let given: HashSet<String> = extra.iter().map(|a| a.name.clone()).collect();
    let template_activation = given.contains(names::ACTIVATION_DATE);
    let shifted: Vec<&str> = LIFECYCLE_DATES
        .iter()
        .copied()
        .filter(|n| !given.contains(*n))
        .collect();
    // The template's values add to inherited multi-instance attributes (a new
    // Name joins the old ones) and replace single-instance ones.
    let replaced: HashSet<&str> = extra
        .iter()
        .filter(|a| !attribute::is_multi_instance(&a.name))
        .map(|a| a.name.as_str())
        .collect();
    let mut attributes: Vec<Attribute> = old
        .attributes
        .iter()
        .filter(|a| INHERITED.contains(&a.name.as_str()) || crate::keys::is_custom(&a.name))
        .filter(|a| !replaced.contains(a.name.as_str()))
        .cloned()
        .collect();
    let mut instances: HashMap<String, usize> = HashMap::new();
    for a in &attributes {
        *instances.entry(a.name.clone()).or_insert(0) += 1;
    }
    for mut a in extra {
        if attribute::is_multi_instance(&a.name) {
            let next = instances.entry(a.name.clone()).or_insert(0);
            a.index = if *next == 0 {
                None
            } else {
                i32::try_from(*next).ok()
            };
            *next += 1;
        } else {
            a.index = None;
        }
        attributes.push(a);
    }
    let (algorithm, length) = algorithm_and_length(&attributes)?;
    // With an Offset the new key activates at now + Offset and its later dates
    // keep their distance from Activation; without one the old key's dates are
    // copied (KMIP 1.4 §4.4). Dates in the template win over both.
    let old_activation = old.date(names::ACTIVATION_DATE);
    let activation = match request.offset {
        _ if template_activation => None,
        Some(offset) => Some(ctx.now.saturating_add(i64::from(offset.0))),
        None => old_activation,
    };
    if let Some(activation) = activation {
        attributes.push(Attribute::new(
            names::ACTIVATION_DATE,
            Value::DateTime(activation),
        ));
    }
    for name in shifted {
        let moved = match (old.date(name), activation, old_activation) {
            (Some(date), Some(new), Some(old)) if request.offset.is_some() => {
                Some(new.saturating_add(date.saturating_sub(old)))
            }
            (Some(date), _, _) if request.offset.is_none() => Some(date),
            _ => None,
        };
        if let Some(date) = moved {
            attributes.push(Attribute::new(name, Value::DateTime(date)));
        }
    }
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
    stamp_creator(&mut attributes, ctx.caller.name());
    for a in &attributes {
        attribute::validate_value(a)?;
    }
    // Every bound before the HSM is asked for anything.
    ctx.keys.check_new(ctx.caller.group(), &attributes).await?;
    let material = generate_material(ctx, algorithm, length).await?;
    let mut block = KeyBlock::raw(algorithm, material);
    block.cryptographic_length = Some(length as i32);
    let object = ManagedObject::SymmetricKey { key_block: block }.into_item();
    let new_uid = ctx
        .keys
        .create(
            ctx.caller.group(),
            ObjectType::SYMMETRIC_KEY,
            &object,
            attributes,
            ctx.now,
        )
        .await?;
    let back = link(LinkType::REPLACEMENT_OBJECT_LINK, &new_uid);
    ctx.update(old_uid, |object| {
        // The names move to the replacement: Locate by name finds the
        // current key (KMIP 1.4 §4.4, Name).
        object.attributes.retain(|a| a.name != names::NAME);
        object.add_instance(&back.name, back.value.clone());
        Ok(())
    })
    .await
    .map_err(|e: KeyError| {
        // The cause's client text is already sanitized (internal detail stays
        // in `internal`, for the audit trail).
        let mut error = OpError::from(e);
        error.reason = ResultReason::GENERAL_FAILURE;
        error.message = format!(
            "new key {new_uid} made, but linking the old one failed: {}",
            error.message
        );
        error
    })?;
    Ok(new_uid)
}
