//! Network layer: TLS configuration and the KMIP listener, nothing else.
//! (`service` assembles them with the rest; the KMIP test client lives in
//! `tests/support/kmip_client.rs`.)

pub mod framing;
pub mod listener;
pub mod tls;

pub use framing::{FramingError, read_message};
pub use listener::{ConnectionInfo, Listener, ListenerSettings, ListenerStats, RequestHandler};
