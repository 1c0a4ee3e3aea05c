//! Framing: how long is the message that starts with these 8 bytes?
//!
//! A network reader calls [`frame_len`] on the first 8 bytes of a message and learns,
//! before it allocates anything, how many bytes the whole message takes — or that it
//! must refuse it.

use std::fmt;

use super::value::ItemType;

/// Length of a TTLV item header: 3 bytes tag, 1 byte type, 4 bytes length.
pub const HEADER_LEN: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A KMIP message is always a Structure.
    NotAStructure { type_byte: u8 },
    /// A Structure's length is always a multiple of 8.
    BadLength { length: u32 },
    /// The announced message is larger than the limit.
    TooLarge { length: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NotAStructure { type_byte } => {
                write!(
                    f,
                    "message does not start with a Structure (type byte 0x{type_byte:02X})"
                )
            }
            FrameError::BadLength { length } => {
                write!(f, "message length {length} is not a multiple of 8")
            }
            FrameError::TooLarge { length, max } => {
                write!(f, "message of {length} bytes exceeds the limit of {max}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// The total length (header included) of the message whose header this is.
pub fn frame_len(header: &[u8; HEADER_LEN], max_message_bytes: usize) -> Result<usize, FrameError> {
    if header[3] != ItemType::Structure.to_byte() {
        return Err(FrameError::NotAStructure {
            type_byte: header[3],
        });
    }
    let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if !length.is_multiple_of(8) {
        return Err(FrameError::BadLength { length });
    }
    // u32 always fits usize on the 32- and 64-bit targets we build for.
    let total = HEADER_LEN.saturating_add(length as usize);
    if total > max_message_bytes {
        return Err(FrameError::TooLarge {
            length: total,
            max: max_message_bytes,
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_total_length() {
        let h = [0x42, 0x00, 0x78, 0x01, 0x00, 0x00, 0x00, 0x20];
        assert_eq!(frame_len(&h, 1024), Ok(40));
    }

    #[test]
    fn refuses_two_gib_before_allocating() {
        let h = [0x42, 0x00, 0x78, 0x01, 0x80, 0x00, 0x00, 0x00];
        assert!(matches!(
            frame_len(&h, 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn refuses_non_structure_and_odd_length() {
        let h = [0x42, 0x00, 0x78, 0x02, 0x00, 0x00, 0x00, 0x04];
        assert!(matches!(
            frame_len(&h, 1024),
            Err(FrameError::NotAStructure { .. })
        ));
        let h = [0x42, 0x00, 0x78, 0x01, 0x00, 0x00, 0x00, 0x05];
        assert!(matches!(
            frame_len(&h, 1024),
            Err(FrameError::BadLength { .. })
        ));
    }
}
