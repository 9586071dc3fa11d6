//! Organisations and their staff users.

use crate::clock::Timestamp;
use crate::ids::{OrgId, UserId};
use crate::text::Label;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What kind of organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationKind {
    /// A non-governmental organisation that counsels and refers.
    Ngo,
    /// A deciding authority (ministry, asylum office).
    Authority,
    /// An embassy or consulate deciding visas.
    Embassy,
}

impl OrganisationKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ngo => "ngo",
            Self::Authority => "authority",
            Self::Embassy => "embassy",
        }
    }
}

impl fmt::Display for OrganisationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an organisation kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown organisation kind \"{0}\" (expected ngo, authority or embassy)")]
pub struct InvalidOrganisationKind(pub String);

impl FromStr for OrganisationKind {
    type Err = InvalidOrganisationKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ngo" => Ok(Self::Ngo),
            "authority" => Ok(Self::Authority),
            "embassy" => Ok(Self::Embassy),
            _ => Err(InvalidOrganisationKind(s.to_owned())),
        }
    }
}

/// An organisation. Its name is operational metadata, not personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Its id.
    pub id: OrgId,
    /// What kind.
    pub kind: OrganisationKind,
    /// Its public name.
    pub name: Label,
    /// Created at.
    pub created_at: Timestamp,
}

/// What a staff user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// NGO counsellor: builds and refers cases.
    Counsellor,
    /// Authority caseworker: works the queue, requests information, interviews.
    Caseworker,
    /// Records decisions.
    DecisionMaker,
    /// Administers one organisation's users.
    OrgAdmin,
    /// Administers the instance.
    InstanceAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Self::Counsellor,
        Self::Caseworker,
        Self::DecisionMaker,
        Self::OrgAdmin,
        Self::InstanceAdmin,
    ];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counsellor => "counsellor",
            Self::Caseworker => "caseworker",
            Self::DecisionMaker => "decision_maker",
            Self::OrgAdmin => "org_admin",
            Self::InstanceAdmin => "instance_admin",
        }
    }
}

/// A string that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role \"{0}\" (expected counsellor, caseworker, decision_maker, org_admin or instance_admin)"
)]
pub struct InvalidRole(pub String);

impl FromStr for Role {
    type Err = InvalidRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidRole(s.to_owned()))
    }
}

/// A staff login name: 2–64 characters of lowercase ASCII letters, digits, `.`, `_`, `-`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Login(String);

/// A string that is not a login name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid login name (expected 2-64 lowercase letters, digits, '.', '_' or '-')")]
pub struct InvalidLogin;

impl Login {
    /// The login text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Login {
    type Err = InvalidLogin;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (2..=64).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidLogin)
        }
    }
}

impl TryFrom<String> for Login {
    type Error = InvalidLogin;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Login> for String {
    fn from(l: Login) -> Self {
        l.0
    }
}

/// Staff logins identify staff, who are at risk too: `Debug` hides them.
impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Login(..)")
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A staff user of one organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The organisation they work for.
    pub organisation_id: OrgId,
    /// Login name (stored encrypted, found by blind index).
    pub login: Login,
    /// Display name (stored encrypted).
    pub display_name: Label,
    /// What they may do.
    pub roles: Vec<Role>,
    /// Disabled users cannot act.
    pub disabled: bool,
    /// Created at.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_roles_and_logins() {
        for k in ["ngo", "authority", "embassy"] {
            assert_eq!(k.parse::<OrganisationKind>().unwrap().as_str(), k);
        }
        assert!("club".parse::<OrganisationKind>().is_err());
        assert_eq!(
            "decision_maker".parse::<Role>().unwrap(),
            Role::DecisionMaker
        );
        assert!("boss".parse::<Role>().is_err());
        assert!("anna.k".parse::<Login>().is_ok());
        assert!("Anna".parse::<Login>().is_err());
        assert!("a".parse::<Login>().is_err());
        assert_eq!(
            format!("{:?}", "anna".parse::<Login>().unwrap()),
            "Login(..)"
        );
    }
}
