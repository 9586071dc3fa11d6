//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `refuge-crypto`.
///
/// Messages never contain key material or plaintext: at most a file path, a file mode, a
/// version number or a fixed description.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authenticated decryption failed: wrong key, wrong associated data (table, field,
    /// record, owner) or tampered bytes. Deliberately carries no detail.
    #[error("decryption failed: wrong key, wrong context or tampered data")]
    Decrypt,
    /// A key does not match a stored check value (see [`crate::InstanceKey::check_value`]).
    #[error("wrong key: the key does not match the stored check value")]
    WrongKey,
    /// The key file could not be read or written.
    #[error("key file {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is accessible to the group or to others.
    #[error(
        "key file {} has mode {mode:04o}: it must not be accessible to group or others (chmod 600)",
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a single `refuge-instance-key-v1:<64 hex>` line.
    #[error(
        "key file {} is malformed: expected one line `refuge-instance-key-v1:<64 hex characters>`",
        path.display()
    )]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
    },
    /// Refused to overwrite an existing key file.
    #[error("key file {} already exists: refusing to overwrite it", path.display())]
    KeyFileExists {
        /// The key file.
        path: PathBuf,
    },
    /// Passphrase key derivation failed or its parameters are invalid.
    #[error("key derivation: {0}")]
    Kdf(String),
    /// The entropy source failed.
    #[error("entropy source failed: {0}")]
    Entropy(String),
    /// A sealed or wrapped value carries a format version this build does not know.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Input bytes or text do not have the expected shape.
    #[error("malformed input: {0}")]
    Malformed(&'static str),
}

/// Result alias for this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
