//! Identifiers. Every record key is a UUIDv7 (time-ordered, so inserts stay local in indexes),
//! built from an injected instant and injected random bytes.

use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Build a UUIDv7 from a time and ten random bytes (the caller's injected entropy).
pub fn uuid_v7(at: Timestamp, random: [u8; 10]) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(at.as_millis(), &random).into_uuid()
}

/// A string that is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a valid id (expected a UUID such as 0192f0c1-7d2a-7cc3-8a1e-2b1f3c4d5e6f)")]
pub struct InvalidId(pub String);

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn new(at: Timestamp, random: [u8; 10]) -> Self {
                Self(uuid_v7(at, random))
            }
            /// The raw 16 bytes, as bound into associated data and hashes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// From raw bytes.
            pub fn from_bytes(b: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| InvalidId(s.to_owned()))
            }
        }
    };
}

id_type!(
    /// An organisation (NGO, authority, embassy).
    OrgId
);
id_type!(
    /// A staff user.
    UserId
);
id_type!(
    /// A person whose identity is held encrypted.
    PersonId
);
id_type!(
    /// A case: one person's matter within an organisation.
    CaseId
);
id_type!(
    /// An application of a case to a programme.
    ApplicationId
);
id_type!(
    /// An event in the append-only log.
    EventId
);
id_type!(
    /// A deadline on a case.
    DeadlineId
);

impl OrgId {
    /// The pseudo-organisation that instance-wide events (key rotation, set-up) chain under.
    pub const INSTANCE: OrgId = OrgId(Uuid::nil());
}

/// A short, human-friendly case reference such as `RF-7K3M-Q9TD-2XAB`: 60 random bits in
/// Crockford base32 (no I, L, O or U), so that it can be read over a bad phone line and
/// collisions stay negligible at tens of millions of cases. It carries no personal data.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseReference(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl CaseReference {
    /// Build a reference from eight random bytes (only 60 bits are used).
    pub fn from_random(random: [u8; 8]) -> Self {
        let mut n = u64::from_be_bytes(random) >> 4;
        let mut chars = [b'0'; 12];
        for c in chars.iter_mut().rev() {
            *c = CROCKFORD.get((n & 31) as usize).copied().unwrap_or(b'0');
            n >>= 5;
        }
        let s = String::from_utf8_lossy(&chars).into_owned();
        Self(format!("RF-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12]))
    }

    /// The reference text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not a case reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a case reference (expected RF-XXXX-XXXX-XXXX)")]
pub struct InvalidReference(pub String);

impl FromStr for CaseReference {
    type Err = InvalidReference;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up: String = s
            .trim()
            .to_ascii_uppercase()
            .chars()
            .map(|c| match c {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            })
            .collect();
        let body = up.strip_prefix("RF-").unwrap_or(&up);
        let groups: Vec<&str> = body.split('-').collect();
        let ok = groups.len() == 3
            && groups
                .iter()
                .all(|g| g.len() == 4 && g.bytes().all(|b| CROCKFORD.contains(&b)));
        if ok {
            Ok(Self(format!("RF-{body}")))
        } else {
            Err(InvalidReference(s.to_owned()))
        }
    }
}

impl TryFrom<String> for CaseReference {
    type Error = InvalidReference;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CaseReference> for String {
    fn from(r: CaseReference) -> Self {
        r.0
    }
}

impl fmt::Display for CaseReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CaseReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaseReference({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_is_time_ordered() {
        let a = CaseId::new(Timestamp::from_micros(1_000_000), [9; 10]);
        let b = CaseId::new(Timestamp::from_micros(2_000_000), [0; 10]);
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.to_string().parse::<CaseId>().unwrap(), a);
        assert!("nope".parse::<CaseId>().is_err());
    }

    #[test]
    fn references_round_trip_and_forgive_lookalikes() {
        let r = CaseReference::from_random([0xAB; 8]);
        assert_eq!(r.as_str().len(), 17);
        assert_eq!(r.as_str().parse::<CaseReference>().unwrap(), r);
        let lower = r.as_str().to_lowercase();
        assert_eq!(lower.parse::<CaseReference>().unwrap(), r);
        assert_eq!(
            "rf-oooo-iiii-llll"
                .parse::<CaseReference>()
                .unwrap()
                .as_str(),
            "RF-0000-1111-1111"
        );
        assert!("RF-0000-1111".parse::<CaseReference>().is_err());
        assert!("RF-UUUU-1111-1111".parse::<CaseReference>().is_err());
    }
}
