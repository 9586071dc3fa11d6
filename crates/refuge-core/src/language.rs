//! Languages: ISO 639-1 two-letter codes, and sets of them.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::suggest::clip;

/// All 183 ISO 639-1 codes in current use, sorted. Deprecated codes (`sh` Serbo-Croatian,
/// `bh` Bihari, and the withdrawn `in`, `iw`, `ji`, `jw`, `mo`) are not included. Position in
/// this list is a language's stable [`Language::index`].
const CODES: &[&str] = &[
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bi",
    "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de",
    "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr", "fy",
    "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz", "ia",
    "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj", "kk",
    "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li", "ln", "lo",
    "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb", "nd",
    "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi", "pl",
    "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk", "sl",
    "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti", "tk",
    "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo", "wa",
    "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

/// The number of words in a [`LanguageSet`] bitmask.
const WORDS: usize = CODES.len().div_ceil(64);

/// A language, as an ISO 639-1 two-letter code (`ru`, `uk`, `be`, …), held in lower case.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Language([u8; 2]);

/// Text that is not an ISO 639-1 code. Holds the input (cut to a readable length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 639-1 language code")]
pub struct InvalidLanguage(pub String);

impl Language {
    /// Every valid code, sorted; a language's [`index`](Self::index) is its position here.
    pub const ALL: &'static [&'static str] = CODES;

    /// Belarusian.
    pub const BE: Language = Language(*b"be");
    /// German.
    pub const DE: Language = Language(*b"de");
    /// English.
    pub const EN: Language = Language(*b"en");
    /// Dutch.
    pub const NL: Language = Language(*b"nl");
    /// Russian.
    pub const RU: Language = Language(*b"ru");
    /// Ukrainian.
    pub const UK: Language = Language(*b"uk");

    /// The code, in lower case (`"ru"`).
    pub fn as_str(&self) -> &'static str {
        CODES.get(usize::from(self.index())).copied().unwrap_or("")
    }

    /// The position of this language in [`Language::ALL`]: stable, dense (0..183), and in the
    /// same order as [`Ord`], for columnar storage.
    pub fn index(&self) -> u8 {
        CODES
            .binary_search_by(|code| code.as_bytes().cmp(self.0.as_slice()))
            .map_or(u8::MAX, |i| i as u8)
    }

    /// The language at `index` in [`Language::ALL`], if there is one.
    pub fn from_index(index: u8) -> Option<Language> {
        match CODES.get(usize::from(index))?.as_bytes() {
            &[a, b] => Some(Language([a, b])),
            _ => None,
        }
    }
}

impl FromStr for Language {
    type Err = InvalidLanguage;

    /// Parses a code in any case (`"RU"`, `"Ru"` and `"ru"` are all Russian). No whitespace is
    /// trimmed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let &[a, b] = s.as_bytes() {
            let code = [a.to_ascii_lowercase(), b.to_ascii_lowercase()];
            if CODES
                .binary_search_by(|c| c.as_bytes().cmp(code.as_slice()))
                .is_ok()
            {
                return Ok(Language(code));
            }
        }
        Err(InvalidLanguage(clip(s)))
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Language({})", self.as_str())
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LanguageVisitor;

        impl Visitor<'_> for LanguageVisitor {
            type Value = Language;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 639-1 language code")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Language, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(LanguageVisitor)
    }
}

/// A set of languages, as a fixed-size bitmask indexed by [`Language::index`]: `Copy`, no
/// allocation, iterated in code order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LanguageSet([u64; WORDS]);

impl LanguageSet {
    /// The empty set.
    pub const fn new() -> Self {
        LanguageSet([0; WORDS])
    }

    fn locate(language: Language) -> (usize, u64) {
        let i = usize::from(language.index());
        (i / 64, 1u64 << (i % 64))
    }

    /// Adds `language`; returns whether it was not already present.
    pub fn insert(&mut self, language: Language) -> bool {
        let (word, bit) = Self::locate(language);
        match self.0.get_mut(word) {
            Some(w) => {
                let added = *w & bit == 0;
                *w |= bit;
                added
            }
            None => false,
        }
    }

    /// Removes `language`; returns whether it was present.
    pub fn remove(&mut self, language: Language) -> bool {
        let (word, bit) = Self::locate(language);
        match self.0.get_mut(word) {
            Some(w) => {
                let present = *w & bit != 0;
                *w &= !bit;
                present
            }
            None => false,
        }
    }

    /// Whether `language` is in the set.
    pub fn contains(&self, language: Language) -> bool {
        let (word, bit) = Self::locate(language);
        self.0.get(word).is_some_and(|w| w & bit != 0)
    }

    /// The number of languages in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The languages in the set, in code order.
    pub fn iter(&self) -> impl Iterator<Item = Language> + '_ {
        (0..CODES.len()).filter_map(move |i| {
            let set = self
                .0
                .get(i / 64)
                .is_some_and(|w| w & (1u64 << (i % 64)) != 0);
            if set {
                u8::try_from(i).ok().and_then(Language::from_index)
            } else {
                None
            }
        })
    }

    /// The raw bitmask words (bit `i % 64` of word `i / 64` is the language with index `i`),
    /// for columnar storage.
    pub fn words(&self) -> [u64; WORDS] {
        self.0
    }

    /// A set from raw bitmask words; `None` if a bit beyond the last language is set.
    pub fn from_words(words: [u64; WORDS]) -> Option<Self> {
        let valid_bits = CODES.len() % 64;
        let last_mask = if valid_bits == 0 {
            u64::MAX
        } else {
            (1u64 << valid_bits) - 1
        };
        match words.last() {
            Some(last) if last & !last_mask != 0 => None,
            _ => Some(LanguageSet(words)),
        }
    }
}

