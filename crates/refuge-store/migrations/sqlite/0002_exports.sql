-- Exports: cases asked for by one staff user, approved or refused by another person, collected
-- once by the requester as a file encrypted to a passphrase. case_ids holds the cases' 16-byte
-- ids one after another; the purpose is sealed with the requester's data key. decided_by is an
-- actor (`user:<uuid>` or `operator`).
CREATE TABLE exports (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    requested_by    BLOB NOT NULL,
    case_ids        BLOB NOT NULL,
    purpose_ct      BLOB NOT NULL,
    state           TEXT NOT NULL,
    decided_by      TEXT,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    decided_at      INTEGER,
    collected_at    INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX exports_org ON exports(organisation_id, id);
