//! Sessions, held in memory: a random token in a `__Host-` cookie names one; the server keeps
//! only the token's SHA-256. Every session has its own CSRF token for its forms.

use refuge_core::clock::Timestamp;
use refuge_core::ids::{CaseId, OrgId, UserId};
use refuge_core::org::Role;
use refuge_crypto::{Entropy, SecretString};
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

/// A live session and what only the server may hold for it.
struct Entry {
    session: Session,
    /// The codename this session's portal application gets (see
    /// [`Sessions::application_codename`]). Never copied out with the session.
    codename: Option<SecretString>,
}

/// All live sessions.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live session named by `token`, touched; expired ones are removed.
    pub fn get(&self, token: &str, now: Timestamp) -> Option<Session> {
        let k = key(token);
        let mut map = self.lock();
        let s = &mut map.get_mut(&k)?.session;
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
            map.retain(|_, e| e.session.seen.as_micros() > cutoff);
            if map.len() >= self.capacity
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, e)| e.session.seen)
                    .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            key(&token),
            Entry {
                session: session.clone(),
                codename: None,
            },
        );
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

    /// The codename the portal gives this session's application: drawn by `draw` on first
    /// use, then the same one until the session ends or is rotated (as it is once the
    /// application has been shown). An application sent twice (a double click, a retry after
    /// an error or a lost answer) thus carries one codename, and the store's one-case-per-
    /// codename rule lets the second attempt find the first one's case instead of opening
    /// another whose codename nobody was shown. Held in memory only; `None` if the session
    /// has ended.
    pub fn application_codename<E>(
        &self,
        token: &str,
        draw: impl FnOnce() -> Result<SecretString, E>,
    ) -> Result<Option<SecretString>, E> {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(&key(token)) else {
            return Ok(None);
        };
        if entry.codename.is_none() {
            entry.codename = Some(draw()?);
        }
        Ok(entry.codename.clone())
    }

    /// End a session.
    pub fn end(&self, token: &str) {
        self.lock().remove(&key(token));
    }

    /// End every session of a staff user (when they are disabled).
    pub fn end_user(&self, user: UserId) {
        self.lock().retain(|_, e| match &e.session.who {
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

    #[test]
    fn an_application_codename_is_drawn_once_per_session_and_goes_with_it() {
        let e = SeededEntropy::new(2);
        let s = Sessions::new(Timeouts::default(), 100);
        let t0 = Timestamp::from_micros(10_000);
        let (tok, _) = s.create(Who::Anonymous, t0, &e).unwrap();
        let draws = std::cell::Cell::new(0);
        let draw = |w: &str| {
            draws.set(draws.get() + 1);
            Ok::<_, ()>(SecretString::new(w.to_owned()))
        };
        let first = s
            .application_codename(&tok, || draw("one"))
            .unwrap()
            .unwrap();
        let again = s
            .application_codename(&tok, || draw("two"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.expose(), again.expose(), draws.get()),
            ("one", "one", 1)
        );
        // Another session draws its own.
        let (other, _) = s.create(Who::Anonymous, t0, &e).unwrap();
        let theirs = s
            .application_codename(&other, || draw("three"))
            .unwrap()
            .unwrap();
        assert_eq!(theirs.expose(), "three");
        // Rotating (the application was shown) or ending the session drops it.
        let (rotated, _) = s
            .rotate(
                Some(&tok),
                Who::Applicant {
                    case: CaseId(uuid::Uuid::nil()),
                    org: OrgId(uuid::Uuid::nil()),
                },
                t0,
                &e,
            )
            .unwrap();
        assert!(
            s.application_codename(&tok, || draw("four"))
                .unwrap()
                .is_none()
        );
        let fresh = s
            .application_codename(&rotated, || draw("five"))
            .unwrap()
            .unwrap();
        assert_eq!(fresh.expose(), "five");
        s.end(&other);
        assert!(
            s.application_codename(&other, || draw("six"))
                .unwrap()
                .is_none()
        );
        // The session handed out to requests never carries it.
        assert!(!format!("{:?}", s.get(&rotated, t0).unwrap()).contains("five"));
    }
}
