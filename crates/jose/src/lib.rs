//! `portcullis-jose` is the only crate that touches josekit. It narrows JOSE down to what FAPI 2.0
//! allows: the signing algorithms PS256, ES256 and EdDSA (FAPI2 SP 5.4.1), RSA keys of at least
//! 2048 bits and EC keys on the curve their algorithm names (SP 5.4.1-2/3), key selection by `kid`
//! and then `kty`/`alg`/`use`/`crv` (SP 5.4.3), and RFC 7638 thumbprints, which josekit lacks.
//! [`dpop`] validates and makes RFC 9449 DPoP proofs, for the authorization server, resource
//! servers and clients alike.

pub mod dpop;

mod alg;
mod error;
mod jwk;
mod jws;
mod thumbprint;

pub use alg::SigningAlg;
pub use error::JoseError;
pub use jwk::{Jwks, PublicJwk};
pub use jws::{
    PreparedJwks, SigningKey, VerifiedJwt, decode_unverified_claims, decode_unverified_header,
    verify_jwt, verify_jwt_prepared, verify_with_embedded_jwk,
};
pub use thumbprint::{jwk_thumbprint_sha256, x5t_sha256};
