//! Network layer: TLS configuration (and, later, the listener).

pub mod tls;
