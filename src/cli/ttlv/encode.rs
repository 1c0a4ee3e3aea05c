//! `keyward ttlv encode`: KMIP JSON or XML to TTLV (hex or raw).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::hex::parse_hex;
use crate::cli::io::{read_text, write_output};
use crate::cli::{CliError, CliResult, RunCommand};
use crate::kmip::placeholders::Placeholder;
use crate::kmip::{Placeholders, json, xml};
use crate::secret::SecretBytes;
use crate::ttlv::{Item, ItemType, Value, encode_to_vec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Json,
    Xml,
    /// XML if the text starts with `<`, JSON if with `{` or `[`.
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputForm {
    /// Lower-case hex, one line per message.
    Hex,
    /// Binary TTLV, messages one after another.
    Raw,
}

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// The JSON or XML to read; stdin when absent or `-`.
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub format: InputFormat,
    #[arg(long, value_enum, default_value_t = OutputForm::Hex)]
    pub output: OutputForm,
    /// Give placeholder $NAME a value (text; hex for a Byte String; ISO-8601
    /// or Unix seconds for a Date-Time). Repeatable.
    #[arg(long = "bind", value_name = "NAME=VALUE", value_parser = parse_binding)]
    pub bindings: Vec<(String, String)>,
}

fn parse_binding(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    let name = name.strip_prefix('$').unwrap_or(name);
    if name.is_empty() {
        return Err("empty placeholder name".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}

impl RunCommand for EncodeArgs {
    fn run(self) -> CliResult {
        let text = read_text(self.file.as_deref())?;
        let format = match self.format {
            InputFormat::Auto => sniff(&text)?,
            f => f,
        };
        let messages = read_bound(&text, format, &self.bindings)?;
        let out = match self.output {
            OutputForm::Raw => messages.iter().flat_map(encode_to_vec).collect(),
            OutputForm::Hex => messages
                .iter()
                .map(|m| hex::encode(encode_to_vec(m)) + "\n")
                .collect::<String>()
                .into_bytes(),
        };
        write_output(&out)
    }
}

fn sniff(text: &str) -> CliResult<InputFormat> {
    match text.trim_start().as_bytes().first() {
        Some(b'<') => Ok(InputFormat::Xml),
        Some(b'{' | b'[') => Ok(InputFormat::Json),
        _ => Err(CliError::new(
            "cannot tell JSON from XML (give --format json or --format xml)",
        )),
    }
}

/// Reads the messages with `bindings` applied; refuses a placeholder left
/// without a value, since its stand-in must never reach the wire.
fn read_bound(text: &str, format: InputFormat, bindings: &[(String, String)]) -> CliResult<Vec<Item>> {
    let mut ph = Placeholders::new();
    let mut messages = read(text, format, &mut ph)?;
    if ph.seen().is_empty() && bindings.is_empty() {
        return Ok(messages);
    }
    if !bindings.is_empty() {
        // The first read tells each placeholder's type; bind, then read again.
        let mut types = BTreeMap::new();
        for m in &messages {
            placeholder_types(m, &ph, &mut types);
        }
        let mut bound = Placeholders::new();
        for (name, value) in bindings {
            let ty = types.get(name.as_str()).ok_or_else(|| {
                CliError::new(format!("--bind {name}: the input has no placeholder ${name}"))
            })?;
            let value = typed_value(*ty, value).map_err(|m| CliError::new(format!("--bind {name}: {m}")))?;
            bound.bind(name, value);
        }
        ph = bound;
        messages = read(text, format, &mut ph)?;
    }
    let unbound: Vec<String> = ph.unbound().map(|n| format!("${n}")).collect();
    if !unbound.is_empty() {
        return Err(CliError::new(format!(
            "the input holds placeholder{} {}, which stand{} for no value: give {} with --bind NAME=VALUE",
            if unbound.len() > 1 { "s" } else { "" },
            unbound.join(", "),
            if unbound.len() > 1 { "" } else { "s" },
            if unbound.len() > 1 {
                "them values"
            } else {
                "it a value"
            },
        )));
    }
    Ok(messages)
}

fn read(text: &str, format: InputFormat, ph: &mut Placeholders) -> CliResult<Vec<Item>> {
    match format {
        InputFormat::Json => Ok(json::read_messages(text, ph)?),
        _ if root_element(text).as_deref() == Some("KMIP") => Ok(xml::read_messages(text, ph)?),
        _ => Ok(vec![xml::read_item(text, ph)?]),
    }
}

/// The name of the document's root element, if one can be found.
fn root_element(text: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => {
                return Some(e.name().as_ref().to_owned());
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Records the type of every placeholder stand-in in `item`.
fn placeholder_types<'a>(item: &'a Item, ph: &'a Placeholders, out: &mut BTreeMap<String, ItemType>) {
    let name = match &item.value {
        Value::Structure(children) => {
            for c in children {
                placeholder_types(c, ph, out);
            }
            return;
        }
        Value::TextString(t) => Placeholder::parse(t).map(|p| p.name.to_owned()),
        Value::ByteString(b) => Placeholders::bytes_placeholder(b.expose())
            .and_then(Placeholder::parse)
            .map(|p| p.name.to_owned()),
        v @ (Value::DateTime(_) | Value::DateTimeExtended(_)) => {
            ph.placeholder_of(v).map(|p| p.name.to_owned())
        }
        _ => None,
    };
    if let Some(n) = name {
        out.entry(n).or_insert(item.value.item_type());
    }
}

/// The value `text` gives a placeholder of type `ty`.
fn typed_value(ty: ItemType, text: &str) -> Result<Value, String> {
    let seconds = || -> Result<i64, String> {
        if let Ok(s) = text.parse::<i64>() {
            return Ok(s);
        }
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|_| format!("{text:?} is not an ISO-8601 date-time or Unix seconds"))
    };
    match ty {
        ItemType::TextString => Ok(Value::TextString(text.to_owned())),
        ItemType::ByteString => Ok(Value::ByteString(SecretBytes::new(parse_hex(text.as_bytes())?))),
        ItemType::DateTime => Ok(Value::DateTime(seconds()?)),
        ItemType::DateTimeExtended => seconds()?
            .checked_mul(1_000_000)
            .map(Value::DateTimeExtended)
            .ok_or_else(|| "date-time out of range".to_owned()),
        other => Err(format!("a placeholder cannot stand for a {}", other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_PLACEHOLDERS: &str = r#"<RequestMessage>
  <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_0"/>
  <TimeStamp type="DateTime" value="$NOW-3600"/>
</RequestMessage>"#;

    #[test]
    fn unbound_placeholders_are_refused_by_name() {
        let e = read_bound(WITH_PLACEHOLDERS, InputFormat::Xml, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("$UNIQUE_IDENTIFIER_0, $NOW"), "{e}");
        let e = read_bound(
            WITH_PLACEHOLDERS,
            InputFormat::Xml,
            &[("NOW".into(), "2024-01-01T00:00:00Z".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("placeholder $UNIQUE_IDENTIFIER_0,") && !e.contains("$NOW"),
            "{e}"
        );
    }

    #[test]
    fn bindings_give_typed_values() {
        let m = read_bound(
            WITH_PLACEHOLDERS,
            InputFormat::Xml,
            &[
                ("NOW".into(), "1700000000".into()),
                ("UNIQUE_IDENTIFIER_0".into(), "uid-7".into()),
            ],
        )
        .unwrap();
        assert_eq!(m[0].children()[0].as_text(), Some("uid-7"));
        assert_eq!(m[0].children()[1].value, Value::DateTime(1_700_000_000 - 3600));
        let e = read_bound(
            WITH_PLACEHOLDERS,
            InputFormat::Xml,
            &[("NOPE".into(), "1".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no placeholder $NOPE"), "{e}");
    }

    #[test]
    fn sniffs_and_reads_documents() {
        assert_eq!(sniff("  <KMIP/>").unwrap(), InputFormat::Xml);
        assert_eq!(sniff("\n[").unwrap(), InputFormat::Json);
        assert!(sniff("42007801").is_err());
        assert_eq!(
            root_element("<?xml version=\"1.0\"?>\n<!-- c -->\n<KMIP>").as_deref(),
            Some("KMIP")
        );
        assert_eq!(parse_binding("$NOW=1").unwrap(), ("NOW".into(), "1".into()));
        assert!(parse_binding("NOW").is_err());
    }
}
