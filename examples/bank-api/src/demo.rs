//! Demo balances and transactions. A real bank reads them from its core system; this example
//! derives them from the account's identifier, so that the same account always shows the same
//! numbers (which tests can rely on) and no state has to be kept.

use portcullis_core::accounts::Account;
use serde_json::{Value, json};

use crate::money::{Currency, Money};

/// FNV-1a: a small, stable hash of the account id (not for security, only for demo numbers).
fn seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `minor` minor units of the account's currency as a decimal string.
fn amount(account: &Account, minor: u64) -> String {
    match Currency::parse(&account.currency) {
        Ok(currency) => Money::from_minor_units(minor, currency).amount_text(),
        Err(_) => minor.to_string(),
    }
}

/// The balances of `account`: what is available and what is booked.
#[must_use]
pub fn balances(account: &Account) -> Value {
    let s = seed(&account.id);
    // Between 100.00 and 10,099.99; pending card payments of up to 99.99 keep booked higher.
    let available = 10_000 + s % 1_000_000;
    let pending = (s >> 20) % 10_000;
    json!({
        "account_id": account.id,
        "balances": [
            {"type": "available", "amount": amount(account, available), "currency": account.currency},
            {"type": "booked", "amount": amount(account, available + pending), "currency": account.currency},
        ]
    })
}

const DESCRIPTIONS: [(&str, &str); 8] = [
    ("Salary", "credit"),
    ("Grocery store", "debit"),
    ("Rent", "debit"),
    ("Electricity", "debit"),
    ("Refund", "credit"),
    ("Restaurant", "debit"),
    ("Train tickets", "debit"),
    ("Transfer from savings", "credit"),
];

/// The recent transactions of `account`, newest first.
#[must_use]
pub fn transactions(account: &Account) -> Value {
    let s = seed(&account.id);
    let list: Vec<Value> = (0u64..5)
        .map(|i| {
            let mix = seed(&format!("{}/{i}", account.id));
            let index =
                usize::try_from((s.rotate_left(u32::try_from(i).unwrap_or(0) * 7) ^ mix) % 8)
                    .unwrap_or(0);
            let (description, direction) = DESCRIPTIONS
                .get(index)
                .copied()
                .unwrap_or(("Transfer", "debit"));
            let day = 28 - i * 5 - mix % 4;
            json!({
                "transaction_id": format!("{}-tx-{}", account.id, i + 1),
                "booking_date": format!("2025-06-{day:02}"),
                "amount": amount(account, 100 + mix % 250_000),
                "currency": account.currency,
                "credit_debit_indicator": direction,
                "description": description,
            })
        })
        .collect();
    json!({"account_id": account.id, "transactions": list})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str) -> Account {
        Account {
            id: id.into(),
            name: "Current account".into(),
            iban: "DE89370400440532013000".into(),
            currency: "EUR".into(),
        }
    }

    #[test]
    fn demo_numbers_are_deterministic_per_account() {
        let a = account("acc-1");
        assert_eq!(balances(&a), balances(&a));
        assert_eq!(transactions(&a), transactions(&a));
        assert_ne!(balances(&a), balances(&account("acc-2")));
        let b = balances(&a);
        assert_eq!(b["balances"][0]["type"], "available");
        let text = b["balances"][0]["amount"].as_str().unwrap();
        assert!(
            Money::parse(text, Currency::parse("EUR").unwrap()).is_ok(),
            "{text}"
        );
        let t = transactions(&a);
        assert_eq!(t["transactions"].as_array().unwrap().len(), 5);
        for tx in t["transactions"].as_array().unwrap() {
            let date = tx["booking_date"].as_str().unwrap();
            assert!(date > "2025-06-00" && date < "2025-06-29", "{date}");
        }
    }
}
