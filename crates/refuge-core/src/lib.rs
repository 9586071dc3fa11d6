//! The refuge domain vocabulary.
//!
//! Facts (what rules may speak about), persons (identity, which rules never see), cases,
//! applications and their state machine, decisions, deadlines, evidence, messages, referrals,
//! organisations, users and events.
//! This crate is pure: no I/O, no async, no SQL, no HTTP. Time comes in through [`clock::Clock`].
//!
//! Every type here follows "parse, don't validate": a value that exists is valid.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod application;
pub mod case;
pub mod casework;
pub mod clock;
pub mod country;
pub mod event;
pub mod facts;
pub mod ids;
pub mod language;
pub mod org;
pub mod person;
pub mod suggest;
pub mod text;
