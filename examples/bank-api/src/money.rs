//! Money without floats: a [`Currency`] (ISO 4217 code) and an amount in integer minor units
//! (cents for EUR), parsed from the decimal strings that payment APIs and RFC 9396
//! `instructedAmount` use ("10.00", "0.5", "1234"). Parsing is strict: digits and at most one
//! point, no sign, no exponent, no whitespace, no more decimals than the currency has, and a
//! bounded length, so that two amounts compare exactly.

use std::fmt;

/// The most digits before the decimal point: what the authorization server accepts at consent
/// (15), and far below `u64`'s range once scaled to minor units.
const MAX_WHOLE_DIGITS: usize = 15;

/// Why a currency or an amount was refused. The text is an `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyError(String);

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 alphabetic currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses `EUR`, `USD`, …
    ///
    /// # Errors
    /// [`MoneyError`] unless `code` is three upper-case ASCII letters.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError(format!(
                "the currency {code:?} is not an ISO 4217 code such as EUR"
            ))),
        }
    }

    /// The code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Three ASCII letters, checked in `parse`.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// How many decimals its minor unit has (ISO 4217): 0 for JPY and the like, 3 for the dinars
    /// and rials that have fils or baisa, 2 for everything else (EUR, USD, GBP, …).
    #[must_use]
    pub fn decimals(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of one currency, in its minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    currency: Currency,
    minor: u64,
}

