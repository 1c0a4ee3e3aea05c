//! The administration commands against real environments: audit, backup and
//! restore, client trust, key inventory, root rotation.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

#[path = "../common/mod.rs"]
mod common;

mod audit_cli;
mod backup_manifest;
mod backup_restore;
mod cli_clients;
mod keys_inventory;
mod recovery;
mod root_rotation;
