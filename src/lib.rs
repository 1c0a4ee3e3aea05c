//! keyward: a KMIP key server for VMware vSphere, with its root key in an HSM.
//!
//! Layers (DESIGN.md §3) — a module imports only from layers below it:
//! 0 `ttlv`, `secret`, `limits`, `clock`, `workers`, `password`; 1 `kmip`, `hsm`, `store`, `config`, `pki`, `audit`;
//! 2 `auth`, `keys`; 3 `ops`; 4 `net`, `cli`.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod hsm;
pub mod keys;
pub mod kmip;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod password;
pub mod pki;
pub mod secret;
pub mod store;
pub mod system;
pub mod ttlv;
pub mod workers;
