//! The `keyward` binary: parse the command line, run, and turn a failure into
//! one line on stderr and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{Cli, RunCommand};

/// mimalloc for Rust's own allocations: a Get allocates a few dozen small objects
/// (decoded TTLV, attributes, the answer), and glibc's malloc spent a fifth of the
/// server's CPU on them at 64 connections (bench/NOTES.md). The C libraries (SoftHSM,
/// SQLite, aws-lc) keep glibc's malloc. Secrets are wiped by their own types
/// (`SecretBytes`, `Zeroizing`), whatever the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
