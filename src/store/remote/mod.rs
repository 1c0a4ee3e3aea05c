//! What the remote store backends (OpenBao, Key Protect) share: the HTTP
//! client with its deadlines, faults and backoff, and secret files.

pub(super) mod http;
pub(super) mod secret_file;
