//! Brute-force protection of the customer's login: counters of failed attempts that slow down
//! and then lock, per (account, source), per source and per account, and per customer for the
//! second factor. This module is the policy, pure and clocked by its callers; the counters live
//! in the store ([`crate::store::LoginThrottleStore`]) so that every replica sees them, and the
//! server applies the policy to them with compare-and-set writes.
//!
//! Every counter is a [`CounterPolicy`]: within a window that starts at its first failure, the
//! first `free_failures` cost nothing; each further failure makes the next attempt wait
//! (`first_delay`, doubling with each failure, at most `max_delay`); the `lock_after`-th failure
//! locks the key for `lock_for`, and so does every failure after it until the window ends. A
//! refused attempt (delayed or locked) is not counted, so hammering a locked key does not extend
//! its lock: every lock ends `lock_for` after the failure that set it, by itself.
//!
//! Attempts are counted *before* the password is checked (so that many attempts sent at once
//! cannot all pass before the first failure is written), and a success undoes what it counted.
//!
//! # The bank defaults ([`LoginPolicy::default`]) and why
//! - **Pair** (one account from one source): 3 free failures (typos), then waits of 1, 2, 4, 8,
//!   16 and 32 s, and a 15-minute lock at the 10th failure in an hour, renewed by each further
//!   failure in that hour. One source gets about 13 guesses an hour at one account.
//! - **Source** (one IPv4 address or IPv6 /64, across accounts: credential stuffing): 10 free
//!   failures (a household or office behind one address), then waits up to 60 s, and a 30-minute
//!   lock at the 40th failure in an hour. Through the waits alone, 40 failures take over 25
//!   minutes.
//! - **Account** (one username, across sources: a distributed guess): 10 free failures, waits up
//!   to 30 s, and a short 5-minute lock at the 30th failure in an hour. A source adds at most
//!   `account_failures_per_source` (3) failures per pair window to the account, so one source
//!   can add at most 6 within any account window (two pair windows can overlap it): it can never
//!   lock the account ([`LoginPolicy::validate`] refuses settings where it could) and, with
//!   these numbers, not even slow it (6 is within the 10 free failures). Locking it takes at
//!   least 5 sources.
//! - **Trusted pairs**: a source from which the account's password was given correctly is
//!   trusted for that account for 30 days. Its attempts are governed by the pair counter alone:
//!   neither the source's nor the account's counters refuse or count them. An attacker with many
//!   sources can keep an account locked for new sources, but never for the places its customer
//!   logs in from; and trust never gives a source more guesses at the account than any other
//!   source gets (the pair counter still holds), nor any at other accounts.
//! - **Second factor** (per customer, across sources and logins): 5 wrong codes in 15 minutes
//!   lock the customer's second factor for 15 minutes; no waits before that. With one step of
//!   drift, 3 codes of 10^6 are valid at a time, so 5 guesses per 15 minutes leave a guesser a
//!   chance of about 1.5 × 10^-5 per 15 minutes.
//!
//! Keys are HMACs ([`ThrottleKeys`]) of the normalised username, the source bucket or the
//! customer id under a key derived from the KEK: the table never holds a username or an address
//! in clear, and cannot be matched against a list of usernames without the KEK.

use std::fmt;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::mac::Mac;
use crate::user::Username;

/// Which counter a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleKind {
    /// One account from one source.
    Pair,
    /// One source across accounts.
    Ip,
    /// One account across sources.
    Account,
    /// One customer's second factor.
    Totp,
}

impl ThrottleKind {
    /// The stored and reported name: `pair`, `ip`, `account`, `totp`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ThrottleKind::Pair => "pair",
            ThrottleKind::Ip => "ip",
            ThrottleKind::Account => "account",
            ThrottleKind::Totp => "totp",
        }
    }
}

impl fmt::Display for ThrottleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A counter's key: its kind and an HMAC of what it counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    /// What it counts.
    pub kind: ThrottleKind,
    /// The HMAC-SHA-256 (base64url) of the counted thing under the throttle key.
    pub id: String,
}

/// Makes the keys of the counters, under a key derived from the KEK.
#[derive(Debug)]
pub struct ThrottleKeys {
    mac: Mac,
}

impl ThrottleKeys {
    /// Keys under `mac` (`Mac::new(&kek.derive_key("login-throttle"))`).
    #[must_use]
    pub fn new(mac: Mac) -> Self {
        Self { mac }
    }

