//! Tables generated from the KMIP specification by `tools/gen_kmip_tables.py`.
//! Regenerate rather than edit.

pub(crate) mod enums;
pub mod tags;
