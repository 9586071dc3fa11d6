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
    pub case_updates: Vec<CaseUpdate>,
    pub application_updates: Vec<ApplicationUpdate>,
    pub events: Vec<EventRow>,
    pub heads: Vec<HeadRow>,
    /// Persons whose pending blind indexes this batch writes to `person_lookup`.
    pub indexed: Vec<Uuid>,
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
    pub const ORG: &str = "id, kind, name, created_at";
    pub const USER: &str = "id, organisation_id, login_bidx, wrapped_key, login_ct, display_ct, roles, disabled, version, created_at";
    pub const PERSON: &str = "id, organisation_id, wrapped_key, key_id, pseudonym_ct, identity_ct, created_at, erased_at, lookup, lookup_pending";
    pub const CASE: &str =
        "id, organisation_id, person_id, reference, facts_ct, version, created_at, updated_at";
    pub const APPLICATION: &str = "id, organisation_id, case_id, programme, state, version, decision_basis, decision_ct, decided_by, decided_at, created_at, updated_at";
    pub const EVENT: &str = "organisation_id, seq, id, at, actor, kind, subject, person_id, meta, body_ct, prev_hash, hash";
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
                    created_at
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
    };
}
pub(crate) use row_decoders;
