//! The TTLV tree: tags, item types and values.

use std::fmt;

use crate::secret::SecretBytes;

/// A TTLV tag: three bytes on the wire. KMIP's own tags are `0x42xxxx`, vendor
/// extensions `0x54xxxx`; any three-byte value is kept as it is so that tags this
/// build does not know survive a round trip.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u32);

impl Tag {
    /// The largest value a three-byte tag can hold.
    pub const MAX: u32 = 0x00FF_FFFF;

    pub const fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag(0x{:06X})", self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:06X}", self.0)
    }
}

/// The type byte of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemType {
    Structure,
    Integer,
    LongInteger,
    BigInteger,
    Enumeration,
    Boolean,
    TextString,
    ByteString,
    DateTime,
    Interval,
    /// KMIP 2.x: microseconds since the epoch.
    DateTimeExtended,
}

impl ItemType {
    pub const ALL: [ItemType; 11] = [
        ItemType::Structure,
        ItemType::Integer,
        ItemType::LongInteger,
        ItemType::BigInteger,
        ItemType::Enumeration,
        ItemType::Boolean,
        ItemType::TextString,
        ItemType::ByteString,
        ItemType::DateTime,
        ItemType::Interval,
        ItemType::DateTimeExtended,
    ];

    pub fn from_byte(b: u8) -> Option<ItemType> {
        Some(match b {
            0x01 => ItemType::Structure,
            0x02 => ItemType::Integer,
            0x03 => ItemType::LongInteger,
            0x04 => ItemType::BigInteger,
            0x05 => ItemType::Enumeration,
            0x06 => ItemType::Boolean,
            0x07 => ItemType::TextString,
            0x08 => ItemType::ByteString,
            0x09 => ItemType::DateTime,
            0x0A => ItemType::Interval,
            0x0B => ItemType::DateTimeExtended,
            _ => return None,
        })
    }

    pub fn to_byte(self) -> u8 {
        match self {
            ItemType::Structure => 0x01,
            ItemType::Integer => 0x02,
            ItemType::LongInteger => 0x03,
            ItemType::BigInteger => 0x04,
            ItemType::Enumeration => 0x05,
            ItemType::Boolean => 0x06,
            ItemType::TextString => 0x07,
            ItemType::ByteString => 0x08,
            ItemType::DateTime => 0x09,
            ItemType::Interval => 0x0A,
            ItemType::DateTimeExtended => 0x0B,
        }
    }

    /// The name used by the KMIP XML and JSON encodings (`type="TextString"`).
    pub fn name(self) -> &'static str {
        match self {
            ItemType::Structure => "Structure",
            ItemType::Integer => "Integer",
            ItemType::LongInteger => "LongInteger",
            ItemType::BigInteger => "BigInteger",
            ItemType::Enumeration => "Enumeration",
            ItemType::Boolean => "Boolean",
            ItemType::TextString => "TextString",
            ItemType::ByteString => "ByteString",
            ItemType::DateTime => "DateTime",
            ItemType::Interval => "Interval",
            ItemType::DateTimeExtended => "DateTimeExtended",
        }
    }

    pub fn from_name(name: &str) -> Option<ItemType> {
        ItemType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The exact value length of fixed-size types; `None` for variable ones.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            ItemType::Integer | ItemType::Enumeration | ItemType::Interval => Some(4),
            ItemType::LongInteger
            | ItemType::Boolean
            | ItemType::DateTime
            | ItemType::DateTimeExtended => Some(8),
            ItemType::Structure
            | ItemType::BigInteger
            | ItemType::TextString
            | ItemType::ByteString => None,
        }
    }
}

/// A value. Byte strings and big integers are [`SecretBytes`]: any of them may be
/// key material, so all of them are wiped on drop and hidden from `Debug`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Structure(Vec<Item>),
    Integer(i32),
    LongInteger(i64),
    /// Two's-complement big-endian, a non-zero multiple of 8 bytes long.
    BigInteger(SecretBytes),
    Enumeration(u32),
    Boolean(bool),
    TextString(String),
    ByteString(SecretBytes),
    /// Seconds since the Unix epoch.
    DateTime(i64),
    /// Seconds.
    Interval(u32),
    /// Microseconds since the Unix epoch (KMIP 2.x).
    DateTimeExtended(i64),
}

impl Value {
    pub fn item_type(&self) -> ItemType {
        match self {
            Value::Structure(_) => ItemType::Structure,
            Value::Integer(_) => ItemType::Integer,
            Value::LongInteger(_) => ItemType::LongInteger,
            Value::BigInteger(_) => ItemType::BigInteger,
            Value::Enumeration(_) => ItemType::Enumeration,
            Value::Boolean(_) => ItemType::Boolean,
            Value::TextString(_) => ItemType::TextString,
            Value::ByteString(_) => ItemType::ByteString,
            Value::DateTime(_) => ItemType::DateTime,
            Value::Interval(_) => ItemType::Interval,
            Value::DateTimeExtended(_) => ItemType::DateTimeExtended,
        }
    }
}

/// One tagged value; a Structure's value holds further items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub tag: Tag,
    pub value: Value,
}

impl Item {
    pub fn new(tag: Tag, value: Value) -> Item {
        Item { tag, value }
    }

    pub fn structure(tag: Tag, items: Vec<Item>) -> Item {
        Item {
            tag,
            value: Value::Structure(items),
        }
    }

    /// The children of a Structure; empty for any other type.
    pub fn children(&self) -> &[Item] {
        match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        }
    }

    /// The first child with this tag.
    pub fn child(&self, tag: Tag) -> Option<&Item> {
        self.children().iter().find(|i| i.tag == tag)
    }

    /// Every child with this tag, in order.
    pub fn children_with(&self, tag: Tag) -> impl Iterator<Item = &Item> {
        self.children().iter().filter(move |i| i.tag == tag)
    }

    pub fn as_i32(&self) -> Option<i32> {
        match self.value {
            Value::Integer(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.value {
            Value::LongInteger(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_enum(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Boolean(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::TextString(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&SecretBytes> {
        match &self.value {
            Value::ByteString(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_datetime(&self) -> Option<i64> {
        match self.value {
            Value::DateTime(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_interval(&self) -> Option<u32> {
        match self.value {
            Value::Interval(v) => Some(v),
            _ => None,
        }
    }
}
