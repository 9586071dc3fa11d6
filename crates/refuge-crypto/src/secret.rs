//! Secret text.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string (passphrase, codename): wiped from memory on drop, never printed.
///
/// `Debug` prints `[redacted]` and there is no `Display`; read it only through
/// [`SecretString::expose`], at the point of use.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Takes ownership of `s`; its buffer is wiped when this value drops.
    #[must_use]
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret text. Do not log, print or store it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s:#?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }
}
