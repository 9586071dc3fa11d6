//! Blind indexes: exact-match lookups without storing the value.

use crate::keys::IndexKey;
use crate::mac::{hmac_sha256_parts, len_be};

/// A blind index of `value` in `domain`: HMAC-SHA256 under the index key over
/// `len(domain) || domain || len(value) || value` (lengths as big-endian `u64`), truncated to
/// 16 bytes.
///
/// Store it beside the encrypted value and look up by recomputing it. The same value in
/// different domains (e.g. `"person.name"` vs `"person.document"`) gives unrelated indexes.
/// Normalise the value first ([`normalise_for_index`], [`normalise_document_number`]) so that
/// trivially different spellings match.
#[must_use]
pub fn blind_index(key: &IndexKey, domain: &str, value: &[u8]) -> [u8; 16] {
    let mac = hmac_sha256_parts(
        key.bytes(),
        &[
            &len_be(domain.as_bytes()),
            domain.as_bytes(),
            &len_be(value),
            value,
        ],
    );
    let mut out = [0u8; 16];
    for (d, s) in out.iter_mut().zip(mac) {
        *d = s;
    }
    out
}

/// Normalises free text such as a name before [`blind_index`]: lower-cases (Unicode
/// `to_lowercase`), drops every character that is neither alphanumeric nor whitespace, turns
/// each run of whitespace into one space, and trims both ends.
///
/// `"  O'Brien-Smith,\tJOHN "` becomes `"obriensmith john"`; `"Иванов  Иван"` becomes
/// `"иванов иван"`.
///
/// Limitations: no Unicode normalisation is applied, and combining marks are not
/// alphanumeric, so decomposed input (e.g. `и` + U+0306) loses its marks while the
/// precomposed form (`й`) keeps its letter; callers should pass NFC text. No transliteration
/// is done: Cyrillic and Latin spellings of a name index differently.
///
/// For document numbers use [`normalise_document_number`], which also removes spaces.
#[must_use]
pub fn normalise_for_index(s: &str) -> String {
    let lowered = s.to_lowercase();
    let mut out = String::with_capacity(lowered.len());
    let mut pending_space = false;
    for c in lowered.chars() {
        if c.is_whitespace() {
            pending_space = true;
        } else if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

/// Normalises a document number (passport, military id) before [`blind_index`]: keeps only
/// alphanumeric characters and upper-cases them, so `"75 1234-567"` and `"751234567"` match,
/// as do `"ab 12"` and `"AB12"`.
#[must_use]
pub fn normalise_document_number(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blind_index_is_stable_and_keyed() {
        let k = IndexKey::from_bytes([1u8; 32]);
        let k2 = IndexKey::from_bytes([2u8; 32]);
        let a = blind_index(&k, "person.name", b"ivanov ivan");
        assert_eq!(a, blind_index(&k, "person.name", b"ivanov ivan"));
        assert_ne!(a, blind_index(&k2, "person.name", b"ivanov ivan"));
        assert_ne!(a, blind_index(&k, "person.name", b"ivanov ivan "));
    }

    #[test]
    fn blind_index_is_domain_separated() {
        let k = IndexKey::from_bytes([1u8; 32]);
        let v = b"AB123456";
        assert_ne!(
            blind_index(&k, "person.document", v),
            blind_index(&k, "person.name", v)
        );
        // Moving bytes between domain and value must not collide.
        assert_ne!(blind_index(&k, "ab", b"c"), blind_index(&k, "a", b"bc"));
        assert_ne!(blind_index(&k, "", b"abc"), blind_index(&k, "abc", b""));
    }

    #[test]
    fn normalise_names() {
        assert_eq!(
            normalise_for_index("  O'Brien-Smith,\tJOHN "),
            "obriensmith john"
        );
        assert_eq!(normalise_for_index("Иванов  Иван"), "иванов иван");
        assert_eq!(normalise_for_index("ІВАНЕНКО\u{a0}Їжак"), "іваненко їжак");
        assert_eq!(normalise_for_index("a - b"), "a b");
        assert_eq!(normalise_for_index(" \t\n"), "");
        assert_eq!(normalise_for_index("Ёлка"), "ёлка");
        assert_eq!(
            normalise_for_index("JOHN smith"),
            normalise_for_index("john   SMITH")
        );
    }

    #[test]
    fn normalise_documents() {
        assert_eq!(normalise_document_number("75 1234-567"), "751234567");
        assert_eq!(normalise_document_number("ab 12/cd"), "AB12CD");
        assert_eq!(normalise_document_number("мв 123"), "МВ123");
        assert_eq!(normalise_document_number(" - "), "");
    }
}
