//! The `keyward` binary: parse the command line, run, and turn a failure into
//! one line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{Cli, RunCommand};

fn main() -> ExitCode {
    match Cli::parse().command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error carries.
            let line = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("keyward: error: {line}");
            ExitCode::FAILURE
        }
    }
}
