use super::*;
use crate::kmip::{CryptographicAlgorithm, RevocationReasonCode};

fn name_value(v: &str) -> Value {
    Value::Structure(vec![
        Item::new(tags::NAME_VALUE, Value::TextString(v.into())),
        Item::new(
            tags::NAME_TYPE,
            Value::Enumeration(NameType::UNINTERPRETED_TEXT_STRING.0),
        ),
    ])
}

#[test]
fn attribute_round_trips_and_collapses_names() {
    let a = Attribute {
        name: "Name".into(),
        index: Some(2),
        value: Item::new(tags::ATTRIBUTE_VALUE, name_value("k")),
    };
    assert_eq!(Attribute::from_item(&a.to_item()).unwrap(), a);
    let padded = Attribute::new("Cryptographic   Length", Value::Integer(128)).to_item();
    assert_eq!(
        Attribute::from_item(&padded).unwrap().name,
        attr::CRYPTOGRAPHIC_LENGTH
    );
    let neg = Attribute { index: Some(-1), ..a }.to_item();
    assert!(matches!(
        Attribute::from_item(&neg),
        Err(MessageError::InvalidValue { .. })
    ));
    let no_value = Item::structure(
        tags::ATTRIBUTE,
        vec![Item::new(tags::ATTRIBUTE_NAME, Value::TextString("x".into()))],
    );
    assert!(matches!(
        Attribute::from_item(&no_value),
        Err(MessageError::Missing { .. })
    ));
}

#[test]
fn values_are_checked_against_the_table() {
    let ok = [
        Attribute::new(
            attr::CRYPTOGRAPHIC_ALGORITHM,
            Value::Enumeration(CryptographicAlgorithm::AES.0),
        ),
        Attribute::new(attr::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12)),
        Attribute::new(attr::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
        Attribute::new(attr::NAME, name_value("key")),
        Attribute::new(attr::OBJECT_GROUP, Value::TextString("g".into())),
        Attribute::new(attr::ACTIVATION_DATE, Value::DateTime(0)),
        Attribute::new("x-Product", Value::TextString("VMware vSphere".into())),
        Attribute::new("x-Anything", Value::Integer(1)),
        Attribute::new("y-Server", Value::Boolean(true)),
        Attribute::new(
            attr::REVOCATION_REASON,
            RevocationReason {
                code: RevocationReasonCode::UNSPECIFIED,
                message: None,
            }
            .to_value(tags::ATTRIBUTE_VALUE)
            .value,
        ),
    ];
    for a in &ok {
        validate_value(a).unwrap_or_else(|e| panic!("{}: {e}", a.name));
    }
    let bad = [
        Attribute::new(attr::CRYPTOGRAPHIC_USAGE_MASK, Value::Enumeration(12)),
        Attribute::new(attr::CRYPTOGRAPHIC_LENGTH, Value::Integer(0)),
        Attribute::new(attr::NAME, Value::TextString("key".into())),
        Attribute::new(
            attr::NAME,
            Value::Structure(vec![Item::new(tags::NAME_VALUE, Value::TextString("k".into()))]),
        ),
        Attribute::new(attr::STATE, Value::Integer(1)),
        Attribute::new("Bogus", Value::Integer(1)),
    ];
    for a in &bad {
        let e = validate_value(a).unwrap_err();
        assert_eq!(
            e.result_reason(),
            crate::kmip::ResultReason::INVALID_FIELD,
            "{}",
            a.name
        );
    }
}

#[test]
fn client_rules() {
    for n in [
        attr::UNIQUE_IDENTIFIER,
        attr::OBJECT_TYPE,
        attr::STATE,
        attr::INITIAL_DATE,
        attr::LAST_CHANGE_DATE,
        "y-x",
    ] {
        assert!(!client_may_set(n), "{n}");
        assert!(!client_may_modify(n), "{n}");
        assert!(!client_may_delete(n), "{n}");
    }
    for n in [
        attr::NAME,
        attr::OBJECT_GROUP,
        attr::CONTACT_INFORMATION,
        "x-Vendor",
    ] {
        assert!(
            client_may_set(n) && client_may_modify(n) && client_may_delete(n),
            "{n}"
        );
    }
    assert!(client_may_set(attr::CRYPTOGRAPHIC_USAGE_MASK));
    assert!(!client_may_modify(attr::CRYPTOGRAPHIC_USAGE_MASK));
    assert!(is_multi_instance(attr::NAME) && is_multi_instance("x-a") && !is_multi_instance(attr::STATE));
    assert_eq!(
        standard("Cryptographic  Algorithm").map(|s| s.name),
        Some(attr::CRYPTOGRAPHIC_ALGORITHM)
    );
    // Every standard name is the name of the tag of its value.
    for s in STANDARD_ATTRIBUTES {
        assert!(crate::kmip::enums::attribute_tag(s.name).is_some(), "{}", s.name);
    }
}

#[test]
fn typed_views() {
    let n = Name {
        value: "k".into(),
        name_type: NameType::URI,
    };
    assert_eq!(Name::from_value(&n.to_value(tags::ATTRIBUTE_VALUE)).unwrap(), n);
    let l = Link {
        link_type: LinkType::REPLACEMENT_OBJECT_LINK,
        linked_object_identifier: "k2".into(),
    };
    assert_eq!(Link::from_value(&l.to_value(tags::ATTRIBUTE_VALUE)).unwrap(), l);
    let r = RevocationReason {
        code: RevocationReasonCode::KEY_COMPROMISE,
        message: Some("m".into()),
    };
    assert_eq!(
        RevocationReason::from_value(&r.to_value(tags::REVOCATION_REASON)).unwrap(),
        r
    );
    let t = TemplateAttribute {
        names: vec![n.to_value(tags::NAME)],
        attributes: vec![Attribute::new("x-a", Value::TextString("b".into()))],
    };
    for tag in [
        tags::TEMPLATE_ATTRIBUTE,
        tags::COMMON_TEMPLATE_ATTRIBUTE,
        tags::PRIVATE_KEY_TEMPLATE_ATTRIBUTE,
    ] {
        assert_eq!(TemplateAttribute::from_item(&t.to_item(tag), tag).unwrap(), t);
    }
}
