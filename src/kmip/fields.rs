//! Reading and writing the fields of a KMIP structure: [`Fields`] takes fields
//! out of a parsed structure by tag (checking type and count), [`Builder`]
//! lays them out again in specification order.
//!
//! Parsing is lenient about order and keeps fields it does not know
//! ([`Fields::rest`]); writing is canonical: the caller pushes fields in the
//! order of the specification, then the kept unknown ones.

use super::enums::*;
use super::error::MessageError;
use crate::secret::SecretBytes;
use crate::ttlv::{Item, ItemType, Tag, Value};

/// A value that one TTLV item holds.
pub trait FieldValue: Sized {
    /// Reads the value of `item` (whose tag is only used in errors).
    fn from_field(item: &Item) -> Result<Self, MessageError>;
    fn to_value(&self) -> Value;
}

fn wrong(item: &Item, expected: ItemType) -> MessageError {
    MessageError::wrong_type(item.tag, expected, item.value.item_type())
}

impl FieldValue for i32 {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_i32().ok_or_else(|| wrong(item, ItemType::Integer))
    }
    fn to_value(&self) -> Value {
        Value::Integer(*self)
    }
}

impl FieldValue for i64 {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_i64().ok_or_else(|| wrong(item, ItemType::LongInteger))
    }
    fn to_value(&self) -> Value {
        Value::LongInteger(*self)
    }
}

impl FieldValue for bool {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_bool().ok_or_else(|| wrong(item, ItemType::Boolean))
    }
    fn to_value(&self) -> Value {
        Value::Boolean(*self)
    }
}

impl FieldValue for String {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_text()
            .map(str::to_owned)
            .ok_or_else(|| wrong(item, ItemType::TextString))
    }
    fn to_value(&self) -> Value {
        Value::TextString(self.clone())
    }
}

impl FieldValue for SecretBytes {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_bytes()
            .cloned()
            .ok_or_else(|| wrong(item, ItemType::ByteString))
    }
    fn to_value(&self) -> Value {
        Value::ByteString(self.clone())
    }
}

/// Byte strings that are not secret (batch item ids, correlation values).
impl FieldValue for Vec<u8> {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_bytes()
            .map(|b| b.expose().to_vec())
            .ok_or_else(|| wrong(item, ItemType::ByteString))
    }
    fn to_value(&self) -> Value {
        Value::ByteString(SecretBytes::from_slice(self))
    }
}

/// A Date-Time: seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime(pub i64);

impl FieldValue for DateTime {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_datetime()
            .map(DateTime)
            .ok_or_else(|| wrong(item, ItemType::DateTime))
    }
    fn to_value(&self) -> Value {
        Value::DateTime(self.0)
    }
}

/// An Interval: a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(pub u32);

impl FieldValue for Interval {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        item.as_interval()
            .map(Interval)
            .ok_or_else(|| wrong(item, ItemType::Interval))
    }
    fn to_value(&self) -> Value {
        Value::Interval(self.0)
    }
}

/// A Structure kept as it is.
impl FieldValue for Item {
    fn from_field(item: &Item) -> Result<Self, MessageError> {
        Ok(item.clone())
    }
    fn to_value(&self) -> Value {
        self.value.clone()
    }
}

macro_rules! enum_fields {
    ($($ty:ty),* $(,)?) => {$(
        impl FieldValue for $ty {
            fn from_field(item: &Item) -> Result<Self, MessageError> {
                item.as_enum().map(<$ty>::from).ok_or_else(|| wrong(item, ItemType::Enumeration))
            }
            fn to_value(&self) -> Value {
                Value::Enumeration(self.0)
            }
        }
    )*};
}

