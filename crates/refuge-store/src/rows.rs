//! Rows as stored: ids, operational metadata and ciphertexts. Backends move these in and out
//! of their databases; nothing here is plaintext personal data.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `instance_meta`: key material (wrapped), key check value, KDF parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaRow {
    /// Key name.
    pub key: String,
    /// Value bytes.
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

/// `organisations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRow {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub created_at: i64,
}

/// `users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    #[serde(with = "b64")]
    pub login_bidx: Vec<u8>,
    #[serde(with = "b64opt")]
    pub wrapped_key: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub login_ct: Vec<u8>,
    #[serde(with = "b64")]
    pub display_ct: Vec<u8>,
    pub roles: String,
    pub disabled: i64,
    pub version: i64,
    pub created_at: i64,
    /// The Argon2id PHC string, sealed with the user's data key.
    #[serde(with = "b64opt")]
    pub password_ct: Option<Vec<u8>>,
    /// The TOTP secret, sealed with the user's data key.
    #[serde(with = "b64opt")]
    pub totp_ct: Option<Vec<u8>>,
}

/// `persons`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    #[serde(with = "b64opt")]
    pub wrapped_key: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub key_id: Vec<u8>,
    #[serde(with = "b64opt")]
    pub pseudonym_ct: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub identity_ct: Vec<u8>,
    pub created_at: i64,
    pub erased_at: Option<i64>,
    #[serde(with = "b64opt")]
    pub lookup: Option<Vec<u8>>,
    pub lookup_pending: i64,
}

/// `person_lookup`: blind indexes of names and document numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRow {
    pub organisation_id: Uuid,
    #[serde(with = "b64")]
    pub bidx: Vec<u8>,
    pub person_id: Uuid,
}

/// `cases`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub person_id: Uuid,
    pub reference: String,
    #[serde(with = "b64")]
    pub facts_ct: Vec<u8>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `applications`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub case_id: Uuid,
    pub programme: String,
    pub state: String,
    pub version: i64,
    pub decision_basis: Option<String>,
    #[serde(with = "b64opt")]
    pub decision_ct: Option<Vec<u8>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `applicant_access`: the keyed hash of a case's codename (never the codename).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicantAccessRow {
    #[serde(with = "b64")]
    pub codename_bidx: Vec<u8>,
    pub case_id: Uuid,
    pub organisation_id: Uuid,
    pub created_at: i64,
}

/// `evidence`: name, media type and author in `meta_ct`, the bytes in `content_ct`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub case_id: Uuid,
    #[serde(with = "b64")]
    pub meta_ct: Vec<u8>,
    /// Empty when listed (the content is only read for one piece at a time).
    #[serde(with = "b64")]
    pub content_ct: Vec<u8>,
    pub size: i64,
    pub created_at: i64,
}

/// `messages`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub case_id: Uuid,
    pub kind: String,
    pub author: String,
    #[serde(with = "b64")]
    pub body_ct: Vec<u8>,
    pub created_at: i64,
}

/// `deadlines`. `due_on` is an ISO date (`YYYY-MM-DD`), which sorts as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub case_id: Uuid,
    pub kind: String,
    pub due_on: String,
    #[serde(with = "b64opt")]
    pub note_ct: Option<Vec<u8>>,
    pub done_at: Option<i64>,
    pub version: i64,
    pub created_at: i64,
}

/// `referrals`. `from_org` is the organisation holding the case (its distribution column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralRow {
    pub id: Uuid,
    pub case_id: Uuid,
    pub from_org: Uuid,
    pub to_org: Uuid,
    pub state: String,
    #[serde(with = "b64")]
    pub consent_ct: Vec<u8>,
    pub version: i64,
    pub created_at: i64,
    pub answered_at: Option<i64>,
}

/// `exports`: `case_ids` is the cases' 16-byte ids one after another; the purpose is sealed
/// with the requester's data key; `decided_by` is an actor as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRow {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub requested_by: Uuid,
    #[serde(with = "b64")]
    pub case_ids: Vec<u8>,
    #[serde(with = "b64")]
    pub purpose_ct: Vec<u8>,
    pub state: String,
    pub decided_by: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub collected_at: Option<i64>,
}

