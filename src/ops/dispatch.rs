//! The one exhaustive dispatch: a decoded request to its operation. Nothing in
//! the operation files imports this module back.

use super::context::{Context, ItemResult};
use super::error::OpError;
use super::{
    activate, add_attribute, check, create, create_key_pair, decrypt, delete_attribute, destroy,
    discover_versions, encrypt, get, get_attribute_list, get_attributes, interop, locate, mac, mac_verify,
    modify_attribute, query, register, rekey, revoke, sign, signature_verify,
};
use crate::kmip::request::Request;

/// Runs one batch item's request and, when it created or found an object,
/// makes that object the ID Placeholder for the items after it.
pub(super) async fn dispatch(ctx: &mut Context<'_>, request: Request) -> ItemResult {
    let sets_placeholder = matches!(
        request,
        Request::Create(_)
            | Request::CreateKeyPair(_)
            | Request::Register(_)
            | Request::ReKey(_)
            | Request::Locate(_)
    );
    let result = match request {
        Request::Activate(r) => activate::run(ctx, r).await,
        Request::AddAttribute(r) => add_attribute::run(ctx, r).await,
        Request::Check(r) => check::run(ctx, r).await,
        Request::Create(r) => create::run(ctx, r).await,
        Request::CreateKeyPair(r) => create_key_pair::run(ctx, r).await,
        Request::Decrypt(r) => decrypt::run(ctx, r).await,
        Request::DeleteAttribute(r) => delete_attribute::run(ctx, r).await,
        Request::Destroy(r) => destroy::run(ctx, r).await,
        Request::DiscoverVersions(r) => discover_versions::run(ctx, r).await,
        Request::Encrypt(r) => encrypt::run(ctx, r).await,
        Request::Get(r) => get::run(ctx, r).await,
        Request::GetAttributeList(r) => get_attribute_list::run(ctx, r).await,
        Request::GetAttributes(r) => get_attributes::run(ctx, r).await,
        Request::Locate(r) => locate::run(ctx, r).await,
        Request::Mac(r) => mac::run(ctx, r).await,
        Request::Interop(r) => interop::interop(ctx, r).await,
        Request::Log(r) => interop::log(ctx, r).await,
        Request::MacVerify(r) => mac_verify::run(ctx, r).await,
        Request::ModifyAttribute(r) => modify_attribute::run(ctx, r).await,
        Request::Query(r) => query::run(ctx, r).await,
        Request::Register(r) => register::run(ctx, r).await,
        Request::ReKey(r) => rekey::run(ctx, r).await,
        Request::Revoke(r) => revoke::run(ctx, r).await,
        Request::Sign(r) => sign::run(ctx, r).await,
        Request::SignatureVerify(r) => signature_verify::run(ctx, r).await,
        Request::Unknown(other) => Err((
            OpError::not_supported(format!(
                "operation {} is not supported",
                other.name().unwrap_or("unknown")
            )),
            None,
        )),
    };
    if sets_placeholder && let Ok((_, Some(uid))) = &result {
        ctx.id_placeholder = Some(uid.clone());
    }
    result
}
