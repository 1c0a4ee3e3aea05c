//! The KMIP XML encoding (KMIP Profiles §5.4) of TTLV trees.
//!
//! Elements are named by tag name, `<UniqueIdentifier type="TextString"
//! value="..."/>`; Structures have no `type` and hold child elements; tags
//! without a name are `<TTLV tag="0x540001" type=".." value=".."/>`.
//! Enumerations are written by name (hex `0x0000000A` when unnamed), Integer
//! masks as space-separated bit names, Date-Times as ISO-8601, Byte Strings and
//! Big Integers as hex. Placeholders (`$NOW`) are handled by [`Placeholders`].
//!
//! **Fidelity.** The unit of fidelity is the tree: reading the output of the
//! writer gives back the same tree, and the TTLV bytes of that tree are stable.
//! The text is not kept byte for byte — mask bits come out in bit order
//! (`Decrypt Encrypt` is written `Encrypt Decrypt`), date-times in UTC, hex in
//! lower case. The reader changes exactly one thing in text values: runs of
//! white space in Attribute Name text collapse to one space (the OASIS 1.0–1.2
//! files write `Cryptographic   Length`; no KMIP attribute name has a double
//! space). Other text, such as Result Message, is kept as written.
//! [`ReadOptions`] can turn the collapsing off.
//!
//! The writer emits every value, key material included, unless
//! [`WriteOptions::redact`] is set: then secrets are written
//! `value="&lt;redacted 32 bytes&gt;"` (a redacted secret Structure keeps
//! `type="Structure"` and gets the marker as its value), and the reader refuses
//! such a document (see [`super::redact`]).

use std::fmt;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use super::enums::value_names;
use super::names::collapse_whitespace;
use super::placeholders::Placeholders;
pub use super::redact::WriteOptions;
use super::redact::{marker, refuse_marker};
use super::tag::{parse_tag_hex, tag_by_name, tag_hex, tag_label, tag_name, tags};
use super::text::{format_value, parse_value};
use crate::ttlv::{Item, ItemType, Tag, Value};

/// A reading failure with its place in the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlError {
    /// 1-based line and column of the element (or the XML fault).
    pub line: usize,
    pub column: usize,
    /// The element being read, if any.
    pub element: Option<String>,
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)?;
        if let Some(e) = &self.element {
            write!(f, " <{e}>")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for XmlError {}

/// A tree the XML encoding cannot carry (a Text String with a control character
/// XML 1.0 has no way to write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlWriteError {
    pub element: String,
    pub message: String,
}

impl fmt::Display for XmlWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>: {}", self.element, self.message)
    }
}

impl std::error::Error for XmlWriteError {}

/// Reader options.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Collapse runs of white space in Attribute Name text (default on).
    pub collapse_attribute_names: bool,
    /// The deepest nesting accepted.
    pub max_depth: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            collapse_attribute_names: true,
            max_depth: crate::limits::MAX_DEPTH,
        }
    }
}

/// Reads one item: the document's root element.
pub fn read_item(xml: &str, placeholders: &mut Placeholders) -> Result<Item, XmlError> {
    read_item_with(xml, placeholders, &ReadOptions::default())
}

pub fn read_item_with(
    xml: &str,
    placeholders: &mut Placeholders,
    opts: &ReadOptions,
) -> Result<Item, XmlError> {
    let mut items = Parser::new(xml, placeholders, opts, false).run()?;
    match items.pop() {
        Some(item) => Ok(item),
        None => Err(XmlError {
            line: 1,
            column: 1,
            element: None,
            message: "no root element".into(),
        }),
    }
}

/// Reads a test-case document, `<KMIP>` holding messages, and returns its
/// children in order (RequestMessage, ResponseMessage, ...). Text directly
/// inside the root (the files' `# TIME 0` annotations) is skipped.
pub fn read_messages(xml: &str, placeholders: &mut Placeholders) -> Result<Vec<Item>, XmlError> {
    read_messages_with(xml, placeholders, &ReadOptions::default())
}

pub fn read_messages_with(
    xml: &str,
    placeholders: &mut Placeholders,
    opts: &ReadOptions,
) -> Result<Vec<Item>, XmlError> {
    Parser::new(xml, placeholders, opts, true).run()
}

struct Frame {
    tag: Tag,
    name: String,
    pos: usize,
    children: Vec<Item>,
    /// A non-Structure element written with an end tag: its value, waiting for it.
    leaf: Option<Value>,
}

