//! A managed object as the key service holds it: metadata in the clear, key
//! material only as a blob sealed under the root key.

use crate::kmip::attribute::Attribute;
use crate::kmip::{ObjectType, State, tags};
use crate::store::{IndexEntry, Record};
use crate::ttlv::{self, Item, Value};

use super::lifecycle;
use super::{Corruption, KeyError};

/// Standard attribute names the service reads and writes itself.
pub mod names {
    pub const UNIQUE_IDENTIFIER: &str = "Unique Identifier";
    pub const OBJECT_TYPE: &str = "Object Type";
    pub const STATE: &str = "State";
    pub const NAME: &str = "Name";
    pub const OBJECT_GROUP: &str = "Object Group";
    pub const CRYPTOGRAPHIC_ALGORITHM: &str = "Cryptographic Algorithm";
    pub const CRYPTOGRAPHIC_LENGTH: &str = "Cryptographic Length";
    pub const CRYPTOGRAPHIC_USAGE_MASK: &str = "Cryptographic Usage Mask";
    pub const CRYPTOGRAPHIC_PARAMETERS: &str = "Cryptographic Parameters";
    pub const INITIAL_DATE: &str = "Initial Date";
    pub const LAST_CHANGE_DATE: &str = "Last Change Date";
    pub const ORIGINAL_CREATION_DATE: &str = "Original Creation Date";
    pub const ACTIVATION_DATE: &str = "Activation Date";
    pub const DEACTIVATION_DATE: &str = "Deactivation Date";
    pub const DESTROY_DATE: &str = "Destroy Date";
    pub const COMPROMISE_DATE: &str = "Compromise Date";
    pub const COMPROMISE_OCCURRENCE_DATE: &str = "Compromise Occurrence Date";
    pub const REVOCATION_REASON: &str = "Revocation Reason";
    pub const LINK: &str = "Link";
    /// Server-set (KMIP reserves `y-` for the server): the name of the trust
    /// entry of the client that created, registered or re-keyed the object.
    /// Indexed, so the inventory filters by it.
    pub const CREATED_BY: &str = "y-Created-By";
    /// vCenter's name of the VM (or host) a key belongs to.
    pub const X_NAME: &str = "x-Name";
}

/// One stored managed object. Everything here is metadata; the key material
/// stays sealed until [`super::KeyService::open`] is called.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub uid: String,
    pub object_type: ObjectType,
    pub state: State,
    /// The group of the client that created or registered the object.
    pub group: String,
    /// All attributes, standard and custom, in the order they were set.
    pub attributes: Vec<Attribute>,
    pub created_at: i64,
    pub(super) record_version: u64,
    pub(super) crk_version: u32,
    pub(super) sealed: Vec<u8>,
}

pub(super) fn attribute(name: &str, value: Value) -> Attribute {
    Attribute {
        name: name.to_owned(),
        index: None,
        value: Item::new(tags::ATTRIBUTE_VALUE, value),
    }
}

impl StoredObject {
    /// Whether key material is still held (not destroyed). A destroyed
    /// object keeps a seal — of nothing, its binding — so the state decides.
    pub fn has_material(&self) -> bool {
        !self.sealed.is_empty() && lifecycle::material_available(self.state)
    }

    /// The CRK version the material is sealed under.
    pub fn crk_version(&self) -> u32 {
        self.crk_version
    }

