//! What is recorded on a case besides facts and applications: the applicant's codename,
//! evidence, messages and deadlines. Everything personal is sealed with the person's data key;
//! every change is an event in the same transaction.

use super::{SqlStore, json, to_u64, write_scope};
use crate::error::{Result, StoreError, bad_column};
use crate::rows::{ApplicantAccessRow, DeadlineRow, EvidenceRow, MessageRow, RowBatch};
use crate::writer::{Op, Outcome};
use crate::{CaseKey, MAX_EVIDENCE_BYTES, NewCase, Scope};
use refuge_core::application::{Application, ProgrammeId};
use refuge_core::case::{Case, Deadline, DeadlineKind};
use refuge_core::casework::{EvidenceMeta, Message, MessageKind};
use refuge_core::clock::Timestamp;
use refuge_core::event::{Actor, EventKind};
use refuge_core::ids::{CaseId, DeadlineId, EvidenceId, MessageId, OrgId};
use refuge_core::text::Text;
use refuge_crypto::{DataKey, SecretString, Zeroizing, blind_index};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use time::Date;
use uuid::Uuid;

/// The blind-index domain of applicants' codenames.
const CODENAME_DOMAIN: &str = "applicant.codename";

/// A codename as hashed: lower case, words separated by single spaces, no spaces at the ends.
fn normalise_codename(codename: &SecretString) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(codename.expose().len()));
    for word in codename.expose().split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

impl SqlStore {
    /// The keyed hash under which a codename is stored.
    fn codename_index(&self, codename: &SecretString) -> Result<[u8; 16]> {
        let normal = normalise_codename(codename);
        if normal.is_empty() {
            return Err(StoreError::Invalid {
                field: "codename",
                message: "must not be empty".into(),
            });
        }
        Ok(blind_index(
            &self.keys.index,
            CODENAME_DOMAIN,
            normal.as_bytes(),
        ))
    }

    /// The case row (if `scope` may see all of it) and its person's data key.
    async fn case_and_key(
        &self,
        scope: Scope,
        case: CaseId,
    ) -> Result<(crate::rows::CaseRow, DataKey)> {
        let row = self.case_row(scope, &CaseKey::Id(case)).await?;
        let person = self.person_row(row.person_id).await?;
        let dk = self.person_key(person.id, person.wrapped_key.as_deref())?;
        Ok((row, dk))
    }
}

/// Intake by the applicant: [`crate::Store::submit`] with the applicant as actor, and the
/// keyed hash of their codename, in one durable write.
pub(super) async fn apply(
    s: &SqlStore,
    new: NewCase,
    programme: ProgrammeId,
    codename: &SecretString,
) -> Result<(Case, Application)> {
    let bidx = s.codename_index(codename)?;
    s.ensure_org(new.organisation_id).await?;
    s.insert_new_case("a case with this codename", |rows, events| {
        let (case, app) = s.stage_submission(Actor::Applicant, &new, &programme, rows, events)?;
        rows.applicant_access.push(ApplicantAccessRow {
            codename_bidx: bidx.to_vec(),
            case_id: case.id.0,
            organisation_id: case.organisation_id.0,
            created_at: case.created_at.as_micros(),
        });
        Ok((case, app))
    })
    .await
}

