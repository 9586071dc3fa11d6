//! Validated text newtypes shared by the domain types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a piece of text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The text was empty or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// The text was longer than allowed.
    #[error("must be at most {max} characters, found {found}")]
    TooLong {
        /// The largest number of characters allowed.
        max: usize,
        /// How many characters were given.
        found: usize,
    },
    /// The text contained a control character.
    #[error("must not contain control characters")]
    Control,
}

/// Trimmed, non-empty text of at most [`Text::MAX`] characters without control characters
/// (newlines and tabs are allowed).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Text(String);

impl Text {
    /// Upper bound on the length of any single text value, in characters.
    pub const MAX: usize = 20_000;

    /// Validate `s` as text of at most `max` characters.
    pub fn with_max(s: &str, max: usize) -> Result<Self, TextError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(TextError::Empty);
        }
        let found = t.chars().count();
        if found > max {
            return Err(TextError::TooLong { max, found });
        }
        if t.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(TextError::Control);
        }
        Ok(Self(t.to_owned()))
    }

    /// The text itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Text {
    type Error = TextError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::with_max(&s, Self::MAX)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0
    }
}

impl std::str::FromStr for Text {
    type Err = TextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::with_max(s, Self::MAX)
    }
}

/// Text may hold personal data: its `Debug` form never shows the content.
impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({} chars)", self.0.chars().count())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A short single-line label (at most 200 characters, no line breaks): names, document
/// numbers, pseudonyms, legal bases.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Upper bound on a label's length, in characters.
    pub const MAX: usize = 200;

    /// The label itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Label {
    type Error = TextError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::str::FromStr for Label {
    type Err = TextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = Text::with_max(s, Self::MAX)?;
        if t.as_str().chars().any(char::is_control) {
            return Err(TextError::Control);
        }
        Ok(Self(t.0))
    }
}

impl From<Label> for String {
    fn from(t: Label) -> Self {
        t.0
    }
}

/// Labels may hold personal data: `Debug` never shows the content.
impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({} chars)", self.0.chars().count())
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(" a b ".parse::<Text>().unwrap().as_str(), "a b");
        assert_eq!("  ".parse::<Text>(), Err(TextError::Empty));
        assert_eq!(
            Text::with_max("abcd", 3),
            Err(TextError::TooLong { max: 3, found: 4 })
        );
        assert!("line\nbreak".parse::<Text>().is_ok());
        assert_eq!("bell\u{7}".parse::<Text>(), Err(TextError::Control));
    }

    #[test]
    fn labels_are_single_line() {
        assert_eq!("two\nlines".parse::<Label>(), Err(TextError::Control));
        assert!("Александр".parse::<Label>().is_ok());
    }

    #[test]
    fn debug_hides_content() {
        let t: Text = "Кузнецов".parse().unwrap();
        assert!(!format!("{t:?}").contains("Кузнецов"));
        let l: Label = "Kuznetsov".parse().unwrap();
        assert!(!format!("{l:?}").contains("Kuznetsov"));
    }
}
