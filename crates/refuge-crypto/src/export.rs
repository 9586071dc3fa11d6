//! Files encrypted to a passphrase: how an approved export leaves the server.
//!
//! Layout of a file (everything before the sealed part is authenticated with it):
//!
//! ```text
//! refuge-export-v1\n
//! argon2id:m=65536,t=3,p=1\n       the key derivation's costs
//! 16 bytes of salt
//! 1 byte format version, 24 bytes nonce, ciphertext, 16 bytes tag (XChaCha20-Poly1305)
//! ```
//!
//! The key is Argon2id of the passphrase with the salt; the passphrase is never stored.

use argon2::{Algorithm, Argon2, Version};
use zeroize::Zeroizing;

use crate::entropy::Entropy;
use crate::envelope::{open_parts, seal_raw, split};
use crate::error::{CryptoError, Result};
use crate::keys::{KdfParams, generate_salt};
use crate::secret::SecretString;

/// The first line of every encrypted export.
pub const EXPORT_MAGIC: &[u8] = b"refuge-export-v1\n";

/// The fewest characters an export passphrase may have.
pub const MIN_EXPORT_PASSPHRASE_CHARS: usize = 16;

/// Why a passphrase is not acceptable for an export, if it is not: it must have at least
/// [`MIN_EXPORT_PASSPHRASE_CHARS`] characters and at least 8 different ones.
#[must_use]
pub fn export_passphrase_problem(pass: &SecretString) -> Option<&'static str> {
    let text = pass.expose();
    if text.chars().count() < MIN_EXPORT_PASSPHRASE_CHARS {
        return Some("it must have at least 16 characters (several random words are good)");
    }
    let mut distinct: Vec<char> = text.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Some("it must have at least 8 different characters");
    }
    None
}

fn derive(pass: &SecretString, salt: &[u8; 16], params: &KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.argon2_params()?);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pass.expose().as_bytes(), salt, &mut *key)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(key)
}

/// Encrypt `plaintext` to `pass` with the given Argon2id costs.
///
/// # Errors
/// [`CryptoError::Kdf`] for a passphrase that [`export_passphrase_problem`] refuses or bad
/// parameters; [`CryptoError::Entropy`] if no randomness is available.
pub fn seal_export(
    pass: &SecretString,
    params: &KdfParams,
    plaintext: &[u8],
    e: &dyn Entropy,
) -> Result<Vec<u8>> {
    if let Some(problem) = export_passphrase_problem(pass) {
        return Err(CryptoError::Kdf(format!(
            "the passphrase is too weak: {problem}"
        )));
    }
    let salt = generate_salt(e)?;
    let mut header = EXPORT_MAGIC.to_vec();
    header.extend_from_slice(params.to_string().as_bytes());
    header.push(b'\n');
    header.extend_from_slice(&salt);
    let key = derive(pass, &salt, params)?;
    let sealed = seal_raw(&key, &header, plaintext, e)?;
    let mut out = header;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Whether `bytes` begin like an encrypted export.
#[must_use]
pub fn is_export(bytes: &[u8]) -> bool {
    bytes.starts_with(EXPORT_MAGIC)
}

/// Decrypt a file made by [`seal_export`].
///
/// # Errors
/// [`CryptoError::Malformed`] if the bytes are not an export; [`CryptoError::Kdf`] for
/// unacceptable costs in the header; [`CryptoError::Decrypt`] for a wrong passphrase or a
/// file that was altered.
pub fn open_export(pass: &SecretString, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    const NOT_EXPORT: CryptoError = CryptoError::Malformed("not a refuge export file");
    let rest = bytes.strip_prefix(EXPORT_MAGIC).ok_or(NOT_EXPORT)?;
    let line_end = rest
        .iter()
        .take(64)
        .position(|b| *b == b'\n')
        .ok_or(NOT_EXPORT)?;
    let line =
        std::str::from_utf8(rest.get(..line_end).ok_or(NOT_EXPORT)?).map_err(|_| NOT_EXPORT)?;
    let params = KdfParams::parse(line)?;
    // Refuse costs that would let a doctored file exhaust the reader's memory.
    if params.m_cost_kib > 4 * 1024 * 1024 || params.t_cost > 64 || params.p_cost > 16 {
        return Err(CryptoError::Kdf(
            "the file asks for unreasonable key-derivation costs".into(),
        ));
    }
    let after_line = rest.get(line_end + 1..).ok_or(NOT_EXPORT)?;
    let (salt, sealed) = after_line.split_first_chunk::<16>().ok_or(NOT_EXPORT)?;
    let header_len = bytes.len() - sealed.len();
    let header = bytes.get(..header_len).ok_or(NOT_EXPORT)?;
    let key = derive(pass, salt, &params)?;
    let parts = split(sealed)?;
    let mut out = Zeroizing::new(vec![0u8; parts.ciphertext.len()]);
    open_parts(&key, header, &parts, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    fn cheap() -> KdfParams {
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn pass(s: &str) -> SecretString {
        SecretString::new(s.to_owned())
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let e = SeededEntropy::new(7);
        let p = pass("correct horse battery staple");
        let sealed = seal_export(&p, &cheap(), b"{\"cases\":[]}", &e).unwrap();
        assert!(is_export(&sealed));
        assert!(!sealed.windows(7).any(|w| w == b"\"cases\""));
        assert_eq!(&*open_export(&p, &sealed).unwrap(), b"{\"cases\":[]}");
        assert!(matches!(
            open_export(&pass("correct horse battery stapler"), &sealed),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn every_byte_is_authenticated() {
        let e = SeededEntropy::new(8);
        let p = pass("correct horse battery staple");
        let sealed = seal_export(&p, &cheap(), b"payload", &e).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                open_export(&p, &bad).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert!(open_export(&p, &sealed[..sealed.len() - 1]).is_err());
    }

    #[test]
    fn weak_passphrases_are_refused() {
        let e = SeededEntropy::new(9);
        assert!(seal_export(&pass("short"), &cheap(), b"x", &e).is_err());
        assert!(seal_export(&pass("aaaaaaaaaaaaaaaaaaaa"), &cheap(), b"x", &e).is_err());
        assert!(export_passphrase_problem(&pass("river lantern copper meadow")).is_none());
    }

    #[test]
    fn absurd_costs_in_a_file_are_refused() {
        let e = SeededEntropy::new(10);
        let p = pass("correct horse battery staple");
        let sealed = seal_export(&p, &cheap(), b"x", &e).unwrap();
        let at = sealed.windows(5).position(|w| w == b"m=64,").unwrap();
        let mut bad = sealed[..at].to_vec();
        bad.extend_from_slice(b"m=99999999,");
        bad.extend_from_slice(&sealed[at + 5..]);
        assert!(matches!(open_export(&p, &bad), Err(CryptoError::Kdf(_))));
    }
}
