//! Rate-limit arithmetic: token buckets as GCRA (the generic cell rate algorithm), one stored
//! number per bucket.
//!
//! A [`Quota`] of `q` requests per window `w` lets a bucket refill at one request every
//! `T = w / q` (the *emission interval*) and hold at most `q` (the burst, so the *tolerance* is
//! `τ = q·T`). A bucket stores only its *theoretical arrival time* (TAT): when it would be full
//! again. A request at `now` that spends one token moves the TAT to `max(TAT, now) + T`, and is
//! allowed when that is at most `now + τ`. A bucket whose TAT has passed is full, so a missing
//! bucket and a passed TAT mean the same: stores may forget such buckets at any time.
//!
//! Everything is in whole microseconds since the Unix epoch (`i64`): exact in SQL, in Rust and in
//! Redis's Lua (whose doubles hold integers to 2^53, about 285 years of microseconds). `T` is
//! rounded up to a whole microsecond, and `τ` is `q·T` exactly, so a fresh bucket always allows
//! exactly `q` requests at once and the sustained rate is never above `q / w`.
//!
//! Several buckets are checked for one request at once ([`check_all`]): if any refuses, none is
//! spent, so a request refused by one limit costs nothing from the others. A bucket can also be
//! checked without spending ([`Op::Probe`]: "is there a token left?"), and given back a token
//! spent earlier ([`Op::Refund`]): a token *reserved* before work that may fail is returned when
//! the work succeeds, so that parallel requests cannot all pass a check that only one of them
//! should (the auth-failure budget of the server's limits). A refund always applies, whatever
//! the other buckets of the same check say.

use std::time::Duration;

/// Microseconds in a second.
const MICROS: i64 = 1_000_000;

/// A rate: `quota` requests per `window`, with a burst of `quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    quota: u32,
    window: Duration,
}

/// Why a [`Quota`] cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A quota of zero requests.
    #[error("the quota must be at least 1")]
    ZeroQuota,
    /// A window shorter than a millisecond or longer than a year.
    #[error("the window must be 1 ms to 366 days")]
    Window,
}

/// The longest window: a year, so that every TAT stays far inside `i64` microseconds.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

impl Quota {
    /// `quota` requests per `window`.
    ///
    /// # Errors
    /// [`QuotaError`] for a zero quota or a window outside 1 ms to 366 days.
    pub fn new(quota: u32, window: Duration) -> Result<Self, QuotaError> {
        if quota == 0 {
            return Err(QuotaError::ZeroQuota);
        }
        if window < Duration::from_millis(1) || window > MAX_WINDOW {
            return Err(QuotaError::Window);
        }
        Ok(Self { quota, window })
    }

    /// How many requests a full bucket allows at once, and per window.
    #[must_use]
    pub const fn quota(&self) -> u32 {
        self.quota
    }

    /// The window.
    #[must_use]
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// `T`: the microseconds one request takes to come back, rounded up.
    #[must_use]
    pub fn emission_us(&self) -> i64 {
        let window = i64::try_from(self.window.as_micros()).unwrap_or(i64::MAX);
        let quota = i64::from(self.quota);
        // Ceiling division of two positive numbers, at least one microsecond.
        ((window + quota - 1) / quota).max(1)
    }

    /// `τ = q·T`: how far ahead of now a bucket's TAT may be after a request.
    #[must_use]
    pub fn tolerance_us(&self) -> i64 {
        self.emission_us().saturating_mul(i64::from(self.quota))
    }
}

/// What a check does to a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Spend one token when every spending bucket of the check allows.
    Spend,
    /// Only ask whether a token is left; never changes the bucket.
    Probe,
    /// Give back one token spent earlier: the TAT moves back by `T`, never before now (a bucket
    /// cannot be fuller than full). Always allowed, and applied even when another bucket of the
    /// same check refuses.
    Refund,
}

impl Op {
    /// The number stores and scripts use for it: 1 spend, 0 probe, 2 refund.
    #[must_use]
    pub const fn code(self) -> i16 {
        match self {
            Op::Probe => 0,
            Op::Spend => 1,
            Op::Refund => 2,
        }
    }
}

