//! `portcullis-consent`: the pages the bank's customer sees (login, second factor, consent,
//! account), rendered with askama from the workspace `templates/`. Every value is HTML-escaped by
//! askama; nothing here builds markup by hand.
//!
//! Besides those it holds the error page, shown when a request cannot be sent back to the client
//! safely (FAPI2 SP 5.3.2.1-7: never redirect to an unvalidated `redirect_uri`, even with an
//! error), and the plain-words descriptions of scopes and `authorization_details` that the consent
//! and account pages share.

pub mod pages;
