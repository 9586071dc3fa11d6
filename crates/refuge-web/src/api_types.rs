//! The API's request and response bodies. Responses are built from these types and nothing
//! else, so the OpenAPI document (derived from them) describes exactly what is sent. Enumerated
//! strings take their values from the domain's own lists (`ApplicationState::ALL`, …).
//!
//! Two schemas are written by hand because the body is produced elsewhere: [`ErrorBody`]
//! (rendered by `WebError::json`) and [`RuleDecision`] (a `refuge_rules::programme::Decision`,
//! serialised as `refuge check --format json` prints it). Tests compare both with real bodies.

use refuge_core::application::{Application, ApplicationState};
use refuge_core::case::{Case, Deadline, DeadlineKind};
use refuge_core::casework::{
    EXPORT_COLLECT_WITHIN_HOURS, EvidenceMeta, Export, ExportState, Message, MessageKind, Referral,
};
use refuge_core::event::{Event, EventKind};
use refuge_core::facts::Facts;
use refuge_core::org::{Organisation, Role};
use refuge_core::person::Person;
use refuge_core::text::Text;
use refuge_store::CaseSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

fn state_schema() -> ObjectBuilder {
    string_enum(ApplicationState::ALL.map(ApplicationState::as_str))
        .description(Some("Where an application stands"))
}

fn message_kind_schema() -> ObjectBuilder {
    string_enum(MessageKind::ALL.map(MessageKind::as_str))
}

fn deadline_kind_schema() -> ObjectBuilder {
    string_enum(DeadlineKind::ALL.map(DeadlineKind::as_str))
}

fn event_kind_schema() -> ObjectBuilder {
    string_enum(EventKind::ALL.map(EventKind::as_str))
}

fn referral_state_schema() -> ObjectBuilder {
    use refuge_core::casework::ReferralState as R;
    string_enum([R::Pending, R::Accepted, R::Declined].map(R::as_str))
}

fn export_state_schema() -> ObjectBuilder {
    string_enum(ExportState::ALL.map(ExportState::as_str))
}

fn org_kind_schema() -> ObjectBuilder {
    use refuge_core::org::OrganisationKind as K;
    string_enum([K::Ngo, K::Authority, K::Embassy].map(K::as_str))
}

fn roles_schema() -> utoipa::openapi::schema::ArrayBuilder {
    use Role as R;
    utoipa::openapi::schema::ArrayBuilder::new().items(string_enum(
        [
            R::Counsellor,
            R::Caseworker,
            R::DecisionMaker,
            R::OrgAdmin,
            R::InstanceAdmin,
        ]
        .map(R::as_str),
    ))
}

fn actor_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^(operator|system|applicant|user:[0-9a-f-]{36})$"))
        .description(Some(
            "Who acted: `user:<uuid>` (a staff user), `operator`, `system` or `applicant`",
        ))
}

// ------------------------------------------------------------------------------ errors

/// Every error: a stable code, a message in the request's language (`Accept-Language` or
/// `?lang=`) and, for bad input, the field at fault as a JSON path (`person.names[0].value`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // schema only: the body is written by `WebError::json`
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // schema only
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `conflict`, `transition`, `duplicate`, `already_done`, `too_large`, `unsupported_type`,
    /// `invalid`, `gone` or `internal`.
    #[schema(example = "invalid")]
    pub code: String,
    /// What went wrong and what was expected. Never contains other people's data.
    pub message: String,
    /// The field at fault, for `invalid`.
    #[schema(example = "facts.birth_date")]
    pub field: Option<String>,
}

/// A file's bytes, as sent and received (the media type is judged from the content).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // schema only: the body is raw bytes
pub struct FileBytes(Vec<u8>);

// ------------------------------------------------------------------------------ rules

