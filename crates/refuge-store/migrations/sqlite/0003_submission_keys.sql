-- Idempotency keys of submissions: a blind index of (organisation, the client's key) naming the
-- case and application a submission created, written in the same transaction. A client that
-- sends the same key again (after a timeout or a 500) gets that case back instead of a second.
CREATE TABLE submission_keys (
    organisation_id BLOB NOT NULL,
    key_bidx        BLOB NOT NULL,
    case_id         BLOB NOT NULL,
    application_id  BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (organisation_id, key_bidx)
) STRICT, WITHOUT ROWID;
