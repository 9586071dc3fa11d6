-- refuge schema v1 (PostgreSQL). Same shape as the SQLite schema. Every table carries
-- organisation_id so that it can be distributed by organisation (Citus) without
-- cross-organisation joins on hot paths.

CREATE TABLE instance_meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE organisations (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL REFERENCES organisations(id),
    login_bidx      BYTEA NOT NULL UNIQUE,
    wrapped_key     BYTEA,
    login_ct        BYTEA NOT NULL,
    display_ct      BYTEA NOT NULL,
    roles           TEXT NOT NULL,
    disabled        BIGINT NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX users_org ON users(organisation_id);

CREATE TABLE persons (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    wrapped_key     BYTEA,
    key_id          BYTEA NOT NULL,
    pseudonym_ct    BYTEA,
    identity_ct     BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    erased_at       BIGINT,
    lookup          BYTEA,
    lookup_pending  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX persons_lookup_pending ON persons(id) WHERE lookup_pending = 1;

CREATE TABLE person_lookup (
    organisation_id UUID NOT NULL,
    bidx            BYTEA NOT NULL,
    person_id       UUID NOT NULL,
    PRIMARY KEY (bidx, person_id)
);

CREATE TABLE cases (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    person_id       UUID NOT NULL,
    reference       TEXT NOT NULL UNIQUE,
    facts_ct        BYTEA NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX cases_org ON cases(organisation_id, id);

CREATE TABLE applications (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    case_id         UUID NOT NULL,
    programme       TEXT NOT NULL,
    state           TEXT NOT NULL,
    version         BIGINT NOT NULL,
    decision_basis  TEXT,
    decision_ct     BYTEA,
    decided_by      TEXT,
    decided_at      BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX applications_case ON applications(case_id);
CREATE INDEX applications_queue ON applications(organisation_id, programme, state);

CREATE TABLE events (
    organisation_id UUID NOT NULL,
    seq             BIGINT NOT NULL,
    id              UUID NOT NULL,
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         UUID NOT NULL,
    person_id       UUID,
    meta            TEXT NOT NULL,
    body_ct         BYTEA,
    prev_hash       BYTEA NOT NULL,
    hash            BYTEA NOT NULL,
    PRIMARY KEY (organisation_id, seq)
);
CREATE INDEX events_subject ON events(subject);

CREATE TABLE chain_heads (
    organisation_id UUID PRIMARY KEY,
    seq             BIGINT NOT NULL,
    hash            BYTEA NOT NULL
);