    /// The first (index 0) instance of an attribute.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.index.unwrap_or(0) == 0)
    }

    /// Every instance of an attribute.
    pub fn attributes_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes.iter().filter(move |a| a.name == name)
    }

    pub fn date(&self, name: &str) -> Option<i64> {
        self.attribute(name).and_then(|a| a.value.as_datetime())
    }

    /// Applies time-driven transitions (an Activation Date that has passed) to the
    /// state held in memory; the next write persists it.
    pub fn refresh_state(&mut self, now: i64) {
        let state = lifecycle::effective_state(
            self.state,
            self.date(names::ACTIVATION_DATE),
            self.date(names::DEACTIVATION_DATE),
            now,
        );
        if state != self.state {
            self.set_state(state);
        }
    }

    pub fn set_state(&mut self, state: State) {
        self.state = state;
        self.set_single(names::STATE, Value::Enumeration(state.0));
    }

    /// Sets a single-instance attribute, replacing any value it had.
    pub fn set_single(&mut self, name: &str, value: Value) {
        match self.attributes.iter_mut().find(|a| a.name == name) {
            Some(a) => a.value = Item::new(tags::ATTRIBUTE_VALUE, value),
            None => self.attributes.push(attribute(name, value)),
        }
    }

    /// Adds an instance of an attribute and returns the index it got.
    pub fn add_instance(&mut self, name: &str, value: Item) -> i32 {
        let next = self
            .attributes_named(name)
            .map(|a| a.index.unwrap_or(0))
            .max()
            .map_or(0, |m| m.saturating_add(1));
        let index = if next == 0 { None } else { Some(next) };
        self.attributes.push(Attribute {
            name: name.to_owned(),
            index,
            value,
        });
        next
    }

    /// Removes the instance with this index (0 when `None`); returns it.
    pub fn remove_instance(&mut self, name: &str, index: Option<i32>) -> Option<Attribute> {
        let want = index.unwrap_or(0);
        let at = self
            .attributes
            .iter()
            .position(|a| a.name == name && a.index.unwrap_or(0) == want)?;
        Some(self.attributes.remove(at))
    }

    /// Builds the store record. `attributes` is the TTLV of a Template-Attribute
    /// structure holding every attribute.
    pub(super) fn to_record(&self, updated_at: i64) -> Record {
        let container = Item::structure(
            tags::TEMPLATE_ATTRIBUTE,
            self.attributes.iter().map(Attribute::to_item).collect(),
        );
        Record {
            uid: self.uid.clone(),
            object_type: self.object_type.0,
            state: self.state.0,
            group: self.group.clone(),
            crk_version: self.crk_version,
            sealed: self.sealed.clone(),
            attributes: ttlv::encode_to_vec(&container),
            index: index_entries(&self.attributes),
            version: self.record_version,
            created_at: self.created_at,
            updated_at,
        }
    }

    pub(super) fn from_record(record: Record) -> Result<StoredObject, KeyError> {
        let container = ttlv::decode(&record.attributes)
            .map_err(|e| KeyError::corrupt(&record.uid, Corruption::AttributesUndecodable(e)))?;
        let attributes = container
            .children()
            .iter()
            .map(Attribute::from_item)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KeyError::corrupt(&record.uid, Corruption::AttributeInvalid(e)))?;
        Ok(StoredObject {
            uid: record.uid,
            object_type: ObjectType(record.object_type),
            state: State(record.state),
            group: record.group,
            attributes,
            created_at: record.created_at,
            record_version: record.version,
            crk_version: record.crk_version,
            sealed: record.sealed,
        })
    }
}

/// The `(name, value)` pairs the store indexes so that Locate and the inventory
/// can find objects without a scan: names, groups, custom text tags (vCenter's
/// `x-` tags link a key to its VM), algorithm and length.
pub(super) fn index_entries(attributes: &[Attribute]) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for a in attributes {
        let text = match (a.name.as_str(), &a.value.value) {
            (names::NAME, Value::Structure(_)) => a
                .value
                .child(tags::NAME_VALUE)
                .and_then(|v| v.as_text())
                .map(str::to_owned),
            (names::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(v)) => Some(v.to_string()),
            (names::CRYPTOGRAPHIC_LENGTH, Value::Integer(v)) => Some(v.to_string()),
            (names::OBJECT_GROUP, Value::TextString(s)) => Some(s.clone()),
            (n, Value::TextString(s)) if is_custom(n) => Some(s.clone()),
            _ => None,
        };
        if let Some(value) = text {
            out.push(IndexEntry::new(a.name.clone(), value));
        }
    }
    out
}

/// Custom attribute names: `x-` set by clients, `y-` by servers.
pub fn is_custom(name: &str) -> bool {
    name.starts_with("x-") || name.starts_with("y-")
}