/// `POST /api/v1/check`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// What is known of the person's situation: an object keyed by fact name (see
    /// `docs/facts.md`); unknown facts are left out or `null`.
    #[schema(value_type = Object, example = json!({"nationality": "RU", "birth_date": "1990-05-14", "refusal": "evaded_callup"}))]
    pub facts: Facts,
    /// Programme or reform ids (default: every programme).
    #[serde(default)]
    pub programmes: Option<Vec<String>>,
    /// Evaluation date, `YYYY-MM-DD` (default: today, UTC).
    #[serde(default)]
    #[schema(format = Date)]
    pub on: Option<String>,
    /// Language of titles and explanations: en, ru, uk, de or nl (default en).
    #[serde(default)]
    #[schema(example = "en")]
    pub lang: Option<String>,
}

/// The explained results.
#[derive(Serialize, ToSchema)]
pub struct CheckResponse {
    #[schema(format = Date)]
    pub on: String,
    pub lang: String,
    #[schema(value_type = Vec<RuleDecision>)]
    pub results: Vec<refuge_rules::programme::Decision>,
}

/// The explained result of one programme for one person (as `refuge check --format json`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // schema only: the body is a `refuge_rules::programme::Decision`
pub struct RuleDecision {
    /// The programme id.
    pub programme: String,
    /// Reforms applied to it (empty for the programme as in force).
    pub reforms: Vec<String>,
    /// Its title in the requested language.
    pub title: String,
    #[schema(schema_with = outcome_schema)]
    pub outcome: String,
    /// Facts whose knowledge would decide an undetermined outcome.
    pub missing: Vec<String>,
    /// Signals raised (rule ids).
    pub signals: Vec<String>,
    /// Where to apply, when one can apply from where one is.
    pub apply_at: Option<String>,
    #[schema(schema_with = tri_schema)]
    pub can_apply_here: String,
    /// Evidence that would help.
    pub evidence: Vec<String>,
    /// Every rule, in order.
    pub trace: Vec<RuleTrace>,
}

fn outcome_schema() -> ObjectBuilder {
    string_enum(["eligible", "ineligible", "undetermined"])
}

fn tri_schema() -> ObjectBuilder {
    string_enum(["true", "false", "unknown"])
}

/// How one rule came out.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // schema only
pub struct RuleTrace {
    pub id: String,
    #[schema(schema_with = rule_kind_schema)]
    pub kind: String,
    #[schema(schema_with = rule_result_schema)]
    pub result: String,
    /// The facts the rule read and their values (`unknown` when not known).
    pub values: BTreeMap<String, String>,
    /// The legal basis: a decision on an application must cite one of its programme's.
    pub basis: String,
    /// The explanation in the requested language.
    pub explanation: String,
}

fn rule_kind_schema() -> ObjectBuilder {
    string_enum(["require", "exclude", "signal"])
}

fn rule_result_schema() -> ObjectBuilder {
    string_enum(["pass", "fail", "unknown"])
}

// ------------------------------------------------------------------------------ cases

/// `POST /api/v1/cases`: open a case and submit an application in one durable write.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCaseRequest {
    /// Who the person is, as in the CLI's person file: `pseudonym`, `names` (`[{"script"?,
    /// "value"}]`), `birth_date`, `documents` (`[{"kind", "number", "issuer"?}]`), `contacts`
    /// (`[{"kind", "value"}]`). A pseudonym or at least one name is required. Stored encrypted;
    /// never returned by the API.
    #[schema(value_type = Object, example = json!({"pseudonym": "Sasha", "names": [{"value": "Aleksandr K."}], "birth_date": "1994-05-02"}))]
    pub person: Person,
    /// Facts, keyed by fact name (default: none known).
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"nationality": "RU", "refusal": "deserted"}))]
    pub facts: Facts,
    /// The programme applied to; one of this instance's programmes.
    #[schema(example = "eu-humanitarian-visa")]
    pub programme: String,
}

/// A new case and its application.
#[derive(Serialize, ToSchema)]
pub struct CreatedCase {
    pub case: CaseRef,
    pub application: ApplicationRef,
}

