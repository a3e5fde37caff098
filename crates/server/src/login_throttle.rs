//! Brute-force protection of the customer's login, applied: the `[login_protection]`
//! configuration, and the throttle that reads and writes the counters of
//! [`portcullis_core::login_throttle`] in the store for every password and second-factor attempt.
//!
//! An attempt is decided before anything is checked: a refused one (a delay or a lock) costs no
//! password hash and writes nothing. An admitted one is counted as a failure *before* its check,
//! each counter by compare-and-set (read, apply the policy, write if the version is unchanged,
//! else again), so that attempts sent together are each decided on the count the previous one
//! left and cannot all slip through before the first failure is written. A success then undoes
//! what it counted: its pair starts again (and its source becomes trusted for the account), and
//! the source and account counters get their failure back. Every replica shares the counters
//! through the store; a store that fails refuses the login (fail closed).

use portcullis_core::login_throttle::{
    CounterPolicy, LoginPolicy, Refusal, RefusalReason, ThrottleKey, ThrottleKeys, ThrottleKind,
    ThrottleState,
};
use portcullis_core::mac::Mac;
use portcullis_core::store::{Store, StoreError, StoredThrottle};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::app::AppState;
use crate::config::ConfigError;
use crate::source_ip::SourceIp;

/// How often a compare-and-set is retried when other attempts keep writing the same counter
/// first. Past it the attempt is refused (fail closed): that counter is under a burst anyway.
const MAX_WRITES: usize = 64;

/// One counter's settings (see [`CounterPolicy`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterConfig {
    /// How long a window lasts from its first failure, in seconds (60 to 86400).
    pub window_secs: u64,
    /// Failures in a window that cost no wait.
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones, in seconds; doubles with each
    /// further failure. 0: no waits, only the lock.
    pub first_delay_secs: u64,
    /// The longest wait, in seconds (at most 3600).
    pub max_delay_secs: u64,
    /// The failure in a window that locks the key, and every one after it (1 to 1000).
    pub lock_after: u32,
    /// How long a lock lasts, in seconds (1 to 86400). It ends by itself.
    pub lock_secs: u64,
}

impl CounterConfig {
    fn from_policy(policy: &CounterPolicy) -> Self {
        let secs = |d: Duration| u64::try_from(d.whole_seconds()).unwrap_or(0);
        Self {
            window_secs: secs(policy.window),
            free_failures: policy.free_failures,
            first_delay_secs: secs(policy.first_delay),
            max_delay_secs: secs(policy.max_delay),
            lock_after: policy.lock_after,
            lock_secs: secs(policy.lock_for),
        }
    }

    fn policy(&self) -> CounterPolicy {
        let secs = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        CounterPolicy {
            window: secs(self.window_secs),
            free_failures: self.free_failures,
            first_delay: secs(self.first_delay_secs),
            max_delay: secs(self.max_delay_secs),
            lock_after: self.lock_after,
            lock_for: secs(self.lock_secs),
        }
    }

    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let ranges: [(&str, u64, std::ops::RangeInclusive<u64>); 4] = [
            ("window_secs", self.window_secs, 60..=86_400),
            ("max_delay_secs", self.max_delay_secs, 0..=3600),
            ("lock_after", u64::from(self.lock_after), 1..=1000),
            ("lock_secs", self.lock_secs, 1..=86_400),
        ];
        for (field, value, range) in ranges {
            if !range.contains(&value) {
                return Err(ConfigError::new(
                    format!("login_protection.{name}.{field}"),
                    format!("must be {} to {}", range.start(), range.end()),
                ));
            }
        }
        Ok(())
    }
}

