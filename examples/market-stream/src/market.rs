//! The demo market: five instruments, each with a ticker task making a random walk of its price
//! every 100 to 250 ms and publishing the tick on one broadcast channel, already serialised, so
//! that each session only filters and forwards. Demo data: the walk's generator is a xorshift
//! seeded from the clock, not a source of anything that matters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;
use tokio::sync::{broadcast, watch};

/// Ticks a slow session may fall behind by before it skips some.
const TICK_BACKLOG: usize = 256;

/// An instrument of the stream. Its scope is `ticks:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instrument {
    /// Euro in US dollars.
    EurUsd,
    /// Pound sterling in US dollars.
    GbpUsd,
    /// US dollar in yen.
    UsdJpy,
    /// Bitcoin in euros.
    BtcEur,
    /// Gold (troy ounce) in US dollars.
    XauUsd,
}

impl Instrument {
    /// Every instrument, in the order the stream lists them.
    pub const ALL: [Instrument; 5] = [
        Instrument::EurUsd,
        Instrument::GbpUsd,
        Instrument::UsdJpy,
        Instrument::BtcEur,
        Instrument::XauUsd,
    ];

    /// Its name on the wire and in scopes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Instrument::EurUsd => "EURUSD",
            Instrument::GbpUsd => "GBPUSD",
            Instrument::UsdJpy => "USDJPY",
            Instrument::BtcEur => "BTCEUR",
            Instrument::XauUsd => "XAUUSD",
        }
    }

    /// The instrument named `name` (exactly, upper case).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == name)
    }

    /// The scope a token needs for its ticks.
    #[must_use]
    pub fn scope(self) -> String {
        format!("ticks:{}", self.as_str())
    }

    /// Decimal places of its price, its opening price and its largest step, in units of the
    /// last decimal place.
    fn quote(self) -> (u32, u64, u64) {
        match self {
            Instrument::EurUsd => (5, 108_345, 6),
            Instrument::GbpUsd => (5, 126_710, 7),
            Instrument::UsdJpy => (3, 151_234, 9),
            Instrument::BtcEur => (2, 6_123_450, 2_500),
            Instrument::XauUsd => (2, 233_145, 40),
        }
    }
}

/// One tick, serialised once for every session.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Whose price it is.
    pub instrument: Instrument,
    /// The text frame: `{"type": "tick", "instrument", "price", "time"}`.
    pub frame: Utf8Bytes,
}

/// The ticks of every instrument. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Market {
    ticks: broadcast::Sender<Tick>,
}

impl Market {
    /// Starts a ticker task per instrument; they stop when `shutdown` turns true.
    #[must_use]
    pub fn start(shutdown: &watch::Receiver<bool>) -> Self {
        let (ticks, _) = broadcast::channel(TICK_BACKLOG);
        for (salt, instrument) in (1u64..).zip(Instrument::ALL) {
            tokio::spawn(ticker(instrument, salt, ticks.clone(), shutdown.clone()));
        }
        Self { ticks }
    }

    /// The ticks from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Tick> {
        self.ticks.subscribe()
    }
}

/// Walks `instrument`'s price and publishes every tick until shutdown.
async fn ticker(
    instrument: Instrument,
    salt: u64,
    ticks: broadcast::Sender<Tick>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rng = XorShift::seeded(salt);
    let (decimals, open, step) = instrument.quote();
    let mut price = open;
    loop {
        let wait = Duration::from_millis(100 + rng.below(151));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        price = walk(price, open, step, &mut rng);
        let frame = json!({
            "type": "tick",
            "instrument": instrument.as_str(),
            "price": decimal(price, decimals),
            "time": now_rfc3339(),
        })
        .to_string();
        // No receiver (no session open) is not an error.
        let _ = ticks.send(Tick {
            instrument,
            frame: frame.into(),
        });
    }
}

/// One step of the walk: up or down by at most `step`, kept between half and twice `open`.
fn walk(price: u64, open: u64, step: u64, rng: &mut XorShift) -> u64 {
    let delta = rng.below(step + 1);
    let moved = if rng.below(2) == 0 {
        price.saturating_add(delta)
    } else {
        price.saturating_sub(delta)
    };
    moved.clamp(open / 2, open.saturating_mul(2))
}

/// `units` in the last of `decimals` places, as a decimal string ("1.08345").
fn decimal(units: u64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let width = decimals as usize;
    format!("{}.{:0width$}", units / scale, units % scale)
}

/// RFC 3339 in UTC to the millisecond, always three digits: `2024-05-01T09:30:00.120Z`.
const TICK_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The time now in RFC 3339, to the millisecond.
fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(TICK_TIME)
        .unwrap_or_default()
}

/// xorshift64* (Vigna): enough for a demo walk.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn seeded(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
        Self((nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0; 0 for 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruments_are_named_and_scoped_exactly() {
        for instrument in Instrument::ALL {
            assert_eq!(Instrument::parse(instrument.as_str()), Some(instrument));
            assert_eq!(instrument.scope(), format!("ticks:{}", instrument.as_str()));
        }
        assert_eq!(Instrument::parse("eurusd"), None);
        assert_eq!(Instrument::parse("ticks:EURUSD"), None);
    }

    #[test]
    fn prices_are_decimal_strings_with_the_instruments_places() {
        assert_eq!(decimal(108_345, 5), "1.08345");
        assert_eq!(decimal(100_005, 5), "1.00005");
        assert_eq!(decimal(151_234, 3), "151.234");
        assert_eq!(decimal(6_123_450, 2), "61234.50");
    }

    #[test]
    fn the_walk_stays_within_its_band() {
        let mut rng = XorShift::seeded(7);
        let (_, open, step) = Instrument::EurUsd.quote();
        let mut price = open;
        for _ in 0..100_000 {
            let next = walk(price, open, step, &mut rng);
            assert!(next.abs_diff(price) <= step);
            assert!((open / 2..=open * 2).contains(&next));
            price = next;
        }
    }

    #[test]
    fn tick_times_are_rfc_3339_in_utc_to_the_millisecond() {
        use time::format_description::well_known::Rfc3339;
        let time = now_rfc3339();
        assert!(OffsetDateTime::parse(&time, &Rfc3339).is_ok(), "{time}");
        assert_eq!(time.len(), "2024-05-01T09:30:00.120Z".len(), "{time}");
    }
}
