//! DPoP at a resource server (RFC 9449 §7): a request carrying `Authorization: DPoP <token>` must
//! come with one `DPoP` proof, signed by the token's key, for this method and URL, with `ath`
//! naming this token, fresh, and never seen before. The proof checks are the authorization
//! server's own ([`portcullis_jose::dpop::validate`]); this module adds the replay cache
//! (RFC 9449 §11.1) and, when configured, server nonces (RFC 9449 §9).
//!
//! [`DpopChecker::check`] returns the proof key's thumbprint; the caller then compares it with the
//! token's `cnf.jkt` ([`crate::binding::Binding::check`]).

mod replay;

use std::fmt;
use std::sync::Arc;

use portcullis_jose::SigningAlg;
use portcullis_jose::dpop::{DpopError, DpopNonces, DpopPolicy, DpopRequest, validate};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use replay::{MemoryReplayCache, ReplayCache, ReplayCacheError};

/// The longest proof age and future skew a [`DpopConfig`] may ask for; longer values are cut to
/// this (a day is far beyond any sensible window, and keeps time arithmetic in range).
const MAX_WINDOW_SECS: i64 = 86_400;

/// The latest `now` [`DpopChecker::check`] accepts: two days before the end of year 9999, the range
/// of the time arithmetic.
const LATEST_NOW: i64 = 253_402_300_799 - 2 * MAX_WINDOW_SECS;

/// What a resource server accepts of DPoP proofs.
#[derive(Clone)]
pub struct DpopConfig {
    /// The proof signing algorithms accepted (FAPI2 SP 5.4.1: PS256, ES256, EdDSA).
    pub algorithms: Vec<SigningAlg>,
    /// How old a proof may be, in seconds (RFC 9449 §11.1). Its `jti` is remembered that long.
    /// Cut to 0..=86400.
    pub max_age_secs: i64,
    /// How far in the future a proof's `iat` may be, in seconds (FAPI2 SP 5.3.2.1-13: at least 10,
    /// at most 60). Cut to 0..=86400.
    pub max_future_skew_secs: i64,
    /// When set, proofs must carry a nonce this resource server gave out (RFC 9449 §9), made under
    /// this secret. Replicas that share the secret accept each other's nonces.
    pub nonce_secret: Option<Zeroizing<[u8; 32]>>,
    /// How long one nonce window lasts, in seconds; a nonce is accepted in its own window and the
    /// next.
    pub nonce_window_secs: u32,
}

impl Default for DpopConfig {
    /// Every FAPI algorithm, proofs up to 60 s old and 10 s ahead, no nonces, 60 s nonce windows.
    fn default() -> Self {
        Self {
            algorithms: SigningAlg::ALL.to_vec(),
            max_age_secs: 60,
            max_future_skew_secs: 10,
            nonce_secret: None,
            nonce_window_secs: 60,
        }
    }
}

impl fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopConfig")
            .field("algorithms", &self.algorithms)
            .field("max_age_secs", &self.max_age_secs)
            .field("max_future_skew_secs", &self.max_future_skew_secs)
            .field(
                "nonce_secret",
                &self.nonce_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("nonce_window_secs", &self.nonce_window_secs)
            .finish()
    }
}

/// A DPoP proof that passed every check and whose `jti` is now recorded as used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedProof {
    /// The RFC 7638 thumbprint of the key that signed the proof: it must equal the token's
    /// `cnf.jkt` (RFC 9449 §7.1).
    pub jkt: String,
    /// The proof's identifier.
    pub jti: String,
    /// When the proof says it was made (Unix seconds).
    pub issued_at: i64,
}

/// Why a DPoP proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopFailure {
    /// The proof is missing, malformed, or fails a check of RFC 9449 §4.3, which the text names:
    /// `invalid_dpop_proof`.
    #[error("{0}")]
    Invalid(String),
    /// This resource server requires a nonce and the proof has none, or a stale one:
    /// `use_dpop_nonce`, with the current nonce in a `DPoP-Nonce` header (RFC 9449 §9).
    #[error("a fresh DPoP nonce is required (RFC 9449 §8)")]
    UseNonce,
    /// The proof was accepted before: a `jti` is single-use (RFC 9449 §11.1):
    /// `invalid_dpop_proof`.
    #[error("the DPoP proof has been used before: its jti is single-use (RFC 9449 §11.1)")]
    Replayed,
    /// The replay cache could not record the proof, so it is refused (fail closed). The field is
    /// the cause, for the log; it is not part of the text, which is fit for the client.
    #[error("the DPoP proof cannot be checked for replay right now; retry later")]
    Unavailable(String),
}

