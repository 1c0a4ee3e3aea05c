//! How keys look to an administrator: state names, attribute values as text,
//! the summary row of `keys list` and its JSON form. Metadata only: the sealed
//! material is never read here.

use serde_json::{Value as Json, json};

use crate::cli::{CliError, CliResult};
use crate::keys::{StoredObject, names};
use crate::kmip::State;
use crate::kmip::attribute::Attribute;
use crate::kmip::enums::{ValueNames, value_names};
use crate::kmip::tag::tag_label;
use crate::ttlv::{Item, Value};

/// `2026-01-31T12:00:00Z`, or the raw number if out of range.
pub(super) fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// A state as `--state` takes it: `active`, `pre-active`, `PreActive`,
/// `destroyed-compromised` … (case, `-` and `_` do not matter).
pub(super) fn parse_state(text: &str) -> CliResult<State> {
    let wanted = squash(text);
    (1..=6)
        .map(State)
        .find(|s| s.name().is_some_and(|n| squash(n) == wanted))
        .ok_or_else(|| {
            CliError::new(format!(
                "--state {text:?}: use pre-active, active, deactivated, compromised, destroyed or destroyed-compromised"
            ))
        })
}

fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '-' && *c != '_' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) fn state_name(state: State) -> String {
    state
        .name()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("0x{:08X}", state.0))
}

/// The first text value of an attribute (vCenter's `x-` tags, y-Created-By).
pub(super) fn text_of<'a>(object: &'a StoredObject, name: &str) -> Option<&'a str> {
    object.attribute(name).and_then(|a| a.value.as_text())
}

/// Every KMIP Name of the object.
pub(super) fn names_of(object: &StoredObject) -> Vec<String> {
    object
        .attributes_named(names::NAME)
        .filter_map(|a| {
            a.value
                .child(crate::kmip::tags::NAME_VALUE)
                .and_then(Item::as_text)
                .map(str::to_owned)
        })
        .collect()
}

/// `AES-256`, `AES`, or `-`.
pub(super) fn algorithm(object: &StoredObject) -> String {
    let alg = object
        .attribute(names::CRYPTOGRAPHIC_ALGORITHM)
        .map(|a| value_text(a, &a.value));
    let len = object
        .attribute(names::CRYPTOGRAPHIC_LENGTH)
        .and_then(|a| a.value.as_i32());
    match (alg, len) {
        (Some(a), Some(l)) => format!("{a}-{l}"),
        (Some(a), None) => a,
        (None, _) => "-".to_owned(),
    }
}

/// An attribute value as one line of text: enumeration and mask names, dates in
/// RFC 3339, structures as `Field=value` lists.
pub(super) fn value_text(attribute: &Attribute, item: &Item) -> String {
    let siblings = [
        Item::new(
            crate::kmip::tags::ATTRIBUTE_NAME,
            Value::TextString(attribute.name.clone()),
        ),
        item.clone(),
    ];
    match &item.value {
        Value::Structure(children) => children
            .iter()
            .map(|c| format!("{}={}", tag_label(c.tag), field_text(c, children)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => scalar_text(item, &siblings),
    }
}

fn field_text(item: &Item, siblings: &[Item]) -> String {
    match &item.value {
        Value::Structure(children) => format!(
            "{{{}}}",
            children
                .iter()
                .map(|c| format!("{}={}", tag_label(c.tag), field_text(c, children)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => scalar_text(item, siblings),
    }
}

fn scalar_text(item: &Item, siblings: &[Item]) -> String {
    match &item.value {
        Value::Enumeration(v) => match value_names(item.tag, siblings, true) {
            Some(ValueNames::Enum(def)) => def
                .name_of(*v)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("0x{v:08X}")),
            _ => format!("0x{v:08X}"),
        },
        Value::Integer(v) => match value_names(item.tag, siblings, false) {
            Some(ValueNames::Mask(def)) => u32::try_from(*v)
                .map(|m| def.format(m))
                .unwrap_or_else(|_| v.to_string()),
            _ => v.to_string(),
        },
        Value::DateTime(t) => format_time(*t),
        Value::TextString(s) => s.clone(),
        Value::Boolean(b) => b.to_string(),
        Value::LongInteger(v) => v.to_string(),
        Value::Interval(v) => v.to_string(),
        Value::DateTimeExtended(v) => v.to_string(),
        // Attributes hold no key material (that is sealed apart); digests and
        // identifiers are shown as hex.
        Value::ByteString(b) | Value::BigInteger(b) => hex::encode(b.expose()),
        Value::Structure(_) => String::new(),
    }
}

/// The row of `keys list --json`.
pub(super) fn summary_json(object: &StoredObject) -> Json {
    json!({
        "uid": object.uid,
        "state": state_name(object.state),
        "object_type": object.object_type.name(),
        "algorithm": algorithm(object),
        "group": object.group,
        "created_by": text_of(object, names::CREATED_BY),
        "names": names_of(object),
        "x_name": text_of(object, "x-Name"),
        "x_identifier": text_of(object, "x-Identifier"),
        "x_component": text_of(object, "x-Component"),
        "created": format_time(object.created_at),
    })
}
