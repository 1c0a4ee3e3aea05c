//! Add Attribute (KMIP 1.4 §4.13). vCenter sends a batch of three of these
//! with `x-` text attributes after Activate.

super::one_attribute_payloads!(crate::kmip::Operation::ADD_ATTRIBUTE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn round_trips() {
        let attribute = Attribute::new("x-Vendor", Value::TextString("VMware vSphere".into()));
        round_trip(&Request {
            unique_identifier: Some("k1".into()),
            attribute: attribute.clone(),
            extra: vec![],
        });
        round_trip(&Request {
            unique_identifier: None,
            attribute: attribute.clone(),
            extra: vec![],
        });
        let mut indexed = attribute;
        indexed.index = Some(0);
        round_trip(&Response {
            unique_identifier: "k1".into(),
            attribute: indexed,
            extra: vec![],
        });
    }

    #[test]
    fn attribute_is_required() {
        let empty = Item::structure(tags::REQUEST_PAYLOAD, vec![]);
        assert!(matches!(
            Request::from_payload(&empty),
            Err(MessageError::Missing { .. })
        ));
    }
}
