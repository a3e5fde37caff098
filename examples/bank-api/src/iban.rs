//! IBANs (ISO 13616) in their electronic form: spaces removed, letters upper-case, so that the
//! creditor of a payment compares with the consented one however each was written
//! (`DE89 3704 0044 0532 0130 00` and `de89370400440532013000` are the same account).

use std::fmt;

/// A well-formed IBAN in electronic form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iban(String);

/// Why an IBAN was refused. The text is an `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbanError;

impl fmt::Display for IbanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("creditorAccount.iban is not a valid IBAN (ISO 13616)")
    }
}

/// The electronic form of `text`: spaces removed, ASCII letters upper-cased.
#[must_use]
pub fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Iban {
    /// Normalises `text` and checks it: a country code, two check digits, up to 30 letters and
    /// digits, 15 to 34 characters in all, and the ISO 7064 mod-97 check.
    ///
    /// # Errors
    /// [`IbanError`] for anything else.
    pub fn parse(text: &str) -> Result<Self, IbanError> {
        // Bounded before any work: the longest IBAN with a space every four characters.
        if text.len() > 48 {
            return Err(IbanError);
        }
        let compact = normalise(text);
        let bytes = compact.as_bytes();
        let shape_ok = (15..=34).contains(&bytes.len())
            && bytes.iter().all(u8::is_ascii_alphanumeric)
            && bytes.iter().take(2).all(u8::is_ascii_uppercase)
            && bytes.iter().skip(2).take(2).all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(IbanError);
        }
        // The country code and check digits move to the end; letters count as 10..35.
        let rearranged = bytes.iter().skip(4).chain(bytes.iter().take(4));
        let remainder = rearranged.fold(0u32, |r, b| {
            if b.is_ascii_digit() {
                (r * 10 + u32::from(b - b'0')) % 97
            } else {
                (r * 100 + u32::from(b - b'A') + 10) % 97
            }
        });
        if remainder != 1 {
            return Err(IbanError);
        }
        Ok(Self(compact))
    }

    /// The electronic form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_compare_in_electronic_form() {
        assert_eq!(
            normalise("de89 3704 0044 0532 0130 00"),
            "DE89370400440532013000"
        );
        let printed = Iban::parse("DE89 3704 0044 0532 0130 00").unwrap();
        let typed = Iban::parse("de89370400440532013000").unwrap();
        assert_eq!(printed, typed);
        assert_eq!(printed.as_str(), "DE89370400440532013000");
        assert_eq!(
            Iban::parse("GB82 WEST 1234 5698 7654 32").unwrap().as_str(),
            "GB82WEST12345698765432"
        );
    }

    #[test]
    fn ibans_need_their_shape_and_check_digits() {
        for bad in [
            "",
            "DE88370400440532013000",
            "DE89-3704-0044-0532-0130-00",
            "DE8937040044",
            "1289370400440532013000",
            "DEXX370400440532013000",
            "DE89\t370400440532013000",
            "DE89370400440532013000DE89370400440532013000DE89370400440532013000",
        ] {
            assert_eq!(Iban::parse(bad), Err(IbanError), "{bad:?}");
        }
    }

    #[test]
    fn the_demo_directory_ibans_are_valid() {
        let iban = portcullis_core::accounts::german_iban("50010517", "0123456789");
        assert!(Iban::parse(&iban).is_ok(), "{iban}");
    }
}
