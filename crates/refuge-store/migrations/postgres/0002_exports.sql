-- Exports: cases asked for by one staff user, approved or refused by another person, collected
-- once by the requester as a file encrypted to a passphrase (see the SQLite migration).
CREATE TABLE exports (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    requested_by    UUID NOT NULL,
    case_ids        BYTEA NOT NULL,
    purpose_ct      BYTEA NOT NULL,
    state           TEXT NOT NULL,
    decided_by      TEXT,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    decided_at      BIGINT,
    collected_at    BIGINT
);
CREATE INDEX exports_org ON exports(organisation_id, id);
