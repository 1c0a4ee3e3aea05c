//! Property tests: encode ∘ decode is the identity, and decode never panics.

use keyward::secret::SecretBytes;
use keyward::ttlv::{Item, Tag, Value, decode, encode_to_vec};
use proptest::prelude::*;

fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![0x420001u32..0x420160, 0x540000u32..0x540010, 0u32..=0xFF_FFFF].prop_map(Tag)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::Integer),
        any::<i64>().prop_map(Value::LongInteger),
        (1usize..4)
            .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 8))
            .prop_map(|b| Value::BigInteger(SecretBytes::new(b))),
        any::<u32>().prop_map(Value::Enumeration),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,40}".prop_map(Value::TextString),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::ByteString(SecretBytes::new(b))),
        any::<i64>().prop_map(Value::DateTime),
        any::<u32>().prop_map(Value::Interval),
        any::<i64>().prop_map(Value::DateTimeExtended),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    let leaf = (tag(), scalar()).prop_map(|(t, v)| Item::new(t, v));
    leaf.prop_recursive(6, 128, 8, |inner| {
        (tag(), proptest::collection::vec(inner, 0..8)).prop_map(|(t, items)| Item::structure(t, items))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity(i in item()) {
        let bytes = encode_to_vec(&i);
        prop_assert_eq!(bytes.len() % 8, 0);
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(&back, &i);
        prop_assert_eq!(encode_to_vec(&back), bytes);
    }

    #[test]
    fn decode_then_encode_is_identity_on_accepted_input(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(i) = decode(&bytes) {
            prop_assert_eq!(encode_to_vec(&i), bytes);
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(i in item(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = encode_to_vec(&i);
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at.index(n)] = b;
        }
        if let Ok(back) = decode(&bytes) {
            prop_assert_eq!(encode_to_vec(&back), bytes);
        }
    }

    #[test]
    fn every_truncation_is_an_error(i in item()) {
        let bytes = encode_to_vec(&i);
        for cut in 0..bytes.len() {
            prop_assert!(decode(&bytes[..cut]).is_err());
        }
    }
}
