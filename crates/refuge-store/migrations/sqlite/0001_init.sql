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
    created_at      INTEGER NOT NULL,
    -- the Argon2id PHC string and the TOTP secret, sealed with the user's data key
    password_ct     BLOB,
    totp_ct         BLOB
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
-- The queue: one index range per state, in id (creation) order, with and without a programme.
CREATE INDEX applications_queue ON applications(organisation_id, programme, state, id);
CREATE INDEX applications_state ON applications(organisation_id, state, id);

-- How many applications each organisation has per programme and state, kept by triggers in the
-- same transaction as the change, so the queue's totals are exact without counting 100,000
-- rows per page view. Derived: not in backups; a restore rebuilds it through the triggers.
CREATE TABLE queue_counts (
    organisation_id BLOB NOT NULL,
    programme       TEXT NOT NULL,
    state           TEXT NOT NULL,
    n               INTEGER NOT NULL,
    PRIMARY KEY (organisation_id, programme, state)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER queue_counts_insert AFTER INSERT ON applications BEGIN
    INSERT INTO queue_counts (organisation_id, programme, state, n)
        VALUES (NEW.organisation_id, NEW.programme, NEW.state, 1)
        ON CONFLICT (organisation_id, programme, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER queue_counts_update AFTER UPDATE OF organisation_id, programme, state ON applications BEGIN
    UPDATE queue_counts SET n = n - 1
        WHERE organisation_id = OLD.organisation_id AND programme = OLD.programme AND state = OLD.state;
    INSERT INTO queue_counts (organisation_id, programme, state, n)
        VALUES (NEW.organisation_id, NEW.programme, NEW.state, 1)
        ON CONFLICT (organisation_id, programme, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER queue_counts_delete AFTER DELETE ON applications BEGIN
    UPDATE queue_counts SET n = n - 1
        WHERE organisation_id = OLD.organisation_id AND programme = OLD.programme AND state = OLD.state;
END;

-- The keyed hash (blind index, domain "applicant.codename") of the codename that lets an
-- applicant reach their case; never the codename itself.
CREATE TABLE applicant_access (
    codename_bidx   BLOB PRIMARY KEY,
    case_id         BLOB NOT NULL,
    organisation_id BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Uploaded files: name, media type and uploader in meta_ct, the bytes in content_ct, both
-- sealed with the person's data key. Rowid tables keep large rows out of the key B-tree.
CREATE TABLE evidence (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    case_id         BLOB NOT NULL,
    meta_ct         BLOB NOT NULL,
    content_ct      BLOB NOT NULL,
    size            INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX evidence_case ON evidence(case_id, id);

CREATE TABLE messages (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    case_id         BLOB NOT NULL,
    kind            TEXT NOT NULL,
    author          TEXT NOT NULL,
    body_ct         BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_case ON messages(case_id, id);

-- due_on is an ISO date (YYYY-MM-DD): operational, so that due deadlines can be listed.
CREATE TABLE deadlines (
    id              BLOB PRIMARY KEY,
    organisation_id BLOB NOT NULL,
    case_id         BLOB NOT NULL,
    kind            TEXT NOT NULL,
    due_on          TEXT NOT NULL,
    note_ct         BLOB,
    done_at         INTEGER,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX deadlines_case ON deadlines(case_id);
CREATE INDEX deadlines_due ON deadlines(organisation_id, due_on);

-- from_org holds the case (and is the distribution column); to_org receives it.
CREATE TABLE referrals (
    id              BLOB PRIMARY KEY,
    case_id         BLOB NOT NULL,
    from_org        BLOB NOT NULL,
    to_org          BLOB NOT NULL,
    state           TEXT NOT NULL,
    consent_ct      BLOB NOT NULL,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    answered_at     INTEGER
) STRICT, WITHOUT ROWID;
-- At most one referral of a case to an organisation that is not declined: the access check
-- reads it by (case_id, to_org).
CREATE UNIQUE INDEX referrals_open ON referrals(case_id, to_org) WHERE state <> 'declined';
CREATE INDEX referrals_case ON referrals(case_id);
CREATE INDEX referrals_to ON referrals(to_org, state, case_id);
CREATE INDEX referrals_from ON referrals(from_org);

-- SHA-256 of each API token (never the token); the label sealed with the user's data key.
CREATE TABLE api_tokens (
    token_hash      BLOB PRIMARY KEY,
    user_id         BLOB NOT NULL,
    organisation_id BLOB NOT NULL,
    label_ct        BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX api_tokens_user ON api_tokens(user_id);

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