impl FromIterator<Language> for LanguageSet {
    fn from_iter<I: IntoIterator<Item = Language>>(iter: I) -> Self {
        let mut set = LanguageSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<Language> for LanguageSet {
    fn extend<I: IntoIterator<Item = Language>>(&mut self, iter: I) {
        for language in iter {
            self.insert(language);
        }
    }
}

impl fmt::Debug for LanguageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|l| l.as_str()))
            .finish()
    }
}

impl Serialize for LanguageSet {
    /// As an array of codes, in code order.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for language in self.iter() {
            seq.serialize_element(language.as_str())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for LanguageSet {
    /// From an array of codes, in any order and any case; duplicates are accepted.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = LanguageSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of ISO 639-1 language codes")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LanguageSet, A::Error> {
                let mut set = LanguageSet::new();
                while let Some(language) = seq.next_element::<Language>()? {
                    set.insert(language);
                }
                Ok(set)
            }
        }

        deserializer.deserialize_seq(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_complete_sorted_and_well_formed() {
        assert_eq!(Language::ALL.len(), 183);
        assert_eq!(WORDS, 3);
        assert!(
            Language::ALL.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for code in Language::ALL {
            assert_eq!(code.len(), 2);
            assert!(code.bytes().all(|b| b.is_ascii_lowercase()), "{code}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for (i, code) in Language::ALL.iter().enumerate() {
            let l: Language = code.parse().unwrap();
            assert_eq!(l.as_str(), *code);
            assert_eq!(l.to_string(), *code);
            assert_eq!(usize::from(l.index()), i);
            assert_eq!(Language::from_index(l.index()), Some(l));
            assert_eq!(code.to_ascii_uppercase().parse::<Language>().unwrap(), l);
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<Language>(&json).unwrap(), l);
        }
        assert_eq!(Language::from_index(183), None);
        assert_eq!(Language::from_index(u8::MAX), None);
    }

    #[test]
    fn constants_are_valid() {
        for (l, s) in [
            (Language::BE, "be"),
            (Language::DE, "de"),
            (Language::EN, "en"),
            (Language::NL, "nl"),
            (Language::RU, "ru"),
            (Language::UK, "uk"),
        ] {
            assert_eq!(s.parse::<Language>().unwrap(), l);
            assert_eq!(l.as_str(), s);
        }
        assert_eq!(format!("{:?}", Language::UK), "Language(uk)");
    }

    #[test]
    fn rejects_invalid() {
        for bad in ["", "r", "rus", "sh", "bh", "iw", "xx", " ru", "ру", "r1"] {
            assert_eq!(
                bad.parse::<Language>().unwrap_err(),
                InvalidLanguage(bad.to_owned())
            );
        }
        assert_eq!(
            "rus".parse::<Language>().unwrap_err().to_string(),
            r#""rus" is not an ISO 639-1 language code"#
        );
    }

    #[test]
    fn set_operations() {
        let mut set = LanguageSet::new();
        assert!(set.is_empty());
        assert!(set.insert(Language::UK));
        assert!(set.insert(Language::EN));
        assert!(!set.insert(Language::EN));
        assert!(set.contains(Language::EN));
        assert!(!set.contains(Language::RU));
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Language::EN, Language::UK]
        );
        assert!(set.remove(Language::EN));
        assert!(!set.remove(Language::EN));
        assert_eq!(set.len(), 1);
        assert_eq!(format!("{set:?}"), r#"{"uk"}"#);
    }

    #[test]
    fn full_set_and_words_round_trip() {
        let all: LanguageSet = Language::ALL.iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(all.len(), 183);
        assert_eq!(all.iter().count(), 183);
        assert_eq!(LanguageSet::from_words(all.words()), Some(all));
        let mut words = all.words();
        words[2] |= 1 << 63;
        assert_eq!(LanguageSet::from_words(words), None);
        assert_eq!(
            LanguageSet::from_words([0; WORDS]),
            Some(LanguageSet::new())
        );
        let last = Language::from_index(182).unwrap();
        let one: LanguageSet = [last].into_iter().collect();
        assert_eq!(LanguageSet::from_words(one.words()), Some(one));
    }

    #[test]
    fn set_json() {
        let set: LanguageSet = [Language::UK, Language::RU, Language::EN]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["en","ru","uk"]"#);
        assert_eq!(serde_json::from_str::<LanguageSet>(&json).unwrap(), set);
        let dup: LanguageSet = serde_json::from_str(r#"["RU","ru","en","uk"]"#).unwrap();
        assert_eq!(dup, set);
        assert_eq!(
            serde_json::from_str::<LanguageSet>("[]").unwrap(),
            LanguageSet::new()
        );
        let err = serde_json::from_str::<LanguageSet>(r#"["en","rus"]"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#""rus" is not an ISO 639-1 language code"#),
            "{err}"
        );
        assert!(err.contains("line 1"), "{err}");
        let err = serde_json::from_str::<LanguageSet>(r#""en""#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected an array of ISO 639-1 language codes"),
            "{err}"
        );
    }
}
