//! Network layer: TLS configuration and the KMIP listener.

pub mod client;
pub mod listener;
pub mod server;
pub mod tls;

pub use listener::{ConnectionInfo, Listener, ListenerSettings, ListenerStats, RequestHandler};
