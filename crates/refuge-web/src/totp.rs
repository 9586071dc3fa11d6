//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits), as every
//! authenticator app computes them.

use hmac::{Hmac, KeyInit, Mac};
use refuge_core::event::Actor;
use refuge_core::ids::UserId;
use refuge_crypto::{Entropy, SecretString};
use refuge_store::{SecretBytes, Store, StoreError};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: i64 = 30;

/// The code for `secret` at step `counter` (RFC 4226).
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    bin % 1_000_000
}

/// The step a Unix time (seconds) falls in.
pub fn step_of(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds.max(0) / STEP).unwrap_or(0)
}

/// Check a typed code against the steps around `unix_seconds` (one step either side, for
/// clock drift). Returns the matching step, which the caller must refuse to accept twice.
pub fn verify(secret: &[u8], typed: &str, unix_seconds: i64) -> Option<u64> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let code: u32 = digits.parse().ok()?;
    let now = step_of(unix_seconds);
    let mut found = None;
    // Check every candidate (no early exit), so timing does not say which one matched.
    for step in [now.saturating_sub(1), now, now + 1] {
        if hotp(secret, step) == code {
            found = Some(step);
        }
    }
    found
}

/// The code for `secret` at a Unix time (for tests and the demo).
pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    format!("{:06}", hotp(secret, step_of(unix_seconds)))
}

/// RFC 4648 base32 without padding, as authenticator apps take secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://` URI an authenticator app imports.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// Bytes in a new TOTP secret (160 bits, what RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// Give a staff user a password (hashed here with Argon2id; the store keeps only the hash,
/// sealed) and a new random TOTP secret, which is returned to be shown once. Used when an
/// administrator creates a user, and by the demo data and the benchmark.
pub async fn enrol(
    store: &dyn Store,
    entropy: &dyn Entropy,
    actor: Actor,
    user: UserId,
    password: &SecretString,
) -> Result<SecretBytes, StoreError> {
    let phc = refuge_crypto::hash_password(password, refuge_crypto::PASSWORD_PARAMS, entropy)?;
    store.set_password(actor, user, phc).await?;
    let mut secret = vec![0u8; SECRET_BYTES];
    entropy.fill(&mut secret)?;
    store
        .set_totp(actor, user, Some(SecretBytes::new(secret.clone())))
        .await?;
    Ok(SecretBytes::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vectors() {
        // RFC 6238 Appendix B, SHA-1, 8 digits there; the last 6 of each are ours.
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, t), want, "t = {t}");
        }
    }

    #[test]
    fn verify_accepts_adjacent_steps_only() {
        let s = b"12345678901234567890";
        let now = 1_234_567_890;
        assert_eq!(verify(s, &code_at(s, now), now), Some(step_of(now)));
        assert!(verify(s, &code_at(s, now - 30), now).is_some());
        assert!(verify(s, &code_at(s, now + 30), now).is_some());
        assert!(verify(s, &code_at(s, now - 90), now).is_none());
        assert!(verify(s, "12345", now).is_none());
        assert!(verify(s, "abcdef", now).is_none());
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}
