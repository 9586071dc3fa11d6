//! Shared encodings and primitives: length prefixes, HMAC-SHA256, SHA-256.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Appends `bytes` preceded by its length as a big-endian `u64`. A sequence of such items is
/// prefix-free, so concatenations of them are unambiguous.
pub(crate) fn push_prefixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&len_be(bytes));
    buf.extend_from_slice(bytes);
}

/// The length of `bytes` as a big-endian `u64`.
pub(crate) fn len_be(bytes: &[u8]) -> [u8; 8] {
    // usize is at most 64 bits on every supported target.
    u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes()
}

/// HMAC-SHA256 keyed with a 32-byte key.
///
/// HMAC zero-pads keys shorter than the hash block, so padding the key to 64 bytes ourselves
/// gives the standard result while using the infallible constructor.
pub(crate) fn hmac_sha256(key: &[u8; 32]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; 64]);
    for (d, s) in block.iter_mut().zip(key) {
        *d = *s;
    }
    <HmacSha256 as KeyInit>::new((&*block).into())
}

/// HMAC-SHA256 of `key` over the concatenation of `parts` (the caller is responsible for
/// making that concatenation unambiguous).
pub(crate) fn hmac_sha256_parts(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac_sha256(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::hex_encode;

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            hex_encode(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_matches_rfc4231_style_short_key() {
        // A 32-byte key, checked against the slice constructor (which pads internally).
        let key = [0x0bu8; 32];
        let mut reference = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
        reference.update(b"Hi There");
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(hmac_sha256_parts(&key, &[b"Hi ", b"There"]), expected);
    }
}
