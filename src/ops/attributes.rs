//! Rules for attributes a client sends (Create, Register, Add/Modify/Delete
//! Attribute): the value must have the attribute's type, the client must be
//! allowed to set it, and a single-instance attribute appears once.

use std::collections::{HashMap, HashSet};

use super::error::OpError;
use crate::keys::names;
use crate::kmip::ResultReason;
use crate::kmip::attribute::{self, Attribute};
use crate::ttlv::Value;

/// Checks a client's attribute list and numbers multi-instance attributes.
///
/// Linear in the list (hash sets, not pairwise comparisons): the list is client
/// input, bounded at parse time by `limits::MAX_ATTRIBUTES_PER_TEMPLATE`.
pub(super) fn client_attributes(list: Vec<Attribute>) -> Result<Vec<Attribute>, OpError> {
    let mut single = HashSet::new();
    let mut instances: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Attribute> = Vec::with_capacity(list.len());
    for mut a in list {
        check_settable(&a)?;
        if !attribute::is_multi_instance(&a.name) && !single.insert(a.name.clone()) {
            return Err(OpError::invalid_field(format!(
                "attribute {} given more than once",
                a.name
            )));
        }
        let next = instances.entry(a.name.clone()).or_insert(0);
        a.index = if *next == 0 {
            None
        } else {
            i32::try_from(*next).ok()
        };
        *next += 1;
        out.push(a);
    }
    Ok(out)
}

/// The attribute's value is well-formed and a client may set it.
pub(super) fn check_settable(a: &Attribute) -> Result<(), OpError> {
    attribute::validate_value(a)?;
    if !attribute::client_may_set(&a.name) {
        return Err(OpError::new(
            ResultReason::PERMISSION_DENIED,
            format!("attribute {} is set by the server only", a.name),
        ));
    }
    Ok(())
}

/// Records which client made a new object, replacing any inherited value (a
/// re-keyed object is made by whoever re-keyed it). Clients cannot forge it:
/// `y-` attributes are server-only ([`check_settable`]).
pub(super) fn stamp_creator(attributes: &mut Vec<Attribute>, client: &str) {
    attributes.retain(|a| a.name != names::CREATED_BY);
    attributes.push(Attribute::new(
        names::CREATED_BY,
        Value::TextString(client.to_owned()),
    ));
}

/// The value a 2.x Current Attribute names (kept in a Modify or Delete
/// Attribute request's extra fields by [`crate::kmip::v2::request_to_v1`]):
/// the instance to change is the one holding it.
pub(super) fn current_value(extra: &[crate::ttlv::Item]) -> Option<&crate::ttlv::Item> {
    extra
        .iter()
        .find(|i| i.tag == crate::kmip::tags::CURRENT_ATTRIBUTE)
        .and_then(|i| i.child(crate::kmip::tags::ATTRIBUTE_VALUE))
}

/// The index of the instance of `name` holding `value`, if any.
pub(super) fn index_holding(attributes: &[Attribute], name: &str, value: &crate::ttlv::Item) -> Option<i32> {
    attributes
        .iter()
        .find(|a| a.name == name && a.value.value == value.value)
        .map(|a| a.index.unwrap_or(0))
}

/// Whether an attribute is shown to a client that asks for every attribute
/// (Get Attributes without names, Get Attribute List). keyward's own
/// bookkeeping (`y-` attributes, such as y-Created-By) is not: clients that
/// read every attribute back, PyKMIP among them, parse only the `x-` custom
/// attributes and refuse the whole answer otherwise. A client that names a
/// `y-` attribute still gets it; administrators see them in `keyward keys show`.
pub(super) fn shown_unasked(a: &Attribute) -> bool {
    !a.name.starts_with("y-")
}
