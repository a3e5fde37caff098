//! The customer's accounts as the consent page offers them: an [`AccountDirectory`] is the
//! bank's core system in production; [`DemoDirectory`] is the seeded default that the example
//! bank API shares, so that the accounts a customer picks at consent are the ones it serves.

use uuid::Uuid;

/// A customer's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its stable identifier (what `authorization_details` and tokens name).
    pub id: String,
    /// Its name, as the customer knows it.
    pub name: String,
    /// Its IBAN.
    pub iban: String,
    /// Its currency (ISO 4217).
    pub currency: String,
}

impl Account {
    /// How the consent page shows it: the name and the last four characters of the IBAN.
    #[must_use]
    pub fn label(&self) -> String {
        let tail: String = self
            .iban
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{} ·· {tail}", self.name)
    }
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
#[error("account directory: {0}")]
pub struct DirectoryError(pub String);

/// Where the customer's accounts come from.
#[async_trait::async_trait]
pub trait AccountDirectory: Send + Sync + std::fmt::Debug {
    /// The accounts of the customer `user_id`.
    ///
    /// # Errors
    /// [`DirectoryError`] when the bank's system does not answer.
    async fn accounts_of(&self, user_id: Uuid) -> Result<Vec<Account>, DirectoryError>;
}

/// The seeded demo directory: every customer has a current account and a savings account in
/// EUR, with identifiers and valid German IBANs derived from the customer's id, so that the
/// example bank API (which shares this directory) serves the same accounts.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoDirectory;

/// An IBAN for a German bank code and account number, with its ISO 7064 mod-97 check digits.
#[must_use]
pub fn german_iban(bank_code: &str, account_number: &str) -> String {
    let bban = format!("{bank_code}{account_number:0>10}");
    // BBAN + "DE00" as digits: D=13, E=14.
    let digits = format!("{bban}131400");
    let remainder = digits
        .bytes()
        .fold(0u32, |r, b| (r * 10 + u32::from(b - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - remainder)
}

#[async_trait::async_trait]
impl AccountDirectory for DemoDirectory {
    async fn accounts_of(&self, user_id: Uuid) -> Result<Vec<Account>, DirectoryError> {
        let seed = user_id.as_u128();
        let number = |kind: u128| format!("{:010}", (seed ^ kind) % 10_000_000_000);
        let short = user_id.simple().to_string();
        let short = short.get(..12).unwrap_or_default();
        Ok(vec![
            Account {
                id: format!("acc-{short}-cur"),
                name: "Current account".into(),
                iban: german_iban("50010517", &number(1)),
                currency: "EUR".into(),
            },
            Account {
                id: format!("acc-{short}-sav"),
                name: "Savings account".into(),
                iban: german_iban("50010517", &number(2)),
                currency: "EUR".into(),
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::details;
    use serde_json::json;

    #[tokio::test]
    async fn demo_accounts_are_stable_per_customer_with_valid_ibans() {
        let user = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        let accounts = DemoDirectory.accounts_of(user).await.unwrap();
        assert_eq!(accounts, DemoDirectory.accounts_of(user).await.unwrap());
        assert_eq!(accounts.len(), 2);
        assert_ne!(accounts[0].id, accounts[1].id);
        for account in &accounts {
            // The payment schema's IBAN check accepts them.
            let entry = json!([{
                "type": "payment_initiation",
                "instructedAmount": {"currency": "EUR", "amount": "1.00"},
                "creditorName": "x",
                "creditorAccount": {"iban": account.iban}
            }]);
            assert!(
                details::validate(&entry, &["payment_initiation".into()]).is_ok(),
                "{}",
                account.iban
            );
            assert!(
                account
                    .label()
                    .ends_with(&account.iban[account.iban.len() - 4..])
            );
        }
        // The classic example: DE89 3704 0044 0532 0130 00.
        assert_eq!(
            german_iban("37040044", "0532013000"),
            "DE89370400440532013000"
        );
        let other = DemoDirectory.accounts_of(Uuid::nil()).await.unwrap();
        assert_ne!(other[0].id, accounts[0].id);
    }
}
