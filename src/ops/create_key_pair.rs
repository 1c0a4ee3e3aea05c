//! Create Key Pair: an RSA or EC key pair, generated in keyward's process by
//! aws-lc, both halves stored sealed under the root key like any key, each
//! linked to the other (Private Key Link, Public Key Link).

use tokio::sync::Semaphore;

use super::asymmetric::{self, NewPair};
use super::attributes::{client_attributes, stamp_creator};
use super::context::{Context, ItemResult};
use super::error::OpError;
use crate::keys::{self, names};
use crate::kmip::attribute::{Attribute, Link, TemplateAttribute};
use crate::kmip::payload::Payload;
use crate::kmip::payload::create_key_pair::{Request, Response};
use crate::kmip::{CryptographicUsageMask, LinkType, ObjectType, ResultReason, tags};
use crate::ttlv::Value;

/// One generation at a time: an RSA-4096 key costs up to seconds of one
/// core, and a client asking for many must not take every core from the
/// clients fetching keys (they wait here, not on the async threads).
static GENERATION: Semaphore = Semaphore::const_new(1);

pub(super) async fn run(ctx: &Context<'_>, request: Request) -> ItemResult {
    let (private_uid, public_uid) = create_pair(ctx, request).await.map_err(|e| (e, None))?;
    let response = Response {
        private_key_unique_identifier: private_uid.clone(),
        public_key_unique_identifier: public_uid,
        extra: Vec::new(),
    };
    // The private key becomes the ID Placeholder (KMIP 1.4 §4.2).
    Ok((Some(response.to_payload()), Some(private_uid)))
}

/// Common attributes, then the key's own (which win for single-instance
/// attributes), checked as a client's list.
fn merged(common: &TemplateAttribute, own: TemplateAttribute) -> Result<Vec<Attribute>, OpError> {
    if !common.names.is_empty() || !own.names.is_empty() {
        return Err(OpError::new(
            ResultReason::FEATURE_NOT_SUPPORTED,
            "templates are not supported",
        ));
    }
    let mut list: Vec<Attribute> = common
        .attributes
        .iter()
        .filter(|c| {
            crate::kmip::attribute::is_multi_instance(&c.name)
                || !own.attributes.iter().any(|o| o.name == c.name)
        })
        .cloned()
        .collect();
    list.extend(own.attributes);
    client_attributes(list)
}

fn link(kind: LinkType, target: &str) -> Attribute {
    Attribute {
        name: names::LINK.to_owned(),
        index: None,
        value: Link {
            link_type: kind,
            linked_object_identifier: target.to_owned(),
        }
        .to_value(tags::ATTRIBUTE_VALUE),
    }
}

fn default_mask(attributes: &mut Vec<Attribute>, mask: CryptographicUsageMask) {
    if !attributes
        .iter()
        .any(|a| a.name == names::CRYPTOGRAPHIC_USAGE_MASK)
    {
        attributes.push(Attribute::new(
            names::CRYPTOGRAPHIC_USAGE_MASK,
            Value::Integer(mask.0 as i32),
        ));
    }
}

async fn create_pair(ctx: &Context<'_>, request: Request) -> Result<(String, String), OpError> {
    let mut private_attrs = merged(&request.common, request.private_key)?;
    let mut public_attrs = merged(&request.common, request.public_key)?;
    let (algorithm, spec) = asymmetric::pair_spec(&private_attrs)?;
    if asymmetric::pair_spec(&public_attrs)? != (algorithm, spec) {
        return Err(OpError::invalid_field(
            "the private and public key templates ask for different keys",
        ));
    }
    // A key made without a mask signs (private) and verifies (public).
    default_mask(&mut private_attrs, CryptographicUsageMask::SIGN);
    default_mask(&mut public_attrs, CryptographicUsageMask::VERIFY);
    let private_uid = keys::new_uid();
    let public_uid = keys::new_uid();
    private_attrs.push(link(LinkType::PUBLIC_KEY_LINK, &public_uid));
    public_attrs.push(link(LinkType::PRIVATE_KEY_LINK, &private_uid));
    stamp_creator(&mut private_attrs, ctx.caller.name());
    stamp_creator(&mut public_attrs, ctx.caller.name());
    // Every bound before the CPU is spent on a key.
    ctx.keys.check_new(ctx.caller.group(), &private_attrs).await?;
    ctx.keys.check_new(ctx.caller.group(), &public_attrs).await?;

    let permit = GENERATION
        .acquire()
        .await
        .map_err(|_| OpError::new(ResultReason::GENERAL_FAILURE, "key generation is closed"))?;
    let generated = tokio::task::spawn_blocking(move || asymmetric::generate(algorithm, spec)).await;
    drop(permit);
    let NewPair { private, public } = generated
        .map_err(|_| OpError::new(ResultReason::CRYPTOGRAPHIC_FAILURE, "key generation failed"))??;

    let group = ctx.caller.group();
    ctx.keys
        .create_as(
            private_uid.clone(),
            group,
            ObjectType::PRIVATE_KEY,
            &private.into_item(),
            private_attrs,
            ctx.now,
        )
        .await?;
    let stored = ctx
        .keys
        .create_as(
            public_uid.clone(),
            group,
            ObjectType::PUBLIC_KEY,
            &public.into_item(),
            public_attrs,
            ctx.now,
        )
        .await;
    if let Err(e) = stored {
        // No half pair stays: the private key, never reported to the
        // client, is taken back like an undone Create.
        if let Ok(orphan) = ctx.keys.load(ctx.caller, &private_uid, ctx.now).await {
            let _ = ctx.keys.take_back_new(orphan).await;
        }
        return Err(e.into());
    }
    Ok((private_uid, public_uid))
}
