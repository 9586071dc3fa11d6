//! Injected randomness.

use std::fmt;
use std::sync::Mutex;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::error::{CryptoError, Result};

/// A source of cryptographically secure random bytes.
///
/// Every function that needs randomness takes one, so tests and reproducible runs can inject
/// [`SeededEntropy`] while production uses [`OsEntropy`].
pub trait Entropy: Send + Sync {
    /// Fills `buf` entirely with random bytes.
    ///
    /// # Errors
    /// [`CryptoError::Entropy`] if the source cannot deliver.
    fn fill(&self, buf: &mut [u8]) -> Result<()>;
}

/// The operating system's random number generator (via `getrandom`). Use this in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf).map_err(|e| CryptoError::Entropy(e.to_string()))
    }
}

/// A ChaCha20 generator keyed from the operating system and rekeyed from it after every
/// [`OsSeededEntropy::RESEED_AFTER`] bytes of output: the same construction as the operating
/// system's own generator, without a system call for every nonce. Use this in servers and
/// anywhere randomness is drawn often; [`OsEntropy`] where it is drawn rarely.
pub struct OsSeededEntropy {
    state: Mutex<(ChaCha20Rng, usize)>,
}

impl OsSeededEntropy {
    /// Output after which the generator is rekeyed from the operating system.
    pub const RESEED_AFTER: usize = 1 << 20;

    /// A generator keyed from the operating system.
    ///
    /// # Errors
    /// [`CryptoError::Entropy`] if the operating system cannot deliver.
    pub fn new() -> Result<Self> {
        Ok(Self {
            state: Mutex::new((Self::fresh()?, 0)),
        })
    }

    fn fresh() -> Result<ChaCha20Rng> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        OsEntropy.fill(seed.as_mut())?;
        Ok(ChaCha20Rng::from_seed(*seed))
    }
}

impl Entropy for OsSeededEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| CryptoError::Entropy("generator lock poisoned".to_owned()))?;
        if state.1 >= Self::RESEED_AFTER {
            *state = (Self::fresh()?, 0);
        }
        state.0.fill_bytes(buf);
        state.1 += buf.len();
        Ok(())
    }
}

impl fmt::Debug for OsSeededEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OsSeededEntropy([redacted])")
    }
}

/// A deterministic ChaCha20 generator seeded from a `u64`.
///
/// **For tests and reproducible demonstration runs only**: anyone who knows the seed can
/// reproduce every key and nonce it produced. Never use it to protect real data.
pub struct SeededEntropy {
    rng: Mutex<ChaCha20Rng>,
}

impl SeededEntropy {
    /// A generator whose output is fully determined by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| CryptoError::Entropy("seeded generator lock poisoned".to_owned()))?;
        rng.fill_bytes(buf);
        Ok(())
    }
}

impl fmt::Debug for SeededEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededEntropy([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_seeded_entropy_differs_between_instances_and_reseeds() {
        let (a, b) = (
            OsSeededEntropy::new().unwrap(),
            OsSeededEntropy::new().unwrap(),
        );
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_ne!(x, y);
        let mut big = vec![0u8; OsSeededEntropy::RESEED_AFTER + 10];
        a.fill(&mut big).unwrap();
        a.fill(&mut x).unwrap(); // rekeys here
        assert_eq!(a.state.lock().unwrap().1, 32);
        assert!(format!("{a:?}").contains("redacted"));
    }

    #[test]
    fn seeded_entropy_is_deterministic() {
        let (a, b, c) = (
            SeededEntropy::new(7),
            SeededEntropy::new(7),
            SeededEntropy::new(8),
        );
        let (mut x, mut y, mut z) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        c.fill(&mut z).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, z);
        // The stream advances.
        a.fill(&mut y).unwrap();
        assert_ne!(x, y);
    }

    #[test]
    fn os_entropy_fills() {
        let mut x = [0u8; 32];
        OsEntropy.fill(&mut x).unwrap();
        assert_ne!(x, [0u8; 32]);
    }

    #[test]
    fn poisoned_seeded_entropy_is_an_error() {
        let e = std::sync::Arc::new(SeededEntropy::new(1));
        let e2 = e.clone();
        let _ = std::thread::spawn(move || {
            let _guard = e2.rng.lock().unwrap();
            panic!("poison");
        })
        .join();
        let mut x = [0u8; 8];
        assert!(matches!(e.fill(&mut x), Err(CryptoError::Entropy(_))));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", SeededEntropy::new(3)),
            "SeededEntropy([redacted])"
        );
    }
}
