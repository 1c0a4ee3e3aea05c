//! KMIP enumerations and bit masks as open types, in the style of rustls: a
//! newtype over the wire value with named constants, so values this build does
//! not know still flow through (`Operation(0x8000_0001)`).
//!
//! The types themselves are generated from the specification tables
//! (`tools/kmip_tables.txt`); this file holds the machinery and the lookups the
//! encodings use: which enumeration or mask a tag carries, and which one an
//! Attribute Value carries given its Attribute Name.

use std::fmt;

use crate::ttlv::{Item, Tag, Value};

/// One enumeration: its XML name and its values both ways.
#[derive(Debug)]
pub struct EnumDef {
    pub name: &'static str,
    /// `(value, name)`, sorted by value.
    pub values: &'static [(u32, &'static str)],
    /// `(name, value)`, sorted by name.
    pub by_name: &'static [(&'static str, u32)],
}

impl EnumDef {
    pub fn name_of(&self, value: u32) -> Option<&'static str> {
        self.values
            .binary_search_by_key(&value, |&(v, _)| v)
            .ok()
            .map(|i| self.values[i].1)
    }

    pub fn value_of(&self, name: &str) -> Option<u32> {
        self.by_name
            .binary_search_by_key(&name, |&(n, _)| n)
            .ok()
            .map(|i| self.by_name[i].1)
    }
}

/// One bit mask: its XML name and its bits both ways.
#[derive(Debug)]
pub struct MaskDef {
    pub name: &'static str,
    /// `(bit, name)`, sorted by bit.
    pub values: &'static [(u32, &'static str)],
    /// `(name, bit)`, sorted by name.
    pub by_name: &'static [(&'static str, u32)],
}

impl MaskDef {
    pub fn bit_named(&self, name: &str) -> Option<u32> {
        self.by_name
            .binary_search_by_key(&name, |&(n, _)| n)
            .ok()
            .map(|i| self.by_name[i].1)
    }

    /// The mask as the XML encoding writes it: bit names in bit order separated
    /// by spaces, any bits without a name as one trailing `0x` number, `0` for
    /// an empty mask.
    pub fn format(&self, mask: u32) -> String {
        if mask == 0 {
            return "0".to_owned();
        }
        let mut out = String::new();
        let mut rest = mask;
        for &(bit, name) in self.values {
            if mask & bit == bit {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(name);
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("0x{rest:08X}"));
        }
        out
    }

    /// Parses bit names and numbers (decimal or `0x` hex) separated by white
    /// space, OR-ing them together. `None` if a token is neither.
    pub fn parse(&self, text: &str) -> Option<u32> {
        let mut mask = 0u32;
        let mut any = false;
        for token in text.split_whitespace() {
            any = true;
            mask |= match self.bit_named(token) {
                Some(bit) => bit,
                None => parse_u32(token)?,
            };
        }
        any.then_some(mask)
    }
}

/// A `u32` written as decimal or as `0x` hex.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.len() <= 8 => u32::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

macro_rules! kmip_enum {
    ($(#[$doc:meta])* $ty:ident, $xml:literal {
        $($konst:ident = $v:literal => $n:literal,)*
    } by_name { $($bn:literal => $bv:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(pub u32);

        impl $ty {
            $(pub const $konst: $ty = $ty($v);)*

            /// The table of names.
            pub const DEF: EnumDef = EnumDef {
                name: $xml,
                values: &[$(($v, $n)),*],
                by_name: &[$(($bn, $bv)),*],
            };

            /// The XML name of the value, if the specification names it.
            pub fn name(self) -> Option<&'static str> {
                Self::DEF.name_of(self.0)
            }

            /// The value with this XML name.
            pub fn from_name(name: &str) -> Option<$ty> {
                Self::DEF.value_of(name).map($ty)
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}::{}", $xml, n),
                    None => write!(f, "{}(0x{:08X})", $xml, self.0),
                }
            }
        }

        impl From<u32> for $ty {
            fn from(v: u32) -> $ty {
                $ty(v)
            }
        }

        impl From<$ty> for u32 {
            fn from(v: $ty) -> u32 {
                v.0
            }
        }
    };
}