/// A case, briefly.
#[derive(Serialize, ToSchema)]
pub struct CaseRef {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(example = "RF-0K3M-Q9TD-2XAB")]
    pub reference: String,
    pub version: u64,
}

/// An application, briefly.
#[derive(Serialize, ToSchema)]
pub struct ApplicationRef {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(schema_with = state_schema)]
    pub state: String,
    pub version: u64,
}

/// One case with its facts (never its identity), applications and the explained rule result
/// of every programme today.
#[derive(Serialize, ToSchema)]
pub struct CaseView {
    pub case: CaseDto,
    /// The pseudonym staff use (`null` if none was given or the person was erased).
    pub pseudonym: Option<String>,
    pub applications: Vec<ApplicationDto>,
    #[schema(value_type = Vec<RuleDecision>)]
    pub rules: Vec<refuge_rules::programme::Decision>,
}

/// A case.
#[derive(Serialize, ToSchema)]
pub struct CaseDto {
    #[schema(format = "uuid")]
    pub id: String,
    pub reference: String,
    #[schema(format = "uuid")]
    pub organisation_id: String,
    /// Optimistic-concurrency version.
    pub version: u64,
    /// Facts keyed by fact name; unknown facts are left out.
    #[schema(value_type = Object)]
    pub facts: Facts,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<Case> for CaseDto {
    fn from(c: Case) -> Self {
        CaseDto {
            id: c.id.to_string(),
            reference: c.reference.to_string(),
            organisation_id: c.organisation_id.to_string(),
            version: c.version,
            facts: c.facts,
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}

/// A case as listed: reference and pseudonym, no facts, no identity.
#[derive(Serialize, ToSchema)]
pub struct CaseSummaryDto {
    #[schema(format = "uuid")]
    pub id: String,
    pub reference: String,
    #[schema(format = "uuid")]
    pub organisation_id: String,
    pub pseudonym: Option<String>,
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<CaseSummary> for CaseSummaryDto {
    fn from(c: CaseSummary) -> Self {
        CaseSummaryDto {
            id: c.id.to_string(),
            reference: c.reference.to_string(),
            organisation_id: c.organisation_id.to_string(),
            pseudonym: c.pseudonym.map(|p| p.as_str().to_owned()),
            version: c.version,
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}

/// An application of a case to one programme.
#[derive(Serialize, ToSchema)]
pub struct ApplicationDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    #[schema(format = "uuid")]
    pub organisation_id: String,
    pub programme: String,
    #[schema(schema_with = state_schema)]
    pub state: String,
    /// Optimistic-concurrency version: send it as `expected_version` to move the application.
    pub version: u64,
    /// The latest decision, once decided.
    pub decision: Option<DecisionDto>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A decision: legal basis and reasons, by a person.
#[derive(Serialize, ToSchema)]
pub struct DecisionDto {
    pub legal_basis: String,
    pub reasons: String,
    #[schema(schema_with = actor_schema)]
    pub decided_by: String,
    #[schema(format = DateTime)]
    pub decided_at: String,
}

impl From<Application> for ApplicationDto {
    fn from(a: Application) -> Self {
        ApplicationDto {
            id: a.id.to_string(),
            case_id: a.case_id.to_string(),
            organisation_id: a.organisation_id.to_string(),
            programme: a.programme.to_string(),
            state: a.state.as_str().to_owned(),
            version: a.version,
            decision: a.decision.map(|d| DecisionDto {
                legal_basis: d.legal_basis.as_str().to_owned(),
                reasons: d.reasons.as_str().to_owned(),
                decided_by: d.decided_by.to_string(),
                decided_at: d.decided_at.to_rfc3339(),
            }),
            created_at: a.created_at.to_rfc3339(),
            updated_at: a.updated_at.to_rfc3339(),
        }
    }
}

/// A page of the work queue.
#[derive(Serialize, ToSchema)]
pub struct QueuePage {
    pub items: Vec<QueueItemDto>,
    /// How many applications the whole queue (with these filters) holds.
    pub total: u64,
    /// The `after` of the next page; `null` on the last page.
    #[schema(format = "uuid")]
    pub next: Option<String>,
}

/// One entry of the queue.
#[derive(Serialize, ToSchema)]
pub struct QueueItemDto {
    pub application: ApplicationDto,
    pub case: CaseSummaryDto,
}

/// `POST /api/v1/applications/{id}/moves`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The target state.
    #[schema(schema_with = state_schema)]
    pub to: ApplicationState,
    /// The version the move is based on; a newer one is a `409 conflict`.
    pub expected_version: u64,
    /// Why (not for decisions: their reasons go in `decision.reasons`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Text>,
    /// Required exactly when `to` is `granted` or `refused` (role `decision_maker`).
    #[serde(default)]
    pub decision: Option<DecisionInput>,
}

/// A decision to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// One of the `basis` strings of the programme's rules (see `rules[].trace[].basis` in
    /// `GET /api/v1/cases/{id}`).
    pub legal_basis: String,
    /// The reasons, addressed to the applicant.
    #[schema(value_type = String)]
    pub reasons: Text,
}

// ------------------------------------------------------------------------------ events

/// A case's events, in order.
#[derive(Serialize, ToSchema)]
pub struct EventsList {
    pub events: Vec<EventDto>,
}

/// An event: operational metadata only.
#[derive(Serialize, ToSchema)]
pub struct EventDto {
    #[schema(format = "uuid")]
    pub id: String,
    /// Its position in its organisation's hash chain.
    pub seq: u64,
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(schema_with = actor_schema)]
    pub actor: String,
    #[schema(schema_with = event_kind_schema)]
    pub kind: String,
    /// The record it is about (case, application, …).
    #[schema(format = "uuid")]
    pub subject: String,
    /// States, programme ids, versions; never personal data.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

impl From<Event> for EventDto {
    fn from(e: Event) -> Self {
        EventDto {
            id: e.id.to_string(),
            seq: e.seq,
            at: e.at.to_rfc3339(),
            actor: e.actor.to_string(),
            kind: e.kind.as_str().to_owned(),
            subject: e.subject.hyphenated().to_string(),
            meta: e.meta,
        }
    }
}

// ------------------------------------------------------------------------------ messages

/// A case's messages, oldest first.
#[derive(Serialize, ToSchema)]
pub struct MessagesList {
    pub messages: Vec<MessageDto>,
}

/// A message on a case.
#[derive(Serialize, ToSchema)]
pub struct MessageDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    #[schema(schema_with = message_kind_schema)]
    pub kind: String,
    #[schema(schema_with = actor_schema)]
    pub author: String,
    pub body: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Message> for MessageDto {
    fn from(m: Message) -> Self {
        MessageDto {
            id: m.id.to_string(),
            case_id: m.case_id.to_string(),
            kind: m.kind.as_str().to_owned(),
            author: m.author.to_string(),
            body: m.body.as_str().to_owned(),
            created_at: m.created_at.to_rfc3339(),
        }
    }
}

/// `POST /api/v1/cases/{id}/messages`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// `info_request` (shown to the applicant) or `note` (staff only).
    #[schema(schema_with = staff_message_kind_schema)]
    pub kind: MessageKind,
    #[schema(value_type = String)]
    pub body: Text,
}

fn staff_message_kind_schema() -> ObjectBuilder {
    string_enum([MessageKind::InfoRequest, MessageKind::Note].map(MessageKind::as_str))
}

// ------------------------------------------------------------------------------ evidence

/// A case's evidence, oldest first (without content).
#[derive(Serialize, ToSchema)]
pub struct EvidenceList {
    pub evidence: Vec<EvidenceDto>,
}

/// A piece of evidence.
#[derive(Serialize, ToSchema)]
pub struct EvidenceDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    /// The file name (reduced to letters, digits, `.`, `-` and `_`).
    pub name: String,
    /// Sniffed from the content at upload.
    #[schema(example = "application/pdf")]
    pub media_type: String,
    pub size: u64,
    #[schema(schema_with = actor_schema)]
    pub added_by: String,
    #[schema(format = DateTime)]
    pub added_at: String,
}

impl From<EvidenceMeta> for EvidenceDto {
    fn from(e: EvidenceMeta) -> Self {
        EvidenceDto {
            id: e.id.to_string(),
            case_id: e.case_id.to_string(),
            name: e.name,
            media_type: e.media_type,
            size: e.size,
            added_by: e.added_by.to_string(),
            added_at: e.added_at.to_rfc3339(),
        }
    }
}

// ------------------------------------------------------------------------------ deadlines

/// Deadlines, by due date.
#[derive(Serialize, ToSchema)]
pub struct DeadlinesList {
    pub deadlines: Vec<DeadlineDto>,
}

/// A deadline on a case.
#[derive(Serialize, ToSchema)]
pub struct DeadlineDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    #[schema(format = "uuid")]
    pub organisation_id: String,
    #[schema(schema_with = deadline_kind_schema)]
    pub kind: String,
    #[schema(format = Date)]
    pub due_on: String,
    pub note: Option<String>,
    /// When it was marked done; `null` while open.
    #[schema(format = DateTime)]
    pub done_at: Option<String>,
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<Deadline> for DeadlineDto {
    fn from(d: Deadline) -> Self {
        DeadlineDto {
            id: d.id.to_string(),
            case_id: d.case_id.to_string(),
            organisation_id: d.organisation_id.to_string(),
            kind: d.kind.as_str().to_owned(),
            due_on: d.due_on.to_string(),
            note: d.note.map(|n| n.as_str().to_owned()),
            done_at: d.done_at.map(|t| t.to_rfc3339()),
            version: d.version,
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

/// `POST /api/v1/cases/{id}/deadlines`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadlineRequest {
    #[schema(schema_with = deadline_kind_schema)]
    pub kind: DeadlineKind,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub due_on: String,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub note: Option<Text>,
}

// ------------------------------------------------------------------------------ referrals

/// Referrals sent or received by the caller's organisation, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ReferralsList {
    pub referrals: Vec<ReferralDto>,
}

/// A referral of a case to another organisation.
#[derive(Serialize, ToSchema)]
pub struct ReferralDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub case_id: String,
    pub case_reference: String,
    pub pseudonym: Option<String>,
    #[schema(format = "uuid")]
    pub from_org: String,
    #[schema(format = "uuid")]
    pub to_org: String,
    #[schema(schema_with = referral_state_schema)]
    pub state: String,
    /// Who consented, when and how (`null` once the person was erased).
    pub consent: Option<String>,
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub answered_at: Option<String>,
}

impl From<Referral> for ReferralDto {
    fn from(r: Referral) -> Self {
        ReferralDto {
            id: r.id.to_string(),
            case_id: r.case_id.to_string(),
            case_reference: r.case_reference.to_string(),
            pseudonym: r.pseudonym.map(|p| p.as_str().to_owned()),
            from_org: r.from_org.to_string(),
            to_org: r.to_org.to_string(),
            state: r.state.as_str().to_owned(),
            consent: r.consent.map(|c| c.as_str().to_owned()),
            version: r.version,
            created_at: r.created_at.to_rfc3339(),
            answered_at: r.answered_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// `POST /api/v1/cases/{id}/referrals`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralRequest {
    /// The receiving organisation's id (see `GET /api/v1/organisations`).
    #[schema(format = "uuid")]
    pub to: String,
    /// How and when the person consented to the referral.
    #[schema(value_type = String, example = "Consented in person on 2026-11-20, signed form on file")]
    pub consent: Text,
}

/// `POST /api/v1/referrals/{id}/answer`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Accept (work the case as if held) or decline.
    pub accept: bool,
}

// ------------------------------------------------------------------------------ exports

/// The organisation's exports, newest first (at most 200).
#[derive(Serialize, ToSchema)]
pub struct ExportsList {
    pub exports: Vec<ExportDto>,
}

/// An export: asked for by one staff user, approved or refused by another person, collected
/// once by the requester as a file encrypted to their passphrase.
#[derive(Serialize, ToSchema)]
pub struct ExportDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "uuid")]
    pub organisation_id: String,
    #[schema(format = "uuid")]
    pub requested_by: String,
    /// The cases' ids.
    pub cases: Vec<String>,
    /// Why, and for whom.
    pub purpose: String,
    #[schema(schema_with = export_state_schema)]
    pub state: String,
    /// Who approved or refused it (`user:<uuid>` or `operator`).
    pub decided_by: Option<String>,
    pub version: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub decided_at: Option<String>,
    /// Until when an approved export may be collected.
    #[schema(format = DateTime)]
    pub collect_by: Option<String>,
    #[schema(format = DateTime)]
    pub collected_at: Option<String>,
}

