//! The error type of every fallible JOSE operation. Messages are safe to show to the party that
//! sent the token: they name the rule that failed, never key material.

/// What went wrong in a JOSE operation.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JoseError {
    /// The algorithm is not one of PS256, ES256 and EdDSA, or not allowed in this context.
    #[error("signing algorithm {0:?} is not allowed (FAPI2 SP 5.4.1: PS256, ES256 or EdDSA only)")]
    UnsupportedAlgorithm(String),
    /// The key is too weak or on the wrong curve for its algorithm.
    #[error("key rejected: {0}")]
    WeakKey(String),
    /// The key is malformed or does not suit the requested operation.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The token is not a well-formed compact JWS.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// No key in the key set matches the token's header.
    #[error("no matching key: {0}")]
    KeyNotFound(String),
    /// The signature does not verify with any candidate key.
    #[error("signature verification failed")]
    BadSignature,
    /// josekit or OpenSSL failed while producing something.
    #[error("JOSE operation failed: {0}")]
    Internal(String),
}