/// Brute-force protection of the customer's login (`[login_protection]`). The defaults are the
/// bank defaults of [`LoginPolicy::default`], whose documentation explains them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginProtectionConfig {
    /// One account from one source address (IPv4 address or IPv6 /64).
    pub pair: CounterConfig,
    /// One source address across accounts (credential stuffing).
    pub ip: CounterConfig,
    /// One account across source addresses.
    pub account: CounterConfig,
    /// Failures of one source, per pair window, that count against the account: kept low
    /// enough that one source can never lock the account (checked at start-up).
    pub account_failures_per_source: u32,
    /// How many days a source from which an account's password was given stays trusted for
    /// that account: only its pair counter applies to it then (0 to 365; 0: never trusted).
    pub trusted_source_days: u32,
    /// One customer's second factor, across logins and sources.
    pub totp: CounterConfig,
}

impl Default for LoginProtectionConfig {
    fn default() -> Self {
        let policy = LoginPolicy::default();
        Self {
            pair: CounterConfig::from_policy(&policy.pair),
            ip: CounterConfig::from_policy(&policy.ip),
            account: CounterConfig::from_policy(&policy.account),
            account_failures_per_source: policy.account_failures_per_source,
            trusted_source_days: u32::try_from(policy.trust_for.whole_days()).unwrap_or(0),
            totp: CounterConfig::from_policy(&policy.totp),
        }
    }
}

impl LoginProtectionConfig {
    /// The policy these settings make.
    #[must_use]
    pub fn policy(&self) -> LoginPolicy {
        LoginPolicy {
            pair: self.pair.policy(),
            ip: self.ip.policy(),
            account: self.account.policy(),
            account_failures_per_source: self.account_failures_per_source,
            trust_for: Duration::days(i64::from(self.trusted_source_days)),
            totp: self.totp.policy(),
        }
    }

    /// Checks ranges, and that the counters agree with each other.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, counter) in [
            ("pair", &self.pair),
            ("ip", &self.ip),
            ("account", &self.account),
            ("totp", &self.totp),
        ] {
            counter.validate(name)?;
        }
        if self.trusted_source_days > 365 {
            return Err(ConfigError::new(
                "login_protection.trusted_source_days",
                "must be 0 to 365",
            ));
        }
        self.policy().validate().map_err(|e| {
            let key = if e.counter.is_empty() {
                format!("login_protection.{}", e.field)
            } else {
                format!("login_protection.{}.{}", e.counter, e.field)
            };
            ConfigError::new(key, e.message)
        })
    }
}

/// A password attempt that was let through and counted: what its success must undo, and the
/// locks its failure leaves standing.
#[derive(Debug, Clone)]
pub struct PasswordAttempt {
    at: OffsetDateTime,
    pair: ThrottleKey,
    ip: Option<ThrottleKey>,
    account: Option<ThrottleKey>,
    /// The locks this attempt set, which stand if it fails.
    pub locks: Vec<Refusal>,
}

/// A second-factor attempt that was let through and counted.
#[derive(Debug, Clone)]
pub struct TotpAttempt {
    key: ThrottleKey,
    /// The lock this attempt set, which stands if the code was wrong.
    pub lock: Option<Refusal>,
}

/// The throttle of one request: the policy from the configuration, the keys under the KEK.
#[derive(Debug)]
pub struct LoginThrottle<'a> {
    store: &'a dyn Store,
    policy: LoginPolicy,
    keys: ThrottleKeys,
}

impl<'a> LoginThrottle<'a> {
    /// The throttle of `state`'s store, configuration and KEK.
    #[must_use]
    pub fn new(state: &'a AppState) -> Self {
        Self::with(
            state.store.as_ref(),
            state.config.login_protection.policy(),
            Mac::new(&state.kek.derive_key("login-throttle")),
        )
    }

    /// A throttle on `store` applying `policy`, its keys made under `mac`.
    #[must_use]
    pub fn with(store: &'a dyn Store, policy: LoginPolicy, mac: Mac) -> Self {
        Self {
            store,
            policy,
            keys: ThrottleKeys::new(mac),
        }
    }

    async fn read(&self, key: &ThrottleKey) -> Result<Option<StoredThrottle>, StoreError> {
        self.store.login_throttle().find(key).await
    }

