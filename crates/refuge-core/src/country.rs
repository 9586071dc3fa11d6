//! Countries: ISO 3166-1 alpha-2 codes.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::suggest::clip;

/// All 249 officially assigned ISO 3166-1 alpha-2 codes, sorted. Position in this list is a
/// country's stable [`Country::index`]; new codes assigned by ISO are appended only in a new
/// major version of the facts vocabulary.
const CODES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// A country, as an officially assigned ISO 3166-1 alpha-2 code (`RU`, `BY`, `UA`, …).
///
/// Only the 249 officially assigned codes are accepted: user-assigned codes such as `XK` and
/// reserved codes such as `UK` or `SU` are not countries here. Ordered alphabetically by code.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 2]);

/// Text that is not an officially assigned ISO 3166-1 alpha-2 code. Holds the input (cut to a
/// readable length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 3166-1 alpha-2 country code")]
pub struct InvalidCountry(pub String);

impl Country {
    /// Every valid code, sorted; a country's [`index`](Self::index) is its position here.
    pub const ALL: &'static [&'static str] = CODES;

    /// Belarus.
    pub const BY: Country = Country(*b"BY");
    /// Russia.
    pub const RU: Country = Country(*b"RU");
    /// Ukraine.
    pub const UA: Country = Country(*b"UA");

    /// The code, in upper case (`"RU"`).
    pub fn as_str(&self) -> &'static str {
        CODES.get(usize::from(self.index())).copied().unwrap_or("")
    }

    /// The position of this country in [`Country::ALL`]: stable, dense (0..249), and in the
    /// same order as [`Ord`], for columnar storage.
    pub fn index(&self) -> u16 {
        CODES
            .binary_search_by(|code| code.as_bytes().cmp(self.0.as_slice()))
            .map_or(u16::MAX, |i| i as u16)
    }

    /// The country at `index` in [`Country::ALL`], if there is one.
    pub fn from_index(index: u16) -> Option<Country> {
        match CODES.get(usize::from(index))?.as_bytes() {
            &[a, b] => Some(Country([a, b])),
            _ => None,
        }
    }
}

impl FromStr for Country {
    type Err = InvalidCountry;

    /// Parses a code in any case (`"ru"`, `"Ru"` and `"RU"` are all Russia). No whitespace is
    /// trimmed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let &[a, b] = s.as_bytes() {
            let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
            if CODES
                .binary_search_by(|c| c.as_bytes().cmp(code.as_slice()))
                .is_ok()
            {
                return Ok(Country(code));
            }
        }
        Err(InvalidCountry(clip(s)))
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountryVisitor;

        impl Visitor<'_> for CountryVisitor {
            type Value = Country;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 3166-1 alpha-2 country code")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Country, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(CountryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_complete_sorted_and_well_formed() {
        assert_eq!(Country::ALL.len(), 249);
        assert!(
            Country::ALL.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for code in Country::ALL {
            assert_eq!(code.len(), 2);
            assert!(code.bytes().all(|b| b.is_ascii_uppercase()), "{code}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for (i, code) in Country::ALL.iter().enumerate() {
            let c: Country = code.parse().unwrap();
            assert_eq!(c.as_str(), *code);
            assert_eq!(c.to_string(), *code);
            assert_eq!(usize::from(c.index()), i);
            assert_eq!(Country::from_index(c.index()), Some(c));
            let lower: Country = code.to_ascii_lowercase().parse().unwrap();
            assert_eq!(lower, c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<Country>(&json).unwrap(), c);
        }
        assert_eq!(Country::from_index(249), None);
        assert_eq!(Country::from_index(u16::MAX), None);
    }

    #[test]
    fn order_matches_index() {
        let all: Vec<Country> = Country::ALL.iter().map(|c| c.parse().unwrap()).collect();
        assert!(
            all.windows(2)
                .all(|w| w[0] < w[1] && w[0].index() < w[1].index())
        );
    }

    #[test]
    fn constants_are_valid() {
        for (c, s) in [
            (Country::BY, "BY"),
            (Country::RU, "RU"),
            (Country::UA, "UA"),
        ] {
            assert_eq!(s.parse::<Country>().unwrap(), c);
            assert_eq!(c.as_str(), s);
        }
    }

    #[test]
    fn case_insensitive() {
        assert_eq!("ru".parse::<Country>().unwrap(), Country::RU);
        assert_eq!("rU".parse::<Country>().unwrap(), Country::RU);
        assert_eq!(format!("{:?}", Country::RU), "Country(RU)");
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "", "R", "RUS", "XK", "UK", "SU", "ZZ", " RU", "RU ", "Р У", "R1", "🇷🇺",
        ] {
            let err = bad.parse::<Country>().unwrap_err();
            assert_eq!(err, InvalidCountry(bad.to_owned()));
        }
        assert_eq!(
            "RUS".parse::<Country>().unwrap_err().to_string(),
            r#""RUS" is not an ISO 3166-1 alpha-2 country code"#
        );
    }

    #[test]
    fn long_input_is_clipped_in_error() {
        let long = "X".repeat(10_000);
        let err = long.parse::<Country>().unwrap_err();
        assert!(err.to_string().len() < 100);
    }

    #[test]
    fn json_errors() {
        let err = serde_json::from_str::<Country>("\"RUS\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#""RUS" is not an ISO 3166-1 alpha-2 country code"#),
            "{err}"
        );
        assert!(err.contains("line 1"), "{err}");
        let err = serde_json::from_str::<Country>("7")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected an ISO 3166-1 alpha-2 country code"),
            "{err}"
        );
    }
}
