//! Exports: the one way case data leaves the server other than the operator's backup.
//!
//! A staff user asks for some of their organisation's cases, with a purpose
//! ([`request_export`]). A second person, never the requester, approves or refuses
//! ([`decide_export`]). The requester then collects it once, within
//! [`EXPORT_COLLECT_WITHIN_HOURS`] of the approval, as a file encrypted to a passphrase they
//! choose and that is never stored ([`collect_export`]). Each step is an event in the
//! organisation's chain; the collection names every case whose identity left.

use super::{SqlStore, json, to_u64};
use crate::error::{Result, StoreError, bad_column};
use crate::rows::{ExportRow, RowBatch, UserRow};
use crate::writer::{Op, Outcome};
use crate::{CaseKey, Scope, Store};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use refuge_core::casework::{EXPORT_COLLECT_WITHIN_HOURS, EXPORT_MAX_CASES, Export, ExportState};
use refuge_core::clock::Timestamp;
use refuge_core::event::{Actor, EventKind};
use refuge_core::ids::{CaseId, ExportId, OrgId, UserId};
use refuge_core::person::Person;
use refuge_core::text::Text;
use refuge_crypto::{DataKey, KdfParams, SecretString, Zeroizing, export_passphrase_problem};
use std::collections::HashMap;
use uuid::Uuid;

/// The largest export, in bytes of plaintext, before encryption.
pub const MAX_EXPORT_BYTES: usize = 512 << 20;

/// The format name written at the top of every export's plaintext.
pub const EXPORT_FORMAT: &str = "refuge-export-v1";

/// An export as handed to the requester: an encrypted file.
pub struct CollectedExport {
    /// A file name for it (the export's id; nothing personal).
    pub file_name: String,
    /// The encrypted bytes (see `refuge_crypto::open_export`).
    pub bytes: Vec<u8>,
    /// How many cases it holds.
    pub cases: usize,
}

impl std::fmt::Debug for CollectedExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CollectedExport({}, {} bytes, {} cases)",
            self.file_name,
            self.bytes.len(),
            self.cases
        )
    }
}

const HOUR_MICROS: i64 = 3_600_000_000;

impl SqlStore {
    fn export_from_row(&self, r: ExportRow, requester: &UserRow, now: Timestamp) -> Result<Export> {
        let dk = self.user_key(requester)?;
        let purpose: Text =
            self.open_json(&dk, "export", "exports", "purpose", r.id, &r.purpose_ct)?;
        let mut state: ExportState = r
            .state
            .parse()
            .map_err(|_| bad_column("exports.state", &r.state))?;
        if state == ExportState::Approved
            && r.decided_at.is_some_and(|at| {
                now.as_micros() > at.saturating_add(EXPORT_COLLECT_WITHIN_HOURS * HOUR_MICROS)
            })
        {
            state = ExportState::Expired;
        }
        let decided_by = r
            .decided_by
            .as_deref()
            .map(|a| a.parse::<Actor>())
            .transpose()
            .map_err(|_| bad_column("exports.decided_by", "actor"))?;
        Ok(Export {
            id: ExportId(r.id),
            organisation_id: OrgId(r.organisation_id),
            requested_by: UserId(r.requested_by),
            cases: case_ids(&r.case_ids)?,
            purpose,
            state,
            decided_by,
            version: to_u64(r.version),
            created_at: Timestamp::from_micros(r.created_at),
            decided_at: r.decided_at.map(Timestamp::from_micros),
            collected_at: r.collected_at.map(Timestamp::from_micros),
        })
    }

    /// The export, if the scope may see it.
    async fn export_in(&self, scope: Scope, id: ExportId) -> Result<ExportRow> {
        self.backend
            .export_by_id(id.0)
            .await?
            .filter(|r| scope.allows(r.organisation_id))
            .ok_or_else(|| StoreError::NotFound {
                what: "export",
                id: id.to_string(),
            })
    }

    async fn requester_row(&self, r: &ExportRow) -> Result<UserRow> {
        self.backend.user(r.requested_by).await?.ok_or_else(|| {
            StoreError::Database(format!("the requester of export {} is missing", r.id))
        })
    }
}

