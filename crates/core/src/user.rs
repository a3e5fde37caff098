//! The bank's customers as the store holds them. Passwords are only ever held as argon2id PHC
//! strings ([`PasswordHash`]), whose `Debug` redacts them.

use std::fmt;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// A login name: 1 to 64 characters of lower-case ASCII letters, digits and `.-_@+`. Normalised to
/// lower case, so `Alice` and `alice` are one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

/// A value that is not a valid username.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a username is 1 to 64 characters of letters, digits, '.', '-', '_', '@' or '+'")]
pub struct InvalidUsername;

impl Username {
    /// Parses and normalises a username.
    ///
    /// # Errors
    /// [`InvalidUsername`] for an empty, overlong or oddly-charactered value.
    pub fn parse(value: &str) -> Result<Self, InvalidUsername> {
        let value = value.to_ascii_lowercase();
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_@+".contains(&b));
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidUsername)
        }
    }

    /// The normalised name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An argon2id hash in PHC string format. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by the password hasher or read from the store.
    #[must_use]
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for the hasher and the store only.
    #[must_use]
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// A customer account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Stable identifier; the `sub` of the tokens issued for this user.
    pub id: Uuid,
    /// Login name.
    pub username: Username,
    /// argon2id hash of the password.
    pub password_hash: PasswordHash,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// When the account was disabled, if it is.
    pub disabled_at: Option<OffsetDateTime>,
    /// OIDC standard claims (Core §5.1) released to clients by consent: `name`, `email`,
    /// `email_verified`, `phone_number`, `address`, ...
    pub claims: Map<String, Value>,
    /// The TOTP secret, encrypted under the key-encryption key with the user id as associated
    /// data; `None` while no second factor is enrolled.
    pub totp_secret_encrypted: Option<Vec<u8>>,
    /// The last TOTP step accepted; codes for it and earlier steps are refused.
    pub totp_last_step: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_to_lower_case_and_checked() {
        assert_eq!(
            Username::parse("Alice@Bank.example").unwrap().as_str(),
            "alice@bank.example"
        );
        for bad in ["", "a b", "a\u{0}", "é", &"a".repeat(65)] {
            assert_eq!(Username::parse(bad), Err(InvalidUsername), "{bad:?}");
        }
    }

    #[test]
    fn password_hashes_never_print() {
        let hash = PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        assert_eq!(format!("{hash:?}"), "PasswordHash([redacted])");
    }
}
