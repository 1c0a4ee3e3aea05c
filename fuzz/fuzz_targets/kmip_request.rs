//! Any bytes: TTLV decoding then the KMIP request model never panic, and what
//! the model reads it writes back to a tree that reads the same again (the
//! message, and each batch item's payload through its typed model).
#![no_main]

use keyward::kmip::message::RequestMessage;
use keyward::kmip::payload::{self, Payload};
use keyward::kmip::{Operation, tags};
use keyward::ttlv::{Item, decode};
use libfuzzer_sys::fuzz_target;

/// A typed payload read, written and read again is the same value.
fn stable<P: Payload + PartialEq + std::fmt::Debug>(item: &Item) {
    if let Ok(typed) = P::from_payload(item) {
        let again = P::from_payload(&typed.to_payload());
        assert_eq!(again.as_ref(), Ok(&typed), "typed payload is not stable");
    }
}

fn typed_payload(op: Operation, item: &Item) {
    use payload::*;
    if item.tag != tags::REQUEST_PAYLOAD {
        return;
    }
    macro_rules! ops {
        ($($konst:ident => $m:ident),* $(,)?) => {
            match op {
                $(Operation::$konst => stable::<$m::Request>(item),)*
                _ => {}
            }
        };
    }
    ops!(
        DISCOVER_VERSIONS => discover_versions, QUERY => query, CREATE => create, REGISTER => register,
        GET => get, GET_ATTRIBUTES => get_attributes, GET_ATTRIBUTE_LIST => get_attribute_list,
        ADD_ATTRIBUTE => add_attribute, MODIFY_ATTRIBUTE => modify_attribute,
        DELETE_ATTRIBUTE => delete_attribute, LOCATE => locate, ACTIVATE => activate, REVOKE => revoke,
        DESTROY => destroy, RE_KEY => rekey, CHECK => check,
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(item) = decode(data) else {
        return;
    };
    let Ok(request) = RequestMessage::from_item(&item) else {
        return;
    };
    let again = RequestMessage::from_item(&request.to_item());
    assert_eq!(again.as_ref(), Ok(&request), "request model is not stable");
    for batch_item in &request.batch_items {
        if let Some(p) = &batch_item.payload {
            typed_payload(batch_item.operation, p);
        }
    }
});