    fn key(&self, kind: ThrottleKind, parts: &[&str]) -> ThrottleKey {
        // Each part but the last is free of NUL (a source, a UUID), so the joined message is
        // unambiguous.
        let message = std::iter::once(kind.as_str())
            .chain(parts.iter().copied())
            .collect::<Vec<_>>()
            .join("\0");
        ThrottleKey {
            kind,
            id: self.mac.tag(message.as_bytes()),
        }
    }

    /// The counter of `username` from the source bucket `source`.
    #[must_use]
    pub fn pair(&self, username: &str, source: &str) -> ThrottleKey {
        self.key(ThrottleKind::Pair, &[source, &normalise(username)])
    }

    /// The counter of the source bucket `source`.
    #[must_use]
    pub fn ip(&self, source: &str) -> ThrottleKey {
        self.key(ThrottleKind::Ip, &[source])
    }

    /// The counter of `username`, whether or not such an account exists.
    #[must_use]
    pub fn account(&self, username: &str) -> ThrottleKey {
        self.key(ThrottleKind::Account, &[&normalise(username)])
    }

    /// The second-factor counter of the customer `user_id`.
    #[must_use]
    pub fn totp(&self, user_id: Uuid) -> ThrottleKey {
        self.key(ThrottleKind::Totp, &[&user_id.simple().to_string()])
    }
}

/// A username as accounts are found by it ([`Username::parse`]), so that `Alice` and `alice`
/// share one counter; a value that is no valid username at all (no account can have it) is
/// lower-cased as it is.
fn normalise(username: &str) -> String {
    Username::parse(username).map_or_else(|_| username.to_lowercase(), |u| u.as_str().to_owned())
}

/// A counter's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures counted in the current window.
    pub failures: u32,
    /// When the current window began (its first failure).
    pub window_started_at: OffsetDateTime,
    /// When the last failure was counted: waits run from it.
    pub last_failure_at: OffsetDateTime,
    /// Until when the key is locked, if it is or was.
    pub locked_until: Option<OffsetDateTime>,
    /// For a pair: until when its source is trusted for its account.
    pub trusted_until: Option<OffsetDateTime>,
}

/// Why an attempt is refused without being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A progressive delay: the next attempt must wait.
    Delayed,
    /// A temporary lock.
    Locked,
}

impl RefusalReason {
    /// `delayed` or `locked`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Delayed => "delayed",
            RefusalReason::Locked => "locked",
        }
    }
}

/// An attempt refused before any check: by which counter, why, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The counter that refused.
    pub kind: ThrottleKind,
    /// A delay or a lock.
    pub reason: RefusalReason,
    /// When an attempt will be considered again.
    pub until: OffsetDateTime,
}

impl Refusal {
    /// Whole seconds from `now` until the refusal ends, at least 1 (`Retry-After`).
    #[must_use]
    pub fn retry_after_secs(&self, now: OffsetDateTime) -> u64 {
        let left = (self.until - now).whole_milliseconds();
        let secs = (left + 999).div_euclid(1000);
        u64::try_from(secs).unwrap_or(0).max(1)
    }

    /// Whole minutes from `now` until the refusal ends, rounded up, at least 1.
    #[must_use]
    pub fn minutes(&self, now: OffsetDateTime) -> u64 {
        self.retry_after_secs(now).div_ceil(60).max(1)
    }
}

/// The time as counters store it: whole microseconds, which both databases keep exactly, so
/// that a time written and read back compares equal.
#[must_use]
pub fn instant(now: OffsetDateTime) -> OffsetDateTime {
    let nanos = now.nanosecond();
    now.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(now)
}

/// How one counter slows down and locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterPolicy {
    /// How long a window lasts from its first failure.
    pub window: Duration,
    /// Failures in a window that cost no wait.
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones; doubles with each further one.
    /// Zero: no waits, only the lock.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// The failure (counted in a window) that locks the key, and every one after it.
    pub lock_after: u32,
    /// How long a lock lasts.
    pub lock_for: Duration,
}

