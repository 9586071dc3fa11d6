//! The "check your options" questionnaire: one question per fact an applicant can answer,
//! in plain words (the words are in `locales/`), every one skippable.

use refuge_core::facts::{Fact, FactType, Facts};
use serde_json::{Map, Value};

/// How a question is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Pick one country from [`COUNTRIES`].
    Country,
    /// A date.
    Date,
    /// Yes / no / don't know.
    YesNo,
    /// One of the fact's values, or don't know.
    OneOf,
    /// Any of the fact's values, "none of these", or don't know.
    AnyOf,
    /// Any of [`LANGUAGE_CHOICES`].
    Languages,
}

/// A question about one fact.
#[derive(Clone, Copy, Debug)]
pub struct Question {
    /// The fact; its name is the form field's name.
    pub fact: Fact,
    /// How it is asked.
    pub input: Input,
}

/// A group of questions shown together.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    /// Translation key of the heading.
    pub key: &'static str,
    /// Its questions.
    pub questions: &'static [Question],
}

const fn q(fact: Fact, input: Input) -> Question {
    Question { fact, input }
}

/// The questionnaire. Facts staff establish (exclusion indicators, sanctions) are not asked.
pub const SECTIONS: [Section; 4] = [
    Section {
        key: "section-you",
        questions: &[
            q(Fact::Nationality, Input::Country),
            q(Fact::BirthDate, Input::Date),
            q(Fact::Sex, Input::OneOf),
            q(Fact::Profession, Input::OneOf),
            q(Fact::Languages, Input::Languages),
        ],
    },
    Section {
        key: "section-where",
        questions: &[
            q(Fact::CurrentCountry, Input::Country),
            q(Fact::LeftOriginOn, Input::Date),
            q(Fact::StayStatus, Input::OneOf),
            q(Fact::StayExpiresOn, Input::Date),
            q(Fact::ProtectionStatus, Input::OneOf),
            q(Fact::DeportationOrder, Input::OneOf),
            q(Fact::DeportationDestination, Input::Country),
        ],
    },
    Section {
        key: "section-service",
        questions: &[
            q(Fact::ServiceStatus, Input::OneOf),
            q(Fact::Refusal, Input::OneOf),
            q(Fact::RefusalStage, Input::OneOf),
            q(Fact::SummonsReceived, Input::YesNo),
            q(Fact::ForcedContract, Input::YesNo),
            q(Fact::ObjectionGrounds, Input::AnyOf),
        ],
    },
    Section {
        key: "section-risks",
        questions: &[
            q(Fact::Prosecution, Input::OneOf),
            q(Fact::ProtestRecord, Input::YesNo),
            q(Fact::Documents, Input::AnyOf),
            q(Fact::ReferredByNgo, Input::YesNo),
        ],
    },
];

/// Countries offered: origin countries, the countries people reach first, EU member states
/// and a few others. Each has a `country-XX` message.
pub const COUNTRIES: [&str; 50] = [
    "RU", "BY", "UA", "GE", "AM", "KZ", "TR", "MN", "RS", "KG", "AZ", "MD", "UZ", "IL", "AE", "AT",
    "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
    "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "NO", "CH", "GB", "US", "CA", "BA",
    "ME", "AL",
];

/// Languages offered. Each has a `language-xx` message.
pub const LANGUAGE_CHOICES: [&str; 33] = [
    "ru", "uk", "be", "en", "de", "fr", "nl", "pl", "lt", "lv", "et", "fi", "sv", "es", "it", "pt",
    "cs", "sk", "hu", "ro", "bg", "hr", "sl", "el", "da", "ga", "mt", "lb", "ka", "hy", "kk", "tr",
    "mn",
];

/// The value of a form field meaning "none of these" for a set question.
pub const NONE_OF_THESE: &str = "none-of-these";

/// An answer that is not what its question expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AnswerError {
    /// The form field (a fact name).
    pub field: String,
    /// What was expected.
    pub message: String,
}

/// The values of an enumerated or set fact.
pub fn values(fact: Fact) -> &'static [&'static str] {
    fact.fact_type().values()
}

/// Every question, in order.
pub fn all() -> impl Iterator<Item = Question> {
    SECTIONS.iter().flat_map(|s| s.questions.iter().copied())
}