/// One bucket a request is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The bucket's key, e.g. `ip:token:192.0.2.1`.
    pub key: String,
    /// `T` of its quota ([`Quota::emission_us`]).
    pub emission_us: i64,
    /// `τ` of its quota ([`Quota::tolerance_us`]).
    pub tolerance_us: i64,
    /// What the check does to it.
    pub op: Op,
}

impl Cell {
    /// A cell of `key` under `quota`, doing `op`.
    #[must_use]
    pub fn new(key: impl Into<String>, quota: Quota, op: Op) -> Self {
        Self {
            key: key.into(),
            emission_us: quota.emission_us(),
            tolerance_us: quota.tolerance_us(),
            op,
        }
    }

    /// The same bucket, doing `op`.
    #[must_use]
    pub fn with_op(&self, op: Op) -> Self {
        Self { op, ..self.clone() }
    }

    /// Whether the check may write the bucket (a spend or a refund).
    #[must_use]
    pub const fn writes(&self) -> bool {
        !matches!(self.op, Op::Probe)
    }

    /// The TAT this cell would have after an allowed request on a bucket whose stored TAT is
    /// `stored` (`None`: no bucket, i.e. full) at `now_us`, and whether the request is allowed.
    /// The TAT returned is the new one only when the request is allowed and spends, or for a
    /// refund, which is always allowed.
    #[must_use]
    pub fn decide(&self, stored: Option<i64>, now_us: i64) -> CellState {
        let base = stored.map_or(now_us, |tat| tat.max(now_us));
        if self.op == Op::Refund {
            return CellState {
                allowed: true,
                tat_us: base.saturating_sub(self.emission_us).max(now_us),
            };
        }
        let next = base.saturating_add(self.emission_us);
        let allowed = next.saturating_sub(now_us) <= self.tolerance_us;
        CellState {
            allowed,
            tat_us: if allowed && self.op == Op::Spend {
                next
            } else {
                base
            },
        }
    }

    /// What the cell's state means for the client at `now_us`.
    #[must_use]
    pub fn outcome(&self, state: CellState, now_us: i64) -> Outcome {
        let emission = self.emission_us.max(1);
        let used = state.tat_us.saturating_sub(now_us).max(0);
        // Room left in the bucket, in microseconds; tokens left are whole emission intervals of it.
        let room = self.tolerance_us.saturating_sub(used).max(0);
        let remaining = u32::try_from(room / emission).unwrap_or(u32::MAX);
        let next_token_us = (used > 0).then(|| {
            let partial = room % emission;
            emission - partial
        });
        let retry_after_us = (!state.allowed).then(|| {
            state
                .tat_us
                .max(now_us)
                .saturating_add(self.emission_us)
                .saturating_sub(self.tolerance_us)
                .saturating_sub(now_us)
                .max(0)
        });
        Outcome {
            allowed: state.allowed,
            remaining: if state.allowed { remaining } else { 0 },
            next_token_us,
            retry_after_us,
        }
    }
}

/// A bucket after a check: whether it allowed the request, and its TAT now (unchanged unless the
/// request was allowed and spent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellState {
    /// Whether the bucket had a token for the request.
    pub allowed: bool,
    /// The bucket's TAT after the check, or `now` when it is full.
    pub tat_us: i64,
}

/// What a checked bucket tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the bucket allowed the request.
    pub allowed: bool,
    /// Tokens left after this request (0 when refused).
    pub remaining: u32,
    /// Microseconds until one more token comes back; `None` when the bucket is full.
    pub next_token_us: Option<i64>,
    /// When refused: microseconds until the same request would be allowed.
    pub retry_after_us: Option<i64>,
}

