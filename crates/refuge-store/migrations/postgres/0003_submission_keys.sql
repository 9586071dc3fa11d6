-- Idempotency keys of submissions (see the SQLite migration).
CREATE TABLE submission_keys (
    organisation_id UUID NOT NULL,
    key_bidx        BYTEA NOT NULL,
    case_id         UUID NOT NULL,
    application_id  UUID NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, key_bidx)
);
