//! Staff passwords: Argon2id, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, unpadded standard base64), so that the
//! cost can be raised later and old hashes still verify.

use crate::keys::KdfParams;
use crate::{CryptoError, Entropy, Result, SecretString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// Costs for password hashes: OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane).
pub const PASSWORD_PARAMS: KdfParams = KdfParams {
    m_cost_kib: 19_456,
    t_cost: 2,
    p_cost: 1,
};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|x| *x == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xFF) as u8);
        }
    }
    Some(out)
}

fn argon(p: KdfParams) -> Result<Argon2<'static>> {
    let params = Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a password with a fresh salt.
pub fn hash_password(
    password: &SecretString,
    params: KdfParams,
    entropy: &dyn Entropy,
) -> Result<SecretString> {
    let mut salt = [0u8; 16];
    entropy.fill(&mut salt)?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon(params)?
        .hash_password_into(password.expose().as_bytes(), &salt, out.as_mut())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(SecretString::new(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        b64(&salt),
        b64(out.as_ref())
    )))
}

/// Whether `password` matches the PHC string `phc`. A malformed string never matches.
pub fn verify_password(password: &SecretString, phc: &SecretString) -> bool {
    let parts: Vec<&str> = phc.expose().split('$').collect();
    let [_, "argon2id", "v=19", costs, salt, hash] = parts.as_slice() else {
        return false;
    };
    let mut p = KdfParams {
        m_cost_kib: 0,
        t_cost: 0,
        p_cost: 0,
    };
    for kv in costs.split(',') {
        match kv.split_once('=') {
            Some(("m", v)) => p.m_cost_kib = v.parse().unwrap_or(0),
            Some(("t", v)) => p.t_cost = v.parse().unwrap_or(0),
            Some(("p", v)) => p.p_cost = v.parse().unwrap_or(0),
            _ => return false,
        }
    }
    let (Some(salt), Some(want)) = (unb64(salt), unb64(hash)) else {
        return false;
    };
    if want.len() != 32 {
        return false;
    }
    let Ok(a) = argon(p) else { return false };
    let mut got = Zeroizing::new([0u8; 32]);
    if a.hash_password_into(password.expose().as_bytes(), &salt, got.as_mut())
        .is_err()
    {
        return false;
    }
    got.iter().zip(&want).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Spend the time a real verification takes, for an unknown user, so that the response does
/// not tell whether the login exists.
pub fn verify_nothing(password: &SecretString) {
    let mut out = [0u8; 32];
    if let Ok(a) = argon(PASSWORD_PARAMS) {
        let _ = a.hash_password_into(password.expose().as_bytes(), &[0u8; 16], &mut out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededEntropy;

    #[test]
    fn hashes_verify_and_tell_nothing() {
        let e = SeededEntropy::new(3);
        let cheap = KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        };
        let pw = SecretString::new("correct horse".into());
        let h = hash_password(&pw, cheap, &e).unwrap();
        assert!(h.expose().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!h.expose().contains("correct"));
        assert!(verify_password(&pw, &h));
        assert!(!verify_password(
            &SecretString::new("correct horsf".into()),
            &h
        ));
        assert!(!verify_password(
            &pw,
            &SecretString::new("$argon2id$v=19$x$y$z".into())
        ));
        assert!(!verify_password(&pw, &SecretString::new(String::new())));
        let h2 = hash_password(&pw, cheap, &e).unwrap();
        assert_ne!(h.expose(), h2.expose(), "fresh salt");
        assert_eq!(
            unb64(&b64(b"any carnal pleas")).unwrap(),
            b"any carnal pleas"
        );
        assert_eq!(b64(b"foob"), "Zm9vYg");
    }
}
