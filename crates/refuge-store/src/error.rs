//! Store errors. Messages name the record, field or state at fault and never contain
//! personal data.

use refuge_core::application::TransitionError;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or is not visible from the caller's organisation).
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of record.
        what: &'static str,
        /// Its id or reference as given.
        id: String,
    },
    /// An optimistic-concurrency conflict: someone else changed the record first.
    #[error(
        "{what} {id} was changed by someone else: expected version {expected}, it is now at version {actual}; reload and try again"
    )]
    Conflict {
        /// The kind of record.
        what: &'static str,
        /// Its id.
        id: String,
        /// The version the caller based its change on.
        expected: u64,
        /// The current version.
        actual: u64,
    },
    /// The record has already reached the state the change would take it to, or a final one
    /// (a deadline already done, a referral already answered, a token already revoked).
    #[error("{what} {id} is already {state}")]
    AlreadyDone {
        /// The kind of record.
        what: &'static str,
        /// Its id.
        id: String,
        /// The state it is in.
        state: &'static str,
    },
    /// An illegal move in the application state machine.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A record was created twice (e.g. a login name already taken).
    #[error("{0} already exists")]
    Duplicate(&'static str),
    /// The input was invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What was expected.
        message: String,
    },
    /// The database has not been initialised with `refuge init`.
    #[error("this database has not been initialised: run `refuge init` first")]
    NotInitialised,
    /// `refuge init` was run on an initialised database.
    #[error("this database is already initialised")]
    AlreadyInitialised,
    /// The instance key does not match the one the database was created with.
    #[error("the instance key does not match this database (wrong key file or passphrase)")]
    WrongKey,
    /// A record could not be decrypted although the key is right: it was altered or moved.
    #[error("{what} {id} could not be decrypted: the stored record was altered or moved")]
    Corrupt {
        /// The kind of record.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The caller may not do this, whatever the record (an export decided by its own
    /// requester, collected by someone else).
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    /// A person's data key was destroyed: their data is gone.
    #[error("person {0} has been erased")]
    Erased(String),
    /// A cryptographic failure (key files, entropy).
    #[error(transparent)]
    Crypto(#[from] refuge_crypto::CryptoError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// The database URL is not one we can use.
    #[error("unsupported database URL (expected sqlite://PATH or postgres://…): {0}")]
    UnsupportedUrl(String),
    /// The store is shutting down.
    #[error("the store is shutting down")]
    Closed,
    /// A backup file is malformed or does not match.
    #[error("backup {0}")]
    Backup(String),
}

impl StoreError {
    /// Whether this error is the caller's fault (bad input, unknown record, conflict,
    /// illegal transition) rather than a failure of the system. The CLI exits 2 for these.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::Conflict { .. }
                | StoreError::AlreadyDone { .. }
                | StoreError::Transition(_)
                | StoreError::Duplicate(_)
                | StoreError::Invalid { .. }
                | StoreError::NotInitialised
                | StoreError::AlreadyInitialised
                | StoreError::WrongKey
                | StoreError::UnsupportedUrl(_)
                | StoreError::Backup(_)
                | StoreError::Erased(_)
                | StoreError::NotAllowed(_)
        )
    }

    /// A stable machine-readable code for the API and `--format json`.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::AlreadyDone { .. } => "already_done",
            StoreError::Transition(_) => "illegal_transition",
            StoreError::Duplicate(_) => "duplicate",
            StoreError::Invalid { .. } => "invalid",
            StoreError::NotInitialised => "not_initialised",
            StoreError::AlreadyInitialised => "already_initialised",
            StoreError::WrongKey => "wrong_key",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Erased(_) => "erased",
            StoreError::NotAllowed(_) => "not_allowed",
            StoreError::Crypto(_) => "crypto",
            StoreError::Database(_) => "database",
            StoreError::UnsupportedUrl(_) => "unsupported_url",
            StoreError::Closed => "closed",
            StoreError::Backup(_) => "backup",
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Database(format!("unique constraint violated: {}", db.message()));
        }
        StoreError::Database(e.to_string())
    }
}

/// The error for a stored value that does not parse (a damaged or foreign database).
pub(crate) fn bad_column(field: &'static str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!(
        "stored {field} has an unexpected value \"{value}\""
    ))
}

/// Shorthand for results in this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
