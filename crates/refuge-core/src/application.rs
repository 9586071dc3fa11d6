//! Applications of a case to a programme, and their state machine.
//!
//! ```text
//! draft → submitted → in_review ⇄ info_requested
//!                         in_review → interview → granted | refused  (decided)
//!                         granted | refused → appealed → granted | refused | closed
//!                         granted | refused → closed
//! withdrawn ← any open state (draft, submitted, in_review, info_requested, interview, appealed)
//! ```
//!
//! A move to `granted` or `refused` is a decision: it needs a [`Decision`] with a legal basis
//! and reasons, recorded by a person. Any other illegal move is a [`TransitionError`].

use crate::clock::Timestamp;
use crate::event::Actor;
use crate::ids::{ApplicationId, CaseId, OrgId};
use crate::text::{Label, Text};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The identifier of a programme (a protection route), e.g. `eu-humanitarian-visa`:
/// 1–64 characters of lowercase ASCII letters, digits, `-` and `_`, starting with a letter
/// or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProgrammeId(String);

/// A string that is not a programme id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a programme id (expected 1-64 lowercase letters, digits, '-' or '_', e.g. \"eu-humanitarian-visa\")"
)]
pub struct InvalidProgrammeId(pub String);

impl ProgrammeId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProgrammeId {
    type Err = InvalidProgrammeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidProgrammeId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for ProgrammeId {
    type Error = InvalidProgrammeId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ProgrammeId> for String {
    fn from(p: ProgrammeId) -> Self {
        p.0
    }
}

impl fmt::Display for ProgrammeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProgrammeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProgrammeId({})", self.0)
    }
}

/// Where an application stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationState {
    /// Being prepared; not yet sent.
    Draft,
    /// Sent to the deciding organisation.
    Submitted,
    /// A caseworker is examining it.
    InReview,
    /// The authority has asked for more information.
    InfoRequested,
    /// An interview is scheduled or held.
    Interview,
    /// Decided: protection granted.
    Granted,
    /// Decided: refused.
    Refused,
    /// A decision is under appeal.
    Appealed,
    /// Finished.
    Closed,
    /// Withdrawn by the applicant or their counsellor.
    Withdrawn,
}

impl ApplicationState {
    /// Every state, in lifecycle order.
    pub const ALL: [ApplicationState; 10] = [
        Self::Draft,
        Self::Submitted,
        Self::InReview,
        Self::InfoRequested,
        Self::Interview,
        Self::Granted,
        Self::Refused,
        Self::Appealed,
        Self::Closed,
        Self::Withdrawn,
    ];

    /// The state's name as used in files, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::InReview => "in_review",
            Self::InfoRequested => "info_requested",
            Self::Interview => "interview",
            Self::Granted => "granted",
            Self::Refused => "refused",
            Self::Appealed => "appealed",
            Self::Closed => "closed",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Still open: it can still change and can be withdrawn.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Draft
                | Self::Submitted
                | Self::InReview
                | Self::InfoRequested
                | Self::Interview
                | Self::Appealed
        )
    }

    /// `granted` or `refused`.
    pub fn is_decided(self) -> bool {
        matches!(self, Self::Granted | Self::Refused)
    }

    /// The states one may move to from here.
    pub fn next_states(self) -> &'static [ApplicationState] {
        use ApplicationState::*;
        match self {
            Draft => &[Submitted, Withdrawn],
            Submitted => &[InReview, Withdrawn],
            InReview => &[InfoRequested, Interview, Withdrawn],
            InfoRequested => &[InReview, Withdrawn],
            Interview => &[Granted, Refused, Withdrawn],
            Granted | Refused => &[Appealed, Closed],
            Appealed => &[Granted, Refused, Closed, Withdrawn],
            Closed | Withdrawn => &[],
        }
    }

    /// Check a move. A move to a decided state also needs a [`Decision`]; see
    /// [`Application::apply`].
    pub fn check(self, to: ApplicationState) -> Result<(), TransitionError> {
        if self.next_states().contains(&to) {
            Ok(())
        } else {
            Err(TransitionError::Illegal { from: self, to })
        }
    }
}

impl fmt::Display for ApplicationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an application state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown state \"{0}\" (expected one of draft, submitted, in_review, info_requested, interview, granted, refused, appealed, closed, withdrawn)"
)]
pub struct InvalidState(pub String);

impl FromStr for ApplicationState {
    type Err = InvalidState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| InvalidState(s.to_owned()))
    }
}

