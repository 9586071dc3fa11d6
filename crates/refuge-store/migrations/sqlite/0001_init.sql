-- refuge schema v1 (SQLite). Plaintext columns hold only operational metadata: ids, kinds,
-- states, programme and organisation ids, versions and timestamps (microseconds since the
-- Unix epoch). Everything about a person is in *_ct columns, sealed with XChaCha20-Poly1305.

CREATE TABLE instance_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE organisations (
    id         BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL REFERENCES organisations(id),
    login_bidx      BLOB NOT NULL UNIQUE,
    wrapped_key     BLOB,
    login_ct        BLOB NOT NULL,
    display_ct      BLOB NOT NULL,
    roles           TEXT NOT NULL,
    disabled        INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX users_org ON users(organisation_id);

CREATE TABLE persons (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    wrapped_key     BLOB,
    key_id          BLOB NOT NULL,
    pseudonym_ct    BLOB,
    identity_ct     BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    erased_at       INTEGER,
    -- the person's blind indexes (16 bytes each), copied into person_lookup in sorted bulk by
    -- the background indexer while lookup_pending = 1; see docs/design/store.md
    lookup          BLOB,
    lookup_pending  INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX persons_lookup_pending ON persons(id) WHERE lookup_pending = 1;

CREATE TABLE person_lookup (
    organisation_id BLOB NOT NULL,
    bidx            BLOB NOT NULL,
    person_id       BLOB NOT NULL,
    PRIMARY KEY (bidx, person_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE cases (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    person_id       BLOB NOT NULL,
    reference       TEXT NOT NULL UNIQUE,
    facts_ct        BLOB NOT NULL,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX cases_org ON cases(organisation_id, id);

CREATE TABLE applications (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    case_id         BLOB NOT NULL,
    programme       TEXT NOT NULL,
    state           TEXT NOT NULL,
    version         INTEGER NOT NULL,
    decision_basis  TEXT,
    decision_ct     BLOB,
    decided_by      TEXT,
    decided_at      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX applications_case ON applications(case_id);
CREATE INDEX applications_queue ON applications(organisation_id, programme, state);

-- A rowid table, so that large rows stay in their page instead of spilling into overflow pages;
-- (organisation_id, seq) is still unique and appended in order.
CREATE TABLE events (
    organisation_id BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    id              BLOB NOT NULL,
    at              INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         BLOB NOT NULL,
    person_id       BLOB,
    meta            TEXT NOT NULL,
    body_ct         BLOB,
    prev_hash       BLOB NOT NULL,
    hash            BLOB NOT NULL,
    PRIMARY KEY (organisation_id, seq)
) STRICT;
CREATE INDEX events_subject ON events(subject);

CREATE TABLE chain_heads (
    organisation_id BLOB PRIMARY KEY,
    seq             INTEGER NOT NULL,
    hash            BLOB NOT NULL
) STRICT;