impl CounterPolicy {
    /// The wait after the `failures`-th failure of a window.
    #[must_use]
    pub fn delay_after(&self, failures: u32) -> Duration {
        if failures <= self.free_failures || self.first_delay <= Duration::ZERO {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free_failures - 1).min(62);
        let first = self.first_delay.whole_milliseconds();
        let max = self.max_delay.whole_milliseconds();
        let ms = first.saturating_mul(1_i128 << doublings).min(max);
        Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// Whether `state`'s window is over at `now`: the next failure starts a new one.
    fn window_over(&self, state: &ThrottleState, now: OffsetDateTime) -> bool {
        now >= state.window_started_at.saturating_add(self.window)
    }

    /// Why an attempt on a key of `kind` in `state` is refused at `now`, if it is.
    #[must_use]
    pub fn refusal(
        &self,
        kind: ThrottleKind,
        state: Option<&ThrottleState>,
        now: OffsetDateTime,
    ) -> Option<Refusal> {
        let state = state?;
        if let Some(until) = state.locked_until.filter(|until| *until > now) {
            return Some(Refusal {
                kind,
                reason: RefusalReason::Locked,
                until,
            });
        }
        let next = state
            .last_failure_at
            .saturating_add(self.delay_after(state.failures));
        (next > now).then_some(Refusal {
            kind,
            reason: RefusalReason::Delayed,
            until: next,
        })
    }

    /// `state` with one more failure at `now`: in a new window if the last one is over; locked
    /// for `lock_for` from `now` at the `lock_after`-th failure and every one after it.
    #[must_use]
    pub fn count(&self, state: Option<&ThrottleState>, now: OffsetDateTime) -> ThrottleState {
        let now = instant(now);
        let (failures, window_started_at) = match state {
            Some(s) if !self.window_over(s, now) => {
                (s.failures.saturating_add(1), s.window_started_at)
            }
            _ => (1, now),
        };
        let locked_until = if failures >= self.lock_after {
            Some(now.saturating_add(self.lock_for))
        } else {
            state
                .and_then(|s| s.locked_until)
                .filter(|until| *until > now)
        };
        ThrottleState {
            failures,
            window_started_at,
            last_failure_at: now,
            locked_until,
            trusted_until: state.and_then(|s| s.trusted_until),
        }
    }

    /// Counts an attempt at `now` unless `state` refuses it: the state to write, or the refusal.
    ///
    /// # Errors
    /// The [`Refusal`] when the key is delayed or locked; nothing is counted then.
    pub fn admit(
        &self,
        kind: ThrottleKind,
        state: Option<&ThrottleState>,
        now: OffsetDateTime,
    ) -> Result<ThrottleState, Refusal> {
        match self.refusal(kind, state, now) {
            Some(refusal) => Err(refusal),
            None => Ok(self.count(state, now)),
        }
    }

    /// Undoes the failure an attempt counted at `counted_at` (it succeeded): one failure less,
    /// and no lock that this attempt set or that fewer than `lock_after` failures would not
    /// have set. `None` when there is nothing to undo (a window begun since, or no failures).
    #[must_use]
    pub fn refund(
        &self,
        state: &ThrottleState,
        counted_at: OffsetDateTime,
    ) -> Option<ThrottleState> {
        let counted_at = instant(counted_at);
        if state.failures == 0 || state.window_started_at > counted_at {
            return None;
        }
        let failures = state.failures - 1;
        let own_lock = counted_at.saturating_add(self.lock_for);
        let locked_until = state
            .locked_until
            .filter(|until| failures >= self.lock_after && *until != own_lock);
        Some(ThrottleState {
            failures,
            locked_until,
            ..state.clone()
        })
    }

    /// Whether the failure counted at `now` into `state` locked the key (so a lock event is due
    /// if the attempt fails).
    #[must_use]
    pub fn locked_by(&self, state: &ThrottleState, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let own_lock = instant(now).saturating_add(self.lock_for);
        state.locked_until.filter(|until| *until == own_lock)
    }

    /// When `state` no longer matters and its row can be deleted: its window, lock, wait and
    /// trust all over.
    #[must_use]
    pub fn expires_at(&self, state: &ThrottleState) -> OffsetDateTime {
        let ends = [
            Some(state.window_started_at.saturating_add(self.window)),
            Some(
                state
                    .last_failure_at
                    .saturating_add(self.delay_after(state.failures)),
            ),
            state.locked_until,
            state.trusted_until,
        ];
        ends.into_iter()
            .flatten()
            .max()
            .unwrap_or(state.window_started_at)
    }

    fn validate(&self, name: &'static str) -> Result<(), PolicyError> {
        let error = |field: &'static str, message: &str| PolicyError {
            counter: name,
            field,
            message: message.to_owned(),
        };
        if self.window <= Duration::ZERO {
            return Err(error("window_secs", "must be greater than zero"));
        }
        if self.lock_after == 0 {
            return Err(error("lock_after", "must be greater than zero"));
        }
        if self.lock_for <= Duration::ZERO {
            return Err(error("lock_secs", "must be greater than zero"));
        }
        if self.free_failures >= self.lock_after {
            return Err(error("free_failures", "must be less than lock_after"));
        }
        if self.first_delay < Duration::ZERO || self.max_delay < self.first_delay {
            return Err(error(
                "max_delay_secs",
                "must be at least first_delay_secs, which must not be negative",
            ));
        }
        Ok(())
    }
}

