//! The password service: argon2id off the async executor. Hashing costs tens of milliseconds and
//! 19 MiB per call, so calls run on tokio's blocking pool behind a semaphore that bounds how many
//! run at once (and so the memory a burst of logins can take); waiting callers queue.

use std::sync::Arc;

use portcullis_core::Rng;
use portcullis_core::password::{self, DUMMY_HASH, PasswordCheck, PasswordError, PasswordParams};
use portcullis_core::user::PasswordHash;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Why the service could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PasswordServiceError {
    /// The password or stored hash was refused.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The blocking task failed or the service is shutting down.
    #[error("password hashing is unavailable")]
    Unavailable,
}

/// Hashes and checks passwords with bounded concurrency.
#[derive(Debug)]
pub struct PasswordService {
    permits: Semaphore,
    params: PasswordParams,
    rng: Arc<dyn Rng>,
}

impl PasswordService {
    /// A service running at most `concurrency` hashes at once.
    #[must_use]
    pub fn new(concurrency: usize, params: PasswordParams, rng: Arc<dyn Rng>) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
            params,
            rng,
        }
    }

    /// Hashes a new password.
    ///
    /// # Errors
    /// [`PasswordServiceError::Password`] for a password out of bounds.
    pub async fn hash(
        &self,
        password: Zeroizing<String>,
    ) -> Result<PasswordHash, PasswordServiceError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordServiceError::Unavailable)?;
        let (params, rng) = (self.params, self.rng.clone());
        tokio::task::spawn_blocking(move || password::hash(&password, params, rng.as_ref()))
            .await
            .map_err(|_| PasswordServiceError::Unavailable)?
            .map_err(PasswordServiceError::from)
    }

    /// Checks a password. With no stored hash (no such user) it checks against a dummy hash and
    /// reports a mismatch, taking as long as a real check so that timing does not reveal which
    /// usernames exist.
    ///
    /// # Errors
    /// [`PasswordServiceError::Password`] if the stored hash is malformed.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<PasswordHash>,
    ) -> Result<PasswordCheck, PasswordServiceError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordServiceError::Unavailable)?;
        let params = self.params;
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| PasswordHash::from_phc(DUMMY_HASH.to_owned()));
        let check = tokio::task::spawn_blocking(move || password::verify(&password, &hash, params))
            .await
            .map_err(|_| PasswordServiceError::Unavailable)??;
        Ok(if known {
            check
        } else {
            PasswordCheck::Mismatch
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::SeededRng;

    fn service() -> PasswordService {
        // Cheap parameters keep the test fast; the mechanism is the same.
        PasswordService::new(
            2,
            PasswordParams {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
            },
            Arc::new(SeededRng::new(3)),
        )
    }

    #[tokio::test]
    async fn hashes_and_verifies_off_the_executor_and_unknown_users_never_match() {
        let passwords = service();
        let stored = passwords
            .hash(Zeroizing::new("correct horse".into()))
            .await
            .unwrap();
        let check = passwords
            .verify(Zeroizing::new("correct horse".into()), Some(stored.clone()))
            .await
            .unwrap();
        assert_eq!(check, PasswordCheck::Match { rehash: false });
        let wrong = passwords
            .verify(Zeroizing::new("wrong horse".into()), Some(stored))
            .await
            .unwrap();
        assert_eq!(wrong, PasswordCheck::Mismatch);
        let unknown = passwords
            .verify(Zeroizing::new("anything".into()), None)
            .await
            .unwrap();
        assert_eq!(unknown, PasswordCheck::Mismatch);
        assert!(matches!(
            passwords.hash(Zeroizing::new("short".into())).await,
            Err(PasswordServiceError::Password(PasswordError::Length))
        ));
    }

    #[tokio::test]
    async fn many_concurrent_checks_all_complete_through_the_bounded_pool() {
        let passwords = Arc::new(service());
        let stored = passwords
            .hash(Zeroizing::new("correct horse".into()))
            .await
            .unwrap();
        let checks = (0..8).map(|_| {
            let (passwords, stored) = (passwords.clone(), stored.clone());
            tokio::spawn(async move {
                passwords
                    .verify(Zeroizing::new("correct horse".into()), Some(stored))
                    .await
            })
        });
        for check in checks {
            assert_eq!(
                check.await.unwrap().unwrap(),
                PasswordCheck::Match { rehash: false }
            );
        }
    }
}