/// Read facts from form pairs (`fact=value`, repeated for sets). Empty means unknown; fields
/// that are not questions are ignored.
pub fn facts_from_form(pairs: &[(String, String)]) -> Result<Facts, AnswerError> {
    let mut m = Map::new();
    for question in all() {
        let name = question.fact.name();
        let given: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        let err = |message: String| AnswerError {
            field: name.to_owned(),
            message,
        };
        match question.input {
            Input::AnyOf | Input::Languages => {
                if given.is_empty() {
                    continue;
                }
                let items: Vec<Value> = given
                    .iter()
                    .filter(|v| **v != NONE_OF_THESE)
                    .map(|v| Value::String((*v).to_owned()))
                    .collect();
                m.insert(name.to_owned(), Value::Array(items));
            }
            Input::YesNo => match given.first().copied() {
                None => {}
                Some("yes") => {
                    m.insert(name.to_owned(), Value::Bool(true));
                }
                Some("no") => {
                    m.insert(name.to_owned(), Value::Bool(false));
                }
                Some(other) => return Err(err(format!("expected yes or no, not {other:?}"))),
            },
            Input::Country | Input::Date | Input::OneOf => {
                if let Some(v) = given.first() {
                    if given.len() > 1 {
                        return Err(err("expected one answer".into()));
                    }
                    m.insert(name.to_owned(), Value::String((*v).to_owned()));
                }
            }
        }
    }
    let mut facts = Facts::default();
    for (name, value) in m {
        let Ok(fact) = name.parse::<Fact>() else {
            continue;
        };
        match refuge_core::facts::FactValue::from_json(fact, &value) {
            Ok(v) => {
                if let Err(e) = facts.set(fact, v) {
                    return Err(AnswerError {
                        field: name,
                        message: e.to_string(),
                    });
                }
            }
            Err(e) => {
                return Err(AnswerError {
                    field: name,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(facts)
}

/// Facts as form pairs, the inverse of [`facts_from_form`] (to carry answers to the next
/// page in hidden fields).
pub fn facts_to_form(facts: &Facts) -> Vec<(String, String)> {
    let Ok(Value::Object(m)) = serde_json::to_value(facts) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in m {
        match v {
            Value::Bool(b) => out.push((k, if b { "yes" } else { "no" }.to_owned())),
            Value::String(s) => out.push((k, s)),
            Value::Array(items) if items.is_empty() => out.push((k, NONE_OF_THESE.to_owned())),
            Value::Array(items) => {
                for i in items {
                    if let Value::String(s) = i {
                        out.push((k.clone(), s));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether the fact is a set (several answers).
pub fn is_set(fact: Fact) -> bool {
    matches!(
        fact.fact_type(),
        FactType::EnumSet { .. } | FactType::LanguageSet
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn answers_become_facts_and_back() {
        let f = facts_from_form(&pairs(&[
            ("nationality", "RU"),
            ("birth_date", "1997-06-10"),
            ("sex", "male"),
            ("summons_received", "yes"),
            ("forced_contract", ""),
            ("documents", "internal_passport"),
            ("documents", "military_id"),
            ("objection_grounds", NONE_OF_THESE),
            ("languages", "ru"),
            ("languages", "en"),
            ("csrf", "x"),
        ]))
        .unwrap();
        let j = serde_json::to_value(&f).unwrap();
        assert_eq!(j["nationality"], "RU");
        assert_eq!(j["summons_received"], true);
        assert!(j.get("forced_contract").is_none());
        assert_eq!(j["objection_grounds"], serde_json::json!([]));
        assert_eq!(j["documents"].as_array().unwrap().len(), 2);
        let back = facts_from_form(&facts_to_form(&f)).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn bad_answers_name_the_field() {
        let e = facts_from_form(&pairs(&[("birth_date", "10.06.1997")])).unwrap_err();
        assert_eq!(e.field, "birth_date");
        let e = facts_from_form(&pairs(&[("sex", "robot")])).unwrap_err();
        assert_eq!(e.field, "sex");
        let e = facts_from_form(&pairs(&[("protest_record", "maybe")])).unwrap_err();
        assert_eq!(e.field, "protest_record");
    }

    #[test]
    fn every_applicant_fact_is_asked_once() {
        let mut seen: Vec<Fact> = all().map(|q| q.fact).collect();
        let n = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n);
        for f in Fact::ALL {
            let staff_only = matches!(f, Fact::ExclusionIndicator | Fact::SanctionsListed);
            assert_eq!(seen.contains(f), !staff_only, "{}", f.name());
        }
    }
}
