//! Customer passwords: argon2id (RFC 9106) at OWASP's parameters, as PHC strings. Hashing is slow
//! by design: the server calls these functions on a blocking thread behind a semaphore, never on
//! the async executor. A login for an unknown user verifies against [`DUMMY_HASH`] so that it
//! takes as long as one for a known user.

use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::Rng;
use crate::user::PasswordHash;

/// A PHC string with the default parameters, to verify against when the user does not exist.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$O4pY0wCq6QmXmUHFgXhNRFqEycxzFjPTU1VnfjwcUKg";

/// The argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB (OWASP: 19 MiB with t = 2).
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            m_cost: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Length bounds: NIST SP 800-63B §5.1.1.2 asks for at least 8 characters and at least 64 allowed.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in bytes: a bound on hashing work per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error("a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes long")]
    Length,
    /// The stored hash is not an argon2 PHC string.
    #[error("the stored password hash is not a valid argon2 PHC string")]
    BadHash,
    /// The parameters are out of argon2's range.
    #[error("invalid argon2 parameters")]
    BadParams,
    /// The random source failed.
    #[error("the random number generator failed")]
    Rng,
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// It matches. `rehash` says the stored hash uses other parameters than the current ones,
    /// so it should be replaced now that the password is at hand.
    Match {
        /// Whether to store a fresh hash.
        rehash: bool,
    },
    /// It does not match.
    Mismatch,
}

fn hasher(params: PasswordParams) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map_err(|_| PasswordError::BadParams)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with a fresh 16-byte salt. Slow: call it off the async executor.
///
/// # Errors
/// [`PasswordError::Length`] for a password out of bounds; [`PasswordError::Rng`] if no salt
/// can be drawn.
pub fn hash(
    password: &str,
    params: PasswordParams,
    rng: &dyn Rng,
) -> Result<PasswordHash, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::Length);
    }
    let mut salt = Zeroizing::new([0u8; 16]);
    rng.fill(salt.as_mut()).map_err(|_| PasswordError::Rng)?;
    let phc = hasher(params)?
        .hash_password_with_salt(password.as_bytes(), salt.as_ref())
        .map_err(|_| PasswordError::BadParams)?;
    Ok(PasswordHash::from_phc(phc.to_string()))
}

/// Checks a password against a stored hash, in constant time with respect to the password.
/// Slow: call it off the async executor.
///
/// # Errors
/// [`PasswordError::BadHash`] if the stored value is not an argon2 PHC string.
pub fn verify(
    password: &str,
    stored: &PasswordHash,
    current: PasswordParams,
) -> Result<PasswordCheck, PasswordError> {
    let parsed = Phc::new(stored.as_phc()).map_err(|_| PasswordError::BadHash)?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(PasswordCheck::Mismatch);
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(PasswordCheck::Match {
            rehash: !uses(stored, current),
        }),
        Err(_) => Ok(PasswordCheck::Mismatch),
    }
}

/// Whether a stored hash is argon2id v19 with exactly these parameters.
fn uses(stored: &PasswordHash, params: PasswordParams) -> bool {
    let prefix = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        params.m_cost, params.t_cost, params.p_cost
    );
    stored.as_phc().starts_with(&prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    /// Cheap parameters so the tests stay fast; production uses the defaults.
    const FAST: PasswordParams = PasswordParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn hashes_verify_and_report_when_parameters_changed() {
        let rng = SeededRng::new(9);
        let stored = hash("correct horse", FAST, &rng).unwrap();
        assert!(stored.as_phc().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            verify("correct horse", &stored, FAST).unwrap(),
            PasswordCheck::Match { rehash: false }
        );
        assert_eq!(
            verify("correct horsE", &stored, FAST).unwrap(),
            PasswordCheck::Mismatch
        );
        let stronger = PasswordParams {
            m_cost: 128,
            ..FAST
        };
        assert_eq!(
            verify("correct horse", &stored, stronger).unwrap(),
            PasswordCheck::Match { rehash: true }
        );
        // Salts differ, so equal passwords do not give equal hashes.
        assert_ne!(hash("correct horse", FAST, &rng).unwrap(), stored);
    }

    #[test]
    fn the_defaults_are_owasps_and_the_dummy_hash_uses_them() {
        assert_eq!(
            PasswordParams::default(),
            PasswordParams {
                m_cost: 19_456,
                t_cost: 2,
                p_cost: 1
            }
        );
        let dummy = PasswordHash::from_phc(DUMMY_HASH.into());
        assert!(uses(&dummy, PasswordParams::default()));
        assert_eq!(
            verify("anything at all", &dummy, PasswordParams::default()).unwrap(),
            PasswordCheck::Mismatch
        );
    }

    #[test]
    fn length_bounds_and_bad_hashes() {
        let rng = SeededRng::new(1);
        assert_eq!(hash("short", FAST, &rng), Err(PasswordError::Length));
        assert_eq!(
            hash(&"x".repeat(MAX_PASSWORD_BYTES + 1), FAST, &rng),
            Err(PasswordError::Length)
        );
        // Eight characters, counted as characters, not bytes.
        assert!(hash("pässwörd", FAST, &rng).is_ok());
        assert_eq!(
            verify("whatever", &PasswordHash::from_phc("plain".into()), FAST),
            Err(PasswordError::BadHash)
        );
    }
}
