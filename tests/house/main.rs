//! House rules that hold themselves: the layer table, the systemd unit and the
//! appliance's OVA packaging.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

mod architecture;
mod ova;
mod systemd_unit;
