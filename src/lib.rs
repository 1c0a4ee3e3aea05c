//! keyward: a KMIP key server for VMware vSphere, with its root key in an HSM.
//!
//! Layers (ARCHITECTURE.md, checked by `tests/house/architecture.rs`) — a module imports
//! only from layers below its own:
//! 0a `secret`, `limits`, `clock`, `workers`, `password`, `system`; 0b `ttlv`, `metrics`;
//! 1 `kmip`, `hsm`, `store`, `audit`, `pki`; 2 `config`; 3 `auth`; 4 `keys`; 5 `ops`;
//! 6 `net`; 7 `service`; 8 `cli` (never `net`); 9 `src/bin/`, `src/main.rs`.
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
pub mod service;
pub mod store;
pub mod system;
pub mod ttlv;
pub mod workers;
