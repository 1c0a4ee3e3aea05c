//! Input and output shared by subcommands: a file or stdin in, stdout out.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use super::error::{CliError, CliResult};

/// Reads all of `path`, or stdin when it is `None` or `-`.
pub(crate) fn read_input(path: Option<&Path>) -> CliResult<Vec<u8>> {
    match path {
        Some(p) if p != Path::new("-") => {
            std::fs::read(p).map_err(|e| CliError::from(e).context(p.display()))
        }
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .map_err(|e| CliError::from(e).context("reading stdin"))?;
            Ok(buf)
        }
    }
}

/// Like [`read_input`], as UTF-8 text.
pub(crate) fn read_text(path: Option<&Path>) -> CliResult<String> {
    String::from_utf8(read_input(path)?).map_err(|e| {
        CliError::new(format!(
            "input is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Writes `bytes` to stdout. A reader that went away (`| head`) is not an error.
pub(crate) fn write_output(bytes: &[u8]) -> CliResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(CliError::from(e).context("writing stdout")),
        _ => Ok(()),
    }
}
