//! The `RateLimit-Policy` and `RateLimit` response fields of draft-ietf-httpapi-ratelimit-headers
//! (-10), and `Retry-After` (RFC 9110 §10.2.3).
//!
//! Both fields are Structured Field lists (RFC 9651) with one item per policy that applied to the
//! request, the item a String naming the policy:
//!
//! ```text
//! RateLimit-Policy: "token-ip";q=6000;w=60, "token-client";q=600;w=60
//! RateLimit: "token-ip";r=5999;t=1, "token-client";r=0;t=12
//! ```
//!
//! `q` is the quota and `w` the window in seconds; `r` the quota left after this request and `t`
//! the seconds until more quota comes back (draft -10 §4.1: "until additional quota … is made
//! available"), left out when the bucket is full. A token bucket returns one token every `w/q`,
//! so `t` is at most that, rounded up.

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_core::ratelimit::{Outcome, Quota, ceil_secs};

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// A policy that applied to a request, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The policy's name, e.g. `token-client`.
    pub policy: &'static str,
    /// Its quota.
    pub quota: Quota,
    /// Its bucket after the request.
    pub outcome: Outcome,
}

/// An sf-string (RFC 9651 §3.3.3): printable ASCII, `"` and `\` escaped.
fn sf_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The `RateLimit-Policy` value for `applied`.
#[must_use]
pub fn policy_value(applied: &[Applied]) -> String {
    applied
        .iter()
        .map(|a| {
            format!(
                "{};q={};w={}",
                sf_string(a.policy),
                a.quota.quota(),
                a.quota.window().as_secs().max(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `RateLimit` value for `applied`.
#[must_use]
pub fn ratelimit_value(applied: &[Applied]) -> String {
    applied
        .iter()
        .map(|a| {
            let mut item = format!("{};r={}", sf_string(a.policy), a.outcome.remaining);
            if let Some(next) = a.outcome.next_token_us {
                item.push_str(&format!(";t={}", ceil_secs(next)));
            }
            item
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds until the refused request would pass: the longest wait among the policies that
/// refused it, at least one.
#[must_use]
pub fn retry_after(applied: &[Applied]) -> u64 {
    applied
        .iter()
        .filter_map(|a| a.outcome.retry_after_us)
        .map(ceil_secs)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Sets both fields on `headers` (nothing when no policy applied).
pub fn insert(headers: &mut HeaderMap, applied: &[Applied]) {
    if applied.is_empty() {
        return;
    }
    for (name, value) in [
        (RATELIMIT_POLICY, policy_value(applied)),
        (RATELIMIT, ratelimit_value(applied)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::time::Duration;

    use portcullis_core::ratelimit::{Cell, Op};

    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;

    fn applied(policy: &'static str, q: u32, w: u64, spent: u32, at: i64) -> Applied {
        let quota = Quota::new(q, Duration::from_secs(w)).unwrap();
        let cell = Cell::new("k", quota, Op::Spend);
        // `spent` requests at NOW, then this one at `at`.
        let mut tat = None;
        for _ in 0..spent {
            tat = Some(cell.decide(tat, NOW).tat_us);
        }
        let state = cell.decide(tat, at);
        Applied {
            policy,
            quota,
            outcome: cell.outcome(state, at),
        }
    }

    #[test]
    fn fields_list_every_policy_in_the_draft_syntax() {
        let ip = applied("token-ip", 6000, 60, 0, NOW);
        let client = applied("token-client", 10, 60, 10, NOW + 2_000_000);
        let both = [ip, client];
        assert_eq!(
            policy_value(&both),
            r#""token-ip";q=6000;w=60, "token-client";q=10;w=60"#
        );
        // The client's bucket is empty: a token comes back 6 s after the burst, 4 s from now.
        assert_eq!(
            ratelimit_value(&both),
            r#""token-ip";r=5999;t=1, "token-client";r=0;t=4"#
        );
        assert_eq!(retry_after(&both), 4);
        let mut headers = HeaderMap::new();
        insert(&mut headers, &both);
        assert_eq!(
            headers[RATELIMIT],
            r#""token-ip";r=5999;t=1, "token-client";r=0;t=4"#
        );
        assert!(headers.contains_key(RATELIMIT_POLICY));
    }

    #[test]
    fn a_full_bucket_has_no_reset_and_nothing_applied_sets_nothing() {
        let quota = Quota::new(30, Duration::from_secs(300)).unwrap();
        let probe = Cell::new("k", quota, Op::Probe);
        let full = Applied {
            policy: "auth-failures",
            quota,
            outcome: probe.outcome(probe.decide(None, NOW), NOW),
        };
        assert_eq!(ratelimit_value(&[full]), r#""auth-failures";r=30"#);
        let mut headers = HeaderMap::new();
        insert(&mut headers, &[]);
        assert!(headers.is_empty());
        assert_eq!(sf_string("a\"b\\c\u{e9}"), r#""a\"b\\c""#);
    }
}
