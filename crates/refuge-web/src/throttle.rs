//! Limits on guessing: staff sign-in (password and code) and applicant codenames.
//!
//! - **Per sign-in name**: after [`Limits::failures`] failed attempts (wrong password, wrong
//!   code) within [`Limits::window`], that name is refused for [`Limits::lockout`], whether or
//!   not a user has it, so the answer never tells a real account from an unknown one.
//! - **Everyone**: failed sign-ins and failed codename lookups each draw on a shared budget
//!   that refills at a steady rate ([`Limits::failures_per_minute`]); while it is empty those
//!   forms answer "too many attempts" to everyone. This bounds password spraying across many
//!   names and codename guessing from many sessions, which per-name counts cannot, at the cost
//!   of slowing honest users during an attack. Visitors arrive through Tor and proxies, so
//!   limits by network address would hit the innocent sharing an exit; they are not used.
//! - **Per session**: a session that fails [`Limits::failures`] codename lookups must start
//!   again.
//!
//! Names are kept only as keyed hashes under a key drawn at start, and the table is bounded.

use hmac::{Hmac, KeyInit, Mac};
use refuge_core::clock::Timestamp;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

/// The limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Failed attempts per name (or session) within `window` before it is locked.
    pub failures: u32,
    /// The window failures are counted in, in seconds.
    pub window: i64,
    /// How long a locked name stays locked, in seconds.
    pub lockout: i64,
    /// Failed attempts per minute, for everyone together, that the shared budget allows
    /// (sign-ins and codenames each have their own); its burst is the same number.
    pub failures_per_minute: u32,
    /// Names tracked at most; beyond it, expired entries go first, then the oldest.
    pub max_tracked: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            failures: 5,
            window: 15 * 60,
            lockout: 15 * 60,
            failures_per_minute: 120,
            max_tracked: 100_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Count {
    first: i64,
    failed: u32,
    locked_until: i64,
}

#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: i64,
}

/// What a form should answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead and check the attempt.
    Check,
    /// Too many attempts: refuse without checking.
    Wait,
}

/// Counts of failures, by keyed hash of a name.
pub struct Throttle {
    limits: Limits,
    key: [u8; 32],
    names: Mutex<HashMap<[u8; 16], Count>>,
    sign_in: Mutex<Budget>,
    codename: Mutex<Budget>,
}

fn seconds(t: Timestamp) -> i64 {
    t.as_micros() / 1_000_000
}

impl Throttle {
    /// A throttle with these limits; `key` (random, per process) keys the name hashes.
    pub fn new(limits: Limits, key: [u8; 32]) -> Self {
        let full = |now| {
            Mutex::new(Budget {
                tokens: f64::from(limits.failures_per_minute),
                at: now,
            })
        };
        Throttle {
            limits,
            key,
            names: Mutex::new(HashMap::new()),
            sign_in: full(0),
            codename: full(0),
        }
    }