    /// Applies `change` to the counter of `key` by compare-and-set until it wins: the state
    /// written, or the refusal `change` gave (nothing written then). `known` is the counter as
    /// the caller just read it, if it did: the first try starts from it instead of reading again
    /// (a stale one only costs a lost compare-and-set and a fresh read).
    async fn update(
        &self,
        key: &ThrottleKey,
        now: OffsetDateTime,
        mut known: Option<Option<StoredThrottle>>,
        change: impl Fn(Option<&ThrottleState>) -> Result<Option<ThrottleState>, Refusal>,
    ) -> Result<Result<Option<ThrottleState>, Refusal>, StoreError> {
        let counters = self.store.login_throttle();
        let counter = self.policy.counter(key.kind);
        for _ in 0..MAX_WRITES {
            let found = match known.take() {
                Some(found) => found,
                None => counters.find(key).await?,
            };
            let next = match change(found.as_ref().map(|f| &f.state)) {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(Ok(None)),
                Err(refusal) => return Ok(Err(refusal)),
            };
            let expires_at = counter.expires_at(&next);
            if counters
                .put(key, found.map(|f| f.version), &next, expires_at)
                .await?
            {
                return Ok(Ok(Some(next)));
            }
        }
        tracing::warn!(
            kind = key.kind.as_str(),
            "login throttle: a counter stayed contended; the attempt is refused"
        );
        Ok(Err(Refusal {
            kind: key.kind,
            reason: RefusalReason::Delayed,
            until: now.saturating_add(Duration::seconds(1)),
        }))
    }

    /// Counts one failure on `key` unless its counter refuses the attempt (`known`: as for
    /// [`Self::update`]).
    async fn admit(
        &self,
        key: &ThrottleKey,
        now: OffsetDateTime,
        known: Option<Option<StoredThrottle>>,
    ) -> Result<Result<ThrottleState, Refusal>, StoreError> {
        let counter = self.policy.counter(key.kind);
        let kind = key.kind;
        Ok(self
            .update(key, now, known, |state| {
                counter.admit(kind, state, now).map(Some)
            })
            .await?
            .and_then(|state| {
                // `admit` always writes a state; a missing one would be a bug: refuse.
                state.ok_or(Refusal {
                    kind,
                    reason: RefusalReason::Delayed,
                    until: now,
                })
            }))
    }