struct Parser<'a> {
    xml: &'a str,
    placeholders: &'a mut Placeholders,
    opts: &'a ReadOptions,
    /// Whether the root element is a container (`<KMIP>`) whose children are the
    /// result, rather than the result itself.
    container: bool,
    stack: Vec<Frame>,
    out: Vec<Item>,
    root_done: bool,
}

impl<'a> Parser<'a> {
    fn new(xml: &'a str, placeholders: &'a mut Placeholders, opts: &'a ReadOptions, container: bool) -> Self {
        Parser {
            xml,
            placeholders,
            opts,
            container,
            stack: Vec::new(),
            out: Vec::new(),
            root_done: false,
        }
    }

    fn error(&self, pos: usize, element: Option<&str>, message: impl Into<String>) -> XmlError {
        let before = self.xml.get(..pos.min(self.xml.len())).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        XmlError {
            line,
            column,
            element: element.map(str::to_owned),
            message: message.into(),
        }
    }

    fn run(mut self) -> Result<Vec<Item>, XmlError> {
        let mut reader = quick_xml::Reader::from_str(self.xml);
        loop {
            let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let event = match reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(pos);
                    let open = self.stack.last().map(|f| f.name.clone());
                    return Err(self.error(at, open.as_deref(), format!("malformed XML: {e}")));
                }
            };
            match event {
                Event::Start(e) => self.open(&e, pos, false)?,
                Event::Empty(e) => self.open(&e, pos, true)?,
                Event::End(_) => self.close(pos)?,
                Event::Text(t) => {
                    // The OASIS files annotate the root with text between the
                    // messages (`# TIME 0`, `# [Client-B]`); text anywhere else
                    // is an error.
                    let in_root = self.container && self.stack.len() == 1;
                    if !in_root && !t.chars().all(char::is_whitespace) {
                        let open = self.stack.last().map(|f| f.name.clone());
                        return Err(self.error(pos, open.as_deref(), "unexpected text content"));
                    }
                }
                Event::CData(_) | Event::GeneralRef(_) => {
                    let open = self.stack.last().map(|f| f.name.clone());
                    return Err(self.error(pos, open.as_deref(), "unexpected text content"));
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        if let Some(f) = self.stack.last() {
            return Err(self.error(f.pos, Some(&f.name), "element is not closed"));
        }
        if !self.root_done {
            return Err(self.error(self.xml.len(), None, "no root element"));
        }
        Ok(self.out)
    }

    fn open(&mut self, e: &BytesStart<'_>, pos: usize, empty: bool) -> Result<(), XmlError> {
        let name = e.name().as_ref().to_owned();
        if self.root_done {
            return Err(self.error(pos, Some(&name), "more than one root element"));
        }
        if let Some(f) = self.stack.last()
            && f.leaf.is_some()
        {
            return Err(self.error(pos, Some(&name), format!("<{}> is not a Structure", f.name)));
        }
        if self.stack.len() > self.opts.max_depth {
            return Err(self.error(
                pos,
                Some(&name),
                format!("nested deeper than {}", self.opts.max_depth),
            ));
        }
        let (mut ty_attr, mut value_attr, mut tag_attr) = (None, None, None);
        for attr in e.attributes() {
            let attr = attr.map_err(|err| self.error(pos, Some(&name), format!("bad attribute: {err}")))?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| self.error(pos, Some(&name), format!("bad attribute value: {err}")))?
                .into_owned();
            match attr.key.as_ref() {
                "type" => ty_attr = Some(value),
                "value" => value_attr = Some(value),
                "tag" => tag_attr = Some(value),
                other => {
                    return Err(self.error(pos, Some(&name), format!("unknown attribute {other:?}")));
                }
            }
        }

        // The container root of a test-case document.
        if self.container && self.stack.is_empty() {
            if ty_attr.is_some() || value_attr.is_some() || tag_attr.is_some() {
                return Err(self.error(pos, Some(&name), "the document root takes no attributes"));
            }
            self.stack.push(Frame {
                tag: Tag(0),
                name,
                pos,
                children: Vec::new(),
                leaf: None,
            });
            if empty {
                self.close(pos)?;
            }
            return Ok(());
        }

        let tag = match &tag_attr {
            Some(t) => {
                parse_tag_hex(t).ok_or_else(|| self.error(pos, Some(&name), format!("bad tag {t:?}")))?
            }
            None => tag_by_name(&name).ok_or_else(|| self.error(pos, Some(&name), "unknown tag name"))?,
        };
        let ty = match ty_attr.as_deref() {
            None | Some("Structure") => ItemType::Structure,
            Some(t) => ItemType::from_name(t)
                .ok_or_else(|| self.error(pos, Some(&name), format!("unknown type {t:?}")))?,
        };
        if let Some(text) = &value_attr {
            refuse_marker(tag, ty, text).map_err(|m| self.error(pos, Some(&name), m))?;
        }
        if ty == ItemType::Structure {
            if value_attr.is_some() {
                return Err(self.error(pos, Some(&name), "a Structure takes no value"));
            }
            self.stack.push(Frame {
                tag,
                name,
                pos,
                children: Vec::new(),
                leaf: None,
            });
            if empty {
                self.close(pos)?;
            }
            return Ok(());
        }

        let Some(text) = value_attr else {
            return Err(self.error(pos, Some(&name), "missing value attribute"));
        };
        let text = if tag == tags::ATTRIBUTE_NAME && self.opts.collapse_attribute_names {
            collapse_whitespace(&text).into_owned()
        } else {
            text
        };
        let siblings: &[Item] = self.stack.last().map_or(&[], |f| &f.children);
        let names = match ty {
            ItemType::Enumeration | ItemType::Integer => {
                value_names(tag, siblings, ty == ItemType::Enumeration)
            }
            _ => None,
        };
        let value =
            parse_value(ty, &text, names, self.placeholders).map_err(|m| self.error(pos, Some(&name), m))?;
        if empty {
            self.finish(Item::new(tag, value));
        } else {
            self.stack.push(Frame {
                tag,
                name,
                pos,
                children: Vec::new(),
                leaf: Some(value),
            });
        }
        Ok(())
    }

