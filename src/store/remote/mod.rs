//! What the remote store backends (OpenBao, Key Protect) share: the HTTP
//! client with its deadlines, faults and backoff, and secret files.

pub(super) mod http;
pub(super) mod record_json;
pub(super) mod secret_file;

/// The PEM bundle `store.ca_file` names, if set: the only CAs a remote
/// store's TLS trusts.
pub(super) fn read_ca_file(path: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, super::StoreError> {
    path.map(|path| {
        std::fs::read(path)
            .map_err(|e| super::StoreError::Other(format!("store.ca_file {}: {e}", path.display())))
    })
    .transpose()
}
