//! Sessions, held in memory: a random token in a `__Host-` cookie names one; the server keeps
//! only the token's SHA-256. Every session has its own CSRF token for its forms.

use refuge_core::clock::Timestamp;
use refuge_core::ids::{CaseId, OrgId, UserId};
use refuge_core::org::Role;
use refuge_crypto::Entropy;
use std::collections::HashMap;
use std::sync::Mutex;

/// The session cookie's name. `__Host-` binds it to this host, path `/`, and HTTPS (browsers
/// treat `http://localhost` as secure).
pub const COOKIE: &str = "__Host-refuge";

/// Who a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// Nobody signed in (a visitor using the portal).
    Anonymous,
    /// The holder of a case's codename.
    Applicant {
        /// Their case.
        case: CaseId,
        /// The organisation holding it.
        org: OrgId,
    },
    /// A staff user who gave the right password and must still give a TOTP code.
    StaffPending {
        /// The user.
        user: UserId,
    },
    /// A signed-in staff user.
    Staff {
        /// The user.
        user: UserId,
        /// Their organisation.
        org: OrgId,
        /// Their roles.
        roles: Vec<Role>,
    },
}

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Token forms must send back.
    pub csrf: String,
    /// Who it is.
    pub who: Who,
    created: Timestamp,
    seen: Timestamp,
}

/// Limits on a session's life.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Ends after this long without a request (µs).
    pub idle_us: i64,
    /// Ends this long after it began, whatever happens (µs).
    pub absolute_us: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle_us: 30 * 60 * 1_000_000,
            absolute_us: 12 * 3600 * 1_000_000,
        }
    }
}

/// All live sessions.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    timeouts: Timeouts,
    /// Sessions kept at most (the oldest idle ones go first when full).
    capacity: usize,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

fn key(token: &str) -> [u8; 32] {
    refuge_crypto::sha256(token.as_bytes())
}

fn random_hex(entropy: &dyn Entropy) -> Result<String, refuge_crypto::CryptoError> {
    let mut b = [0u8; 32];
    entropy.fill(&mut b)?;
    Ok(hex::encode(b))
}

impl Sessions {
    /// No sessions yet.
    pub fn new(timeouts: Timeouts, capacity: usize) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            timeouts,
            capacity: capacity.max(16),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live session named by `token`, touched; expired ones are removed.
    pub fn get(&self, token: &str, now: Timestamp) -> Option<Session> {
        let k = key(token);
        let mut map = self.lock();
        let s = map.get_mut(&k)?;
        let idle = now.as_micros() - s.seen.as_micros();
        let age = now.as_micros() - s.created.as_micros();
        if idle > self.timeouts.idle_us || age > self.timeouts.absolute_us {
            map.remove(&k);
            return None;
        }
        s.seen = now;
        Some(s.clone())
    }

    /// Start a session; returns its token (for the cookie) and the session.
    pub fn create(
        &self,
        who: Who,
        now: Timestamp,
        entropy: &dyn Entropy,
    ) -> Result<(String, Session), refuge_crypto::CryptoError> {
        let token = random_hex(entropy)?;
        let session = Session {
            csrf: random_hex(entropy)?,
            who,
            created: now,
            seen: now,
        };
        let mut map = self.lock();
        if map.len() >= self.capacity {
            let cutoff = now.as_micros() - self.timeouts.idle_us;
            map.retain(|_, s| s.seen.as_micros() > cutoff);
            if map.len() >= self.capacity
                && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.seen).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(key(&token), session.clone());
        Ok((token, session))
    }

    /// Replace a session by a new one for `who` (on sign-in: a new token, so that a token
    /// known before signing in is worth nothing after).
    pub fn rotate(
        &self,
        old_token: Option<&str>,
        who: Who,
        now: Timestamp,
        entropy: &dyn Entropy,
    ) -> Result<(String, Session), refuge_crypto::CryptoError> {
        if let Some(t) = old_token {
            self.lock().remove(&key(t));
        }
        self.create(who, now, entropy)
    }

    /// End a session.
    pub fn end(&self, token: &str) {
        self.lock().remove(&key(token));
    }

    /// End every session of a staff user (when they are disabled).
    pub fn end_user(&self, user: UserId) {
        self.lock().retain(|_, s| match &s.who {
            Who::Staff { user: u, .. } | Who::StaffPending { user: u } => *u != user,
            _ => true,
        });
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Compare two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value for a session token.
pub fn cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use refuge_crypto::SeededEntropy;

    #[test]
    fn sessions_expire_when_idle_or_old_and_rotate_on_sign_in() {
        let e = SeededEntropy::new(1);
        let s = Sessions::new(
            Timeouts {
                idle_us: 100,
                absolute_us: 1_000,
            },
            100,
        );
        let t0 = Timestamp::from_micros(10_000);
        let (tok, sess) = s.create(Who::Anonymous, t0, &e).unwrap();
        assert_eq!(sess.csrf.len(), 64);
        assert!(s.get(&tok, Timestamp::from_micros(10_050)).is_some());
        assert!(s.get(&tok, Timestamp::from_micros(10_140)).is_some());
        assert!(
            s.get(&tok, Timestamp::from_micros(10_300)).is_none(),
            "idle"
        );
        let (tok, _) = s.create(Who::Anonymous, t0, &e).unwrap();
        for i in 1..=10 {
            assert!(
                s.get(&tok, Timestamp::from_micros(10_000 + i * 90))
                    .is_some()
            );
        }
        assert!(
            s.get(&tok, Timestamp::from_micros(11_050)).is_none(),
            "absolute"
        );
        let (old, _) = s.create(Who::Anonymous, t0, &e).unwrap();
        let (new, _) = s
            .rotate(
                Some(&old),
                Who::StaffPending {
                    user: UserId(uuid::Uuid::nil()),
                },
                t0,
                &e,
            )
            .unwrap();
        assert!(s.get(&old, t0).is_none());
        assert!(s.get(&new, t0).is_some());
        s.end_user(UserId(uuid::Uuid::nil()));
        assert!(s.get(&new, t0).is_none());
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
    }
}