    fn close(&mut self, pos: usize) -> Result<(), XmlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.error(pos, None, "unexpected end tag"));
        };
        if self.container && self.stack.is_empty() {
            self.out.append(&mut { frame.children });
            self.root_done = true;
            return Ok(());
        }
        let item = match frame.leaf {
            Some(value) => Item::new(frame.tag, value),
            None => Item::structure(frame.tag, frame.children),
        };
        self.finish(item);
        Ok(())
    }

    fn finish(&mut self, item: Item) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(item),
            None => {
                self.out.push(item);
                self.root_done = true;
            }
        }
    }
}

/// Writes one item as an XML element (two-space indentation, one element a line).
pub fn write_item(item: &Item, placeholders: &Placeholders) -> Result<String, XmlWriteError> {
    write_item_with(item, placeholders, &WriteOptions::default())
}

pub fn write_item_with(
    item: &Item,
    placeholders: &Placeholders,
    opts: &WriteOptions,
) -> Result<String, XmlWriteError> {
    let mut out = String::new();
    write(&mut out, item, &[], 0, placeholders, opts)?;
    Ok(out)
}

/// Writes a test-case document: `<KMIP>` holding `items`.
pub fn write_messages(items: &[Item], placeholders: &Placeholders) -> Result<String, XmlWriteError> {
    write_messages_with(items, placeholders, &WriteOptions::default())
}

pub fn write_messages_with(
    items: &[Item],
    placeholders: &Placeholders,
    opts: &WriteOptions,
) -> Result<String, XmlWriteError> {
    let mut out = String::from("<KMIP>\n");
    for item in items {
        write(&mut out, item, items, 1, placeholders, opts)?;
    }
    out.push_str("</KMIP>\n");
    Ok(out)
}

fn write(
    out: &mut String,
    item: &Item,
    siblings: &[Item],
    depth: usize,
    ph: &Placeholders,
    opts: &WriteOptions,
) -> Result<(), XmlWriteError> {
    let indent = "  ".repeat(depth);
    let (open, close): (String, &str) = match tag_name(item.tag) {
        Some(n) => (n.to_owned(), n),
        None => (format!("TTLV tag=\"{}\"", tag_hex(item.tag)), "TTLV"),
    };
    if let Some(m) = marker(item, opts) {
        let ty = item.value.item_type().name();
        // The marker is plain ASCII: only its angle brackets need escaping.
        let m = m.replace('<', "&lt;").replace('>', "&gt;");
        out.push_str(&format!("{indent}<{open} type=\"{ty}\" value=\"{m}\"/>\n"));
        return Ok(());
    }
    match &item.value {
        Value::Structure(children) if children.is_empty() => {
            out.push_str(&format!("{indent}<{open}/>\n"));
        }
        Value::Structure(children) => {
            out.push_str(&format!("{indent}<{open}>\n"));
            for child in children {
                write(out, child, children, depth + 1, ph, opts)?;
            }
            out.push_str(&format!("{indent}</{close}>\n"));
        }
        value => {
            let ty = value.item_type();
            let names = match ty {
                ItemType::Enumeration | ItemType::Integer => {
                    value_names(item.tag, siblings, ty == ItemType::Enumeration)
                }
                _ => None,
            };
            let text = format_value(value, names, ph, " ");
            let escaped = escape_attr(&text).map_err(|message| XmlWriteError {
                element: tag_label(item.tag).into_owned(),
                message,
            })?;
            out.push_str(&format!(
                "{indent}<{open} type=\"{}\" value=\"{escaped}\"/>\n",
                ty.name()
            ));
        }
    }
    Ok(())
}

