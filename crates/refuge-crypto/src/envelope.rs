//! Field encryption with XChaCha20-Poly1305, and the sealing format shared with key wrapping.
//!
//! Sealed format (version 1): `0x01 || nonce (24 random bytes) || ciphertext || tag (16)`.
//! The associated data actually authenticated is `0x01 || context`, where `context` is an
//! unambiguous, domain-labelled encoding of where the value belongs.

use chacha20poly1305::{AeadInOut, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::entropy::Entropy;
use crate::error::{CryptoError, Result};
use crate::keys::DataKey;
use crate::mac::push_prefixed;

/// The only sealed-format version this build writes and reads.
pub(crate) const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

const FIELD_LABEL: &[u8] = b"refuge-field-v1";

/// Associated data for one encrypted field: binds a ciphertext to its table, field and record,
/// so a ciphertext copied to another table, field or record fails to open.
///
/// Encoding: each of the label `refuge-field-v1`, `table`, `field` and `record_id` preceded by
/// its length as a big-endian `u64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aad {
    bytes: Vec<u8>,
}

impl Aad {
    /// Associated data for `field` of the record `record_id` in `table`.
    #[must_use]
    pub fn new(table: &str, field: &str, record_id: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(
            32 + FIELD_LABEL.len() + table.len() + field.len() + record_id.len(),
        );
        push_prefixed(&mut bytes, FIELD_LABEL);
        push_prefixed(&mut bytes, table.as_bytes());
        push_prefixed(&mut bytes, field.as_bytes());
        push_prefixed(&mut bytes, record_id);
        Self { bytes }
    }

    /// The encoded associated data.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Encrypts `plaintext` under a person's data key, bound to `aad`, with a fresh random nonce.
///
/// Returns `0x01 || nonce (24) || ciphertext || tag (16)`.
///
/// # Errors
/// [`CryptoError::Entropy`] if no nonce can be drawn; [`CryptoError::Malformed`] if the
/// plaintext is too long for the cipher.
pub fn seal(key: &DataKey, aad: &Aad, plaintext: &[u8], e: &dyn Entropy) -> Result<Vec<u8>> {
    seal_raw(key.bytes(), aad.as_bytes(), plaintext, e)
}

/// Decrypts a value made by [`seal`] with the same key and associated data.
///
/// # Errors
/// [`CryptoError::Decrypt`] (with no detail) for a wrong key, wrong associated data or any
/// tampering; [`CryptoError::UnsupportedVersion`] for an unknown version byte;
/// [`CryptoError::Malformed`] if `sealed` is too short to be a sealed value.
pub fn open(key: &DataKey, aad: &Aad, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let parts = split(sealed)?;
    let mut out = Zeroizing::new(vec![0u8; parts.ciphertext.len()]);
    open_parts(key.bytes(), aad.as_bytes(), &parts, &mut out)?;
    Ok(out)
}

/// The associated data actually authenticated: the version byte, then the context.
fn full_ad(context: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(1 + context.len());
    ad.push(VERSION);
    ad.extend_from_slice(context);
    ad
}

/// Seals `plaintext` under a raw 32-byte key; see the module documentation for the format.
pub(crate) fn seal_raw(
    key: &[u8; 32],
    context: &[u8],
    plaintext: &[u8],
    e: &dyn Entropy,
) -> Result<Vec<u8>> {
    const TOO_LONG: CryptoError = CryptoError::Malformed("plaintext too long");
    let total = plaintext.len().checked_add(SEAL_OVERHEAD).ok_or(TOO_LONG)?;
    let mut nonce = [0u8; NONCE_LEN];
    e.fill(&mut nonce)?;

    // The buffer holds plaintext until encrypted in place; it is wiped if anything fails, and
    // its capacity is reserved up front so no reallocation leaves a plaintext copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(HEADER_LEN..)
        .ok_or(CryptoError::Malformed("sealed buffer"))?;
    let tag = XChaCha20Poly1305::new(key.into())
        .encrypt_inout_detached(&XNonce::from(nonce), &full_ad(context), body.into())
        .map_err(|_| TOO_LONG)?;
    out.extend_from_slice(&tag);
    Ok(std::mem::take(&mut *out))
}

/// A sealed value split into its parts; the version has been checked.
pub(crate) struct Parts<'a> {
    nonce: &'a [u8; NONCE_LEN],
    pub(crate) ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
}