fn case_ids(bytes: &[u8]) -> Result<Vec<CaseId>> {
    let (chunks, rest) = bytes.as_chunks::<16>();
    if !rest.is_empty() {
        return Err(bad_column("exports.case_ids", "length"));
    }
    Ok(chunks
        .iter()
        .map(|c| CaseId(Uuid::from_bytes(*c)))
        .collect())
}

/// The staff user acting, or why they cannot ask for or collect exports.
fn staff(actor: Actor) -> Result<UserId> {
    match actor {
        Actor::User(u) => Ok(u),
        _ => Err(StoreError::NotAllowed(
            "exports are asked for and collected by staff users",
        )),
    }
}

/// Ask for `cases` (held by the scope's organisation) to be exported, for `purpose`.
pub(super) async fn request_export(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    cases: &[CaseKey],
    purpose: Text,
) -> Result<Export> {
    let user = staff(actor)?;
    let Scope::Organisation(org) = scope else {
        return Err(StoreError::NotAllowed(
            "an export is asked for within one organisation",
        ));
    };
    if purpose.as_str().trim().is_empty() {
        return Err(StoreError::Invalid {
            field: "purpose",
            message: "say why the cases are exported and for whom".into(),
        });
    }
    if cases.is_empty() || cases.len() > EXPORT_MAX_CASES {
        return Err(StoreError::Invalid {
            field: "cases",
            message: format!(
                "expected 1 to {EXPORT_MAX_CASES} cases, got {}",
                cases.len()
            ),
        });
    }
    let requester = s.user_row_in(scope, user).await?;
    let mut ids: Vec<Uuid> = Vec::with_capacity(cases.len());
    for key in cases {
        let row = s.case_row(scope, key).await?;
        if row.organisation_id != org.0 {
            return Err(StoreError::Invalid {
                field: "cases",
                message: format!(
                    "case {} is held by another organisation: only the organisation holding a case can export it",
                    row.reference
                ),
            });
        }
        if !ids.contains(&row.id) {
            ids.push(row.id);
        }
    }
    let now = s.clock.now();
    let id = s.new_id()?;
    let dk = s.user_key(&requester)?;
    let row = ExportRow {
        id,
        organisation_id: org.0,
        requested_by: user.0,
        case_ids: ids.iter().flat_map(|u| u.into_bytes()).collect(),
        purpose_ct: s.seal(&dk, "exports", "purpose", id, &json(&purpose)?)?,
        state: ExportState::Requested.as_str().into(),
        decided_by: None,
        version: 1,
        created_at: now.as_micros(),
        decided_at: None,
        collected_at: None,
    };
    let mut ev = s.event(actor, org.0, EventKind::ExportRequested, id, None)?;
    ev.meta.insert("cases".into(), ids.len().into());
    ev.meta.insert("version".into(), 1.into());
    s.writer
        .write(Op::Insert {
            what: "export",
            rows: Box::new(RowBatch {
                exports: vec![row.clone()],
                ..RowBatch::default()
            }),
            events: vec![ev],
        })
        .await?;
    tracing::info!(export = %id, user = %user, cases = ids.len(), "export requested");
    s.export_from_row(row, &requester, now)
}

