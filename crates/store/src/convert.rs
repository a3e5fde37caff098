//! Conversions from stored column values into domain types, shared by both backends. A value the
//! domain refuses means the row was written by something other than this code: it is reported as
//! corrupt rather than silently accepted.

use portcullis_core::audit::chain::{ChainLink, Digest};
use portcullis_core::client::secret::SecretHash;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::client::{ClientId, ClientProfile};
use portcullis_core::resource::ResourceMetadata;
use portcullis_core::store::{FeedEvent, Poll, StoreError, Unchained};
use portcullis_core::user::Username;
use portcullis_jose::{PublicJwk, SigningAlg};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::corrupt;

pub(crate) fn alg(value: &str) -> Result<SigningAlg, StoreError> {
    SigningAlg::parse(value).map_err(|e| corrupt("signing_keys.alg", e))
}

pub(crate) fn public_jwk(value: Value) -> Result<PublicJwk, StoreError> {
    match value {
        Value::Object(members) => {
            PublicJwk::parse(members).map_err(|e| corrupt("signing_keys.public_jwk", e))
        }
        _ => Err(corrupt("signing_keys.public_jwk", "not a JSON object")),
    }
}

pub(crate) fn client_id(value: String) -> Result<ClientId, StoreError> {
    ClientId::parse(value).map_err(|e| corrupt("clients.client_id", e))
}

pub(crate) fn secret_hash(value: Option<&[u8]>) -> Result<Option<SecretHash>, StoreError> {
    value
        .map(|bytes| {
            SecretHash::from_bytes(bytes)
                .ok_or_else(|| corrupt("clients.secret_hash", "not 32 bytes"))
        })
        .transpose()
}

pub(crate) fn registration_token_hash(
    value: Option<&[u8]>,
) -> Result<Option<SecretHash>, StoreError> {
    value
        .map(|bytes| {
            SecretHash::from_bytes(bytes)
                .ok_or_else(|| corrupt("clients.registration_token_hash", "not 32 bytes"))
        })
        .transpose()
}

pub(crate) fn pushed_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value).ok_or_else(|| corrupt("pushed_requests.handle", "not 32 bytes"))
}

pub(crate) fn pushed_parameters(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("pushed_requests.parameters", "not a JSON object")),
    }
}

pub(crate) fn grant_content(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("grants.content", "not a JSON object")),
    }
}

pub(crate) fn code_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value)
        .ok_or_else(|| corrupt("authorization_codes.handle", "not 32 bytes"))
}

pub(crate) fn code_content(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("authorization_codes.content", "not a JSON object")),
    }
}

pub(crate) fn session_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value).ok_or_else(|| corrupt("sessions.handle", "not 32 bytes"))
}

pub(crate) fn session_amr(value: Value) -> Result<Vec<String>, StoreError> {
    serde_json::from_value(value).map_err(|e| corrupt("sessions.amr", e))
}

pub(crate) fn interaction_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value).ok_or_else(|| corrupt("interactions.handle", "not 32 bytes"))
}

pub(crate) fn interaction_request_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value)
        .ok_or_else(|| corrupt("interactions.request_handle", "not 32 bytes"))
}

pub(crate) fn interaction_state(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("interactions.state", "not a JSON object")),
    }
}

pub(crate) fn refresh_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value).ok_or_else(|| corrupt("refresh_tokens.handle", "not 32 bytes"))
}

pub(crate) fn refresh_content(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("refresh_tokens.content", "not a JSON object")),
    }
}

pub(crate) fn access_handle(value: &[u8]) -> Result<SecretHash, StoreError> {
    SecretHash::from_bytes(value).ok_or_else(|| corrupt("access_tokens.handle", "not 32 bytes"))
}

pub(crate) fn access_claims(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("access_tokens.claims", "not a JSON object")),
    }
}

pub(crate) fn client_settings(value: Value) -> Result<ClientSettings, StoreError> {
    serde_json::from_value(value).map_err(|e| corrupt("clients.settings", e))
}

pub(crate) fn resource_metadata(value: Value) -> Result<ResourceMetadata, StoreError> {
    serde_json::from_value(value).map_err(|e| corrupt("resource_servers.metadata", e))
}

pub(crate) fn profile(value: &str) -> Result<ClientProfile, StoreError> {
    ClientProfile::parse(value).ok_or_else(|| corrupt("clients.profile", value))
}

pub(crate) fn metadata(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("clients.metadata", "not a JSON object")),
    }
}

pub(crate) fn event_details(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("security_events.details", "not a JSON object")),
    }
}

/// A stored SHA-256 digest or HMAC-SHA-256 tag.
pub(crate) fn digest(column: &str, bytes: &[u8]) -> Result<Digest, StoreError> {
    Digest::try_from(bytes).map_err(|_| corrupt(column, "not 32 bytes"))
}

