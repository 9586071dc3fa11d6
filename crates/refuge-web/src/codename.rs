//! Codenames: the applicant's only key to their case, SecureDrop-style. Eight words drawn
//! uniformly from the 2,048-word BIP-39 English list (88 bits), shown once and never sent
//! anywhere; the store keeps only a keyed hash.
//!
//! The word list is BIP-39's English list (MIT licence, as shipped with python-mnemonic,
//! Copyright (c) 2013-2016 Pavol Rusnak): short, common words, none a prefix of another
//! in its first four letters, so that a codename can be written down and read back.

use refuge_crypto::{Entropy, SecretString};

const WORDS_TEXT: &str = include_str!("codename-words.txt");

/// Words in a codename.
pub const LENGTH: usize = 8;

/// The word list.
pub fn words() -> impl Iterator<Item = &'static str> {
    WORDS_TEXT.lines().map(str::trim).filter(|w| !w.is_empty())
}

/// A new codename from `entropy`.
pub fn generate(entropy: &dyn Entropy) -> Result<SecretString, refuge_crypto::CryptoError> {
    let list: Vec<&str> = words().collect();
    let n = list.len();
    let mut out = Vec::with_capacity(LENGTH);
    while out.len() < LENGTH {
        let mut b = [0u8; 2];
        entropy.fill(&mut b)?;
        // 2,048 words: the low 11 bits are uniform.
        let i = usize::from(u16::from_le_bytes(b)) % 2048;
        if i < n {
            out.push(list[i]);
        }
    }
    Ok(SecretString::new(out.join(" ")))
}

/// A codename as typed: lower case, words separated by single spaces.
pub fn normalise(typed: &str) -> SecretString {
    SecretString::new(
        typed
            .split(|c: char| c.is_whitespace() || c == '-' || c == ',' || c == '.')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use refuge_crypto::SeededEntropy;

    #[test]
    fn a_codename_is_eight_listed_words_and_normalises_back() {
        assert_eq!(words().count(), 2048);
        let e = SeededEntropy::new(7);
        let c = generate(&e).unwrap();
        let ws: Vec<&str> = c.expose().split(' ').collect();
        assert_eq!(ws.len(), LENGTH);
        assert!(ws.iter().all(|w| words().any(|x| x == *w)));
        let typed = format!("  {} ", c.expose().to_uppercase().replace(' ', "  -"));
        assert_eq!(normalise(&typed).expose(), c.expose());
        assert_ne!(generate(&e).unwrap().expose(), c.expose());
    }
}
