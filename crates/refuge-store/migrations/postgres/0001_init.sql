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
    created_at      BIGINT NOT NULL,
    password_ct     BYTEA,
    totp_ct         BYTEA
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
CREATE INDEX applications_queue ON applications(organisation_id, programme, state, id);
CREATE INDEX applications_state ON applications(organisation_id, state, id);

-- How many applications each organisation has per programme and state, kept by triggers in the
-- same transaction as the change, so the queue's totals are exact without counting 100,000
-- rows per page view. Derived: not in backups; a restore rebuilds it through the triggers.
CREATE TABLE queue_counts (
    organisation_id UUID NOT NULL,
    programme       TEXT NOT NULL,
    state           TEXT NOT NULL,
    n               BIGINT NOT NULL,
    PRIMARY KEY (organisation_id, programme, state)
);
CREATE FUNCTION queue_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE queue_counts SET n = n - 1
            WHERE organisation_id = OLD.organisation_id AND programme = OLD.programme AND state = OLD.state;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO queue_counts (organisation_id, programme, state, n)
            VALUES (NEW.organisation_id, NEW.programme, NEW.state, 1)
            ON CONFLICT (organisation_id, programme, state) DO UPDATE SET n = queue_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER queue_counts_insert_delete AFTER INSERT OR DELETE ON applications
    FOR EACH ROW EXECUTE FUNCTION queue_counts_track();
CREATE TRIGGER queue_counts_update AFTER UPDATE OF organisation_id, programme, state ON applications
    FOR EACH ROW WHEN (OLD.organisation_id IS DISTINCT FROM NEW.organisation_id
                       OR OLD.programme IS DISTINCT FROM NEW.programme
                       OR OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION queue_counts_track();

CREATE TABLE applicant_access (
    codename_bidx   BYTEA PRIMARY KEY,
    case_id         UUID NOT NULL,
    organisation_id UUID NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE evidence (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    case_id         UUID NOT NULL,
    meta_ct         BYTEA NOT NULL,
    content_ct      BYTEA NOT NULL,
    size            BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX evidence_case ON evidence(case_id, id);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    case_id         UUID NOT NULL,
    kind            TEXT NOT NULL,
    author          TEXT NOT NULL,
    body_ct         BYTEA NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX messages_case ON messages(case_id, id);

CREATE TABLE deadlines (
    id              UUID PRIMARY KEY,
    organisation_id UUID NOT NULL,
    case_id         UUID NOT NULL,
    kind            TEXT NOT NULL,
    due_on          TEXT NOT NULL,
    note_ct         BYTEA,
    done_at         BIGINT,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX deadlines_case ON deadlines(case_id);
CREATE INDEX deadlines_due ON deadlines(organisation_id, due_on);

CREATE TABLE referrals (
    id              UUID PRIMARY KEY,
    case_id         UUID NOT NULL,
    from_org        UUID NOT NULL,
    to_org          UUID NOT NULL,
    state           TEXT NOT NULL,
    consent_ct      BYTEA NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    answered_at     BIGINT
);
CREATE UNIQUE INDEX referrals_open ON referrals(case_id, to_org) WHERE state <> 'declined';
CREATE INDEX referrals_case ON referrals(case_id);
CREATE INDEX referrals_to ON referrals(to_org, state, case_id);
CREATE INDEX referrals_from ON referrals(from_org);

CREATE TABLE api_tokens (
    token_hash      BYTEA PRIMARY KEY,
    user_id         UUID NOT NULL,
    organisation_id UUID NOT NULL,
    label_ct        BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

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
