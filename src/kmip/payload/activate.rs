//! Activate (KMIP 1.4 §4.19): Pre-Active → Active.

super::id_only_payloads!(crate::kmip::Operation::ACTIVATE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn round_trips() {
        round_trip(&Request::default());
        round_trip(&Request {
            unique_identifier: Some("k1".into()),
            extra: vec![],
        });
        round_trip(&Response {
            unique_identifier: "k1".into(),
            extra: vec![],
        });
    }
}