/// `submission_keys`: a blind index of a client's idempotency key, and what it created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionKeyRow {
    pub organisation_id: Uuid,
    #[serde(with = "b64")]
    pub key_bidx: Vec<u8>,
    pub case_id: Uuid,
    pub application_id: Uuid,
    pub created_at: i64,
}

/// `api_tokens`: SHA-256 of the token (never the token), the label sealed with the user's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRow {
    #[serde(with = "b64")]
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub organisation_id: Uuid,
    #[serde(with = "b64")]
    pub label_ct: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// `events`: one link of an organisation's hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub organisation_id: Uuid,
    pub seq: i64,
    pub id: Uuid,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub subject: Uuid,
    pub person_id: Option<Uuid>,
    pub meta: String,
    #[serde(with = "b64opt")]
    pub body_ct: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "b64")]
    pub hash: Vec<u8>,
}

/// `chain_heads`: the last link of each organisation's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRow {
    pub organisation_id: Uuid,
    pub seq: i64,
    #[serde(with = "b64")]
    pub hash: Vec<u8>,
}

/// An update of a case's facts, guarded by its version.
#[derive(Clone, Debug)]
pub struct CaseUpdate {
    pub id: Uuid,
    pub facts_ct: Vec<u8>,
    pub version: i64,
    pub updated_at: i64,
}

/// An update of an application's state (and decision), guarded by its version.
#[derive(Clone, Debug)]
pub struct ApplicationUpdate {
    pub id: Uuid,
    pub state: String,
    pub version: i64,
    pub decision: Option<(String, Vec<u8>, String, i64)>,
    pub updated_at: i64,
}

/// A deadline marked done.
#[derive(Clone, Debug)]
pub struct DeadlineUpdate {
    pub id: Uuid,
    pub done_at: i64,
    pub version: i64,
}

/// A referral answered.
#[derive(Clone, Debug)]
pub struct ReferralUpdate {
    pub id: Uuid,
    pub state: String,
    pub answered_at: i64,
    pub version: i64,
}

/// An export moved from one state to the next (`at` is the decision's or the collection's
/// time).
#[derive(Clone, Debug)]
pub struct ExportUpdate {
    pub id: Uuid,
    pub from: String,
    pub state: String,
    pub decided_by: Option<String>,
    pub at: i64,
    pub version: i64,
}

/// What changes on a user.
#[derive(Clone, Debug)]
pub enum UserChange {
    /// A new sealed password hash.
    Password(Vec<u8>),
    /// A new sealed TOTP secret, or none.
    Totp(Option<Vec<u8>>),
    /// Disabled (1) or enabled (0).
    Disabled(i64),
}

/// A change to a user, bumping its version.
#[derive(Clone, Debug)]
pub struct UserUpdate {
    pub id: Uuid,
    pub version: i64,
    pub change: UserChange,
}

/// An API token revoked.
#[derive(Clone, Debug)]
pub struct TokenRevocation {
    pub token_hash: Vec<u8>,
    pub revoked_at: i64,
}

/// A person erased: their wrapped data key, sealed identity and pseudonym and blind indexes
/// removed, and every codename that reached their cases.
#[derive(Clone, Debug)]
pub struct PersonErasure {
    pub id: Uuid,
    pub erased_at: i64,
}

/// A data key wrapped anew (key rotation): replaced only if the row still holds `old`.
#[derive(Clone, Debug)]
pub struct Rewrap {
    pub id: Uuid,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    pub key_id: Vec<u8>,
}