enum_fields!(
    Operation,
    ObjectType,
    ResultStatus,
    ResultReason,
    CryptographicAlgorithm,
    State,
    KeyFormatType,
    KeyCompressionType,
    KeyWrapType,
    CredentialType,
    BatchErrorContinuationOption,
    AttestationType,
    QueryFunction,
    SecretDataType,
    OpaqueDataType,
    NameType,
    LinkType,
    RevocationReasonCode,
    ObjectGroupMember,
    HashingAlgorithm,
    UsageLimitsUnit,
    ClientRegistrationMethod,
    BlockCipherMode,
    PaddingMethod,
    ValidityIndicator,
    WrappingMethod,
    EncodingOption,
    CertificateType,
    InteropFunction,
    DigitalSignatureAlgorithm,
    RecommendedCurve,
);

macro_rules! mask_fields {
    ($($ty:ty),* $(,)?) => {$(
        /// A mask travels as an Integer holding the bits.
        impl FieldValue for $ty {
            fn from_field(item: &Item) -> Result<Self, MessageError> {
                item.as_i32().map(|v| <$ty>::from_bits(v)).ok_or_else(|| wrong(item, ItemType::Integer))
            }
            fn to_value(&self) -> Value {
                Value::Integer(self.0 as i32)
            }
        }

        impl MaskBits for $ty {
            fn from_bits(v: i32) -> Self {
                Self(v as u32)
            }
        }
    )*};
}

/// Builds a mask from the Integer that carries it (the bits reinterpreted).
trait MaskBits {
    fn from_bits(v: i32) -> Self;
}

mask_fields!(CryptographicUsageMask, StorageStatusMask);

/// The fields of one structure, taken out one tag at a time.
pub struct Fields<'a> {
    parent: Tag,
    items: &'a [Item],
    taken: Vec<bool>,
}

impl<'a> Fields<'a> {
    /// The fields of `item`, which must be a Structure tagged `tag`.
    pub fn of(item: &'a Item, tag: Tag) -> Result<Fields<'a>, MessageError> {
        if item.tag != tag {
            return Err(MessageError::UnexpectedTag {
                expected: tag,
                found: item.tag,
            });
        }
        match &item.value {
            Value::Structure(items) => Ok(Fields {
                parent: tag,
                items,
                taken: vec![false; items.len()],
            }),
            other => Err(MessageError::wrong_type(
                tag,
                ItemType::Structure,
                other.item_type(),
            )),
        }
    }

    /// The tag of the structure being read.
    pub fn parent(&self) -> Tag {
        self.parent
    }

    /// The single item tagged `tag`, if present; more than one is an error.
    pub fn opt_item(&mut self, tag: Tag) -> Result<Option<&'a Item>, MessageError> {
        let mut found = None;
        for (i, item) in self.items.iter().enumerate() {
            if item.tag == tag && !self.taken[i] {
                if found.is_some() {
                    return Err(MessageError::Duplicate {
                        parent: self.parent,
                        tag,
                    });
                }
                found = Some(i);
            }
        }
        Ok(found.map(|i| {
            self.taken[i] = true;
            &self.items[i]
        }))
    }

    /// The single item tagged `tag`, which must be present.
    pub fn req_item(&mut self, tag: Tag) -> Result<&'a Item, MessageError> {
        self.opt_item(tag)?.ok_or(MessageError::Missing {
            parent: self.parent,
            tag,
        })
    }

    /// Every item tagged `tag`, in order.
    pub fn all_items(&mut self, tag: Tag) -> Vec<&'a Item> {
        let mut out = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            if item.tag == tag && !self.taken[i] {
                self.taken[i] = true;
                out.push(item);
            }
        }
        out
    }

    /// Every item tagged `tag`, in order, refused when there are more than
    /// `max` of them (counted before any is decoded).
    pub fn all_items_at_most(&mut self, tag: Tag, max: usize) -> Result<Vec<&'a Item>, MessageError> {
        let items = self.all_items(tag);
        if items.len() > max {
            return Err(MessageError::TooMany {
                parent: self.parent,
                tag,
                count: items.len(),
                max,
            });
        }
        Ok(items)
    }

    pub fn opt<T: FieldValue>(&mut self, tag: Tag) -> Result<Option<T>, MessageError> {
        self.opt_item(tag)?.map(T::from_field).transpose()
    }

    pub fn req<T: FieldValue>(&mut self, tag: Tag) -> Result<T, MessageError> {
        T::from_field(self.req_item(tag)?)
    }

    pub fn all<T: FieldValue>(&mut self, tag: Tag) -> Result<Vec<T>, MessageError> {
        self.all_items(tag).into_iter().map(T::from_field).collect()
    }

    /// The items no one took, in their original order.
    pub fn rest(self) -> Vec<Item> {
        self.items
            .iter()
            .zip(self.taken)
            .filter(|(_, t)| !t)
            .map(|(i, _)| i.clone())
            .collect()
    }
}

