//! `keyward ttlv decode`: TTLV bytes to KMIP JSON, XML or a tree.

use std::path::PathBuf;

use super::hex::{looks_like_text, parse_hex};
use crate::cli::io::{read_input, write_output};
use crate::cli::{CliError, CliResult, RunCommand};
use crate::kmip::{self, KmipSchema, Placeholders, WriteOptions};
use crate::ttlv::{FrameError, HEADER_LEN, Item, TreePrinter, decode, frame_len};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputForm {
    /// Hex digits; white space, `:`, `,` and `0x` are ignored.
    Hex,
    /// Binary TTLV.
    Raw,
    /// Hex if the input is printable text, raw otherwise.
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// KMIP JSON (an array when there are several messages).
    Json,
    /// KMIP XML (a <KMIP> document when there are several messages).
    Xml,
    /// An indented tree, one item a line.
    Tree,
}

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// The capture to read; stdin when absent or `-`.
    pub file: Option<PathBuf>,
    /// How the capture is written.
    #[arg(long, value_enum, default_value_t = InputForm::Auto)]
    pub input: InputForm,
    /// What to print.
    #[arg(long, value_enum, default_value_t = OutputFormat::Tree)]
    pub format: OutputFormat,
    /// Show key material, passwords and other secrets instead of `<redacted N bytes>`.
    #[arg(long)]
    pub reveal: bool,
}

impl RunCommand for DecodeArgs {
    fn run(self) -> CliResult {
        let input = read_input(self.file.as_deref())?;
        let hex = match self.input {
            InputForm::Hex => true,
            InputForm::Raw => false,
            InputForm::Auto => looks_like_text(&input),
        };
        let bytes = if hex {
            parse_hex(&input).map_err(CliError::new)?
        } else {
            input
        };
        let messages = decode_all(&bytes)?;
        let text = render(&messages, self.format, self.reveal)?;
        write_output(text.as_bytes())
    }
}

/// Decodes the messages of a capture, one after another. Each message's length
/// comes from its header (`frame_len`); a capture holding a single item that is
/// not a Structure is decoded as that item.
pub(crate) fn decode_all(bytes: &[u8]) -> CliResult<Vec<Item>> {
    if bytes.is_empty() {
        return Err(CliError::new("the input holds no TTLV"));
    }
    let mut messages = Vec::new();
    let mut start = 0;
    while let Some(rest) = bytes.get(start..).filter(|r| !r.is_empty()) {
        let len = match rest
            .first_chunk::<HEADER_LEN>()
            .map(|h| frame_len(h, crate::limits::MAX_MESSAGE_BYTES))
        {
            Some(Ok(total)) => total.min(rest.len()),
            // A lone item of another type: let the decoder judge all of it.
            Some(Err(FrameError::NotAStructure { .. })) if start == 0 => rest.len(),
            Some(Err(e)) => {
                return Err(CliError::new(format!(
                    "{}at offset {start}: {e}",
                    message_label(messages.len(), start)
                )));
            }
            // Fewer than 8 bytes: the decoder reports the truncation.
            None => rest.len(),
        };
        let chunk = rest.get(..len).unwrap_or(rest);
        let item = decode(chunk).map_err(|mut e| {
            e.offset += start;
            CliError::new(format!(
                "{}{}",
                message_label(messages.len(), start),
                e.describe(&kmip::tag_name)
            ))
        })?;
        messages.push(item);
        start += len;
    }
    Ok(messages)
}

/// `message 3 (from byte 240): ` for every message after the first.
fn message_label(index: usize, start: usize) -> String {
    if start == 0 {
        String::new()
    } else {
        format!("message {} (from byte {start}): ", index + 1)
    }
}

pub(crate) fn render(messages: &[Item], format: OutputFormat, reveal: bool) -> CliResult<String> {
    // Decoded bytes carry no placeholders; the table only serves the writers.
    let ph = Placeholders::new();
    let opts = WriteOptions { redact: !reveal };
    Ok(match (format, messages) {
        (OutputFormat::Json, [one]) => kmip::json::write_item_with(one, &ph, &opts),
        (OutputFormat::Json, many) => kmip::json::write_messages_with(many, &ph, &opts),
        (OutputFormat::Xml, [one]) => kmip::xml::write_item_with(one, &ph, &opts)?,
        (OutputFormat::Xml, many) => kmip::xml::write_messages_with(many, &ph, &opts)?,
        (OutputFormat::Tree, many) => {
            let printer = TreePrinter {
                schema: &KmipSchema,
                reveal,
            };
            let trees: Vec<String> = many.iter().map(|m| printer.print(m)).collect();
            trees.join("\n")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;
    use crate::ttlv::{Value, encode_to_vec};

    fn message(uid: &str) -> Item {
        Item::structure(
            tags::REQUEST_MESSAGE,
            vec![Item::new(tags::UNIQUE_IDENTIFIER, Value::TextString(uid.into()))],
        )
    }

    #[test]
    fn splits_concatenated_messages() {
        let mut bytes = encode_to_vec(&message("a"));
        bytes.extend(encode_to_vec(&message("bcdefghij")));
        assert_eq!(
            decode_all(&bytes).unwrap(),
            vec![message("a"), message("bcdefghij")]
        );
    }

    #[test]
    fn errors_give_absolute_offsets_and_kmip_paths() {
        let first = encode_to_vec(&message("a"));
        let mut bytes = first.clone();
        let mut second = encode_to_vec(&message("abc"));
        let last = second.len() - 1;
        second[last] = 1; // a padding byte
        bytes.extend(&second);
        let e = decode_all(&bytes).unwrap_err().to_string();
        let at = first.len() + 8;
        assert!(
            e.starts_with(&format!(
                "message 2 (from byte {}): at offset {at} (RequestMessage/UniqueIdentifier)",
                first.len()
            )),
            "{e}"
        );
        assert!(e.contains("padding"), "{e}");
        let e = decode_all(&first[..first.len() - 8]).unwrap_err().to_string();
        assert!(e.contains("RequestMessage"), "{e}");
        assert!(decode_all(&[]).is_err());
        assert!(
            decode_all(&[0x42, 0x00])
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
    }
}
