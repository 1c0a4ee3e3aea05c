//! `keyward ttlv`: read TTLV captures, write KMIP JSON or XML back as TTLV.

mod decode;
mod encode;
mod hex;

use super::{CliResult, RunCommand};

#[derive(Debug, clap::Subcommand)]
pub enum TtlvCommand {
    /// Print binary TTLV (hex or raw; one message or several in a row) as
    /// KMIP JSON, KMIP XML or an indented tree. Key material is redacted
    /// unless --reveal is given.
    Decode(decode::DecodeArgs),
    /// Turn KMIP JSON or XML (one message, or several: a JSON array or a
    /// <KMIP> document) into TTLV, hex or raw.
    Encode(encode::EncodeArgs),
}

impl RunCommand for TtlvCommand {
    fn run(self) -> CliResult {
        match self {
            TtlvCommand::Decode(a) => a.run(),
            TtlvCommand::Encode(a) => a.run(),
        }
    }
}