/// Splits a sealed value, checking its version and minimum length.
pub(crate) fn split(sealed: &[u8]) -> Result<Parts<'_>> {
    const SHORT: CryptoError = CryptoError::Malformed("sealed value too short");
    let (&version, rest) = sealed.split_first().ok_or(SHORT)?;
    if version != VERSION {
        return Err(CryptoError::UnsupportedVersion(version));
    }
    let (nonce, rest) = rest.split_first_chunk::<NONCE_LEN>().ok_or(SHORT)?;
    let (ciphertext, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or(SHORT)?;
    Ok(Parts {
        nonce,
        ciphertext,
        tag,
    })
}

/// Authenticates and decrypts `parts` into `out`, which must be exactly as long as the
/// ciphertext. The tag is verified before anything is decrypted; on failure `out` is wiped.
pub(crate) fn open_parts(
    key: &[u8; 32],
    context: &[u8],
    parts: &Parts<'_>,
    out: &mut [u8],
) -> Result<()> {
    if out.len() != parts.ciphertext.len() {
        return Err(CryptoError::Malformed("sealed value has the wrong length"));
    }
    out.copy_from_slice(parts.ciphertext);
    let result = XChaCha20Poly1305::new(key.into()).decrypt_inout_detached(
        &XNonce::from(*parts.nonce),
        &full_ad(context),
        (&mut *out).into(),
        &Tag::from(*parts.tag),
    );
    if result.is_err() {
        out.zeroize();
        return Err(CryptoError::Decrypt);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    fn setup() -> (SeededEntropy, DataKey, Aad) {
        let e = SeededEntropy::new(42);
        let key = DataKey::generate(&e).unwrap();
        (e, key, Aad::new("persons", "name", b"rec-1"))
    }

    #[test]
    fn round_trip() {
        let (e, key, aad) = setup();
        for pt in [&b""[..], b"x", b"Ivan Ivanovich Ivanov", &[0u8; 1000][..]] {
            let sealed = seal(&key, &aad, pt, &e).unwrap();
            assert_eq!(sealed.len(), pt.len() + SEAL_OVERHEAD);
            assert_eq!(sealed.first(), Some(&1));
            assert_eq!(&open(&key, &aad, &sealed).unwrap()[..], pt);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let (e, key, aad) = setup();
        let a = seal(&key, &aad, b"same", &e).unwrap();
        let b = seal(&key, &aad, b"same", &e).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_context_fails() {
        let (e, key, aad) = setup();
        let sealed = seal(&key, &aad, b"secret", &e).unwrap();
        for other in [
            Aad::new("cases", "name", b"rec-1"),
            Aad::new("persons", "notes", b"rec-1"),
            Aad::new("persons", "name", b"rec-2"),
            // Ambiguity probes: moving bytes between components must not collide.
            Aad::new("person", "sname", b"rec-1"),
            Aad::new("persons", "nam", b"erec-1"),
        ] {
            assert!(matches!(
                open(&key, &other, &sealed),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn wrong_key_fails() {
        let (e, key, aad) = setup();
        let other = DataKey::generate(&e).unwrap();
        let sealed = seal(&key, &aad, b"secret", &e).unwrap();
        assert!(matches!(
            open(&other, &aad, &sealed),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn any_flipped_byte_fails() {
        let (e, key, aad) = setup();
        let sealed = seal(&key, &aad, b"secret testimony", &e).unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                let err = open(&key, &aad, &bad).unwrap_err();
                if i == 0 {
                    assert!(matches!(err, CryptoError::UnsupportedVersion(_)));
                } else {
                    assert!(matches!(err, CryptoError::Decrypt), "byte {i}");
                }
            }
        }
    }

    #[test]
    fn truncated_and_extended_fail() {
        let (e, key, aad) = setup();
        let sealed = seal(&key, &aad, b"secret", &e).unwrap();
        for n in 0..sealed.len() {
            assert!(open(&key, &aad, &sealed[..n]).is_err(), "prefix {n}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&key, &aad, &longer).is_err());
        assert!(matches!(
            open(&key, &aad, &[]),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn error_messages_carry_no_content() {
        let (e, key, aad) = setup();
        let sealed = seal(&key, &aad, b"Ivanov", &e).unwrap();
        let err = open(&key, &Aad::new("x", "y", b"z"), &sealed).unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("Ivanov"));
        assert!(!msg.contains("persons"));
    }
}
