//! House rules that hold themselves: the layer table and the systemd unit.
//!
//! One test binary per topic (each module was its own binary before): a test run
//! links once per topic.

mod architecture;
mod systemd_unit;