impl DpopFailure {
    /// The RFC 9449 §7.1 error code for the `WWW-Authenticate: DPoP` challenge of a 401 answer:
    /// `invalid_dpop_proof` or `use_dpop_nonce`. `None` for [`DpopFailure::Unavailable`], a fault
    /// of the resource server and not of the request: answer 503 without an error code.
    #[must_use]
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            DpopFailure::Invalid(_) | DpopFailure::Replayed => Some("invalid_dpop_proof"),
            DpopFailure::UseNonce => Some("use_dpop_nonce"),
            DpopFailure::Unavailable(_) => None,
        }
    }
}

impl From<DpopError> for DpopFailure {
    fn from(error: DpopError) -> Self {
        match error {
            DpopError::Invalid(description) => DpopFailure::Invalid(description),
            DpopError::UseNonce => DpopFailure::UseNonce,
        }
    }
}

/// Checks the DPoP proofs that accompany access tokens at a resource server. `Send + Sync`: make
/// one at start-up and share it (in an `Arc`) between requests.
#[derive(Debug)]
pub struct DpopChecker {
    policy: DpopPolicy,
    /// Present when proofs must carry one of this server's nonces.
    nonces: Option<DpopNonces>,
    replay: Arc<dyn ReplayCache>,
}

impl DpopChecker {
    /// A checker that accepts what `config` allows and records proofs in `replay`, which replicas
    /// of one API must share.
    #[must_use]
    pub fn new(config: DpopConfig, replay: Arc<dyn ReplayCache>) -> Self {
        let window = |secs: i64| Duration::seconds(secs.clamp(0, MAX_WINDOW_SECS));
        Self {
            policy: DpopPolicy {
                algorithms: config.algorithms,
                max_future_skew: window(config.max_future_skew_secs),
                max_age: window(config.max_age_secs),
            },
            nonces: config
                .nonce_secret
                .as_ref()
                .map(|secret| DpopNonces::new(secret, config.nonce_window_secs)),
            replay,
        }
    }

    /// Checks the request's DPoP proof (RFC 9449 §4.3 and §7.1): `proof_headers` are all of the
    /// request's `DPoP` header values (exactly one is required), `method` and `url` the request's
    /// method and absolute URL as clients address this server, `access_token` the token from
    /// `Authorization: DPoP`, `now` the current Unix time. Only once every check has passed is the
    /// proof's `jti` recorded in the replay cache; a proof is accepted once.
    ///
    /// # Errors
    /// [`DpopFailure::Invalid`] naming the failed check, [`DpopFailure::UseNonce`] (answer with
    /// [`DpopChecker::current_nonce`] in `DPoP-Nonce`), [`DpopFailure::Replayed`], or
    /// [`DpopFailure::Unavailable`] when the replay cache fails or `now` is not a plausible time.
    pub async fn check(
        &self,
        proof_headers: &[&str],
        method: &str,
        url: &str,
        access_token: &str,
        now: i64,
    ) -> Result<AcceptedProof, DpopFailure> {
        let now_at = instant(now).ok_or_else(|| {
            DpopFailure::Unavailable(format!("the clock reads an impossible time: {now}"))
        })?;
        let accepted = self.nonces.as_ref().map(|n| n.accepted(now_at));
        let request = DpopRequest {
            headers: proof_headers,
            method,
            url,
            access_token: Some(access_token),
            accepted_nonces: accepted.as_ref().map(|a| a.as_slice()),
        };
        let proof = validate(&request, &self.policy, now_at)?;
        let key = replay_key(&proof.jkt, &proof.jti);
        match self
            .replay
            .first_use(key, proof.replay_until.unix_timestamp(), now)
            .await
        {
            Ok(true) => Ok(AcceptedProof {
                jkt: proof.jkt,
                jti: proof.jti,
                issued_at: proof.issued_at.unix_timestamp(),
            }),
            Ok(false) => Err(DpopFailure::Replayed),
            Err(e) => Err(DpopFailure::Unavailable(e.to_string())),
        }
    }