impl Money {
    /// Parses the decimal string `amount` in `currency`: `digits` or `digits.digits`, at most
    /// [`MAX_WHOLE_DIGITS`] before the point and at most [`Currency::decimals`] after it. Zero is
    /// allowed here; see [`Money::parse_positive`].
    ///
    /// # Errors
    /// [`MoneyError`] describing the rule broken.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let decimals = currency.decimals();
        let bad = || {
            MoneyError(format!(
                "the amount {:?} is not a decimal string with at most {decimals} decimals for {currency}, such as \"{}\"",
                truncate(amount),
                example(decimals)
            ))
        };
        let (whole, fraction) = match amount.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (amount, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || whole.len() > MAX_WHOLE_DIGITS {
            return Err(bad());
        }
        let fraction = fraction.unwrap_or_default();
        if amount.contains('.') && !digits(fraction) {
            return Err(bad());
        }
        let places = u32::try_from(fraction.len()).map_err(|_| bad())?;
        if places > decimals {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let fraction: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        let minor = 10u64
            .checked_pow(decimals)
            .and_then(|scale| whole.checked_mul(scale))
            .zip(
                10u64
                    .checked_pow(decimals - places)
                    .and_then(|scale| fraction.checked_mul(scale)),
            )
            .and_then(|(whole, fraction)| whole.checked_add(fraction))
            .ok_or_else(bad)?;
        Ok(Self { currency, minor })
    }

    /// [`Money::parse`], refusing zero.
    ///
    /// # Errors
    /// [`MoneyError`] for a malformed or zero amount.
    pub fn parse_positive(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let money = Self::parse(amount, currency)?;
        if money.minor == 0 {
            return Err(MoneyError("the amount must be more than zero".into()));
        }
        Ok(money)
    }

    /// `minor` minor units of `currency`.
    #[must_use]
    pub fn from_minor_units(minor: u64, currency: Currency) -> Self {
        Self { currency, minor }
    }

    /// The currency.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in minor units.
    #[cfg(test)]
    #[must_use]
    pub fn minor_units(&self) -> u64 {
        self.minor
    }

    /// The amount as a decimal string with exactly the currency's decimals ("10.00").
    #[must_use]
    pub fn amount_text(&self) -> String {
        let decimals = self.currency.decimals();
        let scale = 10u64.pow(decimals);
        if decimals == 0 {
            return self.minor.to_string();
        }
        format!(
            "{}.{:0width$}",
            self.minor / scale,
            self.minor % scale,
            width = decimals as usize
        )
    }

    /// Whether a payment of `self` stays within the consented `limit`: the same currency, and
    /// not more.
    ///
    /// # Errors
    /// What differs, as an `error_description`.
    pub fn within(&self, limit: &Money) -> Result<(), MoneyError> {
        if self.currency != limit.currency {
            return Err(MoneyError(format!(
                "the payment is in {}, the consent in {}",
                self.currency, limit.currency
            )));
        }
        if self.minor > limit.minor {
            return Err(MoneyError(format!(
                "the amount {} {} is more than the consented {} {}",
                self.amount_text(),
                self.currency,
                limit.amount_text(),
                limit.currency
            )));
        }
        Ok(())
    }
}

/// An example amount with `decimals` decimals, for error messages.
fn example(decimals: u32) -> String {
    match decimals {
        0 => "100".into(),
        n => format!("10.{}", "0".repeat(n as usize)),
    }
}

/// At most 24 characters of what the client sent, for an error message.
fn truncate(text: &str) -> String {
    text.chars().take(24).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    fn minor(text: &str, currency: &str) -> Result<u64, MoneyError> {
        Money::parse(text, Currency::parse(currency).unwrap()).map(|m| m.minor_units())
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert_eq!(eur().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "", "E1R", "ÉUR"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_become_exact_minor_units() {
        assert_eq!(minor("10.00", "EUR"), Ok(1000));
        assert_eq!(minor("10.5", "EUR"), Ok(1050));
        assert_eq!(minor("10", "EUR"), Ok(1000));
        assert_eq!(minor("0.01", "EUR"), Ok(1));
        assert_eq!(minor("007.10", "EUR"), Ok(710));
        assert_eq!(
            minor("999999999999999.99", "EUR"),
            Ok(99_999_999_999_999_999)
        );
        assert_eq!(minor("1500", "JPY"), Ok(1500));
        assert_eq!(minor("1.234", "KWD"), Ok(1234));
        assert_eq!(minor("0", "EUR"), Ok(0));
    }

    #[test]
    fn amounts_refuse_signs_exponents_floats_noise_and_excess() {
        for bad in [
            "",
            "-1.00",
            "+1.00",
            "1e3",
            "1E3",
            "1.",
            ".5",
            "1.001",
            "1,00",
            " 1.00",
            "1.00 ",
            "1.0.0",
            "0x10",
            "NaN",
            "inf",
            "1_000",
            "١٢",
            "1234567890123456",
            "10.0\u{0}",
        ] {
            assert!(Money::parse(bad, eur()).is_err(), "{bad:?}");
        }
        assert!(minor("10.5", "JPY").is_err());
        assert!(Money::parse_positive("0.00", eur()).is_err());
        assert!(Money::parse_positive("0.01", eur()).is_ok());
    }

    #[test]
    fn amounts_print_with_the_currency_decimals() {
        let m = |t: &str, c: &str| Money::parse(t, Currency::parse(c).unwrap()).unwrap();
        assert_eq!(m("10", "EUR").amount_text(), "10.00");
        assert_eq!(m("0.5", "EUR").amount_text(), "0.50");
        assert_eq!(m("1500", "JPY").amount_text(), "1500");
        assert_eq!(m("1.2", "KWD").amount_text(), "1.200");
    }

    #[test]
    fn a_payment_is_within_its_consent_by_currency_and_exact_amount() {
        let m = |t: &str, c: &str| Money::parse(t, Currency::parse(c).unwrap()).unwrap();
        let consented = m("10.00", "EUR");
        assert!(m("10.00", "EUR").within(&consented).is_ok());
        assert!(m("10", "EUR").within(&consented).is_ok());
        assert!(m("9.99", "EUR").within(&consented).is_ok());
        let more = m("10.01", "EUR").within(&consented).unwrap_err();
        assert_eq!(
            more.to_string(),
            "the amount 10.01 EUR is more than the consented 10.00 EUR"
        );
        assert!(m("5.00", "USD").within(&consented).is_err());
        // No float rounding: 0.1 + 0.2 style amounts compare exactly.
        assert!(m("0.30", "EUR").within(&m("0.3", "EUR")).is_ok());
        assert!(m("0.31", "EUR").within(&m("0.3", "EUR")).is_err());
    }
}
