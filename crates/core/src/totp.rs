//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), the customer's second factor:
//! HMAC-SHA1, 30-second steps, 6 digits, one step of tolerance either way. A code is accepted
//! only for a step after the last one used (the store records it with a conditional update), so a
//! code cannot be replayed within its window.

use std::fmt;

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::keys::{KekError, KeyEncryptionKey};
use crate::{Rng, RngError};

/// The step length (RFC 6238 §5.2 recommends 30 s).
pub const STEP_SECONDS: i64 = 30;
/// Code length.
pub const DIGITS: u32 = 6;
/// Secret length: 160 bits, as RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;

/// A TOTP shared secret. Never printed; zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// A fresh random secret.
    ///
    /// # Errors
    /// [`RngError`] if the random source fails.
    pub fn generate(rng: &dyn Rng) -> Result<Self, RngError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rng.fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Wraps stored secret bytes (after decryption).
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes, for encryption at rest.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `otpauth://` URI an authenticator app scans (Key Uri Format): the secret in base32.
    #[must_use]
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let label = format!("{}:{}", encode_component(issuer), encode_component(account));
        Zeroizing::new(format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            base32(&self.0).as_str(),
            encode_component(issuer)
        ))
    }

    /// The code for a step.
    #[must_use]
    pub fn code_at_step(&self, step: i64) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let digest = tag.as_ref();
        // RFC 4226 §5.3 dynamic truncation.
        let offset = usize::from(digest.last().copied().unwrap_or(0) & 0x0f);
        let word = digest
            .get(offset..offset + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u32::from_be_bytes(b) & 0x7fff_ffff);
        format!(
            "{:0width$}",
            word % 10u32.pow(DIGITS),
            width = DIGITS as usize
        )
    }

    /// Checks `code` at `now`, allowing one step of clock drift either way, and only steps after
    /// `last_used_step`. Returns the matched step, which the caller must record as used.
    #[must_use]
    pub fn verify(
        &self,
        code: &str,
        now: OffsetDateTime,
        last_used_step: Option<i64>,
    ) -> Option<i64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = step_of(now);
        let mut matched = None;
        // Every candidate is computed and compared, so timing does not reveal which step matched.
        for step in [current - 1, current, current + 1] {
            let equal: bool = self
                .code_at_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if equal && last_used_step.is_none_or(|last| step > last) && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }
}

/// Encrypts a user's TOTP secret for storage under the KEK, bound to the user's id (a sealed
/// secret copied to another user's row does not open).
///
/// # Errors
/// [`KekError::Rng`] if no nonce can be drawn.
pub fn seal(
    secret: &TotpSecret,
    user_id: uuid::Uuid,
    kek: &KeyEncryptionKey,
    rng: &dyn Rng,
) -> Result<Vec<u8>, KekError> {
    kek.encrypt(rng, secret.as_bytes(), &associated_data(user_id))
}

/// Opens a secret sealed by [`seal`] for the same user.
///
/// # Errors
/// [`KekError`] if the KEK differs or the value was tampered with or moved.
pub fn open(
    sealed: &[u8],
    user_id: uuid::Uuid,
    kek: &KeyEncryptionKey,
) -> Result<TotpSecret, KekError> {
    let bytes = kek.decrypt(sealed, &associated_data(user_id))?;
    Ok(TotpSecret::from_bytes(bytes.to_vec()))
}

fn associated_data(user_id: uuid::Uuid) -> Vec<u8> {
    format!("totp:{}", user_id.hyphenated()).into_bytes()
}

/// The RFC 6238 time step containing `at`.
#[must_use]
pub fn step_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(STEP_SECONDS)
}

/// RFC 4648 §6 base32 without padding, as authenticator apps expect.
fn base32(bytes: &[u8]) -> Zeroizing<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let symbol =
        |value: u32| char::from(ALPHABET.get((value & 31) as usize).copied().unwrap_or(b'A'));
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(buffer >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(buffer << (5 - bits)));
    }
    out
}

/// Percent-encodes everything outside the URI unreserved set.
fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 Appendix B SHA-1 secret.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn rfc_6238_appendix_b_vectors_truncated_to_six_digits() {
        let secret = rfc_secret();
        for (time, eight_digits) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(
                secret.code_at_step(step_of(at(time))),
                eight_digits[2..],
                "T = {time}"
            );
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_never_the_same_step_twice() {
        let secret = rfc_secret();
        let now = at(1_111_111_109);
        let step = step_of(now);
        assert_eq!(secret.verify("081804", now, None), Some(step));
        assert_eq!(
            secret.verify("081804", now, Some(step)),
            None,
            "a used step is refused"
        );
        let previous = secret.code_at_step(step - 1);
        assert_eq!(secret.verify(&previous, now, None), Some(step - 1));
        let too_old = secret.code_at_step(step - 2);
        assert_eq!(secret.verify(&too_old, now, None), None);
        for malformed in ["", "08180", "0818044", "08180a", "０８１８０４"] {
            assert_eq!(secret.verify(malformed, now, None), None, "{malformed:?}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user() {
        let rng = crate::SeededRng::new(4);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let secret = TotpSecret::generate(&rng).unwrap();
        let alice = uuid::Uuid::new_v4();
        let sealed = seal(&secret, alice, &kek, &rng).unwrap();
        assert_eq!(open(&sealed, alice, &kek).unwrap(), secret);
        assert_eq!(
            open(&sealed, uuid::Uuid::new_v4(), &kek).unwrap_err(),
            KekError::Corrupt
        );
        assert!(!sealed.windows(SECRET_BYTES).any(|w| w == secret.as_bytes()));
    }

    #[test]
    fn otpauth_uri_carries_the_base32_secret_and_the_secret_never_prints() {
        let uri = rfc_secret().otpauth_uri("Bank Ltd", "alice@bank.example");
        // RFC 4648 §10 test vector family: "12345678901234567890" in base32.
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Bank%20Ltd:alice%40bank.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bank%20Ltd&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret([redacted])");
        assert_eq!(base32(b"f").as_str(), "MY");
        assert_eq!(base32(b"foobar").as_str(), "MZXW6YTBOI");
    }
}