    /// The nonce to send in a `DPoP-Nonce` response header (RFC 9449 §9), with a `use_dpop_nonce`
    /// refusal or on any answer; `None` when this server does not use nonces.
    #[must_use]
    pub fn current_nonce(&self, now: i64) -> Option<String> {
        let nonces = self.nonces.as_ref()?;
        Some(nonces.current(instant(now)?))
    }
}

/// `now` as a time the proof checks can compute with, if it is one.
fn instant(now: i64) -> Option<OffsetDateTime> {
    if !(0..=LATEST_NOW).contains(&now) {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(now).ok()
}

/// The replay cache key of a proof: SHA-256 of `jkt`, a zero byte and `jti`, so that `jti`s are
/// per key (two clients cannot collide) and every stored key has the same size. A thumbprint is
/// base64url and never holds a zero byte, so the encoding is unambiguous.
fn replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(jkt.as_bytes());
    hash.update([0u8]);
    hash.update(jti.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_jose::SigningKey;
    use portcullis_jose::dpop::make_proof;

    const URL: &str = "https://api.bank.example/accounts";
    const TOKEN: &str = "the-access-token";
    const NOW: i64 = 1_800_000_000;

    fn key() -> SigningKey {
        SigningKey::generate(SigningAlg::Es256, 2048).unwrap()
    }

    fn checker(config: DpopConfig) -> DpopChecker {
        DpopChecker::new(config, Arc::new(MemoryReplayCache::new(1_000)))
    }

    fn proof(key: &SigningKey, jti: &str) -> String {
        make_proof(key, "GET", URL, Some(TOKEN), None, NOW, jti).unwrap()
    }

    fn assert_invalid(result: Result<AcceptedProof, DpopFailure>, needle: &str) {
        match result {
            Err(DpopFailure::Invalid(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("expected invalid_dpop_proof ({needle}), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn rfc_9449_7_1_a_valid_proof_is_accepted_and_names_its_key() {
        let key = key();
        let accepted = checker(DpopConfig::default())
            .check(&[&proof(&key, "p-1")], "GET", URL, TOKEN, NOW)
            .await
            .unwrap();
        assert_eq!(accepted.jkt, key.kid());
        assert_eq!(accepted.jti, "p-1");
        assert_eq!(accepted.issued_at, NOW);
    }

    #[tokio::test]
    async fn rfc_9449_11_1_a_replayed_proof_is_refused() {
        let key = key();
        let checker = checker(DpopConfig::default());
        let proof = proof(&key, "p-1");
        assert!(
            checker
                .check(&[&proof], "GET", URL, TOKEN, NOW)
                .await
                .is_ok()
        );
        let again = checker.check(&[&proof], "GET", URL, TOKEN, NOW + 5).await;
        assert_eq!(again, Err(DpopFailure::Replayed));
        assert_eq!(
            DpopFailure::Replayed.error_code(),
            Some("invalid_dpop_proof")
        );
        // The same jti from another key is another proof.
        let other = self::proof(&self::key(), "p-1");
        assert!(
            checker
                .check(&[&other], "GET", URL, TOKEN, NOW)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn rfc_9449_4_3_wrong_htm_htu_or_ath_is_refused_and_not_recorded() {
        let key = key();
        let checker = checker(DpopConfig::default());
        let proof = proof(&key, "p-1");
        assert_invalid(
            checker.check(&[&proof], "POST", URL, TOKEN, NOW).await,
            "htm",
        );
        assert_invalid(
            checker
                .check(
                    &[&proof],
                    "GET",
                    "https://api.bank.example/payments",
                    TOKEN,
                    NOW,
                )
                .await,
            "htu",
        );
        assert_invalid(
            checker
                .check(&[&proof], "GET", URL, "another-token", NOW)
                .await,
            "ath",
        );
        let without_ath = make_proof(&key, "GET", URL, None, None, NOW, "p-2").unwrap();
        assert_invalid(
            checker.check(&[&without_ath], "GET", URL, TOKEN, NOW).await,
            "ath",
        );
        assert_invalid(checker.check(&[], "GET", URL, TOKEN, NOW).await, "missing");
        assert_eq!(
            DpopFailure::Invalid("x".into()).error_code(),
            Some("invalid_dpop_proof")
        );
        // None of the refusals used the proof up.
        assert!(
            checker
                .check(&[&proof], "GET", URL, TOKEN, NOW)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn rfc_9449_9_a_nonce_is_required_then_accepted() {
        let key = key();
        let checker = checker(DpopConfig {
            nonce_secret: Some(Zeroizing::new([9u8; 32])),
            ..DpopConfig::default()
        });
        let without = proof(&key, "p-1");
        let refused = checker.check(&[&without], "GET", URL, TOKEN, NOW).await;
        assert_eq!(refused, Err(DpopFailure::UseNonce));
        assert_eq!(DpopFailure::UseNonce.error_code(), Some("use_dpop_nonce"));
        let nonce = checker.current_nonce(NOW).unwrap();
        let stale = make_proof(&key, "GET", URL, Some(TOKEN), Some("stale"), NOW, "p-2").unwrap();
        assert_eq!(
            checker.check(&[&stale], "GET", URL, TOKEN, NOW).await,
            Err(DpopFailure::UseNonce)
        );
        // The refused proof was not recorded: the same jti with the nonce is accepted.
        let with = make_proof(&key, "GET", URL, Some(TOKEN), Some(&nonce), NOW, "p-1").unwrap();
        assert!(
            checker
                .check(&[&with], "GET", URL, TOKEN, NOW)
                .await
                .is_ok()
        );
        assert_eq!(
            self::checker(DpopConfig::default()).current_nonce(NOW),
            None
        );
    }

    #[tokio::test]
    async fn rfc_9449_11_1_a_full_replay_cache_fails_closed() {
        let key = key();
        let checker = DpopChecker::new(DpopConfig::default(), Arc::new(MemoryReplayCache::new(1)));
        let first = proof(&key, "p-1");
        assert!(
            checker
                .check(&[&first], "GET", URL, TOKEN, NOW)
                .await
                .is_ok()
        );
        let second = proof(&key, "p-2");
        let refused = checker.check(&[&second], "GET", URL, TOKEN, NOW).await;
        assert!(
            matches!(&refused, Err(DpopFailure::Unavailable(cause)) if cause.contains("full")),
            "{refused:?}"
        );
        assert_eq!(refused.unwrap_err().error_code(), None);
        // Once the first proof is too old, its entry is evicted and a new proof fits.
        let later = NOW + 61;
        let third = make_proof(&key, "GET", URL, Some(TOKEN), None, later, "p-3").unwrap();
        assert!(
            checker
                .check(&[&third], "GET", URL, TOKEN, later)
                .await
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn rfc_9449_11_1_of_fifty_concurrent_uses_of_a_proof_exactly_one_is_accepted() {
        let key = key();
        let checker = Arc::new(checker(DpopConfig::default()));
        let proof = Arc::new(proof(&key, "p-1"));
        let barrier = Arc::new(tokio::sync::Barrier::new(50));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (checker, proof, barrier) = (checker.clone(), proof.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    checker.check(&[&proof], "GET", URL, TOKEN, NOW).await
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => accepted += 1,
                Err(e) => assert_eq!(e, DpopFailure::Replayed),
            }
        }
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn an_impossible_clock_refuses_rather_than_panics() {
        let key = key();
        let checker = checker(DpopConfig {
            max_age_secs: i64::MAX,
            max_future_skew_secs: i64::MIN,
            ..DpopConfig::default()
        });
        let proof = proof(&key, "p-1");
        for now in [i64::MIN, -1, i64::MAX] {
            assert!(matches!(
                checker.check(&[&proof], "GET", URL, TOKEN, now).await,
                Err(DpopFailure::Unavailable(_))
            ));
            assert_eq!(checker.current_nonce(now), None);
        }
        // A negative skew is cut to zero, a huge age to a day: the proof at `now` passes.
        assert!(
            checker
                .check(&[&proof], "GET", URL, TOKEN, NOW)
                .await
                .is_ok()
        );
    }

    #[test]
    fn the_checker_is_shareable_and_the_config_redacts_its_secret() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<DpopChecker>();
        let config = DpopConfig {
            nonce_secret: Some(Zeroizing::new([42u8; 32])),
            ..DpopConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(
            debug.contains("[redacted]") && !debug.contains("42"),
            "{debug}"
        );
    }
}
