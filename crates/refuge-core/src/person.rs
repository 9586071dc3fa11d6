//! Persons: who someone is. Identity is kept apart from facts and is never seen by rules.
//! It is stored only encrypted under the person's own data key.

use crate::country::Country;
use crate::text::Label;
use serde::{Deserialize, Serialize};
use time::Date;

/// The writing system of a name, so the same name can be kept in several scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    /// Latin alphabet (transliterations, EU documents).
    Latin,
    /// Cyrillic alphabet (Russian, Belarusian, Ukrainian originals).
    Cyrillic,
    /// Any other script.
    Other,
}

impl Script {
    /// Guess the script of a name from its letters.
    pub fn detect(s: &str) -> Self {
        let mut latin = 0usize;
        let mut cyrillic = 0usize;
        for c in s.chars().filter(|c| c.is_alphabetic()) {
            if c.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(&c) {
                latin += 1;
            } else if ('\u{0400}'..='\u{052F}').contains(&c) {
                cyrillic += 1;
            }
        }
        if cyrillic > latin {
            Script::Cyrillic
        } else if latin > 0 {
            Script::Latin
        } else {
            Script::Other
        }
    }
}

/// One rendering of a person's full name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonName {
    /// The script it is written in; detected from the letters when not given.
    #[serde(default)]
    pub script: Option<Script>,
    /// The full name as written.
    pub value: Label,
}

impl PersonName {
    /// The script given, or the one detected.
    pub fn script(&self) -> Script {
        self.script
            .unwrap_or_else(|| Script::detect(self.value.as_str()))
    }
}

/// Kinds of identity document whose numbers may be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityDocumentKind {
    /// Russian or Belarusian internal passport.
    InternalPassport,
    /// Passport for travel abroad.
    InternationalPassport,
    /// Military service card.
    MilitaryId,
    /// National identity card.
    NationalId,
    /// A residence permit of the host country.
    ResidencePermit,
    /// A visa.
    Visa,
    /// Anything else.
    Other,
}

/// An identity document and its number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityDocument {
    /// What kind of document.
    pub kind: IdentityDocumentKind,
    /// Its number as printed.
    pub number: Label,
    /// The issuing country, if known.
    #[serde(default)]
    pub issuer: Option<Country>,
}

/// Kinds of contact channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// Telephone number.
    Phone,
    /// E-mail address.
    Email,
    /// Signal messenger.
    Signal,
    /// Telegram messenger.
    Telegram,
    /// Anything else.
    Other,
}

/// A way to reach a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// The channel.
    pub kind: ContactKind,
    /// The address or number.
    pub value: Label,
}

/// Why a person record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonError {
    /// Neither a pseudonym nor any name was given.
    #[error("a person needs a \"pseudonym\" or at least one entry in \"names\"")]
    Anonymous,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonInput {
    #[serde(default)]
    pseudonym: Option<Label>,
    #[serde(default)]
    names: Vec<PersonName>,
    #[serde(default)]
    birth_date: Option<Date>,
    #[serde(default)]
    documents: Vec<IdentityDocument>,
    #[serde(default)]
    contacts: Vec<Contact>,
}

/// Who someone is: pseudonym, names in several scripts, birth date, documents, contacts.
///
/// `Debug` shows counts only, never content. Parsed from JSON such as
/// `{"pseudonym": "Sasha", "names": [{"value": "Александр Кузнецов"}], "birth_date": "1994-05-02"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PersonInput")]
pub struct Person {
    /// The name staff use for the case; chosen so as not to identify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<Label>,
    /// Full names, in as many scripts as known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<PersonName>,
    /// Date of birth, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<Date>,
    /// Identity documents.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<IdentityDocument>,
    /// Contacts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
}

impl TryFrom<PersonInput> for Person {
    type Error = PersonError;
    fn try_from(i: PersonInput) -> Result<Self, Self::Error> {
        if i.pseudonym.is_none() && i.names.is_empty() {
            return Err(PersonError::Anonymous);
        }
        Ok(Self {
            pseudonym: i.pseudonym,
            names: i.names,
            birth_date: i.birth_date,
            documents: i.documents,
            contacts: i.contacts,
        })
    }
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Person")
            .field("names", &self.names.len())
            .field("documents", &self.documents.len())
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hides_itself() {
        let p: Person = serde_json::from_str(
            r#"{"pseudonym":"Sasha","names":[{"value":"Александр Сергеевич Кузнецов"},
                {"script":"latin","value":"Aleksandr Kuznetsov"}],
                "birth_date":"1994-05-02",
                "documents":[{"kind":"international_passport","number":"75 1234567","issuer":"RU"}],
                "contacts":[{"kind":"signal","value":"+7 900 000 00 00"}]}"#,
        )
        .unwrap();
        assert_eq!(p.names[0].script(), Script::Cyrillic);
        assert_eq!(p.names[1].script(), Script::Latin);
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("Кузнецов") && !dbg.contains("Sasha"));
        let back: Person = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn rejects_unknown_fields_and_anonymous_persons() {
        let e = serde_json::from_str::<Person>(r#"{"nmes":[]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `nmes`"), "{e}");
        let e = serde_json::from_str::<Person>(r#"{"birth_date":"1990-01-01"}"#).unwrap_err();
        assert!(e.to_string().contains("pseudonym"), "{e}");
        let e = serde_json::from_str::<Person>(r#"{"pseudonym":"x","birth_date":"1990-13-01"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
    }
}