/// An illegal move in the application state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The state machine has no such edge.
    #[error("cannot move an application from {from} to {to}{}", allowed(*from))]
    Illegal {
        /// Current state.
        from: ApplicationState,
        /// Requested state.
        to: ApplicationState,
    },
    /// A move to granted or refused came without a decision.
    #[error("moving to {0} is a decision: it needs a legal basis and reasons")]
    DecisionRequired(ApplicationState),
    /// A decision was attached to a move that is not a decision.
    #[error("a decision can only be recorded when moving to granted or refused, not {0}")]
    NotADecision(ApplicationState),
    /// Only a person can decide.
    #[error("only a person can record a decision; the system cannot")]
    AutomatedDecision,
    /// The applicant may only withdraw; every other move, and above all a decision, is for
    /// the organisation holding the case.
    #[error(
        "an applicant can only withdraw an application, not move it to {0}: only staff move applications and record decisions"
    )]
    ApplicantMayOnlyWithdraw(ApplicationState),
}

fn allowed(from: ApplicationState) -> String {
    let next = from.next_states();
    if next.is_empty() {
        format!(" ({from} is final)")
    } else {
        let names: Vec<&str> = next.iter().map(|s| s.as_str()).collect();
        format!(" (from {from} it can move to {})", names.join(", "))
    }
}

/// A decision on an application: outcome, legal basis and reasons, by a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The legal basis relied on, e.g. "Regulation (EC) 810/2009 Art. 25(1)(a)".
    pub legal_basis: Label,
    /// The reasons, addressed to the applicant. May contain personal data; stored encrypted.
    pub reasons: Text,
    /// Who decided.
    pub decided_by: Actor,
    /// When.
    pub decided_at: Timestamp,
}

/// An application of a case to one programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Its id.
    pub id: ApplicationId,
    /// The case it belongs to.
    pub case_id: CaseId,
    /// The organisation holding the case.
    pub organisation_id: OrgId,
    /// The programme applied to.
    pub programme: ProgrammeId,
    /// Where it stands.
    pub state: ApplicationState,
    /// Optimistic-concurrency version; starts at 1 and grows by one with every change.
    pub version: u64,
    /// The latest decision, once decided.
    pub decision: Option<Decision>,
    /// Created at.
    pub created_at: Timestamp,
    /// Last changed at.
    pub updated_at: Timestamp,
}

/// A requested move of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    /// Target state.
    pub to: ApplicationState,
    /// Why (free text, optional except for decisions, where it goes into the decision).
    pub reason: Option<Text>,
    /// The decision, required exactly when `to` is granted or refused.
    pub decision: Option<Decision>,
}

impl Move {
    /// Check this move from `from`: the edge exists, decisions come exactly with decided
    /// states, and only a person acting for an organisation decides.
    pub fn check(&self, from: ApplicationState) -> Result<(), TransitionError> {
        from.check(self.to)?;
        match (&self.decision, self.to.is_decided()) {
            (None, true) => Err(TransitionError::DecisionRequired(self.to)),
            (Some(_), false) => Err(TransitionError::NotADecision(self.to)),
            (Some(d), true) if d.decided_by == Actor::Applicant => {
                Err(TransitionError::ApplicantMayOnlyWithdraw(self.to))
            }
            (Some(d), true) if !d.decided_by.may_decide() => {
                Err(TransitionError::AutomatedDecision)
            }
            _ => Ok(()),
        }
    }

    /// Check that `actor` may make this move at all, whatever the state: the applicant may
    /// only withdraw.
    pub fn check_actor(&self, actor: Actor) -> Result<(), TransitionError> {
        if actor == Actor::Applicant && self.to != ApplicationState::Withdrawn {
            return Err(TransitionError::ApplicantMayOnlyWithdraw(self.to));
        }
        Ok(())
    }
}

