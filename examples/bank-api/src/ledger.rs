//! The ledger of payment consents already used. A `payment_initiation` consent pays once: the
//! first payment under it records the consent here, at the moment of paying, and every later one
//! is refused with `consent_used`.
//!
//! Recording is one insert-if-absent under a lock, never a look-up followed by an insert, so of
//! any number of concurrent payments under one consent exactly one gets through. This ledger
//! lives in the process's memory, which is right for a single-process example only: a
//! production API records the consent in its payment system's database, in the same transaction
//! as the payment, with a unique constraint on the consent (DESIGN.md, Storage: single use is
//! enforced by the database), so that every replica and every restart sees it.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use portcullis_verify::Principal;

/// What identifies a consent in the ledger: the token's `grant_id` (Grant Management), or for a
/// token without one, the token's own identifier (`jti`), so that such a token pays once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsentKey(String);

impl ConsentKey {
    /// The consent `principal` pays under.
    #[must_use]
    pub fn of(principal: &Principal) -> Self {
        // Prefixed, so that a grant and a token with the same identifier stay apart.
        match &principal.grant_id {
            Some(grant) => Self(format!("grant:{grant}")),
            None => Self(format!("token:{}", principal.token_id)),
        }
    }
}

/// The consents already used.
#[derive(Debug, Default)]
pub struct ConsentLedger {
    used: Mutex<HashSet<ConsentKey>>,
}

impl ConsentLedger {
    /// Records `key` as used. Returns `true` if this call recorded it, `false` if it was used
    /// already: the caller pays only on `true`.
    pub fn consume(&self, key: ConsentKey) -> bool {
        // A panic while holding the lock cannot leave the set half-changed (one insert), so a
        // poisoned lock is still a good set.
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key)
    }

    /// Whether `key` was used.
    #[must_use]
    pub fn is_used(&self, key: &ConsentKey) -> bool {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_consent_is_consumed_once() {
        let ledger = ConsentLedger::default();
        let key = ConsentKey("grant:g-1".into());
        assert!(!ledger.is_used(&key));
        assert!(ledger.consume(key.clone()));
        assert!(ledger.is_used(&key));
        assert!(!ledger.consume(key));
        assert!(ledger.consume(ConsentKey("grant:g-2".into())));
    }

    #[test]
    fn of_twenty_concurrent_payments_under_one_consent_exactly_one_pays() {
        let ledger = Arc::new(ConsentLedger::default());
        let barrier = Arc::new(std::sync::Barrier::new(20));
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let ledger = ledger.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    ledger.consume(ConsentKey("grant:g-1".into()))
                })
            })
            .collect();
        let paid = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|paid| *paid)
            .count();
        assert_eq!(paid, 1);
    }
}
