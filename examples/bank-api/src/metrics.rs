//! This API's own counters, which the metrics listener (`portcullis_verify::cli::metrics_router`:
//! `GET /metrics` and `GET /feed`, plain HTTP, bound to loopback by default like the
//! authorization server's) serves after the verifier's: payments accepted, and refused by reason.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The reasons a payment is refused once its token was verified, as `error` codes.
const REFUSAL_REASONS: [&str; 6] = [
    "insufficient_scope",
    "invalid_request",
    "payment_not_consented",
    "consent_used",
    "not_found",
    "server_error",
];

/// This API's own counters. Plain atomics: no lock on the request path.
#[derive(Debug, Default)]
pub struct Counters {
    payments_accepted: AtomicU64,
    /// One per entry of [`REFUSAL_REASONS`], then one for anything else.
    payments_refused: [AtomicU64; REFUSAL_REASONS.len() + 1],
}

impl Counters {
    /// A payment was accepted.
    pub fn payment_accepted(&self) {
        self.payments_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A payment was refused with the error code `reason`.
    pub fn payment_refused(&self, reason: &str) {
        let index = REFUSAL_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(REFUSAL_REASONS.len());
        if let Some(counter) = self.payments_refused.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Payments accepted so far.
    #[must_use]
    pub fn accepted(&self) -> u64 {
        self.payments_accepted.load(Ordering::Relaxed)
    }

    /// Payments refused so far, whatever the reason.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.payments_refused
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The counters in the Prometheus text exposition format (0.0.4), prefixed `bank_api_`.
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP bank_api_payments_accepted_total Payments accepted.\n# TYPE bank_api_payments_accepted_total counter\nbank_api_payments_accepted_total {}",
            self.accepted()
        );
        let _ = writeln!(
            out,
            "# HELP bank_api_payments_refused_total Payments refused after the access token was verified, by error code.\n# TYPE bank_api_payments_refused_total counter"
        );
        let reasons = REFUSAL_REASONS.iter().copied().chain(["other"]);
        for (reason, counter) in reasons.zip(&self.payments_refused) {
            let _ = writeln!(
                out,
                "bank_api_payments_refused_total{{reason=\"{reason}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_counters_are_prometheus_text_by_reason() {
        let c = Counters::default();
        c.payment_accepted();
        c.payment_refused("consent_used");
        c.payment_refused("consent_used");
        c.payment_refused("something_new");
        assert_eq!((c.accepted(), c.refused()), (1, 3));
        let text = c.to_prometheus();
        assert!(
            text.contains("\nbank_api_payments_accepted_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("bank_api_payments_refused_total{reason=\"consent_used\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("bank_api_payments_refused_total{reason=\"other\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE bank_api_payments_refused_total counter"));
    }
}
