//! `portcullis-core` holds the protocol and domain logic of Portcullis: the domain types, the
//! rules, the storage traits that the `portcullis-store` crate implements, and the `Clock` and
//! `Rng` that every time- or randomness-dependent decision takes as a parameter. It does no I/O.

pub mod access_token;
pub mod accounts;
pub mod assertion;
pub mod audit;
pub mod authz;
pub mod claims;
pub mod client;
pub mod clock;
pub mod dpop;
pub mod dpop_nonce;
pub mod error;
pub mod keys;
pub mod login_throttle;
pub mod mac;
pub mod password;
pub mod ratelimit;
pub mod resource;
pub mod rng;
pub mod software_statement;
pub mod store;
pub mod totp;
pub mod user;

pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use error::{ErrorCode, OAuthError};
pub use rng::{Rng, RngError, SeededRng, SystemRng};
