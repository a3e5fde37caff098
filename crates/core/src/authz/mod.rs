//! The authorization code flow's requests (FAPI 2.0 SP 5.3.2.2): what a client pushes to `/par`,
//! checked against its registration ([`request`]), and the rich authorization details it may
//! carry ([`details`]).

pub mod code;
pub mod details;
pub mod id_token;
pub mod request;
pub mod request_object;
pub mod userinfo;
