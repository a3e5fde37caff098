//! Time as a parameter. Every decision that depends on the time takes a [`Clock`], so that unit
//! tests set it ([`ManualClock`]) and end-to-end tests move the real binary's clock forward
//! ([`OffsetClock`], driven by a control that only test builds have) instead of sleeping.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// `at` in whole microseconds since the Unix epoch (rounded down), the precision both databases
/// keep and the unit of the audit hashes and the rate-limit buckets; saturates far outside any
/// real date.
#[must_use]
pub fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The system clock shifted by an adjustable offset. Lock-free: the offset is an atomic.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// Moves this clock by `by` (forward when positive).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The current offset from the system clock.
    #[must_use]
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc().saturating_add(self.offset())
    }
}

/// A clock that only moves when told to. For tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock that reads `start` until moved.
    #[must_use]
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.saturating_add(by);
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(61));
        assert_eq!(clock.now(), start + Duration::seconds(61));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn offset_clock_adds_its_offset_to_the_system_time() {
        let clock = OffsetClock::default();
        clock.advance(Duration::hours(2));
        clock.advance(Duration::minutes(-30));
        assert_eq!(clock.offset(), Duration::minutes(90));
        let drift = clock.now() - OffsetDateTime::now_utc() - Duration::minutes(90);
        assert!(drift.abs() < Duration::seconds(5));
    }
}
