//! Hex captures as people paste them: `42 00 78 01`, `42:00:78:01`,
//! `0x42, 0x00`, one long line or a dump over many lines.

/// Whether `input` is text rather than raw TTLV. A TTLV message's fourth byte is
/// its type, 0x01 (Structure), which no text has; a hex dump is printable ASCII.
pub(crate) fn looks_like_text(input: &[u8]) -> bool {
    input
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
}

/// The bytes a hex capture spells. White space, `:`, `,` and `0x` prefixes
/// between digits are ignored; anything else is an error naming its line and
/// column.
pub(crate) fn parse_hex(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut high: Option<u8> = None;
    let (mut line, mut column) = (1usize, 0usize);
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        i += 1;
        column += 1;
        if c == b'\n' {
            line += 1;
            column = 0;
            continue;
        }
        if c.is_ascii_whitespace() || c == b':' || c == b',' {
            continue;
        }
        // `0x` starts a group only where no digit is pending.
        if c == b'0' && high.is_none() && matches!(input.get(i), Some(b'x' | b'X')) {
            i += 1;
            column += 1;
            continue;
        }
        let Some(nibble) = (c as char).to_digit(16) else {
            let shown = if c.is_ascii_graphic() {
                format!("{:?}", c as char)
            } else {
                format!("byte 0x{c:02X}")
            };
            return Err(format!(
                "not hex: {shown} at line {line}, column {column} (use --input raw for binary input)"
            ));
        };
        // `to_digit(16)` is below 16.
        let nibble = nibble as u8;
        match high.take() {
            Some(h) => out.push(h << 4 | nibble),
            None => high = Some(nibble),
        }
    }
    if high.is_some() {
        return Err("odd number of hex digits".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerates_the_usual_separators() {
        let want = vec![0x42, 0x00, 0x78, 0x01];
        for text in [
            "42007801",
            "42 00 78 01\n",
            "42:00:78:01",
            "0x42, 0x00, 0x78, 0x01",
            "0x42007801",
            "  4200\r\n  7801  ",
            "0X42 0x00 0x78 0X01",
        ] {
            assert_eq!(parse_hex(text.as_bytes()).unwrap(), want, "{text:?}");
        }
        // A `0` ending a byte is a digit, not the start of `0x`.
        assert_eq!(parse_hex(b"40 0x01").unwrap(), vec![0x40, 0x01]);
    }

    #[test]
    fn errors_name_the_place() {
        let e = parse_hex(b"4200\n78zz").unwrap_err();
        assert!(e.contains("'z' at line 2, column 3"), "{e}");
        assert!(parse_hex(b"420").unwrap_err().contains("odd"));
        assert_eq!(parse_hex(b"").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn detects_raw_ttlv() {
        assert!(looks_like_text(b"42 00 78 01\n"));
        assert!(!looks_like_text(&[0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0]));
    }
}
