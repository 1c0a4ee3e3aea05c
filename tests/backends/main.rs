//! The HSM and store backends: the store conformance suite, store durability and
//! SoftHSM through PKCS#11.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

mod store_conformance;
mod store_durability;
mod hsm_softhsm;