/// Everything one group commit writes, by table, in insertion order.
#[derive(Clone, Debug, Default)]
pub struct RowBatch {
    pub meta: Vec<MetaRow>,
    pub orgs: Vec<OrgRow>,
    pub users: Vec<UserRow>,
    pub persons: Vec<PersonRow>,
    pub lookups: Vec<LookupRow>,
    pub cases: Vec<CaseRow>,
    pub applications: Vec<ApplicationRow>,
    pub applicant_access: Vec<ApplicantAccessRow>,
    pub evidence: Vec<EvidenceRow>,
    pub messages: Vec<MessageRow>,
    pub deadlines: Vec<DeadlineRow>,
    pub referrals: Vec<ReferralRow>,
    pub api_tokens: Vec<ApiTokenRow>,
    pub exports: Vec<ExportRow>,
    pub submission_keys: Vec<SubmissionKeyRow>,
    pub case_updates: Vec<CaseUpdate>,
    pub application_updates: Vec<ApplicationUpdate>,
    pub deadline_updates: Vec<DeadlineUpdate>,
    pub referral_updates: Vec<ReferralUpdate>,
    pub export_updates: Vec<ExportUpdate>,
    pub user_updates: Vec<UserUpdate>,
    pub token_revocations: Vec<TokenRevocation>,
    pub person_erasures: Vec<PersonErasure>,
    pub person_rewraps: Vec<Rewrap>,
    pub user_rewraps: Vec<Rewrap>,
    /// Meta rows set (inserted or replaced) and removed.
    pub meta_set: Vec<MetaRow>,
    pub meta_removed: Vec<String>,
    pub events: Vec<EventRow>,
    pub heads: Vec<HeadRow>,
    /// Persons whose pending blind indexes this batch writes to `person_lookup`.
    pub indexed: Vec<Uuid>,
}