/// Approve or refuse a requested export: anyone allowed to but its requester.
pub(super) async fn decide_export(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    id: ExportId,
    approve: bool,
) -> Result<Export> {
    let row = s.export_in(scope, id).await?;
    match actor {
        Actor::User(u) if u.0 == row.requested_by => {
            return Err(StoreError::NotAllowed(
                "an export needs a second person: its requester cannot approve or refuse it",
            ));
        }
        Actor::User(u) => {
            // The decider must belong to the export's organisation (or be the operator).
            s.user_row_in(Scope::Organisation(OrgId(row.organisation_id)), u)
                .await
                .map_err(|_| StoreError::NotFound {
                    what: "export",
                    id: id.to_string(),
                })?;
        }
        Actor::Operator => {}
        Actor::System | Actor::Applicant => {
            return Err(StoreError::NotAllowed(
                "an export is approved or refused by a person of the organisation",
            ));
        }
    }
    let to = if approve {
        ExportState::Approved
    } else {
        ExportState::Refused
    };
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::ExportDecided,
        row.id,
        None,
    )?;
    ev.meta.insert("state".into(), to.as_str().into());
    let outcome = s
        .writer
        .write(Op::MoveExport {
            org: row.organisation_id,
            export_id: row.id,
            from: ExportState::Requested.as_str(),
            to: to.as_str(),
            decided_by: Some(actor.to_string()),
            event: ev,
        })
        .await?;
    tracing::info!(export = %row.id, state = to.as_str(), "export decided");
    let requester = s.requester_row(&row).await?;
    let mut export = s.export_from_row(row, &requester, s.clock.now())?;
    if let Outcome::Updated { version, at, .. } = outcome {
        export.state = to;
        export.version = version;
        export.decided_by = Some(actor);
        export.decided_at = Some(Timestamp::from_micros(at));
    }
    Ok(export)
}

/// One case as exported.
#[derive(serde::Serialize)]
struct ExportedCase {
    case: refuge_core::case::Case,
    /// `None` once the person was erased.
    identity: Option<Person>,
    erased: bool,
    applications: Vec<refuge_core::application::Application>,
    messages: Vec<refuge_core::casework::Message>,
    deadlines: Vec<refuge_core::case::Deadline>,
    evidence: Vec<ExportedEvidence>,
}

#[derive(serde::Serialize)]
struct ExportedEvidence {
    #[serde(flatten)]
    meta: refuge_core::casework::EvidenceMeta,
    content_base64: String,
}

fn too_large(bytes: usize) -> StoreError {
    StoreError::Invalid {
        field: "cases",
        message: format!(
            "the export would be over {} MiB (at least {} MiB): ask for fewer cases",
            MAX_EXPORT_BYTES >> 20,
            bytes >> 20
        ),
    }
}

/// Everything exported about one case, read in the store's own scope. `budget` is what the
/// export may still hold, in bytes; files are counted (as base64) before they are read.
async fn exported_case(
    s: &SqlStore,
    scope: Scope,
    case: CaseId,
    budget: &mut usize,
) -> Result<ExportedCase> {
    let key = CaseKey::Id(case);
    let row = s.case_row(scope, &key).await?;
    let person = s.person_row(row.person_id).await?;
    let Some(wrapped) = person.wrapped_key.as_deref() else {
        // Erased: the case's record without anything that was sealed with the person's key.
        return Ok(ExportedCase {
            case: s.case_from_row(row, refuge_core::facts::Facts::default())?,
            identity: None,
            erased: true,
            applications: Vec::new(),
            messages: Vec::new(),
            deadlines: Vec::new(),
            evidence: Vec::new(),
        });
    };
    let dk: DataKey = s.person_key(person.id, Some(wrapped))?;
    let identity = s.open_identity(&dk, &person)?;
    let facts = s.open_facts(&dk, &row)?;
    let mut evidence = Vec::new();
    let listed = s.evidence_list(scope, case).await?;
    let files: usize = listed
        .iter()
        .map(|m| {
            usize::try_from(m.size)
                .unwrap_or(usize::MAX)
                .saturating_mul(4)
                / 3
                + 4
        })
        .fold(0usize, usize::saturating_add);
    *budget = budget
        .checked_sub(files)
        .ok_or_else(|| too_large(MAX_EXPORT_BYTES.saturating_add(files)))?;
    for meta in listed {
        let (meta, content) = s.evidence(scope, meta.id).await?;
        evidence.push(ExportedEvidence {
            meta,
            content_base64: STANDARD.encode(&content),
        });
    }
    Ok(ExportedCase {
        case: s.case_from_row(row, facts)?,
        identity: Some(identity),
        erased: false,
        applications: s.applications(scope, case).await?,
        messages: s.messages(scope, case).await?,
        deadlines: s.case_deadlines(scope, case).await?,
        evidence,
    })
}

