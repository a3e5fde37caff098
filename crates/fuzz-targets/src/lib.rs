//! `portcullis-fuzz-targets`: every parser of Portcullis that takes outside input, as a function
//! of bytes that feeds them to the real code and checks what can be checked of the result
//! (a second, independent signature check of every accepted JWS; what is stored reads back;
//! parse, write, parse gives the same value). No function here may panic on any input, except
//! through an `assert!` of such an invariant.
//!
//! The cargo-fuzz project in `fuzz/` (nightly) runs each function as a target of the same name;
//! this crate's test (`tests/corpus.rs`) replays the corpus and the crash regressions kept in
//! `fuzz/` on stable, so that CI catches a regression without nightly or sanitizers.

mod certificate;
mod details;
pub mod fixture;
mod forms;
pub mod invariant;
mod jose;
mod jwt;
mod metadata;

pub use certificate::{client_cert, subject_dn};
pub use details::authorization_details;
pub use forms::{par_form, token_form};
pub use jose::{access_token, jwk, jws_compact};
pub use jwt::{client_assertion, dpop_proof, request_object, software_statement};
pub use metadata::client_metadata;

/// A fuzz target: bytes in, nothing out, no panic.
pub type Target = fn(&[u8]);

/// Every target by name: the name of its file in `fuzz/fuzz_targets/` and of its corpus
/// directory in `fuzz/corpus/`.
pub const TARGETS: [(&str, Target); 13] = [
    ("jws_compact", jws_compact),
    ("jwk", jwk),
    ("access_token", access_token),
    ("client_assertion", client_assertion),
    ("request_object", request_object),
    ("dpop_proof", dpop_proof),
    ("software_statement", software_statement),
    ("par_form", par_form),
    ("token_form", token_form),
    ("authorization_details", authorization_details),
    ("client_cert", client_cert),
    ("subject_dn", subject_dn),
    ("client_metadata", client_metadata),
];
