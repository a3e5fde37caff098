//! The buckets in Redis (`backend = "redis"`), shared by every replica.
//!
//! One Lua script checks all the buckets of a request at once: Redis runs a script atomically,
//! so the all-or-nothing rule of `portcullis_core::ratelimit::check_all` holds across replicas
//! without locks. Each bucket is one string key (`redis_key_prefix` + bucket key) holding its TAT
//! in microseconds, expiring when the bucket is full again. The time is the caller's clock, not
//! Redis's, so that every decision reads the same clock (and tests can move it).
//!
//! Every bucket of one call must live on one node: a Redis Cluster would need the keys of a
//! request in one hash slot, which these keys are not, so a cluster is not supported; a single
//! primary (with replicas for failover) is.
//!
//! The connection is one multiplexed connection that reconnects by itself
//! ([`redis::aio::ConnectionManager`]), made lazily so that a replica starts while Redis is
//! down; every call is bounded by the configured timeout. A `rediss://` URL connects over TLS
//! (rustls), checking the server's certificate against `redis_ca_file` or the system's roots.

use std::time::Duration;

use portcullis_core::ratelimit::{Cell, CellState};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The script. KEYS are the buckets; ARGV[1] is now; for bucket i (from 1), ARGV[3i - 1],
/// ARGV[3i] and ARGV[3i + 1] are its emission interval T, its tolerance τ and its operation
/// (`portcullis_core::ratelimit::Op::code`: `1` spend, `0` probe, `2` refund). Spends are written
/// only when every spend and probe allowed; refunds always. Returns, for each bucket, whether it
/// allowed (1/0) and its TAT after the call.
///
/// Lua numbers are doubles: exact for integers below 2^53, which microsecond times are for
/// centuries. They are written with `%.0f`, as `tostring` would round them to 14 digits.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local n = #KEYS
local base, nexts, ok, ops = {}, {}, {}, {}
local all = true
for i = 1, n do
  local j = 3 * i - 1
  local t = tonumber(ARGV[j])
  local tolerance = tonumber(ARGV[j + 1])
  ops[i] = ARGV[j + 2]
  local b = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    b = math.max(tonumber(stored), now)
  end
  base[i] = b
  if ops[i] == '2' then
    nexts[i] = math.max(b - t, now)
    ok[i] = true
  else
    nexts[i] = b + t
    ok[i] = (b + t - now) <= tolerance
    if not ok[i] then
      all = false
    end
  end
end
local out = {}
for i = 1, n do
  local tat = base[i]
  if (all and ops[i] == '1') or ops[i] == '2' then
    tat = nexts[i]
    if tat > now then
      local ttl = math.max(1, math.ceil((tat - now) / 1000))
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', ttl)
    else
      redis.call('DEL', KEYS[i])
    end
  end
  out[2 * i - 1] = ok[i] and 1 or 0
  out[2 * i] = tat
end
return out
";

/// Why Redis did not answer a check.
#[derive(Debug, thiserror::Error)]
pub enum RedisLimitError {
    /// Redis refused or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within the timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The script answered something else than two integers per bucket.
    #[error("redis answered {0} values for {1} buckets")]
    Malformed(usize, usize),
}

/// Buckets in Redis.
#[derive(Clone)]
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's details include the URL and so the password: never printed.
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// Buckets in the Redis `client` names, their keys starting with `prefix`, each call bounded
    /// by `timeout`. Connects on first use. Must be called inside the tokio runtime.
    ///
    /// # Errors
    /// [`RedisLimitError::Redis`] when the connection manager cannot be made.
    pub fn new(
        client: redis::Client,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, RedisLimitError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    /// Checks `cells` at `now_us`, all or nothing, in one script call.
    ///
    /// # Errors
    /// [`RedisLimitError`] when Redis fails, is too slow, or answers nonsense.
    pub async fn check(
        &self,
        cells: &[Cell],
        now_us: i64,
    ) -> Result<Vec<CellState>, RedisLimitError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_us);
        for cell in cells {
            invocation
                .key(format!("{}{}", self.prefix, cell.key))
                .arg(cell.emission_us)
                .arg(cell.tolerance_us)
                .arg(cell.op.code());
        }
        let mut connection = self.connection.clone();
        let answer: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| RedisLimitError::Timeout(self.timeout))??;
        if answer.len() != cells.len() * 2 {
            return Err(RedisLimitError::Malformed(answer.len(), cells.len()));
        }
        Ok(answer
            .chunks_exact(2)
            .map(|pair| match pair {
                [allowed, tat_us] => CellState {
                    allowed: *allowed == 1,
                    tat_us: *tat_us,
                },
                _ => CellState {
                    allowed: false,
                    tat_us: now_us,
                },
            })
            .collect())
    }
}
