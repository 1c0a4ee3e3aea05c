//! What this server supports and says about itself (Discover Versions, Query).

use crate::kmip::message::ProtocolVersion;
use crate::kmip::{ObjectType, Operation};

/// The protocol versions this server speaks, most preferred first.
pub const SUPPORTED_VERSIONS: [ProtocolVersion; 7] = [
    ProtocolVersion::V2_1,
    ProtocolVersion::V2_0,
    ProtocolVersion::V1_4,
    ProtocolVersion::V1_3,
    ProtocolVersion::V1_2,
    ProtocolVersion::V1_1,
    ProtocolVersion::V1_0,
];

/// The operations the dispatch implements (Query reports these).
pub const SUPPORTED_OPERATIONS: [Operation; 25] = [
    Operation::CREATE,
    Operation::CREATE_KEY_PAIR,
    Operation::REGISTER,
    Operation::RE_KEY,
    Operation::LOCATE,
    Operation::CHECK,
    Operation::GET,
    Operation::GET_ATTRIBUTES,
    Operation::GET_ATTRIBUTE_LIST,
    Operation::ADD_ATTRIBUTE,
    Operation::MODIFY_ATTRIBUTE,
    Operation::DELETE_ATTRIBUTE,
    Operation::ACTIVATE,
    Operation::REVOKE,
    Operation::DESTROY,
    Operation::ENCRYPT,
    Operation::DECRYPT,
    Operation::MAC,
    Operation::MAC_VERIFY,
    Operation::SIGN,
    Operation::SIGNATURE_VERIFY,
    Operation::QUERY,
    Operation::DISCOVER_VERSIONS,
    Operation::LOG,
    Operation::INTEROP,
];

/// Object types Create, Register and Get handle.
pub(super) const SUPPORTED_OBJECT_TYPES: [ObjectType; 6] = [
    ObjectType::SYMMETRIC_KEY,
    ObjectType::PUBLIC_KEY,
    ObjectType::PRIVATE_KEY,
    ObjectType::CERTIFICATE,
    ObjectType::SECRET_DATA,
    ObjectType::OPAQUE_OBJECT,
];

/// What the Query operation says about this server.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub vendor_identification: String,
    pub server_information: String,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            vendor_identification: "keyward".to_owned(),
            server_information: format!("keyward {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
