//! What is attached to a case besides its facts and applications: evidence (uploaded files),
//! messages (requests for information, answers, notes) and referrals to other organisations.
//! Deadlines are in [`crate::case`].

use crate::clock::Timestamp;
use crate::event::Actor;
use crate::ids::{
    CaseId, CaseReference, EvidenceId, ExportId, MessageId, OrgId, ReferralId, UserId,
};
use crate::text::{Label, Text};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A piece of evidence as listed: what it is, not its content. The name and media type are
/// stored encrypted (a file name often names the person); the size is operational.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceMeta {
    /// Its id.
    pub id: EvidenceId,
    /// The case it belongs to.
    pub case_id: CaseId,
    /// The file name as uploaded.
    pub name: String,
    /// Its media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Who attached it.
    pub added_by: Actor,
    /// When.
    pub added_at: Timestamp,
}

/// File names may hold personal data: `Debug` never shows the name.
impl fmt::Debug for EvidenceMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvidenceMeta")
            .field("id", &self.id)
            .field("case_id", &self.case_id)
            .field(
                "name",
                &format_args!("({} chars)", self.name.chars().count()),
            )
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .field("added_by", &self.added_by)
            .field("added_at", &self.added_at)
            .finish()
    }
}

/// What a message on a case is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// The deciding organisation asks for more information.
    InfoRequest,
    /// An answer to a request for information.
    InfoAnswer,
    /// A note on the case.
    Note,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 3] = [Self::InfoRequest, Self::InfoAnswer, Self::Note];

    /// The kind's name as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InfoRequest => "info_request",
            Self::InfoAnswer => "info_answer",
            Self::Note => "note",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a message kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message kind \"{0}\" (expected info_request, info_answer or note)")]
pub struct InvalidMessageKind(pub String);

impl FromStr for MessageKind {
    type Err = InvalidMessageKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidMessageKind(s.to_owned()))
    }
}

/// A message on a case. The body is stored encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The case.
    pub case_id: CaseId,
    /// What it is.
    pub kind: MessageKind,
    /// Who wrote it.
    pub author: Actor,
    /// The text.
    pub body: Text,
    /// When.
    pub created_at: Timestamp,
}

/// Where a referral stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralState {
    /// Sent; the receiving organisation has not answered. It sees the referral and the
    /// case's reference and pseudonym, nothing else.
    Pending,
    /// Accepted: the receiving organisation works the case as if it held it.
    Accepted,
    /// Declined: the receiving organisation sees nothing of the case.
    Declined,
}

impl ReferralState {
    /// The state's name as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
        }
    }
}

impl fmt::Display for ReferralState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a referral state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown referral state \"{0}\" (expected pending, accepted or declined)")]
pub struct InvalidReferralState(pub String);

impl FromStr for ReferralState {
    type Err = InvalidReferralState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Pending, Self::Accepted, Self::Declined]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidReferralState(s.to_owned()))
    }
}

/// A referral of a case from the organisation holding it to another, with the person's
/// consent recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// Its id.
    pub id: ReferralId,
    /// The case referred.
    pub case_id: CaseId,
    /// The case's reference (visible to the receiving organisation from the start).
    pub case_reference: CaseReference,
    /// The pseudonym staff use for the person (`None` if none was given, or the person was
    /// erased).
    pub pseudonym: Option<Label>,
    /// The referring organisation (the one holding the case).
    pub from_org: OrgId,
    /// The receiving organisation.
    pub to_org: OrgId,
    /// Where it stands.
    pub state: ReferralState,
    /// Who consented, when and how (stored encrypted; `None` once the person was erased).
    pub consent: Option<Text>,
    /// Optimistic-concurrency version: 1 when sent, 2 once answered.
    pub version: u64,
    /// Sent at.
    pub created_at: Timestamp,
    /// Answered at.
    pub answered_at: Option<Timestamp>,
}

/// Where an export stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Asked for; waiting for a second person.
    Requested,
    /// Approved by a second person; the requester may collect it once, within
    /// [`EXPORT_COLLECT_WITHIN_HOURS`] of the approval.
    Approved,
    /// Refused by a second person.
    Refused,
    /// Collected by the requester (once; it cannot be collected again).
    Collected,
    /// Approved but not collected in time.
    Expired,
}

/// How long after its approval an export may be collected.
pub const EXPORT_COLLECT_WITHIN_HOURS: i64 = 72;

/// The most cases one export may hold.
pub const EXPORT_MAX_CASES: usize = 500;

impl ExportState {
    /// Every state.
    pub const ALL: [ExportState; 5] = [
        Self::Requested,
        Self::Approved,
        Self::Refused,
        Self::Collected,
        Self::Expired,
    ];

    /// The state's name as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Refused => "refused",
            Self::Collected => "collected",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for ExportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an export state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown export state \"{0}\" (expected requested, approved, refused, collected or expired)"
)]
pub struct InvalidExportState(pub String);

impl FromStr for ExportState {
    type Err = InvalidExportState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidExportState(s.to_owned()))
    }
}

/// A request to export cases of an organisation: made by one staff user, approved or refused
/// by another person, collected once by the requester as a file encrypted to a passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Its id.
    pub id: ExportId,
    /// The organisation whose cases it holds.
    pub organisation_id: OrgId,
    /// Who asked for it.
    pub requested_by: UserId,
    /// The cases, in the order asked for.
    pub cases: Vec<CaseId>,
    /// Why (stored encrypted).
    pub purpose: Text,
    /// Where it stands.
    pub state: ExportState,
    /// Who approved or refused it (`None` while requested).
    pub decided_by: Option<Actor>,
    /// Optimistic-concurrency version.
    pub version: u64,
    /// Asked for at.
    pub created_at: Timestamp,
    /// Approved or refused at.
    pub decided_at: Option<Timestamp>,
    /// Collected at.
    pub collected_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_round_trip() {
        for k in MessageKind::ALL {
            assert_eq!(k.as_str().parse::<MessageKind>().unwrap(), k);
        }
        assert!("memo".parse::<MessageKind>().is_err());
        for s in [
            ReferralState::Pending,
            ReferralState::Accepted,
            ReferralState::Declined,
        ] {
            assert_eq!(s.as_str().parse::<ReferralState>().unwrap(), s);
        }
        assert!("maybe".parse::<ReferralState>().is_err());
    }

    #[test]
    fn evidence_debug_hides_the_file_name() {
        let m = EvidenceMeta {
            id: EvidenceId::from_bytes([1; 16]),
            case_id: CaseId::from_bytes([2; 16]),
            name: "Kuznetsov passport.pdf".into(),
            media_type: "application/pdf".into(),
            size: 3,
            added_by: Actor::Applicant,
            added_at: Timestamp::from_micros(0),
        };
        assert!(!format!("{m:?}").contains("Kuznetsov"));
    }
}