macro_rules! kmip_mask {
    ($(#[$doc:meta])* $ty:ident, $xml:literal {
        $($konst:ident = $v:literal => $n:literal,)*
    } by_name { $($bn:literal => $bv:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $ty(pub u32);

        impl $ty {
            $(pub const $konst: $ty = $ty($v);)*

            /// The table of bit names.
            pub const DEF: MaskDef = MaskDef {
                name: $xml,
                values: &[$(($v, $n)),*],
                by_name: &[$(($bn, $bv)),*],
            };

            pub const fn contains(self, other: $ty) -> bool {
                self.0 & other.0 == other.0
            }

            /// The XML form: bit names separated by spaces.
            pub fn names(self) -> String {
                Self::DEF.format(self.0)
            }

            /// Parses the XML form (bit names or numbers separated by spaces).
            pub fn parse(text: &str) -> Option<$ty> {
                Self::DEF.parse(text).map($ty)
            }
        }

        impl ::std::ops::BitOr for $ty {
            type Output = $ty;
            fn bitor(self, rhs: $ty) -> $ty {
                $ty(self.0 | rhs.0)
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", $xml, self.names())
            }
        }
    };
}

pub use super::generated::enums::*;

/// What the name of an integer or enumeration value depends on.
#[derive(Clone, Copy, Debug)]
pub enum ValueNames {
    /// Names from one enumeration.
    Enum(&'static EnumDef),
    /// An Integer holding a bit mask.
    Mask(&'static MaskDef),
    /// An Enumeration whose values are tags (Attribute Reference, Tag in 2.x).
    Tag,
}

/// The enumeration a tag carries when its type is Enumeration.
pub fn enum_for_tag(tag: Tag) -> Option<&'static EnumDef> {
    let table = &super::generated::enums::ENUM_BY_TAG;
    table
        .binary_search_by_key(&tag.0, |&(t, _)| t)
        .ok()
        .map(|i| table[i].1)
}

/// The mask a tag carries when its type is Integer.
pub fn mask_for_tag(tag: Tag) -> Option<&'static MaskDef> {
    let table = &super::generated::enums::MASK_BY_TAG;
    table
        .binary_search_by_key(&tag.0, |&(t, _)| t)
        .ok()
        .map(|i| table[i].1)
}

/// The tag whose value an attribute of this name holds: KMIP names each standard
/// attribute after the tag of its value ("Cryptographic Algorithm" → 0x420028).
/// Runs of white space in `name` are ignored.
pub fn attribute_tag(name: &str) -> Option<Tag> {
    super::tag::tag_by_name(&super::names::normalize(name))
}

/// How to name the value of an Enumeration or Integer item under `tag`, whose
/// siblings (the other items of the structure holding it) are `siblings`.
///
/// An Attribute Value is named by the enumeration or mask of the attribute its
/// sibling Attribute Name names.
pub fn value_names(tag: Tag, siblings: &[Item], is_enum: bool) -> Option<ValueNames> {
    use super::tags;
    let tag = if tag == tags::ATTRIBUTE_VALUE {
        let name = siblings.iter().find(|i| i.tag == tags::ATTRIBUTE_NAME)?;
        match &name.value {
            Value::TextString(s) => attribute_tag(s)?,
            _ => return None,
        }
    } else {
        tag
    };
    if is_enum {
        if tag == tags::ATTRIBUTE_REFERENCE || tag == tags::TAG {
            return Some(ValueNames::Tag);
        }
        enum_for_tag(tag).map(ValueNames::Enum)
    } else {
        mask_for_tag(tag).map(ValueNames::Mask)
    }
}

impl ValueNames {
    /// The name of `value`, if it has one.
    pub fn name(self, value: u32) -> Option<&'static str> {
        match self {
            ValueNames::Enum(def) => def.name_of(value),
            ValueNames::Tag => super::tag::tag_name(Tag(value)),
            ValueNames::Mask(_) => None,
        }
    }

    /// The value named `name`.
    pub fn value(self, name: &str) -> Option<u32> {
        match self {
            ValueNames::Enum(def) => def.value_of(name),
            ValueNames::Tag => super::tag::tag_by_name(name).map(|t| t.0),
            ValueNames::Mask(def) => def.parse(name),
        }
    }
}

impl fmt::Display for EnumDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl ValidityIndicator {
    /// Valid when a MAC or signature holds, Invalid when it does not.
    pub fn of(holds: bool) -> ValidityIndicator {
        if holds {
            ValidityIndicator::VALID
        } else {
            ValidityIndicator::INVALID
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;

    #[test]
    fn open_enumerations_name_both_ways() {
        assert_eq!(Operation::CREATE, Operation(1));
        assert_eq!(Operation::CREATE.name(), Some("Create"));
        assert_eq!(Operation::from_name("GetAttributeList"), Some(Operation(12)));
        assert_eq!(Operation(0x8000_0001).name(), None);
        assert_eq!(format!("{:?}", Operation(0x8000_0001)), "Operation(0x80000001)");
        assert_eq!(
            CryptographicAlgorithm::from_name("DES3"),
            Some(CryptographicAlgorithm::DES3)
        );
        assert_eq!(State::PRE_ACTIVE.name(), Some("PreActive"));
        assert_eq!(ResultReason::GENERAL_FAILURE.0, 0x100);
        assert_eq!(
            LinkType::PKCS_12_CERTIFICATE_LINK.name(),
            Some("PKCS_12CertificateLink")
        );
        assert_eq!(HashingAlgorithm::SHA_256.name(), Some("SHA_256"));
    }

    #[test]
    fn masks_format_and_parse() {
        let m = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
        assert_eq!(m.names(), "Encrypt Decrypt");
        assert_eq!(CryptographicUsageMask::parse("Decrypt   Encrypt"), Some(m));
        assert_eq!(CryptographicUsageMask::parse("Encrypt 0x8"), Some(m));
        assert_eq!(CryptographicUsageMask::parse("12"), Some(m));
        assert_eq!(CryptographicUsageMask::parse("Encrypt Bogus"), None);
        assert_eq!(CryptographicUsageMask::parse(""), None);
        assert_eq!(CryptographicUsageMask(0x0010_0004).names(), "Encrypt 0x00100000");
        assert_eq!(CryptographicUsageMask(0).names(), "0");
        let s = StorageStatusMask::parse("ArchivalStorage OnLineStorage").unwrap();
        assert_eq!(s.0, 3);
    }

    #[test]
    fn attribute_values_are_named_by_their_attribute_name() {
        let name = |s: &str| Item::new(tags::ATTRIBUTE_NAME, Value::TextString(s.into()));
        let sib = [name("Cryptographic   Algorithm")];
        let names = value_names(tags::ATTRIBUTE_VALUE, &sib, true).unwrap();
        assert_eq!(names.name(3), Some("AES"));
        let sib = [name("Cryptographic Usage Mask")];
        assert!(matches!(
            value_names(tags::ATTRIBUTE_VALUE, &sib, false),
            Some(ValueNames::Mask(_))
        ));
        let sib = [name("x-custom")];
        assert!(value_names(tags::ATTRIBUTE_VALUE, &sib, true).is_none());
        assert!(value_names(tags::ATTRIBUTE_VALUE, &[], true).is_none());
        let r = value_names(tags::ATTRIBUTE_REFERENCE, &[], true).unwrap();
        assert_eq!(r.value("State"), Some(0x42008D));
        assert_eq!(r.name(0x42008D), Some("State"));
    }
}
