//! The protocol core against real data: TTLV properties, the OASIS KMIP test cases
//! round-tripped through XML, JSON, TTLV and the typed message model, and the
//! `keyward ttlv` command.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

#[path = "../common/mod.rs"]
mod common;

mod cli_ttlv;
mod kmip_messages_oasis;
mod oasis_roundtrip;
mod ttlv_props;