impl Application {
    /// Apply a move, returning the new application state (version + 1).
    pub fn apply(&self, mv: &Move, at: Timestamp) -> Result<Application, TransitionError> {
        mv.check(self.state)?;
        let mut next = self.clone();
        next.state = mv.to;
        next.version += 1;
        next.updated_at = at;
        if let Some(d) = &mv.decision {
            next.decision = Some(d.clone());
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use ApplicationState::*;

    fn decision(by: Actor) -> Decision {
        Decision {
            legal_basis: "Visa Code Art. 25".parse().unwrap(),
            reasons: "Credible risk of prosecution.".parse().unwrap(),
            decided_by: by,
            decided_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn the_happy_path_is_legal() {
        let path = [
            Draft,
            Submitted,
            InReview,
            InfoRequested,
            InReview,
            Interview,
            Refused,
            Appealed,
            Granted,
            Closed,
        ];
        for w in path.windows(2) {
            assert_eq!(w[0].check(w[1]), Ok(()), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn withdrawal_from_every_open_state_only() {
        for s in ApplicationState::ALL {
            assert_eq!(s.check(Withdrawn).is_ok(), s.is_open(), "{s}");
        }
    }

    #[test]
    fn illegal_moves_name_both_states_and_the_options() {
        let e = Draft.check(Granted).unwrap_err();
        assert_eq!(
            e,
            TransitionError::Illegal {
                from: Draft,
                to: Granted
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("draft")
                && msg.contains("granted")
                && msg.contains("submitted, withdrawn"),
            "{msg}"
        );
        assert!(
            Closed
                .check(Draft)
                .unwrap_err()
                .to_string()
                .contains("final")
        );
        // every pair not listed is refused
        let mut legal = 0;
        for a in ApplicationState::ALL {
            for b in ApplicationState::ALL {
                if a.check(b).is_ok() {
                    legal += 1;
                }
            }
        }
        assert_eq!(legal, 20);
    }

    #[test]
    fn decisions_need_a_person_and_come_only_with_decided_states() {
        let person = Actor::User(UserId::from_bytes([1; 16]));
        let ok = Move {
            to: Granted,
            reason: None,
            decision: Some(decision(person)),
        };
        assert_eq!(ok.check(Interview), Ok(()));
        let missing = Move {
            to: Refused,
            reason: None,
            decision: None,
        };
        assert_eq!(
            missing.check(Interview),
            Err(TransitionError::DecisionRequired(Refused))
        );
        let stray = Move {
            to: InReview,
            reason: None,
            decision: Some(decision(person)),
        };
        assert_eq!(
            stray.check(Submitted),
            Err(TransitionError::NotADecision(InReview))
        );
        let machine = Move {
            to: Granted,
            reason: None,
            decision: Some(decision(Actor::System)),
        };
        assert_eq!(
            machine.check(Interview),
            Err(TransitionError::AutomatedDecision)
        );
        let by_applicant = Move {
            to: Granted,
            reason: None,
            decision: Some(decision(Actor::Applicant)),
        };
        assert_eq!(
            by_applicant.check(Interview),
            Err(TransitionError::ApplicantMayOnlyWithdraw(Granted))
        );
    }

    #[test]
    fn applicants_may_only_withdraw() {
        let mv = |to| Move {
            to,
            reason: None,
            decision: None,
        };
        assert_eq!(mv(Withdrawn).check_actor(Actor::Applicant), Ok(()));
        for to in [Submitted, InReview, Granted, Refused, Closed, Appealed] {
            let e = mv(to).check_actor(Actor::Applicant).unwrap_err();
            assert_eq!(e, TransitionError::ApplicantMayOnlyWithdraw(to));
            assert!(e.to_string().contains("only withdraw"), "{e}");
        }
        let staff = Actor::User(UserId::from_bytes([1; 16]));
        assert_eq!(mv(Granted).check_actor(staff), Ok(()));
    }

    #[test]
    fn apply_bumps_the_version() {
        let a = Application {
            id: ApplicationId::from_bytes([2; 16]),
            case_id: CaseId::from_bytes([3; 16]),
            organisation_id: OrgId::from_bytes([4; 16]),
            programme: "nl-moratorium".parse().unwrap(),
            state: Draft,
            version: 1,
            decision: None,
            created_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
        };
        let b = a
            .apply(
                &Move {
                    to: Submitted,
                    reason: None,
                    decision: None,
                },
                Timestamp::from_micros(5),
            )
            .unwrap();
        assert_eq!(
            (b.state, b.version, b.updated_at.as_micros()),
            (Submitted, 2, 5)
        );
    }

    #[test]
    fn programme_ids_are_slugs() {
        assert!("eu-humanitarian-visa".parse::<ProgrammeId>().is_ok());
        for bad in ["", "EU", "-x", "a b", &"a".repeat(65)] {
            assert!(bad.parse::<ProgrammeId>().is_err(), "{bad}");
        }
    }
}