impl RowBatch {
    /// Append the new rows (inserts only) of `other`.
    pub(crate) fn extend_inserts(&mut self, other: &RowBatch) {
        self.meta.extend(other.meta.iter().cloned());
        self.orgs.extend(other.orgs.iter().cloned());
        self.users.extend(other.users.iter().cloned());
        self.persons.extend(other.persons.iter().cloned());
        self.lookups.extend(other.lookups.iter().cloned());
        self.cases.extend(other.cases.iter().cloned());
        self.applications.extend(other.applications.iter().cloned());
        self.applicant_access
            .extend(other.applicant_access.iter().cloned());
        self.evidence.extend(other.evidence.iter().cloned());
        self.messages.extend(other.messages.iter().cloned());
        self.deadlines.extend(other.deadlines.iter().cloned());
        self.referrals.extend(other.referrals.iter().cloned());
        self.api_tokens.extend(other.api_tokens.iter().cloned());
        self.exports.extend(other.exports.iter().cloned());
        self.submission_keys
            .extend(other.submission_keys.iter().cloned());
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <&str>::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

mod b64opt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<&str>::deserialize(d)?;
        s.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Column lists, shared by both backends' SELECTs.
pub(crate) mod cols {
    /// `cols` with each column qualified by a table alias.
    pub fn qualified(cols: &str, alias: &str) -> String {
        cols.split(", ")
            .map(|c| format!("{alias}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub const ORG: &str = "id, kind, name, created_at";
    pub const USER: &str = "id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at, password_ct, totp_ct";
    pub const PERSON: &str = "id, organisation_id, wrapped_key, key_id, pseudonym_ct, identity_ct, created_at, erased_at, lookup, lookup_pending";
    pub const CASE: &str =
        "id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at";
    pub const APPLICATION: &str = "id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at";
    pub const EVENT: &str = "organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash";
    pub const APPLICANT_ACCESS: &str = "codename_bidx, case_id, organisation_id, created_at";
    pub const EVIDENCE: &str =
        "id, organisation_id, case_id, meta_ct, content_ct, size, created_at";
    /// Evidence without its content, for lists.
    pub const EVIDENCE_META: &str = "id, organisation_id, case_id, meta_ct, size, created_at";
    pub const MESSAGE: &str = "id, organisation_id, case_id, kind, author, body_ct, created_at";
    pub const DEADLINE: &str =
        "id, organisation_id, case_id, kind, due_on, note_ct, done_at, version, created_at";
    pub const REFERRAL: &str =
        "id, case_id, from_org, to_org, state, consent_ct, version, created_at, answered_at";
    pub const EXPORT: &str = "id, organisation_id, requested_by, case_ids, purpose_ct, state, decided_by, version, created_at, decided_at, collected_at";
    pub const SUBMISSION_KEY: &str =
        "organisation_id, key_bidx, case_id, application_id, created_at";
    pub const API_TOKEN: &str =
        "token_hash, user_id, organisation_id, label_ct, created_at, revoked_at";
}

/// Build a row struct from a database row, column by column, by field name.
macro_rules! from_row {
    ($row:expr, $ty:ident { $($f:ident),* $(,)? }) => {
        $ty { $($f: sqlx::Row::try_get($row, stringify!($f))?,)* }
    };
}
pub(crate) use from_row;

/// Decoders for each row type, written once for any backend's row.
macro_rules! row_decoders {
    ($row:ty) => {
        pub(crate) fn meta_row(r: &$row) -> Result<MetaRow, sqlx::Error> {
            Ok(from_row!(r, MetaRow { key, value }))
        }
        pub(crate) fn org_row(r: &$row) -> Result<OrgRow, sqlx::Error> {
            Ok(from_row!(
                r,
                OrgRow {
                    id,
                    kind,
                    name,
                    created_at
                }
            ))
        }
        pub(crate) fn user_row(r: &$row) -> Result<UserRow, sqlx::Error> {
            Ok(from_row!(
                r,
                UserRow {
                    id,
                    organisation_id,
                    login_bidx,
                    wrapped_key,
                    login_ct,
                    display_ct,
                    roles,
                    disabled,
                    version,
                    created_at,
                    password_ct,
                    totp_ct
                }
            ))
        }
        pub(crate) fn person_row(r: &$row) -> Result<PersonRow, sqlx::Error> {
            Ok(from_row!(
                r,
                PersonRow {
                    id,
                    organisation_id,
                    wrapped_key,
                    key_id,
                    pseudonym_ct,
                    identity_ct,
                    created_at,
                    erased_at,
                    lookup,
                    lookup_pending
                }
            ))
        }
        pub(crate) fn lookup_row(r: &$row) -> Result<LookupRow, sqlx::Error> {
            Ok(from_row!(
                r,
                LookupRow {
                    organisation_id,
                    bidx,
                    person_id
                }
            ))
        }
        pub(crate) fn case_row(r: &$row) -> Result<CaseRow, sqlx::Error> {
            Ok(from_row!(
                r,
                CaseRow {
                    id,
                    organisation_id,
                    person_id,
                    reference,
                    facts_ct,
                    version,
                    created_at,
                    updated_at
                }
            ))
        }
        pub(crate) fn application_row(r: &$row) -> Result<ApplicationRow, sqlx::Error> {
            Ok(from_row!(
                r,
                ApplicationRow {
                    id,
                    organisation_id,
                    case_id,
                    programme,
                    state,
                    version,
                    decision_basis,
                    decision_ct,
                    decided_by,
                    decided_at,
                    created_at,
                    updated_at
                }
            ))
        }
        pub(crate) fn event_row(r: &$row) -> Result<EventRow, sqlx::Error> {
            Ok(from_row!(
                r,
                EventRow {
                    organisation_id,
                    seq,
                    id,
                    at,
                    actor,
                    kind,
                    subject,
                    person_id,
                    meta,
                    body_ct,
                    prev_hash,
                    hash
                }
            ))
        }
        pub(crate) fn applicant_access_row(r: &$row) -> Result<ApplicantAccessRow, sqlx::Error> {
            Ok(from_row!(
                r,
                ApplicantAccessRow {
                    codename_bidx,
                    case_id,
                    organisation_id,
                    created_at
                }
            ))
        }
        pub(crate) fn evidence_row(r: &$row) -> Result<EvidenceRow, sqlx::Error> {
            Ok(from_row!(
                r,
                EvidenceRow {
                    id,
                    organisation_id,
                    case_id,
                    meta_ct,
                    content_ct,
                    size,
                    created_at
                }
            ))
        }
        /// An evidence row selected with [`cols::EVIDENCE_META`]: no content.
        pub(crate) fn evidence_meta_row(r: &$row) -> Result<EvidenceRow, sqlx::Error> {
            Ok(EvidenceRow {
                id: sqlx::Row::try_get(r, "id")?,
                organisation_id: sqlx::Row::try_get(r, "organisation_id")?,
                case_id: sqlx::Row::try_get(r, "case_id")?,
                meta_ct: sqlx::Row::try_get(r, "meta_ct")?,
                content_ct: Vec::new(),
                size: sqlx::Row::try_get(r, "size")?,
                created_at: sqlx::Row::try_get(r, "created_at")?,
            })
        }
        pub(crate) fn message_row(r: &$row) -> Result<MessageRow, sqlx::Error> {
            Ok(from_row!(
                r,
                MessageRow {
                    id,
                    organisation_id,
                    case_id,
                    kind,
                    author,
                    body_ct,
                    created_at
                }
            ))
        }
        pub(crate) fn deadline_row(r: &$row) -> Result<DeadlineRow, sqlx::Error> {
            Ok(from_row!(
                r,
                DeadlineRow {
                    id,
                    organisation_id,
                    case_id,
                    kind,
                    due_on,
                    note_ct,
                    done_at,
                    version,
                    created_at
                }
            ))
        }
        pub(crate) fn referral_row(r: &$row) -> Result<ReferralRow, sqlx::Error> {
            Ok(from_row!(
                r,
                ReferralRow {
                    id,
                    case_id,
                    from_org,
                    to_org,
                    state,
                    consent_ct,
                    version,
                    created_at,
                    answered_at
                }
            ))
        }
        pub(crate) fn export_row(r: &$row) -> Result<ExportRow, sqlx::Error> {
            Ok(from_row!(
                r,
                ExportRow {
                    id,
                    organisation_id,
                    requested_by,
                    case_ids,
                    purpose_ct,
                    state,
                    decided_by,
                    version,
                    created_at,
                    decided_at,
                    collected_at
                }
            ))
        }
        pub(crate) fn submission_key_row(r: &$row) -> Result<SubmissionKeyRow, sqlx::Error> {
            Ok(from_row!(
                r,
                SubmissionKeyRow {
                    organisation_id,
                    key_bidx,
                    case_id,
                    application_id,
                    created_at
                }
            ))
        }
        pub(crate) fn api_token_row(r: &$row) -> Result<ApiTokenRow, sqlx::Error> {
            Ok(from_row!(
                r,
                ApiTokenRow {
                    token_hash,
                    user_id,
                    organisation_id,
                    label_ct,
                    created_at,
                    revoked_at
                }
            ))
        }
        pub(crate) fn head_row(r: &$row) -> Result<HeadRow, sqlx::Error> {
            Ok(from_row!(
                r,
                HeadRow {
                    organisation_id,
                    seq,
                    hash
                }
            ))
        }
        /// Decode a row of `table` (as selected by [`crate::backend::export_sql`]).
        pub(crate) fn backup_row(
            table: &str,
            r: &$row,
        ) -> Result<crate::backend::BackupRow, sqlx::Error> {
            use crate::backend::BackupRow;
            Ok(match table {
                "instance_meta" => BackupRow::InstanceMeta(meta_row(r)?),
                "organisations" => BackupRow::Organisations(org_row(r)?),
                "users" => BackupRow::Users(user_row(r)?),
                "persons" => BackupRow::Persons(person_row(r)?),
                "person_lookup" => BackupRow::PersonLookup(lookup_row(r)?),
                "cases" => BackupRow::Cases(case_row(r)?),
                "applications" => BackupRow::Applications(application_row(r)?),
                "applicant_access" => BackupRow::ApplicantAccess(applicant_access_row(r)?),
                "evidence" => BackupRow::Evidence(evidence_row(r)?),
                "messages" => BackupRow::Messages(message_row(r)?),
                "deadlines" => BackupRow::Deadlines(deadline_row(r)?),
                "referrals" => BackupRow::Referrals(referral_row(r)?),
                "api_tokens" => BackupRow::ApiTokens(api_token_row(r)?),
                "exports" => BackupRow::Exports(export_row(r)?),
                "submission_keys" => BackupRow::SubmissionKeys(submission_key_row(r)?),
                "events" => BackupRow::Events(event_row(r)?),
                _ => BackupRow::ChainHeads(head_row(r)?),
            })
        }
        pub(crate) fn case_list_row(r: &$row) -> Result<crate::backend::CaseListRow, sqlx::Error> {
            Ok(crate::backend::CaseListRow {
                case: case_row(r)?,
                wrapped_key: sqlx::Row::try_get(r, "wrapped_key")?,
                pseudonym_ct: sqlx::Row::try_get(r, "pseudonym_ct")?,
            })
        }
        pub(crate) fn deadline_list_row(
            r: &$row,
        ) -> Result<crate::backend::DeadlineListRow, sqlx::Error> {
            Ok(crate::backend::DeadlineListRow {
                deadline: deadline_row(r)?,
                person_id: sqlx::Row::try_get(r, "person_id")?,
                wrapped_key: sqlx::Row::try_get(r, "wrapped_key")?,
            })
        }
    };
}
pub(crate) use row_decoders;