/// A policy that contradicts itself, naming the counter and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{counter}.{field}: {message}")]
pub struct PolicyError {
    /// `pair`, `ip`, `account`, `totp`, or empty for the policy's own fields.
    pub counter: &'static str,
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The whole login policy: the four counters and how they combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// One account from one source.
    pub pair: CounterPolicy,
    /// One source across accounts.
    pub ip: CounterPolicy,
    /// One account across sources.
    pub account: CounterPolicy,
    /// Failures of one pair, per pair window, that count against the account.
    pub account_failures_per_source: u32,
    /// How long a source stays trusted for an account after its password was given from there.
    pub trust_for: Duration,
    /// One customer's second factor.
    pub totp: CounterPolicy,
}

impl Default for LoginPolicy {
    /// The bank defaults; the module documentation explains them.
    fn default() -> Self {
        Self {
            pair: CounterPolicy {
                window: Duration::hours(1),
                free_failures: 3,
                first_delay: Duration::seconds(1),
                max_delay: Duration::seconds(60),
                lock_after: 10,
                lock_for: Duration::minutes(15),
            },
            ip: CounterPolicy {
                window: Duration::hours(1),
                free_failures: 10,
                first_delay: Duration::seconds(1),
                max_delay: Duration::seconds(60),
                lock_after: 40,
                lock_for: Duration::minutes(30),
            },
            account: CounterPolicy {
                window: Duration::hours(1),
                free_failures: 10,
                first_delay: Duration::seconds(1),
                max_delay: Duration::seconds(30),
                lock_after: 30,
                lock_for: Duration::minutes(5),
            },
            account_failures_per_source: 3,
            trust_for: Duration::days(30),
            totp: CounterPolicy {
                window: Duration::minutes(15),
                free_failures: 4,
                first_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                lock_after: 5,
                lock_for: Duration::minutes(15),
            },
        }
    }
}

impl LoginPolicy {
    /// The counter of `kind`.
    #[must_use]
    pub fn counter(&self, kind: ThrottleKind) -> &CounterPolicy {
        match kind {
            ThrottleKind::Pair => &self.pair,
            ThrottleKind::Ip => &self.ip,
            ThrottleKind::Account => &self.account,
            ThrottleKind::Totp => &self.totp,
        }
    }

    /// Whether the pair in `state` is trusted at `now`.
    #[must_use]
    pub fn trusted(pair: Option<&ThrottleState>, now: OffsetDateTime) -> bool {
        pair.and_then(|s| s.trusted_until)
            .is_some_and(|until| until > now)
    }

    /// The refusal of a password attempt, given the counters read before it: the pair's, and
    /// unless the pair is trusted the source's and the account's; of several, the one that ends
    /// last.
    #[must_use]
    pub fn check(
        &self,
        pair: Option<&ThrottleState>,
        ip: Option<&ThrottleState>,
        account: Option<&ThrottleState>,
        now: OffsetDateTime,
    ) -> Option<Refusal> {
        let mut refusals = vec![self.pair.refusal(ThrottleKind::Pair, pair, now)];
        if !Self::trusted(pair, now) {
            refusals.push(self.ip.refusal(ThrottleKind::Ip, ip, now));
            refusals.push(self.account.refusal(ThrottleKind::Account, account, now));
        }
        refusals.into_iter().flatten().max_by_key(|r| r.until)
    }