    /// Decides a password attempt of `username` from `source` at `now`: refused (nothing is
    /// counted, nothing need be checked), or counted and let through.
    ///
    /// # Errors
    /// [`StoreError`] when the counters cannot be read or written: refuse the login.
    pub async fn admit_password(
        &self,
        username: &str,
        source: SourceIp,
        now: OffsetDateTime,
    ) -> Result<Result<PasswordAttempt, Refusal>, StoreError> {
        let bucket = source.bucket();
        let pair = self.keys.pair(username, &bucket);
        let ip = self.keys.ip(&bucket);
        let account = self.keys.account(username);
        // Each counter is read once: the check decides on these, and the counting below starts
        // its compare-and-set from them.
        let pair_found = self.read(&pair).await?;
        let trusted = LoginPolicy::trusted(pair_found.as_ref().map(|f| &f.state), now);
        let (ip_found, account_found) = if trusted {
            (None, None)
        } else {
            (self.read(&ip).await?, self.read(&account).await?)
        };
        if let Some(refusal) = self.policy.check(
            pair_found.as_ref().map(|f| &f.state),
            ip_found.as_ref().map(|f| &f.state),
            account_found.as_ref().map(|f| &f.state),
            now,
        ) {
            return Ok(Err(refusal));
        }
        // Counted before the check, pair first: its count decides whether the account counts.
        let pair_after = match self.admit(&pair, now, Some(pair_found)).await? {
            Ok(state) => state,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut locks = Vec::new();
        let mut note_lock = |kind: ThrottleKind, state: &ThrottleState| {
            if let Some(until) = self.policy.counter(kind).locked_by(state, now) {
                locks.push(Refusal {
                    kind,
                    reason: RefusalReason::Locked,
                    until,
                });
            }
        };
        note_lock(ThrottleKind::Pair, &pair_after);
        let mut attempt = PasswordAttempt {
            at: now,
            pair,
            ip: None,
            account: None,
            locks: Vec::new(),
        };
        if !trusted {
            match self.admit(&ip, now, Some(ip_found)).await? {
                Ok(state) => note_lock(ThrottleKind::Ip, &state),
                // Another attempt got in first (the pair's failure stays counted: a race's cost).
                Err(refusal) => return Ok(Err(refusal)),
            }
            attempt.ip = Some(ip);
            if self.policy.counts_for_account(&pair_after) {
                match self.admit(&account, now, Some(account_found)).await? {
                    Ok(state) => note_lock(ThrottleKind::Account, &state),
                    Err(refusal) => {
                        self.refund(attempt.ip.as_ref(), now).await?;
                        return Ok(Err(refusal));
                    }
                }
                attempt.account = Some(account);
            }
        }
        attempt.locks = locks;
        Ok(Ok(attempt))
    }

    /// Gives back the failure an attempt counted at `at` on `key`.
    async fn refund(
        &self,
        key: Option<&ThrottleKey>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let Some(key) = key else {
            return Ok(());
        };
        let counter = self.policy.counter(key.kind);
        // A refund is never refused.
        let _ = self
            .update(key, at, None, |state| {
                Ok(state.and_then(|s| counter.refund(s, at)))
            })
            .await?;
        Ok(())
    }

    /// The password of `attempt` was right at `now`: its pair starts again and its source is
    /// trusted for the account; the source and the account get their failure back. Neither is
    /// cleared: a success does not pardon the other failures counted there, which may be an
    /// attacker's.
    ///
    /// # Errors
    /// [`StoreError`] when the counters cannot be written.
    pub async fn password_succeeded(
        &self,
        attempt: &PasswordAttempt,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let fresh = self.policy.after_success(now);
        let _ = self
            .update(&attempt.pair, now, None, |_| Ok(Some(fresh.clone())))
            .await?;
        self.refund(attempt.ip.as_ref(), attempt.at).await?;
        self.refund(attempt.account.as_ref(), attempt.at).await
    }

    /// Decides a second-factor attempt of the customer `user_id` at `now`: refused while their
    /// second factor is locked, else counted and let through.
    ///
    /// # Errors
    /// [`StoreError`] when the counter cannot be read or written: refuse the attempt.
    pub async fn admit_totp(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Result<TotpAttempt, Refusal>, StoreError> {
        let key = self.keys.totp(user_id);
        Ok(self.admit(&key, now, None).await?.map(|state| {
            let lock = self
                .policy
                .totp
                .locked_by(&state, now)
                .map(|until| Refusal {
                    kind: ThrottleKind::Totp,
                    reason: RefusalReason::Locked,
                    until,
                });
            TotpAttempt { key, lock }
        }))
    }

    /// The code of `attempt` was right: the customer's wrong codes are forgotten.
    ///
    /// # Errors
    /// [`StoreError`] when the counter cannot be written.
    pub async fn totp_succeeded(
        &self,
        attempt: &TotpAttempt,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let cleared = LoginPolicy::totp_cleared(now);
        let _ = self
            .update(&attempt.key, now, None, |_| Ok(Some(cleared.clone())))
            .await?;
        Ok(())
    }
}

/// The customer's message for a refused attempt: the same whether or not the account exists.
#[must_use]
pub fn refusal_message(refusal: &Refusal, now: OffsetDateTime) -> String {
    match refusal.minutes(now) {
        1 => "Too many attempts. Try again in 1 minute.".to_owned(),
        n => format!("Too many attempts. Try again in {n} minutes."),
    }
}

/// `page` as the answer to a refused attempt: `429 Too Many Requests` with `Retry-After`.
#[must_use]
pub fn too_many(
    mut page: axum::response::Response,
    refusal: &Refusal,
    now: OffsetDateTime,
) -> axum::response::Response {
    *page.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    page.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(refusal.retry_after_secs(now)),
    );
    page
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use zeroize::Zeroizing;

    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    fn source(ip: &str) -> SourceIp {
        SourceIp(ip.parse::<IpAddr>().unwrap())
    }

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = portcullis_store::connect_and_migrate(
            &format!("sqlite:{}", dir.path().join("t.db").display()),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        (dir, store)
    }

    fn throttle(store: &dyn Store) -> LoginThrottle<'_> {
        LoginThrottle::with(
            store,
            LoginPolicy::default(),
            Mac::new(&Zeroizing::new([5u8; 32])),
        )
    }

