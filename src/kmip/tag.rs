//! KMIP tags: named constants and their XML names both ways.
//!
//! `kmip::tags::UNIQUE_IDENTIFIER` is `Tag(0x420094)`. Tags this build does not
//! name (vendor extensions `0x54xxxx`, later KMIP versions) are written and read
//! in hex, `0x54FFFF`, so they survive every conversion.

use std::borrow::Cow;

use crate::ttlv::Tag;

pub use super::generated::tags;

/// The XML name of a tag (`UniqueIdentifier`), if KMIP 1.0–2.0 defines it.
pub fn tag_name(tag: Tag) -> Option<&'static str> {
    let t = &tags::BY_TAG;
    t.binary_search_by_key(&tag.0, |&(v, _)| v).ok().map(|i| t[i].1)
}

/// The tag with this XML name.
pub fn tag_by_name(name: &str) -> Option<Tag> {
    let t = &tags::BY_NAME;
    t.binary_search_by_key(&name, |&(n, _)| n)
        .ok()
        .map(|i| Tag(t[i].1))
}

/// Parses `0x420094`-style hex (the XML `tag=` attribute) into a tag of at most
/// three bytes.
pub fn parse_tag_hex(s: &str) -> Option<Tag> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if hex.is_empty() || hex.len() > 6 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(Tag)
}

/// The hex form of a tag, `0x420094`.
pub fn tag_hex(tag: Tag) -> String {
    format!("0x{:06X}", tag.0)
}

/// The tag's name, or its hex form when it has none.
pub fn tag_label(tag: Tag) -> Cow<'static, str> {
    match tag_name(tag) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(tag_hex(tag)),
    }
}

/// KMIP names on [`Tag`].
pub trait KmipTagExt {
    /// The XML name, if KMIP defines the tag.
    fn kmip_name(self) -> Option<&'static str>;
    /// The XML name, or hex for unknown tags.
    fn kmip_label(self) -> Cow<'static, str>;
}

impl KmipTagExt for Tag {
    fn kmip_name(self) -> Option<&'static str> {
        tag_name(self)
    }

    fn kmip_label(self) -> Cow<'static, str> {
        tag_label(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_ways() {
        assert_eq!(tags::UNIQUE_IDENTIFIER, Tag(0x420094));
        assert_eq!(tag_name(tags::UNIQUE_IDENTIFIER), Some("UniqueIdentifier"));
        assert_eq!(tag_by_name("ProtocolVersionMajor"), Some(Tag(0x42006A)));
        assert_eq!(tag_by_name("IVCounterNonce"), Some(tags::IV_COUNTER_NONCE));
        assert_eq!(tag_by_name("X_509CertificateIdentifier"), Some(Tag(0x4200B5)));
        assert_eq!(tag_name(Tag(0x420165)), Some("PublicProtectionStorageMasks"));
        assert_eq!(tag_by_name("NoSuchTag"), None);
        for &(v, n) in tags::BY_TAG.iter() {
            assert_eq!(tag_by_name(n), Some(Tag(v)), "{n}");
        }
    }

    #[test]
    fn unknown_tags_use_hex() {
        assert_eq!(tag_name(Tag(0x540001)), None);
        assert_eq!(tag_label(Tag(0x540001)), "0x540001");
        assert_eq!(Tag(0x540001).kmip_label(), "0x540001");
        assert_eq!(parse_tag_hex("0x540001"), Some(Tag(0x540001)));
        assert_eq!(parse_tag_hex("0x1000000"), None);
        assert_eq!(parse_tag_hex("540001"), None);
        assert_eq!(parse_tag_hex("0x"), None);
    }
}
