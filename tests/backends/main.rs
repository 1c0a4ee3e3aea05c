//! The HSM and store backends: the store conformance suite, store durability,
//! SoftHSM through PKCS#11, and the OpenBao / Vault KV v2 store against the real
//! `bao` server, and the AWS Secrets Manager store against moto's server.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

#[path = "../common/mod.rs"]
mod common;

mod hsm_module;
mod store_cli;
mod store_conformance;
mod store_durability;
mod store_keyprotect;
mod store_openbao;
mod store_secretsmanager;
