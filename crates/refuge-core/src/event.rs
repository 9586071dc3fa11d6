//! Events: every change, and every read of identity, is an append-only event with actor and
//! time. Events of one organisation form a hash chain (see `refuge-store`).

use crate::clock::Timestamp;
use crate::ids::{EventId, OrgId, PersonId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Who did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A staff user.
    User(UserId),
    /// The operator of the instance, acting through the command line on the server.
    Operator,
    /// The system itself (migrations, scheduled jobs). It never decides.
    System,
    /// The applicant: whoever holds a case's secret codename. A person, but never a
    /// decision maker: on an application they may only withdraw.
    Applicant,
}

impl Actor {
    /// Whether this actor is a person rather than the system.
    pub fn is_person(&self) -> bool {
        matches!(self, Actor::User(_) | Actor::Operator | Actor::Applicant)
    }

    /// Whether this actor may record a decision: a person acting for an organisation (a
    /// staff user or the operator), never the system and never the applicant.
    pub fn may_decide(&self) -> bool {
        matches!(self, Actor::User(_) | Actor::Operator)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Operator => f.write_str("operator"),
            Actor::System => f.write_str("system"),
            Actor::Applicant => f.write_str("applicant"),
        }
    }
}

/// A string that is not an actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an actor (expected operator, system, applicant or user:<uuid>)")]
pub struct InvalidActor(pub String);

impl FromStr for Actor {
    type Err = InvalidActor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "operator" => Ok(Actor::Operator),
            "system" => Ok(Actor::System),
            "applicant" => Ok(Actor::Applicant),
            _ => s
                .strip_prefix("user:")
                .and_then(|u| u.parse().ok())
                .map(Actor::User)
                .ok_or_else(|| InvalidActor(s.to_owned())),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The instance was initialised.
    InstanceInitialised,
    /// An organisation was created.
    OrganisationCreated,
    /// A staff user was created.
    UserCreated,
    /// A case (with its person) was created.
    CaseCreated,
    /// Intake: a case (with its person) was created and an application submitted, in one
    /// change.
    CaseSubmitted,
    /// A case's facts were replaced.
    FactsUpdated,
    /// Someone revealed a person's identity.
    IdentityRevealed,
    /// An application was created.
    ApplicationCreated,
    /// An application moved to another state.
    ApplicationMoved,
    /// The database was restored from a backup.
    Restored,
    /// A piece of evidence was attached to a case.
    EvidenceAdded,
    /// A message (request for information, answer, note) was added to a case.
    MessageAdded,
    /// A deadline was set on a case.
    DeadlineSet,
    /// A deadline was marked done.
    DeadlineCompleted,
    /// A case was referred to another organisation, with the person's consent.
    ReferralMade,
    /// The receiving organisation accepted or declined a referral.
    ReferralAnswered,
    /// A staff user's password was set.
    PasswordSet,
    /// A staff user's second factor (TOTP) was set or removed.
    TotpSet,
    /// A staff user was disabled.
    UserDisabled,
    /// A staff user was enabled again.
    UserEnabled,
    /// An API token was issued to a staff user.
    ApiTokenCreated,
    /// An API token was revoked.
    ApiTokenRevoked,
    /// A person was erased: their data key destroyed, so everything sealed with it is
    /// unreadable for good; their events remain and the chain still verifies.
    PersonErased,
    /// The instance key was rotated: every data key re-wrapped under a new instance key.
    InstanceKeyRotated,
    /// A staff user asked for cases to be exported.
    ExportRequested,
    /// A second person approved or refused an export.
    ExportDecided,
    /// The requester collected an approved export (its cases' identities left the server,
    /// encrypted to the requester's passphrase).
    ExportCollected,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 27] = [
        Self::InstanceInitialised,
        Self::OrganisationCreated,
        Self::UserCreated,
        Self::CaseCreated,
        Self::CaseSubmitted,
        Self::FactsUpdated,
        Self::IdentityRevealed,
        Self::ApplicationCreated,
        Self::ApplicationMoved,
        Self::Restored,
        Self::EvidenceAdded,
        Self::MessageAdded,
        Self::DeadlineSet,
        Self::DeadlineCompleted,
        Self::ReferralMade,
        Self::ReferralAnswered,
        Self::PasswordSet,
        Self::TotpSet,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::ApiTokenCreated,
        Self::ApiTokenRevoked,
        Self::PersonErased,
        Self::InstanceKeyRotated,
        Self::ExportRequested,
        Self::ExportDecided,
        Self::ExportCollected,
    ];

    /// The kind's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceInitialised => "instance_initialised",
            Self::OrganisationCreated => "organisation_created",
            Self::UserCreated => "user_created",
            Self::CaseCreated => "case_created",
            Self::CaseSubmitted => "case_submitted",
            Self::FactsUpdated => "facts_updated",
            Self::IdentityRevealed => "identity_revealed",
            Self::ApplicationCreated => "application_created",
            Self::ApplicationMoved => "application_moved",
            Self::Restored => "restored",
            Self::EvidenceAdded => "evidence_added",
            Self::MessageAdded => "message_added",
            Self::DeadlineSet => "deadline_set",
            Self::DeadlineCompleted => "deadline_completed",
            Self::ReferralMade => "referral_made",
            Self::ReferralAnswered => "referral_answered",
            Self::PasswordSet => "password_set",
            Self::TotpSet => "totp_set",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::ApiTokenCreated => "api_token_created",
            Self::ApiTokenRevoked => "api_token_revoked",
            Self::PersonErased => "person_erased",
            Self::InstanceKeyRotated => "instance_key_rotated",
            Self::ExportRequested => "export_requested",
            Self::ExportDecided => "export_decided",
            Self::ExportCollected => "export_collected",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind \"{0}\"")]
pub struct InvalidEventKind(pub String);

impl FromStr for EventKind {
    type Err = InvalidEventKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidEventKind(s.to_owned()))
    }
}

/// An event as shown to staff: operational metadata only. Any personal content of the event
/// (facts, identity, reasons) is held encrypted in the store and is not part of this view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// The organisation whose chain it belongs to.
    pub organisation_id: OrgId,
    /// Its position in that chain, from 1.
    pub seq: u64,
    /// When it was recorded.
    pub at: Timestamp,
    /// Who caused it.
    pub actor: Actor,
    /// What happened.
    pub kind: EventKind,
    /// The record it is about (case, application, user, organisation).
    pub subject: Uuid,
    /// The person concerned, if any.
    pub person_id: Option<PersonId>,
    /// Operational metadata (states, programme ids, versions); never personal data.
    pub meta: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip() {
        let u = Actor::User(UserId::from_bytes([7; 16]));
        for a in [u, Actor::Operator, Actor::System, Actor::Applicant] {
            assert_eq!(a.to_string().parse::<Actor>().unwrap(), a);
            let j = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Actor>(&j).unwrap(), a);
        }
        assert!("user:xyz".parse::<Actor>().is_err());
        assert!(u.is_person() && Actor::Operator.is_person() && !Actor::System.is_person());
        assert!(Actor::Applicant.is_person() && !Actor::Applicant.may_decide());
        assert!(u.may_decide() && Actor::Operator.may_decide() && !Actor::System.may_decide());
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
    }
}