/// An event's chain link from its chain columns, which are all set (chained) or all empty
/// (written before chaining began). Columns that are partly set, or digests that are not 32
/// bytes, are a damaged row: it reads as having no link, so that listing and exporting the trail
/// still work, and `portcullis audit verify`, which reads each chain by its `chain_id`, reports
/// the row as a break (or misses it from its chain, which is a break too). Logged.
pub(crate) fn chain_link(
    seq: i64,
    chain_id: Option<Uuid>,
    chain_seq: Option<i64>,
    prev_hash: Option<&[u8]>,
    hash: Option<&[u8]>,
) -> Option<ChainLink> {
    let link = match (chain_id, chain_seq, prev_hash, hash) {
        (None, None, None, None) => return None,
        (Some(chain_id), Some(chain_seq), Some(prev_hash), Some(hash)) => {
            match (Digest::try_from(prev_hash), Digest::try_from(hash)) {
                (Ok(prev_hash), Ok(hash)) => Some(ChainLink {
                    chain_id,
                    chain_seq,
                    prev_hash,
                    hash,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    if link.is_none() {
        tracing::warn!(
            seq,
            "security_events: an event's chain columns are damaged (partly empty, or a digest that is not 32 bytes); `portcullis audit verify` reports it"
        );
    }
    link
}

pub(crate) fn user_claims(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(corrupt("users.claims", "not a JSON object")),
    }
}

pub(crate) fn username(value: &str) -> Result<Username, StoreError> {
    Username::parse(value).map_err(|e| corrupt("users.username", e))
}

/// The page size bound every list query applies.
pub(crate) fn page_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 1000))
}

/// The most events one poll hands out, whatever the recipient asks for.
const POLL_MAX: u32 = 1000;

/// How many events a poll of up to `max` reads: one more than it hands out, to tell whether
/// more are waiting.
pub(crate) fn poll_limit(max: u32) -> i64 {
    i64::from(max.min(POLL_MAX)) + 1
}

/// A poll's answer from the events read with [`poll_limit`]: the extra one only says that more
/// are waiting.
pub(crate) fn poll(mut events: Vec<FeedEvent>, max: u32) -> Poll {
    let max = usize::try_from(max.min(POLL_MAX)).unwrap_or(usize::MAX);
    let more = events.len() > max;
    events.truncate(max);
    Poll { events, more }
}

/// The query behind `SecurityEventStore::unchained`, on either database: `{length}` is the
/// function that gives a byte string's length (`octet_length` on PostgreSQL, `length` on
/// SQLite).
pub(crate) fn unchained_query(length: &str) -> String {
    format!(
        r#"SELECT
             (SELECT COUNT(*) FROM security_events WHERE chain_id IS NULL) AS count,
             (SELECT MAX(seq) FROM security_events WHERE chain_id IS NULL) AS last_seq,
             (SELECT MIN(seq) FROM security_events WHERE chain_id IS NOT NULL) AS first_chained_seq,
             (SELECT MIN(seq) FROM security_events WHERE chain_id IS NULL) AS first_seq,
             (SELECT MAX(last_seq) FROM audit_baseline) AS baseline_last,
             (SELECT CASE WHEN COUNT(*) = 1 THEN MAX(count) END FROM audit_baseline) AS baseline_count,
             (SELECT MIN(seq) FROM security_events
               WHERE NOT ((chain_id IS NULL AND chain_seq IS NULL AND prev_hash IS NULL AND hash IS NULL)
                       OR (chain_id IS NOT NULL AND chain_seq IS NOT NULL
                           AND {length}(prev_hash) = 32 AND {length}(hash) = 32))) AS damaged_seq"#
    )
}

/// A row of [`unchained_query`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UnchainedRow {
    count: i64,
    last_seq: Option<i64>,
    first_chained_seq: Option<i64>,
    first_seq: Option<i64>,
    baseline_last: Option<i64>,
    baseline_count: Option<i64>,
    damaged_seq: Option<i64>,
}

impl TryFrom<UnchainedRow> for Unchained {
    type Error = StoreError;
    fn try_from(row: UnchainedRow) -> Result<Self, StoreError> {
        let baseline = match (row.baseline_last, row.baseline_count) {
            (Some(last), Some(n)) => Some((
                last,
                u64::try_from(n).map_err(|e| corrupt("audit_baseline", e))?,
            )),
            _ => None,
        };
        Ok(Unchained {
            count: u64::try_from(row.count).map_err(|e| corrupt("security_events", e))?,
            last_seq: row.last_seq,
            first_chained_seq: row.first_chained_seq,
            first_seq: row.first_seq,
            baseline,
            damaged_seq: row.damaged_seq,
        })
    }
}
