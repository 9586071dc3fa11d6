//! The refuge programme language.
//!
//! Programmes (protection routes) are data: TOML files that cite their legal basis and source,
//! with rules written as expressions over the facts vocabulary of `refuge-core`. This crate
//! parses and type-checks them, decides and explains one case in three-valued logic, and
//! evaluates whole caseloads column by column.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod caseload;
pub mod columnar;
pub mod expr;
pub mod library;
pub mod programme;
pub mod simulate;
pub mod synth;
