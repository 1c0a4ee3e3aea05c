//! `keyward root`: the root key's lifecycle — rotate to a new CRK and re-seal
//! every key under it while the server keeps serving, retire an old CRK once
//! no record needs it, and show which CRK how many records are sealed under.
//!
//! The rules that make a rotation safe to kill at any point are in
//! [`crate::keys::rotate`].

mod retire;
mod rotate;
mod status;

use super::{CliResult, RunCommand};

#[derive(Debug, clap::Subcommand)]
pub enum RootCommand {
    /// Create the next root key and re-seal every key under it (resumes an unfinished rotation).
    Rotate(rotate::RotateArgs),
    /// Destroy an old root key in the HSM once no record is sealed under it.
    Retire(retire::RetireArgs),
    /// Root keys in the HSM and how many records each one seals.
    Status(status::StatusArgs),
}

impl RunCommand for RootCommand {
    fn run(self) -> CliResult {
        match self {
            RootCommand::Rotate(a) => rotate::run(&a),
            RootCommand::Retire(a) => retire::run(&a),
            RootCommand::Status(a) => status::run(&a),
        }
    }
}