/// The case a codename opens.
pub(super) async fn case_for_codename(
    s: &SqlStore,
    codename: &SecretString,
) -> Result<Option<(CaseId, OrgId)>> {
    let bidx = match s.codename_index(codename) {
        Ok(b) => b,
        Err(StoreError::Invalid { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(s.backend
        .case_for_codename(&bidx)
        .await?
        .map(|(case, org)| (CaseId(case), OrgId(org))))
}

/// What `evidence.meta_ct` holds.
#[derive(Serialize, Deserialize)]
struct EvidenceSealedMeta {
    name: String,
    media_type: String,
    added_by: Actor,
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    let invalid = |message: &str| StoreError::Invalid {
        field: "name",
        message: message.into(),
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.chars().count() > 255 {
        return Err(invalid("must be at most 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(name.to_owned())
}

fn check_media_type(media_type: &str) -> Result<String> {
    let m = media_type.trim().to_ascii_lowercase();
    let ok = m.len() <= 127
        && m.split_once('/')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        && m.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if ok {
        Ok(m)
    } else {
        Err(StoreError::Invalid {
            field: "media_type",
            message: "expected a media type such as application/pdf".into(),
        })
    }
}

impl SqlStore {
    fn evidence_from_row(&self, r: &EvidenceRow, dk: &DataKey) -> Result<EvidenceMeta> {
        let meta: EvidenceSealedMeta =
            self.open_json(dk, "evidence", "evidence", "meta", r.id, &r.meta_ct)?;
        Ok(EvidenceMeta {
            id: EvidenceId(r.id),
            case_id: CaseId(r.case_id),
            name: meta.name,
            media_type: meta.media_type,
            size: to_u64(r.size),
            added_by: meta.added_by,
            added_at: Timestamp::from_micros(r.created_at),
        })
    }
}

/// Attach a file to a case.
pub(super) async fn add_evidence(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    case: CaseId,
    name: String,
    media_type: String,
    bytes: Vec<u8>,
) -> Result<EvidenceMeta> {
    let name = check_name(&name)?;
    let media_type = check_media_type(&media_type)?;
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(StoreError::Invalid {
            field: "file",
            message: format!(
                "is {} bytes; at most {MAX_EVIDENCE_BYTES} are accepted",
                bytes.len()
            ),
        });
    }
    let (row, dk) = s.case_and_key(scope, case).await?;
    let now = s.clock.now();
    let id = s.new_id()?;
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let sealed_meta = EvidenceSealedMeta {
        name,
        media_type,
        added_by: actor,
    };
    let evidence = EvidenceRow {
        id,
        organisation_id: row.organisation_id,
        case_id: row.id,
        meta_ct: s.seal(&dk, "evidence", "meta", id, &json(&sealed_meta)?)?,
        content_ct: s.seal(&dk, "evidence", "content", id, &bytes)?,
        size,
        created_at: now.as_micros(),
    };
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::EvidenceAdded,
        id,
        Some(row.person_id),
    )?;
    ev.meta.insert("id".into(), id.to_string().into());
    ev.meta.insert("size".into(), size.into());
    // The event commits to the content through its hash, sealed (a hash of a known
    // document would show who holds it).
    let body = serde_json::json!({
        "name": sealed_meta.name,
        "media_type": sealed_meta.media_type,
        "sha256": hex::encode(refuge_crypto::sha256(&bytes)),
    });
    ev.body_ct = Some(s.seal(&dk, "events", "body", ev.id, &json(&body)?)?);
    let rows = RowBatch {
        evidence: vec![evidence],
        ..RowBatch::default()
    };
    s.writer
        .write(Op::Insert {
            what: "evidence",
            rows: Box::new(rows),
            events: vec![ev],
        })
        .await?;
    Ok(EvidenceMeta {
        id: EvidenceId(id),
        case_id: case,
        name: sealed_meta.name,
        media_type: sealed_meta.media_type,
        size: to_u64(size),
        added_by: actor,
        added_at: now,
    })
}

/// A case's evidence, oldest first, without content.
pub(super) async fn evidence_list(
    s: &SqlStore,
    scope: Scope,
    case: CaseId,
) -> Result<Vec<EvidenceMeta>> {
    let (row, dk) = s.case_and_key(scope, case).await?;
    s.backend
        .evidence_of_case(row.id)
        .await?
        .iter()
        .map(|r| s.evidence_from_row(r, &dk))
        .collect()
}

/// One piece of evidence with its content.
pub(super) async fn evidence(
    s: &SqlStore,
    scope: Scope,
    id: EvidenceId,
) -> Result<(EvidenceMeta, Vec<u8>)> {
    let row = s
        .backend
        .evidence(id.0)
        .await?
        .ok_or(StoreError::NotFound {
            what: "evidence",
            id: id.to_string(),
        })?;
    s.require_full(scope, row.organisation_id, row.case_id, "evidence", id)
        .await?;
    let (_, dk) = s.key_of_case(row.case_id).await?;
    let dk = dk.ok_or_else(|| StoreError::Erased(row.case_id.to_string()))?;
    let meta = s.evidence_from_row(&row, &dk)?;
    let content = refuge_crypto::open(
        &dk,
        &refuge_crypto::Aad::new("evidence", "content", row.id.as_bytes()),
        &row.content_ct,
    )
    .map_err(|_| StoreError::Corrupt {
        what: "evidence",
        id: id.to_string(),
    })?;
    Ok((meta, content.to_vec()))
}

/// Add a message to a case.
pub(super) async fn add_message(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    case: CaseId,
    kind: MessageKind,
    body: Text,
) -> Result<Message> {
    let (row, dk) = s.case_and_key(scope, case).await?;
    let now = s.clock.now();
    let id = s.new_id()?;
    let message = MessageRow {
        id,
        organisation_id: row.organisation_id,
        case_id: row.id,
        kind: kind.as_str().into(),
        author: actor.to_string(),
        body_ct: s.seal(&dk, "messages", "body", id, &json(&body)?)?,
        created_at: now.as_micros(),
    };
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::MessageAdded,
        id,
        Some(row.person_id),
    )?;
    ev.meta.insert("kind".into(), kind.as_str().into());
    ev.body_ct = Some(s.seal(
        &dk,
        "events",
        "body",
        ev.id,
        &json(&serde_json::json!({ "body": body }))?,
    )?);
    let rows = RowBatch {
        messages: vec![message],
        ..RowBatch::default()
    };
    s.writer
        .write(Op::Insert {
            what: "message",
            rows: Box::new(rows),
            events: vec![ev],
        })
        .await?;
    Ok(Message {
        id: MessageId(id),
        case_id: case,
        kind,
        author: actor,
        body,
        created_at: now,
    })
}

/// A case's messages, oldest first.
pub(super) async fn messages(s: &SqlStore, scope: Scope, case: CaseId) -> Result<Vec<Message>> {
    let (row, dk) = s.case_and_key(scope, case).await?;
    s.backend
        .messages_of_case(row.id)
        .await?
        .into_iter()
        .map(|m| {
            Ok(Message {
                id: MessageId(m.id),
                case_id: CaseId(m.case_id),
                kind: m
                    .kind
                    .parse()
                    .map_err(|_| bad_column("messages.kind", &m.kind))?,
                author: m
                    .author
                    .parse()
                    .map_err(|_| bad_column("messages.author", &m.author))?,
                body: s.open_json(&dk, "message", "messages", "body", m.id, &m.body_ct)?,
                created_at: Timestamp::from_micros(m.created_at),
            })
        })
        .collect()
}

/// An ISO date as stored in `deadlines.due_on`.
fn iso_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn parse_date(s: &str) -> Result<Date> {
    let bad = || bad_column("deadlines.due_on", s);
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    Date::from_calendar_date(year, month, day).map_err(|_| bad())
}

impl SqlStore {
    fn deadline_from_row(&self, r: DeadlineRow, dk: Option<&DataKey>) -> Result<Deadline> {
        let note = match (&r.note_ct, dk) {
            (Some(ct), Some(dk)) => {
                Some(self.open_json(dk, "deadline", "deadlines", "note", r.id, ct)?)
            }
            _ => None,
        };
        Ok(Deadline {
            id: DeadlineId(r.id),
            case_id: CaseId(r.case_id),
            organisation_id: OrgId(r.organisation_id),
            kind: r
                .kind
                .parse()
                .map_err(|_| bad_column("deadlines.kind", &r.kind))?,
            due_on: parse_date(&r.due_on)?,
            note,
            done_at: r.done_at.map(Timestamp::from_micros),
            version: to_u64(r.version),
            created_at: Timestamp::from_micros(r.created_at),
        })
    }
}

/// Set a deadline on a case.
pub(super) async fn set_deadline(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    case: CaseId,
    kind: DeadlineKind,
    due_on: Date,
    note: Option<Text>,
) -> Result<Deadline> {
    if !(0..=9999).contains(&due_on.year()) {
        return Err(StoreError::Invalid {
            field: "due_on",
            message: "expected a date in the years 0000 to 9999".into(),
        });
    }
    let (row, dk) = s.case_and_key(scope, case).await?;
    let now = s.clock.now();
    let id = s.new_id()?;
    let note_ct = match &note {
        Some(n) => Some(s.seal(&dk, "deadlines", "note", id, &json(n)?)?),
        None => None,
    };
    let deadline = DeadlineRow {
        id,
        organisation_id: row.organisation_id,
        case_id: row.id,
        kind: kind.as_str().into(),
        due_on: iso_date(due_on),
        note_ct,
        done_at: None,
        version: 1,
        created_at: now.as_micros(),
    };
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::DeadlineSet,
        id,
        Some(row.person_id),
    )?;
    ev.meta.insert("case_id".into(), row.id.to_string().into());
    ev.meta.insert("kind".into(), kind.as_str().into());
    ev.meta.insert("due_on".into(), iso_date(due_on).into());
    ev.meta.insert("version".into(), 1.into());
    if let Some(n) = &note {
        ev.body_ct = Some(s.seal(
            &dk,
            "events",
            "body",
            ev.id,
            &json(&serde_json::json!({ "note": n }))?,
        )?);
    }
    let rows = RowBatch {
        deadlines: vec![deadline],
        ..RowBatch::default()
    };
    s.writer
        .write(Op::Insert {
            what: "deadline",
            rows: Box::new(rows),
            events: vec![ev],
        })
        .await?;
    Ok(Deadline {
        id: DeadlineId(id),
        case_id: case,
        organisation_id: OrgId(row.organisation_id),
        kind,
        due_on,
        note,
        done_at: None,
        version: 1,
        created_at: now,
    })
}

/// Mark a deadline done.
pub(super) async fn complete_deadline(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    id: DeadlineId,
) -> Result<()> {
    let row = s
        .backend
        .deadline(id.0)
        .await?
        .ok_or(StoreError::NotFound {
            what: "deadline",
            id: id.to_string(),
        })?;
    s.require_full(scope, row.organisation_id, row.case_id, "deadline", id)
        .await?;
    let (person, _) = s.key_of_case(row.case_id).await?;
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::DeadlineCompleted,
        row.id,
        person,
    )?;
    ev.meta
        .insert("case_id".into(), row.case_id.to_string().into());
    let op = Op::CompleteDeadline {
        scope: write_scope(row.organisation_id),
        deadline_id: row.id,
        event: ev,
    };
    match s.writer.write(op).await? {
        Outcome::Updated { .. } => Ok(()),
        Outcome::Written { .. } | Outcome::Indexed { .. } => {
            Err(StoreError::Database("unexpected write outcome".into()))
        }
    }
}

/// Deadlines of the cases within scope.
pub(super) async fn deadlines(
    s: &SqlStore,
    scope: Scope,
    due_before: Option<Date>,
    include_done: bool,
) -> Result<Vec<Deadline>> {
    let before = due_before.map(iso_date);
    let rows = s
        .backend
        .deadlines(scope.org(), before.as_deref(), include_done)
        .await?;
    let mut keys: HashMap<Uuid, Option<DataKey>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let dk = match (&r.deadline.note_ct, keys.entry(r.person_id)) {
            (None, _) => None,
            (Some(_), Entry::Occupied(e)) => e.into_mut().as_ref(),
            (Some(_), Entry::Vacant(e)) => {
                let key = match &r.wrapped_key {
                    Some(w) => Some(s.person_key(r.person_id, Some(w))?),
                    None => None,
                };
                e.insert(key).as_ref()
            }
        };
        out.push(s.deadline_from_row(r.deadline, dk)?);
    }
    Ok(out)
}

/// A case's deadlines, by due date.
pub(super) async fn case_deadlines(
    s: &SqlStore,
    scope: Scope,
    case: CaseId,
) -> Result<Vec<Deadline>> {
    let (row, dk) = s.case_and_key(scope, case).await?;
    s.backend
        .deadlines_of_case(row.id)
        .await?
        .into_iter()
        .map(|d| s.deadline_from_row(d, Some(&dk)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codenames_are_normalised_to_lower_case_and_single_spaces() {
        let n = |s: &str| normalise_codename(&SecretString::new(s.into())).to_string();
        assert_eq!(n("  Amber\tFALCON   river "), "amber falcon river");
        assert_eq!(n("Ёлка Лес"), "ёлка лес");
        assert_eq!(n(" \n "), "");
    }

    #[test]
    fn dates_round_trip_as_iso_text() {
        let d = Date::from_calendar_date(2026, time::Month::March, 7).unwrap();
        assert_eq!(iso_date(d), "2026-03-07");
        assert_eq!(parse_date("2026-03-07").unwrap(), d);
        assert!(parse_date("2026-02-30").is_err());
        assert!(iso_date(d) < iso_date(d.next_day().unwrap()));
    }

    #[test]
    fn file_names_and_media_types_are_checked() {
        assert_eq!(check_name(" a.pdf ").unwrap(), "a.pdf");
        assert!(check_name("").is_err() && check_name("a\u{0}b").is_err());
        assert_eq!(
            check_media_type("Application/PDF").unwrap(),
            "application/pdf"
        );
        assert!(check_media_type("pdf").is_err() && check_media_type("a/b c").is_err());
    }
}
