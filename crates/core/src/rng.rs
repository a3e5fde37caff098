//! Randomness as a parameter. Production uses the operating system's CSPRNG through aws-lc-rs;
//! tests use [`SeededRng`], which is deterministic and must never be used for real secrets.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::rand::SecureRandom as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The random source failed; callers fail closed.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("the random number generator failed")]
pub struct RngError;

/// A source of random bytes.
pub trait Rng: Send + Sync + fmt::Debug {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    /// [`RngError`] if the source failed; nothing random may then be issued.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RngError>;

    /// `bytes` random bytes as base64url without padding: the form of every code, handle and
    /// token we issue (≥ 16 bytes gives the 128 bits FAPI2 SP 5.4.1-4 asks for).
    ///
    /// # Errors
    /// [`RngError`] if the source failed.
    fn token(&self, bytes: usize) -> Result<String, RngError> {
        let mut buf = vec![0u8; bytes];
        self.fill(&mut buf)?;
        Ok(URL_SAFE_NO_PAD.encode(&buf))
    }
}

/// The operating system's CSPRNG.
#[derive(Debug, Default)]
pub struct SystemRng(aws_lc_rs::rand::SystemRandom);

impl SystemRng {
    /// A new handle on the system CSPRNG.
    #[must_use]
    pub fn new() -> Self {
        Self(aws_lc_rs::rand::SystemRandom::new())
    }
}

impl Rng for SystemRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RngError> {
        self.0.fill(dest).map_err(|_| RngError)
    }
}

/// A deterministic generator (SplitMix64) for tests. Not cryptographically secure.
#[derive(Debug)]
pub struct SeededRng {
    state: AtomicU64,
}

impl SeededRng {
    /// A generator that always produces the same sequence for the same seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Rng for SeededRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RngError> {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(bytes) {
                *d = s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rng_is_repeatable_and_system_rng_is_not_constant() {
        assert_eq!(
            SeededRng::new(7).token(32).unwrap(),
            SeededRng::new(7).token(32).unwrap()
        );
        assert_ne!(
            SeededRng::new(7).token(32).unwrap(),
            SeededRng::new(8).token(32).unwrap()
        );
        let rng = SystemRng::new();
        assert_ne!(rng.token(16).unwrap(), rng.token(16).unwrap());
        // 32 bytes of base64url without padding.
        assert_eq!(rng.token(32).unwrap().len(), 43);
    }
}