    /// One password attempt of `username` from `ip` at `now`, right or wrong, as the login
    /// pages make it: admitted (counted), then, when right, the success recorded.
    async fn attempt(
        throttle: &LoginThrottle<'_>,
        username: &str,
        ip: &str,
        right: bool,
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        let admitted = throttle
            .admit_password(username, source(ip), now)
            .await
            .unwrap()?;
        if right {
            throttle.password_succeeded(&admitted, now).await.unwrap();
        }
        Ok(())
    }

    fn keys() -> ThrottleKeys {
        ThrottleKeys::new(Mac::new(&Zeroizing::new([5u8; 32])))
    }

    async fn counter(store: &dyn Store, key: &ThrottleKey) -> Option<ThrottleState> {
        store
            .login_throttle()
            .find(key)
            .await
            .unwrap()
            .map(|s| s.state)
    }

    #[tokio::test]
    async fn one_source_never_locks_or_slows_the_account_however_long_it_tries() {
        let (_dir, store) = store().await;
        let throttle = throttle(store.as_ref());
        let policy = LoginPolicy::default();
        let account = keys().account("alice");
        let mut now = at(0);
        let mut checked = 0;
        // A day of wrong passwords from one address, as fast as the refusals allow.
        while now < at(0) + Duration::days(1) {
            match attempt(&throttle, "alice", "198.51.100.7", false, now).await {
                Err(r) => {
                    assert_eq!(r.kind, ThrottleKind::Pair, "{r:?}");
                    now = r.until;
                }
                Ok(()) => checked += 1,
            }
            let counted = counter(store.as_ref(), &account).await;
            assert!(counted.is_none_or(|a| a.failures <= policy.account.free_failures));
        }
        // About 13 guesses an hour.
        assert!((24 * 10..=24 * 14).contains(&checked), "{checked}");
        // The customer, from elsewhere, is neither slowed nor locked.
        assert_eq!(
            attempt(&throttle, "alice", "203.0.113.5", true, now).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn many_sources_delay_then_lock_the_account_but_not_its_trusted_source() {
        let (_dir, store) = store().await;
        let throttle = throttle(store.as_ref());
        let now = at(0);
        // The customer logged in from home before.
        assert_eq!(
            attempt(&throttle, "Alice", "192.0.2.1", true, now).await,
            Ok(())
        );
        // Thirty attackers, one wrong password each, waiting out each delay.
        let mut t = now + Duration::minutes(1);
        let mut delays = Vec::new();
        for n in 0..30 {
            let source = format!("198.51.100.{n}");
            loop {
                match attempt(&throttle, "alice", &source, false, t).await {
                    Err(r) if r.reason == RefusalReason::Delayed => {
                        assert_eq!(r.kind, ThrottleKind::Account);
                        delays.push(r);
                        t = r.until;
                    }
                    other => {
                        assert_eq!(other, Ok(()));
                        break;
                    }
                }
            }
        }
        assert_eq!(
            delays.len(),
            19,
            "a delay after each failure beyond the 10 free ones"
        );
        let lock = attempt(&throttle, "alice", "198.51.100.99", true, t)
            .await
            .expect_err("the account should be locked");
        assert_eq!(
            (lock.kind, lock.reason),
            (ThrottleKind::Account, RefusalReason::Locked)
        );
        assert_eq!(lock.until, t + Duration::minutes(5));
        // The customer at home is not refused.
        assert_eq!(
            attempt(&throttle, "alice", "192.0.2.1", true, t).await,
            Ok(())
        );
        // The lock ends by itself.
        assert_eq!(
            attempt(&throttle, "alice", "198.51.100.99", true, lock.until).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn stuffing_from_one_source_locks_that_source_for_every_account_only() {
        let (_dir, store) = store().await;
        let throttle = throttle(store.as_ref());
        let mut t = at(0);
        let mut checked = 0;
        let mut n = 0;
        let lock = loop {
            // Unknown and known usernames are counted alike.
            match attempt(&throttle, &format!("user{n}"), "198.51.100.7", false, t).await {
                Err(r) if r.reason == RefusalReason::Delayed => t = r.until,
                Err(r) => break r,
                Ok(()) => {
                    checked += 1;
                    n += 1;
                }
            }
        };
        assert_eq!(checked, 40);
        assert_eq!(
            (lock.kind, lock.until),
            (ThrottleKind::Ip, t + Duration::minutes(30))
        );
        // The source is locked for the right password of an account it never tried too; the
        // same account from elsewhere is fine.
        let refused = attempt(&throttle, "carol", "198.51.100.7", true, t).await;
        assert!(
            matches!(refused, Err(r) if r.kind == ThrottleKind::Ip),
            "{refused:?}"
        );
        assert_eq!(
            attempt(&throttle, "carol", "198.51.100.8", true, t).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_success_clears_the_pair_but_not_the_source_or_the_account() {
        let (_dir, store) = store().await;
        let throttle = throttle(store.as_ref());
        let keys = keys();
        let t = at(0);
        for _ in 0..3 {
            assert_eq!(
                attempt(&throttle, "alice", "192.0.2.1", false, t).await,
                Ok(())
            );
        }
        let ip = keys.ip("192.0.2.1");
        assert_eq!(counter(store.as_ref(), &ip).await.unwrap().failures, 3);
        assert_eq!(
            attempt(&throttle, "alice", "192.0.2.1", true, t).await,
            Ok(())
        );
        let pair = counter(store.as_ref(), &keys.pair("alice", "192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(pair.failures, 0);
        assert!(LoginPolicy::trusted(Some(&pair), t));
        assert_eq!(counter(store.as_ref(), &ip).await.unwrap().failures, 3);
        let account = counter(store.as_ref(), &keys.account("alice"))
            .await
            .unwrap();
        assert_eq!(account.failures, 3);
        // Trust lasts 30 days.
        assert!(!LoginPolicy::trusted(Some(&pair), t + Duration::days(30)));
    }

    #[tokio::test]
    async fn attempts_sent_together_are_each_decided_on_the_count_before_them() {
        let (_dir, store) = store().await;
        let attempts: Vec<_> = (0..24)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    throttle(store.as_ref())
                        .admit_password("alice", source("198.51.100.7"), at(0))
                        .await
                        .unwrap()
                        .is_ok()
                })
            })
            .collect();
        let mut admitted = 0;
        for attempt in attempts {
            admitted += usize::from(attempt.await.unwrap());
        }
        // Three free failures, and the fourth, after which the pair waits a second.
        assert_eq!(admitted, 4);
        let refusal = throttle(store.as_ref())
            .admit_password("ALICE", source("198.51.100.7"), at(0))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (refusal.kind, refusal.reason, refusal.until),
            (ThrottleKind::Pair, RefusalReason::Delayed, at(1))
        );
    }

    #[tokio::test]
    async fn a_success_trusts_the_pair_and_gives_the_source_and_account_their_failure_back() {
        let (_dir, store) = store().await;
        let throttle = throttle(store.as_ref());
        let home = source("192.0.2.1");
        for _ in 0..2 {
            throttle
                .admit_password("alice", home, at(0))
                .await
                .unwrap()
                .unwrap();
        }
        let right = throttle
            .admit_password("alice", home, at(0))
            .await
            .unwrap()
            .unwrap();
        throttle.password_succeeded(&right, at(0)).await.unwrap();
        let keys = ThrottleKeys::new(Mac::new(&Zeroizing::new([5u8; 32])));
        let read = |key: ThrottleKey| {
            let store = store.clone();
            async move {
                store
                    .login_throttle()
                    .find(&key)
                    .await
                    .unwrap()
                    .unwrap()
                    .state
            }
        };
        let pair = read(keys.pair("alice", &home.bucket())).await;
        assert_eq!(pair.failures, 0);
        assert_eq!(pair.trusted_until, Some(at(0) + Duration::days(30)));
        assert_eq!(read(keys.ip(&home.bucket())).await.failures, 2);
        assert_eq!(read(keys.account("alice")).await.failures, 2);
        // A trusted pair's attempts are the pair's alone.
        let trusted = throttle
            .admit_password("alice", home, at(1))
            .await
            .unwrap()
            .unwrap();
        assert!(trusted.ip.is_none() && trusted.account.is_none());
    }

    #[tokio::test]
    async fn the_fifth_wrong_code_locks_the_second_factor_and_a_right_code_clears_it() {
        let (_dir, store) = store().await;
        let throttle = throttle(store.as_ref());
        let user = Uuid::from_u128(7);
        for n in 1..=4 {
            let attempt = throttle.admit_totp(user, at(n)).await.unwrap().unwrap();
            assert_eq!(attempt.lock, None);
        }
        let fifth = throttle.admit_totp(user, at(5)).await.unwrap().unwrap();
        let lock = fifth.lock.unwrap();
        assert_eq!((lock.kind, lock.until), (ThrottleKind::Totp, at(905)));
        let refused = throttle
            .admit_totp(user, at(600))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.reason, RefusalReason::Locked);
        // Another customer is not affected; after the lock, one right code forgets them all.
        throttle
            .admit_totp(Uuid::from_u128(8), at(600))
            .await
            .unwrap()
            .unwrap();
        let right = throttle.admit_totp(user, at(905)).await.unwrap().unwrap();
        throttle.totp_succeeded(&right, at(905)).await.unwrap();
        for n in 0..4 {
            let attempt = throttle
                .admit_totp(user, at(906 + n))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(attempt.lock, None);
        }
    }

    #[test]
    fn the_configuration_defaults_are_the_bank_defaults_and_bad_values_are_named() {
        let config = LoginProtectionConfig::default();
        assert_eq!(config.policy(), LoginPolicy::default());
        config.validate().unwrap();
        let mut bad = config.clone();
        bad.ip.lock_after = 0;
        assert_eq!(
            bad.validate().unwrap_err().key,
            "login_protection.ip.lock_after"
        );
        let mut bad = config.clone();
        bad.account_failures_per_source = 20;
        assert_eq!(
            bad.validate().unwrap_err().key,
            "login_protection.account_failures_per_source"
        );
        let mut bad = config;
        bad.pair.free_failures = 10;
        assert_eq!(
            bad.validate().unwrap_err().key,
            "login_protection.pair.free_failures"
        );
    }

    #[test]
    fn refusals_tell_the_customer_when_to_come_back() {
        let refusal = Refusal {
            kind: ThrottleKind::Account,
            reason: RefusalReason::Locked,
            until: at(300),
        };
        assert_eq!(
            refusal_message(&refusal, at(0)),
            "Too many attempts. Try again in 5 minutes."
        );
        assert_eq!(
            refusal_message(&refusal, at(290)),
            "Too many attempts. Try again in 1 minute."
        );
        let page = too_many(
            axum::response::IntoResponse::into_response("page"),
            &refusal,
            at(0),
        );
        assert_eq!(page.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(page.headers()[http::header::RETRY_AFTER], "300");
    }
}
