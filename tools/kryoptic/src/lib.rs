// Empty: this package only pins Kryoptic's source (see Cargo.toml).
