//! Server-provided DPoP nonces (RFC 9449 §8, §9): stateless HMACs of a time window under a key
//! every replica derives from the KEK, so any replica accepts a nonce another one gave out. The
//! type lives in [`portcullis_jose::dpop`], shared with `portcullis-verify`; it is re-exported here.

pub use portcullis_jose::dpop::DpopNonces;
