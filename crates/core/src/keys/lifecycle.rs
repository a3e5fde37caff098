//! The lifecycle of signing keys, derived from their timestamps.
//!
//! For each algorithm, order the keys by `activates_at` (then `kid`, so replicas agree on ties):
//! - a key whose `activates_at` is still ahead is **next**: published, not yet signing, so that
//!   every cache of the JWKS holds it before the first token it signs arrives;
//! - the last key already activated is **active**: it signs;
//! - an earlier activated key is **retired** from the moment its successor activated, and stays
//!   published for the retention period, the longest anything it signed can stay valid;
//! - after that it is **expired**: no longer published.

use time::{Duration, OffsetDateTime};

use super::StoredSigningKey;

/// Where a key is in its lifecycle at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Published and signing.
    Active,
    /// Published, no longer signing.
    Retired,
    /// Neither published nor signing.
    Expired,
}

impl KeyState {
    /// Whether `/jwks` publishes a key in this state.
    #[must_use]
    pub fn is_published(self) -> bool {
        !matches!(self, KeyState::Expired)
    }

    /// The lower-case name used by the CLI and the admin API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Expired => "expired",
        }
    }
}

/// How long retired keys stay published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// At least the longest lifetime of anything a key signs (ID tokens, JWT access tokens,
    /// signed responses), plus the JWKS cache lifetime.
    pub keep_retired_for: Duration,
}

/// The state of every key at `now`, in the order given.
#[must_use]
pub fn classify(
    keys: &[StoredSigningKey],
    now: OffsetDateTime,
    policy: RetentionPolicy,
) -> Vec<(&StoredSigningKey, KeyState)> {
    keys.iter()
        .map(|key| {
            // The keys of the same algorithm that activated after this one and by now.
            let successor = keys
                .iter()
                .filter(|other| other.alg == key.alg && other.activates_at <= now)
                .filter(|other| (other.activates_at, &other.kid) > (key.activates_at, &key.kid))
                .map(|other| other.activates_at)
                .min();
            let state = if key.activates_at > now {
                KeyState::Next
            } else {
                match successor {
                    None => KeyState::Active,
                    Some(at) if now < at.saturating_add(policy.keep_retired_for) => {
                        KeyState::Retired
                    }
                    Some(_) => KeyState::Expired,
                }
            };
            (key, state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_jose::{PublicJwk, SigningAlg};

    fn key(kid: &str, alg: SigningAlg, activates_at: i64) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            alg,
            public_jwk: PublicJwk::parse(
                serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"AA"}"#).unwrap(),
            )
            .unwrap(),
            encrypted_private_jwk: vec![],
            created_at: OffsetDateTime::UNIX_EPOCH,
            activates_at: OffsetDateTime::UNIX_EPOCH + Duration::seconds(activates_at),
        }
    }

    fn states(keys: &[StoredSigningKey], now: i64) -> Vec<(String, KeyState)> {
        let policy = RetentionPolicy {
            keep_retired_for: Duration::seconds(100),
        };
        classify(
            keys,
            OffsetDateTime::UNIX_EPOCH + Duration::seconds(now),
            policy,
        )
        .into_iter()
        .map(|(k, s)| (k.kid.clone(), s))
        .collect()
    }

    #[test]
    fn a_rotation_moves_next_to_active_and_active_to_retired_then_expired() {
        use KeyState::*;
        let keys = [
            key("old", SigningAlg::Es256, 0),
            key("new", SigningAlg::Es256, 50),
        ];
        assert_eq!(
            states(&keys, 10),
            [("old".into(), Active), ("new".into(), Next)]
        );
        assert_eq!(
            states(&keys, 50),
            [("old".into(), Retired), ("new".into(), Active)]
        );
        assert_eq!(
            states(&keys, 149),
            [("old".into(), Retired), ("new".into(), Active)]
        );
        assert_eq!(
            states(&keys, 150),
            [("old".into(), Expired), ("new".into(), Active)]
        );
    }

    #[test]
    fn algorithms_rotate_independently_and_ties_break_by_kid() {
        use KeyState::*;
        let keys = [
            key("a", SigningAlg::Es256, 0),
            key("b", SigningAlg::Es256, 0),
            key("p", SigningAlg::Ps256, 0),
        ];
        assert_eq!(
            states(&keys, 1),
            [
                ("a".into(), Retired),
                ("b".into(), Active),
                ("p".into(), Active)
            ]
        );
    }

    #[test]
    fn a_retired_key_counts_from_its_own_successor_not_the_newest_key() {
        use KeyState::*;
        let keys = [
            key("k1", SigningAlg::EdDsa, 0),
            key("k2", SigningAlg::EdDsa, 10),
            key("k3", SigningAlg::EdDsa, 200),
        ];
        assert_eq!(
            states(&keys, 105),
            [
                ("k1".into(), Retired),
                ("k2".into(), Active),
                ("k3".into(), Next)
            ]
        );
        assert_eq!(
            states(&keys, 200),
            [
                ("k1".into(), Expired),
                ("k2".into(), Retired),
                ("k3".into(), Active)
            ]
        );
    }
}