    /// Whether a failure that brought its pair to `pair_after` counts against the account: only
    /// the first `account_failures_per_source` of a pair window do.
    #[must_use]
    pub fn counts_for_account(&self, pair_after: &ThrottleState) -> bool {
        pair_after.failures <= self.account_failures_per_source
    }

    /// The pair after its password was given correctly at `now`: no failures, no lock, and its
    /// source trusted for the account.
    #[must_use]
    pub fn after_success(&self, now: OffsetDateTime) -> ThrottleState {
        let now = instant(now);
        ThrottleState {
            failures: 0,
            window_started_at: now,
            last_failure_at: now,
            locked_until: None,
            trusted_until: Some(now.saturating_add(self.trust_for)),
        }
    }

    /// A second-factor counter after a right code: nothing counted.
    #[must_use]
    pub fn totp_cleared(now: OffsetDateTime) -> ThrottleState {
        let now = instant(now);
        ThrottleState {
            failures: 0,
            window_started_at: now,
            last_failure_at: now,
            locked_until: None,
            trusted_until: None,
        }
    }

    /// Checks the counters, and that one source can never lock an account: within one account
    /// window it adds at most `account_failures_per_source` per pair window that overlaps it.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.pair.validate("pair")?;
        self.ip.validate("ip")?;
        self.account.validate("account")?;
        self.totp.validate("totp")?;
        if self.trust_for < Duration::ZERO {
            return Err(PolicyError {
                counter: "",
                field: "trusted_source_days",
                message: "must not be negative".into(),
            });
        }
        let account_secs = u64::try_from(self.account.window.whole_seconds()).unwrap_or(0);
        let pair_secs = u64::try_from(self.pair.window.whole_seconds())
            .unwrap_or(0)
            .max(1);
        let pair_windows = i64::try_from(account_secs.div_ceil(pair_secs))
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let from_one_source =
            i64::from(self.account_failures_per_source).saturating_mul(pair_windows);
        if from_one_source >= i64::from(self.account.lock_after) {
            return Err(PolicyError {
                counter: "",
                field: "account_failures_per_source",
                message: format!(
                    "one source could add {from_one_source} failures in an account window and lock the account (account.lock_after is {}): lower it, or raise account.lock_after",
                    self.account.lock_after
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use zeroize::Zeroizing;

    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    fn keys() -> ThrottleKeys {
        ThrottleKeys::new(Mac::new(&Zeroizing::new([7u8; 32])))
    }

    #[test]
    fn the_bank_defaults_are_consistent() {
        LoginPolicy::default().validate().unwrap();
    }

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        let pair = LoginPolicy::default().pair;
        let delays: Vec<i64> = (1..=12)
            .map(|n| pair.delay_after(n).whole_seconds())
            .collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(pair.delay_after(u32::MAX), Duration::seconds(60));
        assert_eq!(LoginPolicy::default().totp.delay_after(4), Duration::ZERO);
    }

    #[test]
    fn a_counter_delays_then_locks_and_the_lock_ends_by_itself() {
        let pair = LoginPolicy::default().pair;
        let kind = ThrottleKind::Pair;
        let mut state = None;
        let mut now = at(0);
        for n in 1..=9 {
            let next = pair.admit(kind, state.as_ref(), now).unwrap();
            assert_eq!(next.failures, n);
            assert_eq!(next.locked_until, None);
            state = Some(next);
            // The next attempt waits exactly the delay after the n-th failure.
            let wait = pair.delay_after(n);
            if wait > Duration::ZERO {
                let refused = pair.admit(kind, state.as_ref(), now).unwrap_err();
                assert_eq!(refused.reason, RefusalReason::Delayed);
                assert_eq!(refused.until, now + wait);
                assert!(
                    pair.admit(kind, state.as_ref(), now + wait - Duration::milliseconds(1))
                        .is_err()
                );
            }
            now += wait;
        }
        // The 10th failure locks for 15 minutes; refused attempts do not extend the lock.
        let locked = pair.admit(kind, state.as_ref(), now).unwrap();
        assert_eq!(locked.locked_until, Some(now + Duration::minutes(15)));
        assert_eq!(pair.locked_by(&locked, now), locked.locked_until);
        for minute in 0..15 {
            let refused = pair
                .admit(kind, Some(&locked), now + Duration::minutes(minute))
                .unwrap_err();
            assert_eq!(refused.reason, RefusalReason::Locked);
            assert_eq!(refused.until, now + Duration::minutes(15));
        }
        // Once it ends, one more failure in the window locks again; after the window, the count
        // starts over.
        let later = now + Duration::minutes(15);
        let relocked = pair.admit(kind, Some(&locked), later).unwrap();
        assert_eq!(relocked.locked_until, Some(later + Duration::minutes(15)));
        let next_hour = at(0) + Duration::hours(1) + Duration::minutes(30);
        let fresh = pair.admit(kind, Some(&relocked), next_hour).unwrap();
        assert_eq!(fresh.failures, 1);
        assert_eq!(fresh.window_started_at, next_hour);
        assert_eq!(fresh.locked_until, None);
        assert!(pair.expires_at(&fresh) >= next_hour + Duration::hours(1));
    }

    #[test]
    fn refusals_report_whole_seconds_and_minutes_rounded_up() {
        let refusal = Refusal {
            kind: ThrottleKind::Ip,
            reason: RefusalReason::Locked,
            until: at(0) + Duration::milliseconds(61_200),
        };
        assert_eq!(refusal.retry_after_secs(at(0)), 62);
        assert_eq!(refusal.minutes(at(0)), 2);
        assert_eq!(refusal.retry_after_secs(at(100)), 1);
        assert_eq!(refusal.minutes(at(100)), 1);
    }

    #[test]
    fn a_success_undoes_what_it_counted_including_a_lock_it_set() {
        let ip = LoginPolicy::default().ip;
        let mut state = None;
        let mut now = at(0);
        for _ in 0..39 {
            let next = ip.count(state.as_ref(), now);
            now += ip.delay_after(next.failures);
            state = Some(next);
        }
        // The 40th attempt locks while its password is checked; it was right: the lock goes.
        let counted = ip.admit(ThrottleKind::Ip, state.as_ref(), now).unwrap();
        assert!(counted.locked_until.is_some());
        let refunded = ip.refund(&counted, now).unwrap();
        assert_eq!(refunded.failures, 39);
        assert_eq!(refunded.locked_until, None);
        // An attempt counted in an earlier window has nothing to undo in a later one.
        let later = ip.count(Some(&refunded), now + Duration::hours(2));
        assert_eq!(ip.refund(&later, now), None);
        assert_eq!(ip.refund(&LoginPolicy::totp_cleared(now), now), None);
    }

    #[test]
    fn keys_are_macs_that_never_show_what_they_count() {
        let keys = keys();
        let pair = keys.pair("Alice", "192.0.2.1");
        assert_eq!(pair, keys.pair("alice", "192.0.2.1"));
        assert_ne!(pair, keys.pair("alice", "192.0.2.2"));
        assert_ne!(keys.account("alice").id, keys.ip("alice").id);
        for key in [&pair, &keys.account("alice"), &keys.ip("192.0.2.1")] {
            assert_eq!(key.id.len(), 43);
            assert!(!key.id.contains("alice") && !key.id.contains("192"));
        }
        let other = ThrottleKeys::new(Mac::new(&Zeroizing::new([8u8; 32])));
        assert_ne!(other.account("alice"), keys.account("alice"));
        // Not a valid username: still one counter whatever its case.
        assert_eq!(keys.account("Not Valid!"), keys.account("not valid!"));
    }

    #[test]
    fn policies_that_would_let_one_source_lock_an_account_are_refused() {
        let policy = LoginPolicy {
            account_failures_per_source: 15,
            ..LoginPolicy::default()
        };
        let err = policy.validate().unwrap_err();
        assert_eq!(err.field, "account_failures_per_source");
        let mut policy = LoginPolicy::default();
        // Thirteen 5-minute pair windows overlap an hour: 3 × 13 failures would lock.
        policy.pair.window = Duration::minutes(5);
        assert_eq!(
            policy.validate().unwrap_err().field,
            "account_failures_per_source"
        );
        let mut policy = LoginPolicy::default();
        policy.ip.free_failures = 40;
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "ip.free_failures: must be less than lock_after"
        );
    }

    #[test]
    fn instants_keep_whole_microseconds() {
        let t = at(0) + Duration::nanoseconds(1_234_567);
        assert_eq!(instant(t), at(0) + Duration::microseconds(1_234));
    }
}
