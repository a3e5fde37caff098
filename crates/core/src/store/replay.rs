//! The replay cache: identifiers that may be used once (RFC 7523 §3 and OIDC Core §9 assertion
//! `jti`s, RFC 9449 §11.1 DPoP proof `jti`s, software statements, request objects). The database
//! decides, with one conditional write, so that two replicas cannot both accept the same value.

use std::fmt;

use time::OffsetDateTime;

use super::StoreError;

/// What kind of identifier, which scopes its uniqueness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayKind {
    /// A client assertion `jti`, unique per client.
    ClientAssertion,
    /// A DPoP proof `jti`, unique per proof key (`jkt`).
    DpopProof,
    /// A software statement `jti`, unique per directory.
    SoftwareStatement,
    /// A request object `jti`, unique per client.
    RequestObject,
    /// A step of a customer's login outside an authorization (the account page): its failed
    /// attempts and its completion, unique per login.
    CustomerLogin,
}

impl ReplayKind {
    /// The storage prefix.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ReplayKind::ClientAssertion => "client_assertion",
            ReplayKind::DpopProof => "dpop",
            ReplayKind::SoftwareStatement => "software_statement",
            ReplayKind::RequestObject => "request_object",
            ReplayKind::CustomerLogin => "customer_login",
        }
    }
}

/// One identifier in its scope: `kind`, the party that made it (client, key thumbprint or
/// directory), and the identifier itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayKey<'a> {
    /// What it is.
    pub kind: ReplayKind,
    /// Who made it.
    pub issuer: &'a str,
    /// The identifier (`jti`).
    pub id: &'a str,
}

impl ReplayKey<'_> {
    /// The stored scope: kind and issuer.
    #[must_use]
    pub fn scope(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.issuer)
    }
}

impl fmt::Display for ReplayKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.issuer)
    }
}

/// The outcome of recording an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// Not seen before (or only in an entry that has expired): accept.
    First,
    /// Seen, and the earlier use is still within its lifetime: refuse.
    Replayed,
}

/// The replay cache.
#[async_trait::async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records `key` as used until `expires_at`, unless it is already recorded and unexpired at
    /// `now`. Atomic: of concurrent calls with one key, exactly one gets [`FirstUse::First`].
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure (callers then refuse: fail closed).
    async fn record(
        &self,
        key: ReplayKey<'_>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<FirstUse, StoreError>;

    /// Deletes entries that expired by `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Backend`] on database failure.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
