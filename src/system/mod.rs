//! Process-level concerns of the server (layer 4): hardening the process before it
//! holds keys, and telling systemd how the service is doing.
//!
//! `keyward serve` calls, in this order: [`harden::apply`] first thing in `main` (it
//! refuses root and returns a report to log), then, once listener, HSM and store are up,
//! [`notify::ready`] and [`notify::spawn_watchdog`]; [`notify::status`] when something
//! worth showing in `systemctl status` changes; [`notify::stopping`] when draining.

pub mod harden;
pub mod notify;

#[cfg(test)]
mod child;