/// The fields of a structure being written, in order.
#[derive(Default)]
pub struct Builder(Vec<Item>);

impl Builder {
    pub fn new() -> Builder {
        Builder(Vec::new())
    }

    pub fn put<T: FieldValue>(&mut self, tag: Tag, v: &T) -> &mut Self {
        self.0.push(Item::new(tag, v.to_value()));
        self
    }

    pub fn opt<T: FieldValue>(&mut self, tag: Tag, v: &Option<T>) -> &mut Self {
        if let Some(v) = v {
            self.put(tag, v);
        }
        self
    }

    pub fn all<T: FieldValue>(&mut self, tag: Tag, vs: &[T]) -> &mut Self {
        for v in vs {
            self.put(tag, v);
        }
        self
    }

    /// An item as it is (its own tag).
    pub fn item(&mut self, item: &Item) -> &mut Self {
        self.0.push(item.clone());
        self
    }

    pub fn opt_item(&mut self, item: &Option<Item>) -> &mut Self {
        if let Some(i) = item {
            self.0.push(i.clone());
        }
        self
    }

    pub fn items(&mut self, items: &[Item]) -> &mut Self {
        self.0.extend_from_slice(items);
        self
    }

    pub fn push(&mut self, item: Item) -> &mut Self {
        self.0.push(item);
        self
    }

    pub fn finish(&mut self, tag: Tag) -> Item {
        Item::structure(tag, std::mem::take(&mut self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;

    #[test]
    fn fields_are_taken_once_and_rest_is_kept() {
        let s = Item::structure(
            tags::BATCH_ITEM,
            vec![
                Item::new(tags::OPERATION, Value::Enumeration(1)),
                Item::new(Tag(0x540001), Value::Integer(7)),
                Item::new(tags::ATTRIBUTE_NAME, Value::TextString("a".into())),
                Item::new(tags::ATTRIBUTE_NAME, Value::TextString("b".into())),
            ],
        );
        let mut f = Fields::of(&s, tags::BATCH_ITEM).unwrap();
        assert_eq!(f.req::<Operation>(tags::OPERATION).unwrap(), Operation::CREATE);
        assert!(matches!(
            f.opt::<String>(tags::ATTRIBUTE_NAME),
            Err(MessageError::Duplicate { .. })
        ));
        assert_eq!(f.all::<String>(tags::ATTRIBUTE_NAME).unwrap(), ["a", "b"]);
        assert!(matches!(
            f.req::<i32>(tags::BATCH_COUNT),
            Err(MessageError::Missing { .. })
        ));
        assert_eq!(f.rest(), vec![Item::new(Tag(0x540001), Value::Integer(7))]);
        let mut f = Fields::of(&s, tags::BATCH_ITEM).unwrap();
        assert!(matches!(
            f.req::<i32>(tags::OPERATION),
            Err(MessageError::WrongType { .. })
        ));
        assert!(matches!(
            Fields::of(&s, tags::REQUEST_MESSAGE),
            Err(MessageError::UnexpectedTag { .. })
        ));
    }
}
