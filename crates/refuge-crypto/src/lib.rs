#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! Cryptography for refuge: keys, envelope encryption, blind indexes and the event hash chain.
//!
//! The people whose data this protects face prison if identified (see `DESIGN.md`,
//! principles 1 and 2), so this crate is small, has no `unsafe`, never panics on input, and
//! never prints a secret:
//!
//! - **Keys.** An [`InstanceKey`] (from a `0600` key file or an Argon2id passphrase) wraps a
//!   per-person [`DataKey`] and the [`IndexKey`] with XChaCha20-Poly1305, bound to an owner.
//!   Erasing a person means destroying their wrapped data key.
//! - **Fields.** [`seal`] / [`open`] encrypt one field under a data key, bound by [`Aad`] to its
//!   table, field and record.
//! - **Lookups.** [`blind_index`] allows exact-match search without storing the value.
//! - **Audit.** [`chain_link`] hash-chains events so any edit or deletion is detectable.
//! - **Randomness** is injected through [`Entropy`]: [`OsEntropy`] in production,
//!   [`SeededEntropy`] in tests.
//!
//! Every key and secret type is wiped from memory on drop, prints `[redacted]` under `Debug`,
//! and has no `Display`. Error messages carry no key material and no plaintext.

mod chain;
mod entropy;
mod envelope;
mod error;
mod export;
mod hex;
mod index;
#[cfg(test)]
mod kat;
mod keys;
mod mac;
mod password;
mod secret;

pub use chain::{ChainHash, chain_link};
pub use entropy::{Entropy, OsEntropy, OsSeededEntropy, SeededEntropy};
pub use envelope::{Aad, SEAL_OVERHEAD, open, seal};
pub use error::{CryptoError, Result};
pub use export::{
    EXPORT_MAGIC, MIN_EXPORT_PASSPHRASE_CHARS, export_passphrase_problem, is_export, open_export,
    seal_export,
};
pub use hex::hex_encode;
pub use index::{blind_index, normalise_document_number, normalise_for_index};
pub use keys::{DataKey, IndexKey, InstanceKey, KdfParams, generate_salt};
pub use mac::sha256;
pub use password::{PASSWORD_PARAMS, hash_password, verify_nothing, verify_password};
pub use secret::SecretString;
pub use zeroize::Zeroizing;
