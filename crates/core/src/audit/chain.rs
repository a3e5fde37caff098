//! The hash chains of the security-event trail. Every store instance (one per replica process)
//! appends to a chain of its own, so replicas never wait for each other: event `n` of a chain
//! carries the hash of event `n - 1` (`prev_hash`), and its own `hash` is SHA-256 over an
//! unambiguous encoding of where it stands and what it says:
//!
//! ```text
//! "portcullis/audit-event/v1"
//! field(chain_id: 16 bytes) field(chain_seq: i64 BE) field(prev_hash: 32 bytes)
//! field(occurred_at: i64 BE, microseconds since the Unix epoch)
//! field(actor) field(action) opt(subject) opt(client_id) opt(request_id)
//! field(canonical JSON of details)
//! ```
//!
//! where `field(x)` is `x`'s length as a u64 big-endian followed by `x`, and `opt(x)` is one byte
//! 0 for none, or 1 followed by `field(x)`. A chain's first event has `chain_seq` 1 and a
//! `prev_hash` of 32 zero bytes ([`GENESIS`]).
//!
//! What is hashed must come back byte for byte from either database, so it is never the stored
//! text: details are re-serialised canonically from their parsed value on both the write and the
//! verify side ([`canonical_json`]: members sorted by key at every depth, no whitespace, and
//! numbers normalised, because PostgreSQL's JSONB keeps neither member order nor the spelling of
//! a number), and timestamps are cut to the microseconds both databases keep ([`storable`]).

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SecurityEvent;

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The `prev_hash` of a chain's first event.
pub const GENESIS: Digest = [0; 32];

/// The first bytes of every hashed event: a hash of something else never collides with one.
const DOMAIN: &[u8] = b"portcullis/audit-event/v1";

/// An event's place in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// The chain: one per store instance, made when it first appends.
    pub chain_id: Uuid,
    /// Position in the chain: 1, 2, 3… without gaps.
    pub chain_seq: i64,
    /// The hash of the event before it ([`GENESIS`] for the first).
    pub prev_hash: Digest,
    /// This event's hash ([`event_hash`]).
    pub hash: Digest,
}

impl ChainLink {
    /// The chain's head once this event is the last.
    #[must_use]
    pub fn head(&self) -> ChainHead {
        ChainHead {
            chain_id: self.chain_id,
            chain_seq: self.chain_seq,
            hash: self.hash,
        }
    }
}

/// The last event of a chain, after which the next one is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain.
    pub chain_id: Uuid,
    /// The last event's `chain_seq`; 0 before the first.
    pub chain_seq: i64,
    /// The last event's hash; [`GENESIS`] before the first.
    pub hash: Digest,
}

impl ChainHead {
    /// The head of a chain without events.
    #[must_use]
    pub fn genesis(chain_id: Uuid) -> Self {
        Self {
            chain_id,
            chain_seq: 0,
            hash: GENESIS,
        }
    }

    /// The link of `event` appended after this head. `event` should be [`storable`] already:
    /// what is hashed is what must be stored.
    #[must_use]
    pub fn link(&self, event: &SecurityEvent) -> ChainLink {
        let chain_seq = self.chain_seq.saturating_add(1);
        ChainLink {
            chain_id: self.chain_id,
            chain_seq,
            prev_hash: self.hash,
            hash: event_hash(self.chain_id, chain_seq, &self.hash, event),
        }
    }
}

/// The hash of `event` at `chain_seq` of `chain_id` after `prev_hash` (the encoding is in the
/// module documentation).
#[must_use]
pub fn event_hash(
    chain_id: Uuid,
    chain_seq: i64,
    prev_hash: &Digest,
    event: &SecurityEvent,
) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    field(&mut hasher, chain_id.as_bytes());
    field(&mut hasher, &chain_seq.to_be_bytes());
    field(&mut hasher, prev_hash);
    field(&mut hasher, &micros(event.occurred_at).to_be_bytes());
    field(&mut hasher, event.actor.as_bytes());
    field(&mut hasher, event.action.as_bytes());
    optional(&mut hasher, event.subject.as_deref());
    optional(&mut hasher, event.client_id.as_deref());
    optional(&mut hasher, event.request_id.as_deref());
    field(&mut hasher, canonical_json(&event.details).as_bytes());
    hasher.finalize().into()
}

