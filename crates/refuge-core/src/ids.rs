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
id_type!(
    /// A piece of evidence (an uploaded file) on a case.
    EvidenceId
);
id_type!(
    /// A message on a case: a request for information, an answer or a note.
    MessageId
);
id_type!(
    /// A referral of a case from one organisation to another.
    ReferralId
);
id_type!(
    /// An export of cases, requested by one staff user and approved by another.
    ExportId
);

impl OrgId {
    /// The pseudo-organisation that instance-wide events (key rotation, set-up) chain under.
    pub const INSTANCE: OrgId = OrgId(Uuid::nil());
}

/// A short, human-friendly case reference such as `RF-0K3M-Q9TD-2XAB`: 60 bits in Crockford
/// base32 (no I, L, O or U), so that it can be read over a bad phone line. The first 24 bits
/// count minutes since 2024 (so new references sort together and index inserts stay local), the
/// other 36 are random (so a reference cannot be guessed from another). It carries no personal
/// data; on its own it grants nothing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CaseReference(String);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 2024-01-01T00:00:00Z in Unix seconds.
const REFERENCE_EPOCH: i64 = 1_704_067_200;

impl CaseReference {
    /// Build a reference for a case created at `at`, from five random bytes (36 bits used).
    pub fn new(at: Timestamp, random: [u8; 5]) -> Self {
        let minutes =
            ((at.as_micros() / 1_000_000 - REFERENCE_EPOCH).max(0) / 60) as u64 & 0xFF_FFFF;
        let rand = u64::from_be_bytes([
            0, 0, 0, random[0], random[1], random[2], random[3], random[4],
        ]) >> 4;
        let mut n = (minutes << 36) | rand;
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
        let t = Timestamp::from_micros(1_790_000_000_000_000);
        let r = CaseReference::new(t, [0xAB; 5]);
        let later = CaseReference::new(Timestamp::from_micros(1_790_000_600_000_000), [0x00; 5]);
        assert!(later > r, "references sort by creation minute");
        assert_ne!(CaseReference::new(t, [1; 5]), CaseReference::new(t, [2; 5]));
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