/// Collect an approved export: only its requester, once, within the collection window. The
/// file is built and encrypted first; the `export_collected` event (naming every case) is
/// durable before the file is returned.
pub(super) async fn collect_export(
    s: &SqlStore,
    actor: Actor,
    scope: Scope,
    id: ExportId,
    passphrase: &SecretString,
    kdf: &KdfParams,
) -> Result<CollectedExport> {
    let user = staff(actor)?;
    let row = s.export_in(scope, id).await?;
    if row.requested_by != user.0 {
        return Err(StoreError::NotAllowed(
            "only the person who asked for an export can collect it",
        ));
    }
    let requester = s.requester_row(&row).await?;
    let now = s.clock.now();
    let export = s.export_from_row(row.clone(), &requester, now)?;
    match export.state {
        ExportState::Approved => {}
        ExportState::Requested => {
            return Err(StoreError::NotAllowed(
                "this export has not been approved by a second person yet",
            ));
        }
        ExportState::Expired => {
            return Err(StoreError::NotAllowed(
                "this export was not collected in time after its approval: ask for it again",
            ));
        }
        other => {
            return Err(StoreError::AlreadyDone {
                what: "export",
                id: id.to_string(),
                state: other.as_str(),
            });
        }
    }
    if let Some(problem) = export_passphrase_problem(passphrase) {
        return Err(StoreError::Invalid {
            field: "passphrase",
            message: problem.into(),
        });
    }
    // Read in the organisation's own scope: the export was approved for its cases.
    let org_scope = Scope::Organisation(OrgId(row.organisation_id));
    let mut cases = Vec::with_capacity(export.cases.len());
    let mut budget = MAX_EXPORT_BYTES;
    for case in &export.cases {
        cases.push(exported_case(s, org_scope, *case, &mut budget).await?);
    }
    let document = serde_json::json!({
        "format": EXPORT_FORMAT,
        "export_id": export.id,
        "organisation_id": export.organisation_id,
        "requested_by": export.requested_by,
        "decided_by": export.decided_by,
        "purpose": export.purpose,
        "requested_at": export.created_at,
        "approved_at": export.decided_at,
        "collected_at": now,
        "cases": cases,
    });
    let plain = Zeroizing::new(json(&document)?);
    drop(document);
    drop(cases);
    if plain.len() > MAX_EXPORT_BYTES {
        return Err(too_large(plain.len()));
    }
    let bytes = refuge_crypto::seal_export(passphrase, kdf, &plain, &*s.entropy)?;
    drop(plain);
    let mut ev = s.event(
        actor,
        row.organisation_id,
        EventKind::ExportCollected,
        row.id,
        None,
    )?;
    let listed: Vec<serde_json::Value> =
        export.cases.iter().map(|c| c.to_string().into()).collect();
    ev.meta.insert("cases".into(), listed.into());
    ev.meta.insert("bytes".into(), bytes.len().into());
    s.writer
        .write(Op::MoveExport {
            org: row.organisation_id,
            export_id: row.id,
            from: ExportState::Approved.as_str(),
            to: ExportState::Collected.as_str(),
            decided_by: None,
            event: ev,
        })
        .await?;
    tracing::info!(export = %row.id, user = %user, cases = export.cases.len(), "export collected");
    Ok(CollectedExport {
        file_name: format!("refuge-export-{}.bin", row.id),
        bytes,
        cases: export.cases.len(),
    })
}

/// The scope's exports (every organisation's for the instance), newest first.
pub(super) async fn exports(s: &SqlStore, scope: Scope) -> Result<Vec<Export>> {
    let rows = s.backend.exports(scope.org(), 200).await?;
    let now = s.clock.now();
    let mut requesters: HashMap<Uuid, UserRow> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let requester = match requesters.entry(r.requested_by) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(s.requester_row(&r).await?),
        };
        out.push(s.export_from_row(r, requester, now)?);
    }
    Ok(out)
}

/// One export, if the scope may see it.
pub(super) async fn export(s: &SqlStore, scope: Scope, id: ExportId) -> Result<Export> {
    let row = s.export_in(scope, id).await?;
    let requester = s.requester_row(&row).await?;
    s.export_from_row(row, &requester, s.clock.now())
}
