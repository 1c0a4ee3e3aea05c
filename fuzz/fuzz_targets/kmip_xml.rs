//! Any text: the KMIP XML reader never panics, and whatever it reads writes
//! back (as XML and as JSON) and re-reads to the same tree. A redacted write
//! either fails to read or held no secret (it reads back the same tree).
#![no_main]

use keyward::kmip::{Placeholders, WriteOptions, json, xml};
use keyward::ttlv::{Item, decode, encode_to_vec};
use libfuzzer_sys::fuzz_target;

fn check(item: &Item, ph: &Placeholders) {
    let bytes = encode_to_vec(item);
    assert_eq!(decode(&bytes).as_ref(), Ok(item), "TTLV round trip");
    if let Ok(text) = xml::write_item(item, ph) {
        let again = xml::read_item(&text, &mut ph.clone());
        assert_eq!(again.as_ref(), Ok(item), "XML round trip:\n{text}");
    }
    let js = json::write_item(item, ph);
    assert_eq!(
        json::read_item(&js, &mut ph.clone()).as_ref(),
        Ok(item),
        "JSON round trip:\n{js}"
    );
    let redacted = WriteOptions { redact: true };
    if let Ok(text) = xml::write_item_with(item, ph, &redacted)
        && let Ok(again) = xml::read_item(&text, &mut ph.clone())
    {
        assert_eq!(&again, item, "a redacted XML document read as something else");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut ph = Placeholders::new();
    if let Ok(item) = xml::read_item(text, &mut ph) {
        check(&item, &ph);
    }
    let mut ph = Placeholders::new();
    if let Ok(items) = xml::read_messages(text, &mut ph) {
        for item in &items {
            check(item, &ph);
        }
    }
});
