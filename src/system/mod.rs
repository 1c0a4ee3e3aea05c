//! Process-level concerns (layer 0: imports no other keyward module): hardening the
//! process before it holds keys, telling systemd how the service is doing, choosing
//! where operational logs go, and reading small files with a size bound.
//!
//! `keyward serve` calls, in this order: [`logging::init`], [`harden::apply`] (it
//! refuses root and returns a report to log), then, once listener, HSM and store are up,
//! [`notify::ready`] and [`notify::spawn_watchdog`]; [`notify::status`] when something
//! worth showing in `systemctl status` changes; [`notify::stopping`] when draining.

pub mod files;
pub mod harden;
pub mod logging;
pub mod notify;

#[cfg(test)]
mod child;
