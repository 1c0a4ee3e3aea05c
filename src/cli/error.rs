//! The one error type of the command-line tool: a message for a human.

use std::fmt;

/// What a subcommand failed with. Any `std::error::Error` converts into it with
/// `?`, keeping its message and the messages of its sources; `CliError::new`
/// gives one from text. Messages must hold no key material or PIN (DESIGN §5).
#[derive(Debug)]
pub struct CliError {
    message: String,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
        }
    }

    /// Puts `context` in front of the message: `reading capture.hex: ...`.
    pub fn context(self, context: impl fmt::Display) -> Self {
        CliError {
            message: format!("{context}: {}", self.message),
        }
    }
}

// Not `std::error::Error` itself, so that this blanket conversion is allowed.
impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        CliError { message }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What subcommands return.
pub type CliResult<T = ()> = Result<T, CliError>;