fn field(hasher: &mut Sha256, bytes: &[u8]) {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    hasher.update(len.to_be_bytes());
    hasher.update(bytes);
}

fn optional(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update([0]),
        Some(text) => {
            hasher.update([1]);
            field(hasher, text.as_bytes());
        }
    }
}

pub use crate::clock::micros;

/// The event as it will be stored and hashed: its time cut to whole microseconds, NUL characters
/// (which PostgreSQL refuses in text) replaced by U+FFFD everywhere, secret-named members of
/// `details` removed, and its `client_id` taken from `details["client_id"]` when unset. A value
/// the database would refuse would otherwise fail every other event committed with it.
#[must_use]
pub fn storable(event: &SecurityEvent) -> SecurityEvent {
    let mut details = event.details.clone();
    super::scrub(&mut details);
    let details = match without_nul_value(Value::Object(details)) {
        Value::Object(members) => members,
        _ => Map::new(),
    };
    let client_id = event
        .client_id
        .clone()
        .or_else(|| super::client_of(&details));
    SecurityEvent {
        occurred_at: whole_micros(event.occurred_at),
        actor: without_nul(&event.actor),
        action: without_nul(&event.action),
        subject: event.subject.as_deref().map(without_nul),
        details,
        request_id: event.request_id.as_deref().map(without_nul),
        client_id: client_id.as_deref().map(without_nul),
    }
}

fn whole_micros(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or(at)
}

fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

fn without_nul_value(value: Value) -> Value {
    match value {
        Value::String(text) if text.contains('\0') => Value::String(without_nul(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul_value).collect()),
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(key, value)| (without_nul(&key), without_nul_value(value)))
                .collect(),
        ),
        other => other,
    }
}

/// The canonical JSON text of an object: members sorted by key (bytewise) at every depth, no
/// whitespace, strings escaped as serde_json escapes them, and numbers normalised so that every
/// spelling of one value gives one text: an integer, or a float with an integral value that fits
/// in 64 bits, is written as a plain integer (so `5.0`, `5` and `5e0` agree, and `-0.0` is `0`);
/// any other float in the shortest form that reads back as the same float.
#[must_use]
pub fn canonical_json(members: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, members);
    out
}

fn write_object(out: &mut String, members: &Map<String, Value>) {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => write_object(out, members),
    }
}

