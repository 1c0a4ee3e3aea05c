//! Any bytes: decoding never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use keyward::ttlv::{HEADER_LEN, decode, encode_to_vec, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = <&[u8; HEADER_LEN]>::try_from(data.get(..HEADER_LEN).unwrap_or_default()) {
        let _ = frame_len(header, keyward::limits::MAX_MESSAGE_BYTES);
    }
    if let Ok(item) = decode(data) {
        assert_eq!(encode_to_vec(&item), data, "decode is not canonical");
    }
});
