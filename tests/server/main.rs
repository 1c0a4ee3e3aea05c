//! The running server over real mutual TLS on 127.0.0.1: vCenter's flow, refusals,
//! bad input, durability, groups, passwords, trust changes, HSM outage, metrics,
//! and the attacks of a hostile client (`attack_*`).
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

#[path = "../common/mod.rs"]
mod common;

mod attack_net_ca_names;
mod attack_net_handshake;
mod attack_net_password_queue;
mod attack_net_read_buffers;
mod attack_ops_batch;
mod attack_ops_locate;
mod attack_ops_names;
mod client_password;
mod crash_cycles;
mod groups;
mod hsm_outage;
mod kmip_2x;
mod listener_stats;
mod metrics_health;
mod server_asymmetric;
mod server_bad_input;
mod server_crypto;
mod server_durability;
mod server_refusals;
mod tls_trust;
mod trust_live_connections;
mod vcenter_flow;