impl From<Export> for ExportDto {
    fn from(e: Export) -> Self {
        let collect_by = match e.state {
            ExportState::Approved => e.decided_at.map(|t| {
                refuge_core::clock::Timestamp::from_micros(
                    t.as_micros() + EXPORT_COLLECT_WITHIN_HOURS * 3_600_000_000,
                )
                .to_rfc3339()
            }),
            _ => None,
        };
        ExportDto {
            id: e.id.to_string(),
            organisation_id: e.organisation_id.to_string(),
            requested_by: e.requested_by.to_string(),
            cases: e.cases.iter().map(ToString::to_string).collect(),
            purpose: e.purpose.as_str().to_owned(),
            state: e.state.as_str().to_owned(),
            decided_by: e.decided_by.map(|a| a.to_string()),
            version: e.version,
            created_at: e.created_at.to_rfc3339(),
            decided_at: e.decided_at.map(|t| t.to_rfc3339()),
            collect_by,
            collected_at: e.collected_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// `POST /api/v1/exports`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Case ids or references (`RF-…`), at most 500, all held by the caller's organisation.
    pub cases: Vec<String>,
    /// Why the cases are exported, and for whom.
    #[schema(value_type = String, example = "Transfer to the applicant's lawyer, at her request")]
    pub purpose: Text,
}

/// `POST /api/v1/exports/{id}/decision`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDecisionRequest {
    /// Approve (the requester may then collect it) or refuse.
    pub approve: bool,
}

/// `POST /api/v1/exports/{id}/collect`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectRequest {
    /// The passphrase the file is encrypted to: at least 16 characters, never stored. Decrypt
    /// with `refuge export decrypt FILE`.
    pub passphrase: String,
}

// ------------------------------------------------------------------------------ organisations

/// Every organisation of the instance.
#[derive(Serialize, ToSchema)]
pub struct OrganisationsList {
    pub organisations: Vec<OrganisationDto>,
}

/// An organisation.
#[derive(Serialize, ToSchema)]
pub struct OrganisationDto {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(schema_with = org_kind_schema)]
    pub kind: String,
    pub name: String,
}

impl From<Organisation> for OrganisationDto {
    fn from(o: Organisation) -> Self {
        OrganisationDto {
            id: o.id.to_string(),
            kind: o.kind.as_str().to_owned(),
            name: o.name.as_str().to_owned(),
        }
    }
}

/// The caller, as the token names them.
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[schema(format = "uuid")]
    pub user_id: String,
    #[schema(format = "uuid")]
    pub organisation_id: String,
    #[schema(schema_with = roles_schema)]
    pub roles: Vec<String>,
}