/// Escapes an attribute value so that XML attribute-value normalisation gives it
/// back unchanged (tabs and line breaks as character references).
fn escape_attr(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(format!(
                    "character U+{:04X} cannot be written in XML 1.0",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::enums::{CryptographicAlgorithm, Operation};
    use crate::secret::SecretBytes;

    fn read(xml: &str) -> Result<Item, XmlError> {
        read_item(xml, &mut Placeholders::new())
    }

    #[test]
    fn reads_names_masks_and_attribute_values() {
        let xml = r#"<Attribute>
  <AttributeName type="TextString" value="Cryptographic   Algorithm"/>
  <AttributeValue type="Enumeration" value="AES"/>
</Attribute>"#;
        let item = read(xml).unwrap();
        assert_eq!(item.tag, tags::ATTRIBUTE);
        assert_eq!(item.children()[0].as_text(), Some("Cryptographic Algorithm"));
        assert_eq!(item.children()[1].as_enum(), Some(CryptographicAlgorithm::AES.0));
        let mask = read(r#"<CryptographicUsageMask type="Integer" value="Decrypt   Encrypt"/>"#).unwrap();
        assert_eq!(mask.as_i32(), Some(12));
        let out = write_item(&mask, &Placeholders::new()).unwrap();
        assert_eq!(
            out,
            "<CryptographicUsageMask type=\"Integer\" value=\"Encrypt Decrypt\"/>\n"
        );
        let op = read(r#"<Operation type="Enumeration" value="0x80000001"/>"#).unwrap();
        assert_eq!(op.as_enum(), Some(0x8000_0001));
        assert!(
            write_item(&op, &Placeholders::new())
                .unwrap()
                .contains("value=\"0x80000001\"")
        );
        let op = read(r#"<Operation type="Enumeration" value="GetAttributes"></Operation>"#).unwrap();
        assert_eq!(op.as_enum(), Some(Operation::GET_ATTRIBUTES.0));
    }

    #[test]
    fn attribute_name_collapsing_can_be_turned_off() {
        let xml = r#"<AttributeName type="TextString" value="a   b"/>"#;
        let opts = ReadOptions {
            collapse_attribute_names: false,
            ..ReadOptions::default()
        };
        let item = read_item_with(xml, &mut Placeholders::new(), &opts).unwrap();
        assert_eq!(item.as_text(), Some("a   b"));
        let item = read(r#"<ResultMessage type="TextString" value="Access   denied"/>"#).unwrap();
        assert_eq!(item.as_text(), Some("Access   denied"));
    }

    #[test]
    fn unknown_tags_survive_in_hex() {
        let tree = Item::structure(
            tags::VENDOR_EXTENSION,
            vec![
                Item::new(Tag(0x540001), Value::TextString("na".into())),
                Item::structure(
                    Tag(0x54FFFF),
                    vec![Item::new(Tag(0x540002), Value::Enumeration(9))],
                ),
            ],
        );
        let out = write_item(&tree, &Placeholders::new()).unwrap();
        assert!(
            out.contains(r#"<TTLV tag="0x540001" type="TextString" value="na"/>"#),
            "{out}"
        );
        assert!(out.contains("</TTLV>"), "{out}");
        assert_eq!(read(&out).unwrap(), tree);
    }

    #[test]
    fn placeholders_survive_a_round_trip() {
        let xml = r#"<KMIP>
<ResponseMessage>
  <ResponseHeader><TimeStamp type="DateTime" value="$NOW"/></ResponseHeader>
  <BatchItem>
    <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
    <InitialDate type="DateTime" value="$NOW-3600"/>
    <Data type="ByteString" value="$DATA_0"/>
  </BatchItem>
</ResponseMessage>
</KMIP>"#;
        let mut ph = Placeholders::new();
        let msgs = read_messages(xml, &mut ph).unwrap();
        let bytes = crate::ttlv::encode_to_vec(&msgs[0]);
        let decoded = crate::ttlv::decode(&bytes).unwrap();
        let out = write_messages(&[decoded], &ph).unwrap();
        for p in [
            r#""$NOW""#,
            r#""$NOW-3600""#,
            r#""$UNIQUE_IDENTIFIER_0""#,
            r#""$DATA_0""#,
        ] {
            assert!(out.contains(p), "{p} missing from {out}");
        }
        // Bound, the same text reads as real values.
        let mut bound = Placeholders::new();
        bound.bind("NOW", Value::DateTime(1_000_000));
        bound.bind("UNIQUE_IDENTIFIER_0", Value::TextString("k-1".into()));
        bound.bind("DATA_0", Value::ByteString(SecretBytes::new(vec![1, 2])));
        let msgs = read_messages(xml, &mut bound).unwrap();
        let batch = &msgs[0].children()[1];
        assert_eq!(batch.children()[0].as_text(), Some("k-1"));
        assert_eq!(batch.children()[1].as_datetime(), Some(996_400));
        assert_eq!(
            batch.children()[2].as_bytes().map(|b| b.expose().to_vec()),
            Some(vec![1, 2])
        );
    }

    #[test]
    fn text_with_line_breaks_and_markup_characters_round_trips() {
        let item = Item::new(tags::DESCRIPTION, Value::TextString("a<b>&\"c\"\n\td\r".into()));
        let out = write_item(&item, &Placeholders::new()).unwrap();
        assert_eq!(read(&out).unwrap(), item);
        let bad = Item::new(tags::DESCRIPTION, Value::TextString("bell\u{7}".into()));
        let err = write_item(&bad, &Placeholders::new()).unwrap_err();
        assert_eq!(err.element, "Description");
    }

    #[test]
    fn errors_carry_line_and_element() {
        let cases: &[(&str, &str, usize)] = &[
            (
                "<RequestMessage>\n  <Bogus type=\"Integer\" value=\"1\"/>\n</RequestMessage>",
                "unknown tag name",
                2,
            ),
            (
                "<RequestMessage>\n\n  <BatchCount type=\"Integer\" value=\"x\"/>\n</RequestMessage>",
                "invalid Integer",
                3,
            ),
            ("<BatchCount type=\"Integer\"/>", "missing value", 1),
            ("<BatchCount type=\"Float\" value=\"1\"/>", "unknown type", 1),
            (
                "<BatchCount type=\"Integer\" value=\"1\" colour=\"red\"/>",
                "unknown attribute",
                1,
            ),
            (
                "<RequestMessage>\n<BatchItem>\n</RequestMessage>",
                "malformed XML",
                3,
            ),
            ("<RequestMessage>\n<BatchItem>", "not closed", 2),
            ("<RequestMessage>text</RequestMessage>", "unexpected text", 1),
            ("<RequestMessage/><RequestMessage/>", "more than one root", 1),
            ("", "no root element", 1),
            (
                "<BatchCount type=\"Integer\" value=\"1\"><BatchCount type=\"Integer\" value=\"1\"/></BatchCount>",
                "not a Structure",
                1,
            ),
            (
                "<Operation type=\"Enumeration\" value=\"Frobnicate\"/>",
                "invalid Enumeration",
                1,
            ),
            (
                "<TTLV tag=\"0x1000000\" type=\"Integer\" value=\"1\"/>",
                "bad tag",
                1,
            ),
            (
                "<RequestMessage type=\"Structure\" value=\"1\"/>",
                "takes no value",
                1,
            ),
        ];
        for &(xml, want, line) in cases {
            let e = read(xml).unwrap_err();
            assert!(e.message.contains(want), "{xml:?}: {e}");
            assert_eq!(e.line, line, "{xml:?}: {e}");
        }
        let e =
            read("<RequestMessage>\n  <Bogus type=\"Integer\" value=\"1\"/>\n</RequestMessage>").unwrap_err();
        assert_eq!(e.element.as_deref(), Some("Bogus"));
        assert_eq!(e.column, 3);
        assert!(e.to_string().starts_with("line 2, column 3 <Bogus>"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let xml = format!("{}{}", "<Attribute>".repeat(40), "</Attribute>".repeat(40));
        assert!(read(&xml).unwrap_err().message.contains("deeper"));
    }

    #[test]
    fn secrets_in_errors_are_not_echoed() {
        let e = read(r#"<KeyMaterial type="ByteString" value="topsecretzz"/>"#).unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }
}
