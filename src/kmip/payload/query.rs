//! Query (KMIP 1.4 §4.25). vCenter asks for server information when the KMS is
//! registered; a reply with Vendor Identification / Server Information will do.

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{AttestationType, ClientRegistrationMethod, ObjectType, Operation, QueryFunction, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub query_functions: Vec<QueryFunction>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::QUERY;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            query_functions: f.all(tags::QUERY_FUNCTION)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .all(tags::QUERY_FUNCTION, &self.query_functions)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub operations: Vec<Operation>,
    pub object_types: Vec<ObjectType>,
    pub vendor_identification: Option<String>,
    /// Server Information: its contents are vendor-defined.
    pub server_information: Option<Item>,
    pub application_namespaces: Vec<String>,
    /// KMIP 1.1.
    pub extension_information: Vec<Item>,
    /// KMIP 1.2.
    pub attestation_types: Vec<AttestationType>,
    /// KMIP 1.3.
    pub rng_parameters: Vec<Item>,
    /// KMIP 1.3.
    pub profile_information: Vec<Item>,
    /// KMIP 1.3.
    pub validation_information: Vec<Item>,
    /// KMIP 1.3.
    pub capability_information: Vec<Item>,
    /// KMIP 1.3.
    pub client_registration_methods: Vec<ClientRegistrationMethod>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::QUERY;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            operations: f.all(tags::OPERATION)?,
            object_types: f.all(tags::OBJECT_TYPE)?,
            vendor_identification: f.opt(tags::VENDOR_IDENTIFICATION)?,
            server_information: f.opt(tags::SERVER_INFORMATION)?,
            application_namespaces: f.all(tags::APPLICATION_NAMESPACE)?,
            extension_information: f.all(tags::EXTENSION_INFORMATION)?,
            attestation_types: f.all(tags::ATTESTATION_TYPE)?,
            rng_parameters: f.all(tags::RNG_PARAMETERS)?,
            profile_information: f.all(tags::PROFILE_INFORMATION)?,
            validation_information: f.all(tags::VALIDATION_INFORMATION)?,
            capability_information: f.all(tags::CAPABILITY_INFORMATION)?,
            client_registration_methods: f.all(tags::CLIENT_REGISTRATION_METHOD)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .all(tags::OPERATION, &self.operations)
            .all(tags::OBJECT_TYPE, &self.object_types)
            .opt(tags::VENDOR_IDENTIFICATION, &self.vendor_identification)
            .opt_item(&self.server_information)
            .all(tags::APPLICATION_NAMESPACE, &self.application_namespaces)
            .items(&self.extension_information)
            .all(tags::ATTESTATION_TYPE, &self.attestation_types)
            .items(&self.rng_parameters)
            .items(&self.profile_information)
            .items(&self.validation_information)
            .items(&self.capability_information)
            .all(
                tags::CLIENT_REGISTRATION_METHOD,
                &self.client_registration_methods,
            )
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn round_trips() {
        round_trip(&Request {
            query_functions: vec![
                QueryFunction::QUERY_OPERATIONS,
                QueryFunction::QUERY_SERVER_INFORMATION,
            ],
            extra: vec![],
        });
        round_trip(&Response {
            operations: vec![Operation::CREATE, Operation::GET],
            object_types: vec![ObjectType::SYMMETRIC_KEY],
            vendor_identification: Some("keyward".into()),
            server_information: Some(Item::structure(
                tags::SERVER_INFORMATION,
                vec![Item::new(
                    tags::VENDOR_IDENTIFICATION,
                    Value::TextString("v".into()),
                )],
            )),
            application_namespaces: vec!["ns".into()],
            attestation_types: vec![AttestationType(1)],
            client_registration_methods: vec![ClientRegistrationMethod(1)],
            ..Response::default()
        });
        round_trip(&Response::default());
    }
}
