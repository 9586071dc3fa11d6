//! Cases and their deadlines.

use crate::clock::Timestamp;
use crate::facts::Facts;
use crate::ids::{CaseId, CaseReference, DeadlineId, OrgId, PersonId};
use crate::text::Text;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::Date;

/// One person's matter within an organisation: their facts and, through applications, the
/// programmes they apply to. The person's identity is held apart (see [`crate::person`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Its id.
    pub id: CaseId,
    /// A short reference that can be read aloud; carries no personal data.
    pub reference: CaseReference,
    /// The organisation holding it.
    pub organisation_id: OrgId,
    /// The person it is about.
    pub person_id: PersonId,
    /// What is known about the person's situation.
    pub facts: Facts,
    /// Optimistic-concurrency version: starts at 1, grows by one with every change.
    pub version: u64,
    /// Created at.
    pub created_at: Timestamp,
    /// Last changed at.
    pub updated_at: Timestamp,
}

/// Kinds of deadline tracked on a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// The current visa or permit expires.
    StayExpiry,
    /// A transfer (e.g. Dublin) order takes effect.
    TransferOrder,
    /// A deportation order takes effect.
    DeportationOrder,
    /// The last day to lodge an appeal.
    AppealLimit,
    /// A decision-and-departure moratorium ends.
    MoratoriumEnd,
    /// Anything else.
    Other,
}

impl DeadlineKind {
    /// Every kind.
    pub const ALL: [DeadlineKind; 6] = [
        Self::StayExpiry,
        Self::TransferOrder,
        Self::DeportationOrder,
        Self::AppealLimit,
        Self::MoratoriumEnd,
        Self::Other,
    ];

    /// The kind's name in files, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StayExpiry => "stay_expiry",
            Self::TransferOrder => "transfer_order",
            Self::DeportationOrder => "deportation_order",
            Self::AppealLimit => "appeal_limit",
            Self::MoratoriumEnd => "moratorium_end",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for DeadlineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a deadline kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown deadline kind \"{0}\" (expected one of stay_expiry, transfer_order, deportation_order, appeal_limit, moratorium_end, other)"
)]
pub struct InvalidDeadlineKind(pub String);

impl FromStr for DeadlineKind {
    type Err = InvalidDeadlineKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| InvalidDeadlineKind(s.to_owned()))
    }
}

/// A dated deadline on a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// Its id.
    pub id: DeadlineId,
    /// The case.
    pub case_id: CaseId,
    /// The organisation holding the case.
    pub organisation_id: OrgId,
    /// What falls due.
    pub kind: DeadlineKind,
    /// The day it falls due (operational: stored in plaintext, so that due deadlines can be
    /// listed without decrypting anything).
    pub due_on: Date,
    /// A note (may contain personal data; stored encrypted).
    pub note: Option<Text>,
    /// When it was marked done; `None` while it is open.
    pub done_at: Option<Timestamp>,
    /// Optimistic-concurrency version: 1 when set, 2 once done.
    pub version: u64,
    /// Set at.
    pub created_at: Timestamp,
}

/// How urgent a deadline is on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Past due.
    Overdue,
    /// Due within 7 days (today included).
    Within7Days,
    /// Due within 30 days.
    Within30Days,
    /// Later.
    Later,
}

impl Deadline {
    /// Whether it has been marked done.
    pub fn is_done(&self) -> bool {
        self.done_at.is_some()
    }

    /// Whole days from `today` until the deadline (negative when past).
    pub fn days_until(&self, today: Date) -> i64 {
        (self.due_on - today).whole_days()
    }

    /// Urgency on `today`.
    pub fn urgency(&self, today: Date) -> Urgency {
        match self.days_until(today) {
            d if d < 0 => Urgency::Overdue,
            0..=7 => Urgency::Within7Days,
            8..=30 => Urgency::Within30Days,
            _ => Urgency::Later,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn urgency_bands() {
        let d = |due| Deadline {
            id: DeadlineId::from_bytes([0; 16]),
            case_id: CaseId::from_bytes([0; 16]),
            organisation_id: OrgId::from_bytes([0; 16]),
            kind: DeadlineKind::TransferOrder,
            due_on: due,
            note: None,
            done_at: None,
            version: 1,
            created_at: Timestamp::from_micros(0),
        };
        let today = date!(2026 - 11 - 22);
        assert_eq!(d(date!(2026 - 11 - 21)).urgency(today), Urgency::Overdue);
        assert_eq!(d(today).urgency(today), Urgency::Within7Days);
        assert_eq!(
            d(date!(2026 - 11 - 29)).urgency(today),
            Urgency::Within7Days
        );
        assert_eq!(
            d(date!(2026 - 12 - 22)).urgency(today),
            Urgency::Within30Days
        );
        assert_eq!(d(date!(2027 - 01 - 22)).urgency(today), Urgency::Later);
        assert_eq!(d(date!(2026 - 11 - 25)).days_until(today), 3);
    }

    #[test]
    fn deadline_kinds_round_trip() {
        for k in DeadlineKind::ALL {
            assert_eq!(k.as_str().parse::<DeadlineKind>().unwrap(), k);
        }
        assert!("soon".parse::<DeadlineKind>().is_err());
    }
}
