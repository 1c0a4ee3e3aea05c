//! Modify Attribute (KMIP 1.4 §4.14).

super::one_attribute_payloads!(crate::kmip::Operation::MODIFY_ATTRIBUTE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn round_trips() {
        let mut attribute = Attribute::new("Contact Information", Value::TextString("ops".into()));
        attribute.index = Some(0);
        round_trip(&Request {
            unique_identifier: None,
            attribute: attribute.clone(),
            extra: vec![],
        });
        round_trip(&Response {
            unique_identifier: "k1".into(),
            attribute,
            extra: vec![],
        });
    }
}