/// Checks `cells` at `now_us` against their stored TATs (`stored[i]` for `cells[i]`; `None`, or a
/// missing entry, for no bucket), all or nothing: the states of every cell, in order, and whether
/// all allowed. When one refuses, every spending cell's state carries the bucket's unchanged TAT,
/// so the caller writes none of them; refunds are written either way.
#[must_use]
pub fn check_all(cells: &[Cell], stored: &[Option<i64>], now_us: i64) -> (Vec<CellState>, bool) {
    let stored = stored.iter().copied().chain(std::iter::repeat(None));
    let mut states: Vec<CellState> = cells
        .iter()
        .zip(stored)
        .map(|(cell, tat)| cell.decide(tat, now_us))
        .collect();
    let all = states.iter().all(|s| s.allowed);
    if !all {
        for (state, cell) in states.iter_mut().zip(cells) {
            if state.allowed && cell.op == Op::Spend {
                // Undo the spend: back to the bucket as it was.
                state.tat_us = state.tat_us.saturating_sub(cell.emission_us);
            }
        }
    }
    (states, all)
}

/// `at` in whole microseconds since the Unix epoch, as buckets store it.
pub use crate::clock::micros;

/// Whole seconds, rounded up, of `us` microseconds (for `Retry-After` and the `t` parameter).
#[must_use]
pub fn ceil_secs(us: i64) -> u64 {
    u64::try_from(us.max(0).saturating_add(MICROS - 1) / MICROS).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000 * MICROS;

    fn quota(q: u32, secs: u64) -> Quota {
        Quota::new(q, Duration::from_secs(secs)).unwrap()
    }

    /// Runs `n` spending checks of one cell at `now`, keeping its TAT in `tat`; how many passed.
    fn spend(cell: &Cell, tat: &mut Option<i64>, now: i64, n: u32) -> u32 {
        let mut passed = 0;
        for _ in 0..n {
            let state = cell.decide(*tat, now);
            if state.allowed {
                passed += 1;
                *tat = Some(state.tat_us);
            }
        }
        passed
    }

    #[test]
    fn a_fresh_bucket_allows_its_whole_burst_and_then_refuses() {
        for (q, w) in [(1, 1), (7, 1), (600, 60), (30, 300), (10, 3600), (3, 7)] {
            let cell = Cell::new("k", quota(q, w), Op::Spend);
            let mut tat = None;
            assert_eq!(spend(&cell, &mut tat, NOW, q + 5), q, "{q}/{w}s");
        }
    }

    #[test]
    fn a_bucket_refills_one_token_per_emission_interval() {
        let q = quota(600, 60); // T = 100 ms
        assert_eq!(q.emission_us(), 100_000);
        assert_eq!(q.tolerance_us(), 60 * MICROS);
        let cell = Cell::new("k", q, Op::Spend);
        let mut tat = None;
        assert_eq!(spend(&cell, &mut tat, NOW, 600), 600);
        assert_eq!(spend(&cell, &mut tat, NOW + 99_999, 1), 0);
        assert_eq!(spend(&cell, &mut tat, NOW + 100_000, 2), 1);
        assert_eq!(spend(&cell, &mut tat, NOW + 1_100_000, 20), 10);
        // A whole window later the bucket is full again, never fuller.
        assert_eq!(spend(&cell, &mut tat, NOW + 200 * MICROS, 700), 600);
    }

    #[test]
    fn uneven_windows_round_the_interval_up_and_keep_the_burst() {
        let q = quota(7, 1);
        assert_eq!(q.emission_us(), 142_858);
        assert_eq!(q.tolerance_us(), 7 * 142_858);
        // Sustained over a minute: never more than 7 a second.
        let cell = Cell::new("k", q, Op::Spend);
        let mut tat = None;
        let mut passed = 0;
        for ms in 0..60_000 {
            passed += spend(&cell, &mut tat, NOW + ms * 1000, 1);
        }
        assert!((7 * 60 - 7..=7 * 60 + 7).contains(&passed), "{passed}");
        assert!(Quota::new(0, Duration::from_secs(1)).is_err());
        assert!(Quota::new(1, Duration::ZERO).is_err());
    }

    #[test]
    fn outcomes_report_remaining_next_token_and_retry_after() {
        let cell = Cell::new("k", quota(10, 60), Op::Spend); // T = 6 s
        let fresh = cell.outcome(cell.decide(None, NOW), NOW);
        assert_eq!(
            fresh,
            Outcome {
                allowed: true,
                remaining: 9,
                next_token_us: Some(6 * MICROS),
                retry_after_us: None,
            }
        );
        let mut tat = None;
        spend(&cell, &mut tat, NOW, 10);
        let refused = cell.decide(tat, NOW + 2 * MICROS);
        assert!(!refused.allowed);
        let outcome = cell.outcome(refused, NOW + 2 * MICROS);
        assert_eq!(outcome.remaining, 0);
        assert_eq!(outcome.retry_after_us, Some(4 * MICROS));
        assert_eq!(outcome.next_token_us, Some(4 * MICROS));
        assert_eq!(ceil_secs(4 * MICROS), 4);
        assert_eq!(ceil_secs(4 * MICROS + 1), 5);
        assert_eq!(ceil_secs(0), 0);
        // A full bucket has nothing coming back.
        let probe = Cell::new("k", quota(10, 60), Op::Probe);
        let full = probe.outcome(probe.decide(None, NOW), NOW);
        assert_eq!((full.remaining, full.next_token_us), (10, None));
    }

    #[test]
    fn a_probe_never_spends() {
        let cell = Cell::new("k", quota(2, 60), Op::Probe);
        let state = cell.decide(None, NOW);
        assert!(state.allowed);
        assert_eq!(state.tat_us, NOW);
        let spent = Cell::new("k", quota(2, 60), Op::Spend);
        let mut tat = None;
        spend(&spent, &mut tat, NOW, 2);
        assert!(!cell.decide(tat, NOW).allowed);
        assert_eq!(cell.decide(tat, NOW).tat_us, tat.unwrap());
    }

    #[test]
    fn when_one_bucket_refuses_no_bucket_is_spent() {
        let open = Cell::new("open", quota(100, 60), Op::Spend);
        let empty = Cell::new("empty", quota(1, 60), Op::Spend);
        let empty_tat = empty.decide(None, NOW).tat_us;
        let (states, all) = check_all(
            &[open.clone(), empty.clone()],
            &[None, Some(empty_tat)],
            NOW,
        );
        assert!(!all);
        assert!(states[0].allowed && !states[1].allowed);
        // The open bucket is reported as it was: full, nothing spent.
        assert_eq!(states[0].tat_us, NOW);
        assert_eq!(states[1].tat_us, empty_tat);
        let (states, all) = check_all(&[open.clone(), empty], &[], NOW + 60 * MICROS);
        assert!(all);
        assert_eq!(states[0].tat_us, NOW + 60 * MICROS + open.emission_us);
    }

    #[test]
    fn a_refund_gives_back_a_reserved_token_and_never_overfills() {
        let q = quota(2, 60); // T = 30 s
        let reserve = Cell::new("k", q, Op::Spend);
        let refund = reserve.with_op(Op::Refund);
        // Two reservations empty the bucket; a third is refused.
        let mut tat = None;
        assert_eq!(spend(&reserve, &mut tat, NOW, 3), 2);
        // One reservation comes back: exactly one more passes.
        let back = refund.decide(tat, NOW + 1);
        assert!(back.allowed);
        assert_eq!(back.tat_us, NOW + 30 * MICROS);
        tat = Some(back.tat_us);
        assert_eq!(spend(&reserve, &mut tat, NOW + 1, 2), 1);
        // A refund on a full or missing bucket leaves it full, never fuller.
        assert_eq!(refund.decide(None, NOW).tat_us, NOW);
        assert_eq!(refund.decide(Some(NOW - 5 * MICROS), NOW).tat_us, NOW);
        assert_eq!(refund.decide(Some(NOW + 10 * MICROS), NOW).tat_us, NOW);
        // A refund applies even when another bucket of the check refuses.
        let empty = Cell::new("empty", quota(1, 60), Op::Spend);
        let full_tat = NOW + 60 * MICROS;
        let (states, all) = check_all(
            &[empty, refund.clone()],
            &[Some(full_tat), Some(NOW + 60 * MICROS)],
            NOW,
        );
        assert!(!all);
        assert!(!states[0].allowed && states[1].allowed);
        assert_eq!(states[1].tat_us, NOW + 30 * MICROS);
        assert_eq!(Op::Probe.code(), 0);
        assert_eq!(Op::Spend.code(), 1);
        assert_eq!(Op::Refund.code(), 2);
    }
}