/// 2^63 and 2^64 as floats: the bounds of the integral floats written as integers.
const I64_FLOOR: f64 = -9_223_372_036_854_775_808.0;
const U64_CEILING: f64 = 18_446_744_073_709_551_616.0;

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the float is integral and checked to be within the integer's range"
)]
fn write_number(out: &mut String, number: &Number) {
    if let Some(n) = number.as_u64() {
        let _ = write!(out, "{n}");
    } else if let Some(n) = number.as_i64() {
        let _ = write!(out, "{n}");
    } else if let Some(f) = number.as_f64() {
        if f.fract() == 0.0 && (0.0..U64_CEILING).contains(&f.abs()) && f >= I64_FLOOR {
            if f < 0.0 {
                let _ = write!(out, "{}", f as i64);
            } else {
                let _ = write!(out, "{}", f as u64);
            }
        } else {
            // serde_json's own (ryu) spelling: the shortest that parses back to `f`.
            let _ = write!(out, "{number}");
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn event(details: Value) -> SecurityEvent {
        SecurityEvent::new(
            OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).unwrap(),
            "client:tpp-1",
            "token.issued",
            Some("user-1".into()),
            object(details),
        )
        .with_request_id("req-1")
    }

    #[test]
    fn canonical_json_sorts_members_and_normalises_numbers() {
        let one = object(json!({
            "b": [1, 2.5, {"z": 5.0, "a": -0.0}],
            "a": "é\"\\\n\u{1}",
            "n": null,
            "t": true,
            "big": 18_446_744_073_709_551_615_u64,
            "neg": -9_223_372_036_854_775_808_i64,
            "float_int": 1e16,
            "huge": 1e300,
            "tiny": 1.5e-7,
        }));
        assert_eq!(
            canonical_json(&one),
            r#"{"a":"é\"\\\n\u0001","b":[1,2.5,{"a":0,"z":5}],"big":18446744073709551615,"float_int":10000000000000000,"huge":1e+300,"n":null,"neg":-9223372036854775808,"t":true,"tiny":1.5e-7}"#
        );
        // Every spelling a database may hand back reads as the same text.
        for (written, read_back) in [
            (json!(5.0), json!(5)),
            (json!(1e16), json!(10_000_000_000_000_000_u64)),
            (json!(-0.0), json!(0)),
            (json!(1.5e-7), serde_json::from_str("0.00000015").unwrap()),
            (
                json!(1e300),
                serde_json::from_str(&format!("1{}", "0".repeat(300))).unwrap(),
            ),
            (json!(0.1), serde_json::from_str("0.10").unwrap()),
        ] {
            assert_eq!(
                canonical_json(&object(json!({ "v": written }))),
                canonical_json(&object(json!({ "v": read_back }))),
                "{written} / {read_back}"
            );
        }
        // The text is JSON, and parses back to what it says.
        let text = canonical_json(&one);
        let parsed: Map<String, Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&parsed), text);
    }

    #[test]
    fn a_hash_covers_every_field_and_its_place() {
        let chain = Uuid::from_u128(7);
        let e = storable(&event(json!({"grant_type": "authorization_code"})));
        let base = event_hash(chain, 1, &GENESIS, &e);
        assert_eq!(base, event_hash(chain, 1, &GENESIS, &e.clone()));
        let mut changed = Vec::new();
        changed.push(event_hash(Uuid::from_u128(8), 1, &GENESIS, &e));
        changed.push(event_hash(chain, 2, &GENESIS, &e));
        changed.push(event_hash(chain, 1, &[1; 32], &e));
        let variants: [fn(&mut SecurityEvent); 7] = [
            |e| e.occurred_at += time::Duration::microseconds(1),
            |e| e.actor.push('x'),
            |e| e.action.push('x'),
            |e| e.subject = None,
            |e| e.client_id = Some("tpp-2".into()),
            |e| e.request_id = None,
            |e| {
                e.details.insert("extra".into(), Value::Null);
            },
        ];
        for change in &variants {
            let mut other = e.clone();
            change(&mut other);
            changed.push(event_hash(chain, 1, &GENESIS, &other));
        }
        for hash in changed {
            assert_ne!(hash, base);
        }
        // Fields cannot slide into each other: the lengths are part of what is hashed.
        let mut a = e.clone();
        a.actor = "ab".into();
        a.action = "c".into();
        let mut b = e.clone();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(
            event_hash(chain, 1, &GENESIS, &a),
            event_hash(chain, 1, &GENESIS, &b)
        );
        // Nor can an absent subject pass for an empty one.
        let mut none = e.clone();
        none.subject = None;
        let mut empty = e;
        empty.subject = Some(String::new());
        assert_ne!(
            event_hash(chain, 1, &GENESIS, &none),
            event_hash(chain, 1, &GENESIS, &empty)
        );
    }

    #[test]
    fn links_follow_on_from_the_head() {
        let head = ChainHead::genesis(Uuid::from_u128(1));
        let first = head.link(&storable(&event(json!({}))));
        assert_eq!(first.chain_seq, 1);
        assert_eq!(first.prev_hash, GENESIS);
        let second = first.head().link(&storable(&event(json!({"n": 2}))));
        assert_eq!(second.chain_seq, 2);
        assert_eq!(second.prev_hash, first.hash);
        assert_ne!(second.hash, first.hash);
    }

    #[test]
    fn storable_cuts_to_microseconds_removes_nul_and_secrets_and_finds_the_client() {
        let mut raw =
            event(json!({"client_id": "tpp\u{0}-1", "nested": {"password": "x", "k\u{0}": "v"}}));
        raw.client_id = None;
        raw.actor = "a\u{0}b".into();
        let stored = storable(&raw);
        assert_eq!(stored.occurred_at.nanosecond(), 123_456_000);
        assert_eq!(stored.actor, "a\u{fffd}b");
        assert_eq!(stored.client_id.as_deref(), Some("tpp\u{fffd}-1"));
        assert_eq!(
            Value::Object(stored.details.clone()),
            json!({"client_id": "tpp\u{fffd}-1", "nested": {"k\u{fffd}": "v"}})
        );
        assert_eq!(storable(&stored), stored);
        assert_eq!(micros(stored.occurred_at), 1_800_000_000_123_456);
        let before_1970 = OffsetDateTime::from_unix_timestamp_nanos(-1_500).unwrap();
        assert_eq!(micros(before_1970), -2);
    }
}
