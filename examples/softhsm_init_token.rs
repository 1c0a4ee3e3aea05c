//! Initialize a PKCS#11 token with PINs read from files (used by
//! `softhsm/init-token`). PINs never appear on a command line.
//!
//! Usage: `softhsm_init_token <dir-with-so.pin-and-user.pin> <label>`, with the
//! module from `$KEYWARD_SOFTHSM_MODULE` or the usual SoftHSM2 paths and, for
//! SoftHSM, `$SOFTHSM2_CONF` naming the configuration to use.

use std::path::PathBuf;
use std::process::ExitCode;

use keyward::hsm::{provision, read_pin_file, softhsm};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, label] = args.as_slice() else {
        eprintln!("usage: softhsm_init_token <dir> <label>");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let Some(module) = softhsm::find_module() else {
        eprintln!("SoftHSM2 module not found (set KEYWARD_SOFTHSM_MODULE)");
        return ExitCode::FAILURE;
    };
    let pins =
        read_pin_file(&dir.join("so.pin")).and_then(|so| Ok((so, read_pin_file(&dir.join("user.pin"))?)));
    let result = pins.and_then(|(so, user)| provision::init_token(&module, label, &so, &user));
    match result {
        Ok(token) => {
            println!(
                "initialized token {label:?} (serial {}, slot {}) with {}",
                token.serial,
                token.slot_id,
                module.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot initialize token {label:?}: {e}");
            ExitCode::FAILURE
        }
    }
}
