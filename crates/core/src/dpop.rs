//! DPoP proof validation (RFC 9449 §4.3) for the authorization server's endpoints. The checks
//! themselves live in [`portcullis_jose::dpop`], shared with `portcullis-verify` at resource
//! servers so that there is one implementation; this module re-exports them and maps their
//! refusals to [`OAuthError`]s. The caller records the proof's `jti` as used until
//! [`DpopProof::replay_until`] (RFC 9449 §11.1) in the shared replay store.

pub use portcullis_jose::dpop::{DpopError, DpopPolicy, DpopProof, DpopRequest, validate};

use crate::error::{ErrorCode, OAuthError};

impl From<DpopError> for OAuthError {
    fn from(error: DpopError) -> Self {
        match error {
            DpopError::Invalid(description) => {
                OAuthError::new(ErrorCode::InvalidDpopProof, description)
            }
            DpopError::UseNonce => OAuthError::new(ErrorCode::UseDpopNonce, error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_rfc_9449_codes() {
        assert_eq!(
            OAuthError::from(DpopError::UseNonce).error,
            ErrorCode::UseDpopNonce
        );
        assert_eq!(
            OAuthError::from(DpopError::Invalid("x".into())).error,
            ErrorCode::InvalidDpopProof
        );
    }
}