    fn id(&self, domain: &str, name: &str) -> [u8; 16] {
        let mut id = [0u8; 16];
        if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            mac.update(domain.as_bytes());
            mac.update(&[0]);
            mac.update(name.trim().to_lowercase().as_bytes());
            let out = mac.finalize().into_bytes();
            id.copy_from_slice(&out[..16]);
        }
        id
    }

    /// Before checking a sign-in for `login` (as typed).
    pub fn sign_in(&self, login: &str, now: Timestamp) -> Verdict {
        self.check(&self.id("login", login), &self.sign_in, now)
    }

    /// After a failed sign-in attempt (password or code) for `login`.
    pub fn sign_in_failed(&self, login: &str, now: Timestamp) {
        self.fail(self.id("login", login), &self.sign_in, now);
    }

    /// After a successful sign-in: the name's count starts again.
    pub fn sign_in_succeeded(&self, login: &str) {
        let id = self.id("login", login);
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Before looking up a codename typed in session `session`.
    pub fn codename(&self, session: &str, now: Timestamp) -> Verdict {
        self.check(&self.id("session", session), &self.codename, now)
    }

    /// After a codename lookup found nothing.
    pub fn codename_failed(&self, session: &str, now: Timestamp) {
        self.fail(self.id("session", session), &self.codename, now);
    }

    fn check(&self, id: &[u8; 16], budget: &Mutex<Budget>, now: Timestamp) -> Verdict {
        let now = seconds(now);
        let locked = self
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some_and(|c| c.locked_until > now);
        let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut b, now);
        if locked || b.tokens < 1.0 {
            Verdict::Wait
        } else {
            Verdict::Check
        }
    }

    fn refill(&self, b: &mut Budget, now: i64) {
        let cap = f64::from(self.limits.failures_per_minute);
        let elapsed = (now - b.at).max(0) as f64;
        b.tokens = (b.tokens + elapsed * cap / 60.0).min(cap);
        b.at = now;
    }

    fn fail(&self, id: [u8; 16], budget: &Mutex<Budget>, now: Timestamp) {
        let now = seconds(now);
        {
            let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
            self.refill(&mut b, now);
            b.tokens = (b.tokens - 1.0).max(0.0);
        }
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() >= self.limits.max_tracked && !names.contains_key(&id) {
            let window = self.limits.window;
            names.retain(|_, c| c.locked_until > now || c.first + window > now);
            if names.len() >= self.limits.max_tracked
                && let Some(oldest) = names.iter().min_by_key(|(_, c)| c.first).map(|(k, _)| *k)
            {
                names.remove(&oldest);
            }
        }
        let c = names.entry(id).or_insert(Count {
            first: now,
            failed: 0,
            locked_until: 0,
        });
        if c.first + self.limits.window <= now {
            *c = Count {
                first: now,
                failed: 0,
                locked_until: c.locked_until,
            };
        }
        c.failed += 1;
        if c.failed >= self.limits.failures {
            c.locked_until = now + self.limits.lockout;
            c.failed = 0;
            c.first = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    #[test]
    fn a_name_locks_after_the_limit_whether_or_not_it_exists_and_unlocks_later() {
        let t = Throttle::new(Limits::default(), [7; 32]);
        for i in 0..4 {
            assert_eq!(t.sign_in("Olga.K", at(100 + i)), Verdict::Check);
            t.sign_in_failed("olga.k ", at(100 + i));
        }
        assert_eq!(t.sign_in("olga.k", at(105)), Verdict::Check);
        t.sign_in_failed("olga.k", at(105));
        assert_eq!(t.sign_in("olga.k", at(106)), Verdict::Wait);
        assert_eq!(t.sign_in("someone.else", at(106)), Verdict::Check);
        assert_eq!(t.sign_in("olga.k", at(105 + 15 * 60)), Verdict::Check);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = Throttle::new(Limits::default(), [7; 32]);
        for i in 0..20 {
            t.sign_in_failed("olga.k", at(i * 300));
            assert_eq!(t.sign_in("olga.k", at(i * 300 + 1)), Verdict::Check, "{i}");
        }
    }

    #[test]
    fn a_success_starts_the_count_again() {
        let t = Throttle::new(Limits::default(), [7; 32]);
        for _ in 0..4 {
            t.sign_in_failed("olga.k", at(10));
        }
        t.sign_in_succeeded("olga.k");
        for _ in 0..4 {
            t.sign_in_failed("olga.k", at(11));
        }
        assert_eq!(t.sign_in("olga.k", at(12)), Verdict::Check);
    }

    #[test]
    fn the_shared_budget_stops_spraying_across_names_and_refills() {
        let limits = Limits {
            failures_per_minute: 10,
            ..Limits::default()
        };
        let t = Throttle::new(limits, [7; 32]);
        for i in 0..10 {
            assert_eq!(t.sign_in(&format!("user{i}"), at(0)), Verdict::Check);
            t.sign_in_failed(&format!("user{i}"), at(0));
        }
        assert_eq!(t.sign_in("fresh.name", at(0)), Verdict::Wait);
        // Codenames have their own budget.
        assert_eq!(t.codename("session-a", at(0)), Verdict::Check);
        // Six seconds refill one attempt.
        assert_eq!(t.sign_in("fresh.name", at(6)), Verdict::Check);
    }

    #[test]
    fn the_table_stays_bounded() {
        let limits = Limits {
            max_tracked: 100,
            failures_per_minute: 1_000_000,
            ..Limits::default()
        };
        let t = Throttle::new(limits, [7; 32]);
        for i in 0..1_000 {
            t.codename_failed(&format!("s{i}"), at(i));
        }
        assert!(t.names.lock().unwrap().len() <= 100);
    }
}
