//! Clients written elsewhere against the running server: PyKMIP's client and the
//! OASIS KMIP XML test cases replayed.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

#[path = "../common/mod.rs"]
mod common;

mod interop_pykmip;
mod oasis_replay;
mod pykmip_suite;
