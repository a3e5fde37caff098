//! Sender-constraint checks on a token's `cnf` claim. Thumbprints are compared in constant time.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

/// How a token is bound, read from its `cnf` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// RFC 8705 §3.1: the SHA-256 thumbprint of the client certificate.
    Certificate(String),
    /// RFC 9449 §6.1: the JWK thumbprint of the DPoP key.
    DpopKey(String),
}

/// Why a token's binding does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The token has no usable `cnf` claim; FAPI 2.0 accepts only sender-constrained tokens
    /// (SP 5.3.2.1-4).
    #[error("the access token is not sender-constrained (no cnf.x5t#S256 or cnf.jkt)")]
    Unbound,
    /// The token names both bindings, which Portcullis never issues.
    #[error("the access token has an ambiguous cnf claim")]
    Ambiguous,
    /// The request presented no client certificate, or a different one.
    #[error("the client certificate does not match the token's cnf.x5t#S256 (RFC 8705 §3)")]
    CertificateMismatch,
    /// The DPoP proof was made with a different key, or is missing.
    #[error("the DPoP key does not match the token's cnf.jkt (RFC 9449 §7.1)")]
    DpopKeyMismatch,
}

impl Binding {
    /// Reads the binding from a token's claims.
    ///
    /// # Errors
    /// [`BindingError::Unbound`] or [`BindingError::Ambiguous`].
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Self, BindingError> {
        let cnf = claims
            .get("cnf")
            .and_then(Value::as_object)
            .ok_or(BindingError::Unbound)?;
        let x5t = cnf
            .get("x5t#S256")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let jkt = cnf
            .get("jkt")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        match (x5t, jkt) {
            (Some(x5t), None) => Ok(Binding::Certificate(x5t.to_owned())),
            (None, Some(jkt)) => Ok(Binding::DpopKey(jkt.to_owned())),
            (Some(_), Some(_)) => Err(BindingError::Ambiguous),
            (None, None) => Err(BindingError::Unbound),
        }
    }

    /// Checks the binding against what the request presented: the client certificate's
    /// `x5t#S256` and the thumbprint of the key that signed a verified DPoP proof.
    ///
    /// # Errors
    /// [`BindingError::CertificateMismatch`] or [`BindingError::DpopKeyMismatch`].
    pub fn check(
        &self,
        presented_x5t: Option<&str>,
        presented_jkt: Option<&str>,
    ) -> Result<(), BindingError> {
        let (expected, presented, mismatch) = match self {
            Binding::Certificate(x5t) => (x5t, presented_x5t, BindingError::CertificateMismatch),
            Binding::DpopKey(jkt) => (jkt, presented_jkt, BindingError::DpopKeyMismatch),
        };
        match presented {
            Some(p) if bool::from(p.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
            _ => Err(mismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn certificate_bound_token_needs_the_same_certificate() {
        let der = b"certificate";
        let x5t = portcullis_jose::x5t_sha256(der);
        let binding =
            Binding::from_claims(&claims(&format!(r#"{{"cnf":{{"x5t#S256":"{x5t}"}}}}"#))).unwrap();
        assert_eq!(binding.check(Some(&x5t), None), Ok(()));
        let other = portcullis_jose::x5t_sha256(b"another certificate");
        assert_eq!(
            binding.check(Some(&other), None),
            Err(BindingError::CertificateMismatch)
        );
        assert_eq!(
            binding.check(None, Some(&x5t)),
            Err(BindingError::CertificateMismatch)
        );
    }

    #[test]
    fn dpop_bound_token_needs_the_same_key() {
        let binding = Binding::from_claims(&claims(r#"{"cnf":{"jkt":"abc"}}"#)).unwrap();
        assert_eq!(binding.check(None, Some("abc")), Ok(()));
        assert_eq!(
            binding.check(None, Some("abd")),
            Err(BindingError::DpopKeyMismatch)
        );
        assert_eq!(
            binding.check(Some("abc"), None),
            Err(BindingError::DpopKeyMismatch)
        );
    }

    #[test]
    fn sp_5_3_2_1_4_unbound_and_ambiguous_tokens_are_refused() {
        assert_eq!(
            Binding::from_claims(&claims(r#"{"sub":"x"}"#)),
            Err(BindingError::Unbound)
        );
        assert_eq!(
            Binding::from_claims(&claims(r#"{"cnf":{"x5t#S256":""}}"#)),
            Err(BindingError::Unbound)
        );
        assert_eq!(
            Binding::from_claims(&claims(r#"{"cnf":"x"}"#)),
            Err(BindingError::Unbound)
        );
        assert_eq!(
            Binding::from_claims(&claims(r#"{"cnf":{"jkt":"a","x5t#S256":"b"}}"#)),
            Err(BindingError::Ambiguous)
        );
    }
}
