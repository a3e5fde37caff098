//! Verification of one chain and its seals, fed the chain's events in `chain_seq` order. Pure: the
//! caller reads the rows (`portcullis audit verify` pages through the store) and stops at the
//! first [`Break`], which names the chain, the position and the check that failed.
//!
//! What it catches, and how:
//! - an edited event: its hash no longer matches its contents ([`Check::Hash`]);
//! - an event inserted or removed in the middle: the positions stop being 1, 2, 3…
//!   ([`Check::Contiguity`]) or the `prev_hash` links break ([`Check::PrevLink`]);
//! - any of those with every later hash recomputed to hide it: the next seal's head hash no longer
//!   matches the event at its position ([`Check::SealHead`]), and a new seal cannot be made
//!   without the key ([`Check::SealMac`]);
//! - a removed seal: the next seal's `prev_mac` no longer names the one before ([`Check::SealLink`]);
//! - events removed from the end of a chain up to a seal: the seal names an event that is not
//!   there ([`Check::SealBeyondEnd`]).
//!
//! The honest limit: events after a chain's last seal can be removed from its end unseen until
//! the next seal is written (at most the seal interval), and a whole chain removed with all its
//! seals leaves no trace in that chain (the surrounding evidence — the chains table and the other
//! replicas' chains — is checked by the caller).

use std::collections::VecDeque;
use std::fmt;

use uuid::Uuid;

use super::SecurityEvent;
use super::chain::{self, ChainHead, ChainLink, Digest, GENESIS};
use super::seal::{Seal, SealKey};

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The stored hash is not the hash of the event's contents: the event was changed.
    Hash,
    /// `prev_hash` is not the hash of the event before.
    PrevLink,
    /// The position does not follow on from the one before: an event is missing or repeated.
    Contiguity,
    /// A seal's MAC does not verify under the key: it was forged or changed.
    SealMac,
    /// A seal's `prev_mac` is not the MAC of the chain's seal before it: a seal was removed.
    SealLink,
    /// A seal's head hash is not the hash of the event at its position: events up to it were
    /// changed, inserted or removed and the hashes recomputed.
    SealHead,
    /// A seal names a position past the chain's last event: events were removed from its end.
    SealBeyondEnd,
    /// A registered chain without any event (chains are registered with their first events).
    EmptyChain,
    /// Events or seals of a chain that is not registered.
    UnregisteredChain,
    /// An event outside every chain written after chaining began.
    Unchained,
    /// An event's chain columns are damaged: some set and some empty, or a digest of the wrong
    /// length.
    ChainColumns,
}

impl Check {
    /// A short name for reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Hash => "hash",
            Check::PrevLink => "prev_hash link",
            Check::Contiguity => "contiguity",
            Check::SealMac => "seal MAC",
            Check::SealLink => "seal-to-seal link",
            Check::SealHead => "sealed head hash",
            Check::SealBeyondEnd => "seal beyond the chain's end",
            Check::EmptyChain => "empty chain",
            Check::UnregisteredChain => "unregistered chain",
            Check::Unchained => "event outside the chains",
            Check::ChainColumns => "damaged chain columns",
        }
    }
}

/// The first break found: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The chain, when the break is in one.
    pub chain_id: Option<Uuid>,
    /// The position in the chain.
    pub chain_seq: Option<i64>,
    /// The event's global sequence number, when an event is concerned.
    pub seq: Option<i64>,
    /// The check that failed.
    pub check: Check,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} check failed", self.check.as_str())?;
        if let Some(chain) = self.chain_id {
            write!(f, " in chain {chain}")?;
        }
        if let Some(chain_seq) = self.chain_seq {
            write!(f, " at chain_seq {chain_seq}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (event seq {seq})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What a verified chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The chain.
    pub chain_id: Uuid,
    /// How many events.
    pub events: u64,
    /// The last event's position (0 for none).
    pub last_chain_seq: i64,
    /// How many seals.
    pub seals: u64,
    /// The position of the last seal, if any.
    pub sealed_up_to: Option<i64>,
}

impl ChainReport {
    /// How many events follow the last seal: these could be removed from the end unseen.
    #[must_use]
    pub fn unsealed_tail(&self) -> i64 {
        self.last_chain_seq - self.sealed_up_to.unwrap_or(0)
    }
}

/// Walks one chain: feed it every event of the chain in `chain_seq` order (ties by `seq`), then
/// [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    key: &'k SealKey,
    head: ChainHead,
    seals: VecDeque<Seal>,
    last_mac: Digest,
    sealed_up_to: Option<i64>,
    events: u64,
    seals_checked: u64,
}

impl<'k> ChainVerifier<'k> {
    /// A walk of `chain_id`, whose seals are `seals` (in any order), checked under `key`.
    #[must_use]
    pub fn new(key: &'k SealKey, chain_id: Uuid, mut seals: Vec<Seal>) -> Self {
        seals.sort_by_key(|s| (s.chain_seq, s.sealed_at));
        Self {
            key,
            head: ChainHead::genesis(chain_id),
            seals: seals.into(),
            last_mac: GENESIS,
            sealed_up_to: None,
            events: 0,
            seals_checked: 0,
        }
    }

    fn broken(&self, chain_seq: i64, seq: Option<i64>, check: Check, detail: String) -> Break {
        Break {
            chain_id: Some(self.head.chain_id),
            chain_seq: Some(chain_seq),
            seq,
            check,
            detail,
        }
    }

    /// Checks the next event, stored as event `seq` with `link`, and the seals of its position.
    ///
    /// # Errors
    /// The [`Break`] it shows.
    pub fn row(&mut self, seq: i64, event: &SecurityEvent, link: &ChainLink) -> Result<(), Break> {
        let expected = self.head.chain_seq.saturating_add(1);
        // Seals that name no event at all (a position below 1).
        if let Some(seal) = self.seals.front().filter(|s| s.chain_seq < expected) {
            let seal = *seal;
            self.seal_mac(&seal)?;
            return Err(self.broken(
                seal.chain_seq,
                None,
                Check::SealHead,
                "the seal names a position where the chain has no event".into(),
            ));
        }
        if link.chain_id != self.head.chain_id {
            return Err(self.broken(
                link.chain_seq,
                Some(seq),
                Check::Contiguity,
                format!("the event belongs to chain {}", link.chain_id),
            ));
        }
        if link.chain_seq != expected {
            let detail = if link.chain_seq < expected {
                format!(
                    "chain_seq {} appears again after {}: an event was inserted or repeated",
                    link.chain_seq, self.head.chain_seq
                )
            } else {
                format!(
                    "chain_seq {expected} is missing (the next event is {}): an event was removed",
                    link.chain_seq
                )
            };
            return Err(self.broken(expected, Some(seq), Check::Contiguity, detail));
        }
        if link.prev_hash != self.head.hash {
            return Err(self.broken(
                expected,
                Some(seq),
                Check::PrevLink,
                "prev_hash is not the hash of the event before it: an event before it was removed, inserted or replaced".into(),
            ));
        }
        if chain::event_hash(link.chain_id, link.chain_seq, &link.prev_hash, event) != link.hash {
            return Err(self.broken(
                expected,
                Some(seq),
                Check::Hash,
                "the stored hash is not the hash of the event's contents: the event was changed"
                    .into(),
            ));
        }
        while let Some(seal) = self.seals.front().filter(|s| s.chain_seq == expected) {
            let seal = *seal;
            self.seal_mac(&seal)?;
            self.seal_link(&seal)?;
            if seal.head_hash != link.hash {
                let after = self.sealed_up_to.unwrap_or(0);
                return Err(self.broken(
                    expected,
                    Some(seq),
                    Check::SealHead,
                    format!(
                        "the seal made at {} does not match the event at its position: events after chain_seq {after} and up to {expected} were changed, inserted or removed, and the hashes recomputed",
                        seal.sealed_at
                    ),
                ));
            }
            self.last_mac = seal.mac;
            self.sealed_up_to = Some(expected);
            self.seals_checked += 1;
            self.seals.pop_front();
        }
        self.head = link.head();
        self.events += 1;
        Ok(())
    }

    fn seal_mac(&self, seal: &Seal) -> Result<(), Break> {
        if self.key.verify(seal) {
            Ok(())
        } else {
            Err(self.broken(
                seal.chain_seq,
                None,
                Check::SealMac,
                format!(
                    "the seal made at {} does not verify under the key derived from the KEK: it was forged or changed",
                    seal.sealed_at
                ),
            ))
        }
    }

    fn seal_link(&self, seal: &Seal) -> Result<(), Break> {
        if seal.prev_mac == self.last_mac {
            Ok(())
        } else {
            let before = self
                .sealed_up_to
                .map_or_else(|| "none".to_owned(), |s| s.to_string());
            Err(self.broken(
                seal.chain_seq,
                None,
                Check::SealLink,
                format!(
                    "the seal's prev_mac is not the MAC of the chain's seal before it (at chain_seq {before}): a seal was removed or replaced"
                ),
            ))
        }
    }

    /// Ends the walk after the chain's last event.
    ///
    /// # Errors
    /// The [`Break`] the remaining seals show, or [`Check::EmptyChain`] for a chain without
    /// events.
    pub fn finish(self) -> Result<ChainReport, Break> {
        if let Some(seal) = self.seals.front() {
            self.seal_mac(seal)?;
            return Err(self.broken(
                seal.chain_seq,
                None,
                Check::SealBeyondEnd,
                format!(
                    "a seal names chain_seq {} but the chain ends at {}: events were removed from its end",
                    seal.chain_seq, self.head.chain_seq
                ),
            ));
        }
        if self.events == 0 {
            return Err(Break {
                chain_id: Some(self.head.chain_id),
                chain_seq: None,
                seq: None,
                check: Check::EmptyChain,
                detail: "the chain is registered but has no events: they were removed".into(),
            });
        }
        Ok(ChainReport {
            chain_id: self.head.chain_id,
            events: self.events,
            last_chain_seq: self.head.chain_seq,
            seals: self.seals_checked,
            sealed_up_to: self.sealed_up_to,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;
    use zeroize::Zeroizing;

    use super::*;
    use crate::audit::chain::storable;

    const CHAIN: Uuid = Uuid::from_u128(0x1234);

    fn key() -> SealKey {
        SealKey::new(&Zeroizing::new([9; 32]))
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    /// A stored row: the global seq, the event, its link.
    type Row = (i64, SecurityEvent, ChainLink);

    fn event(n: i64) -> SecurityEvent {
        storable(&SecurityEvent::new(
            at(n),
            "client:tpp-1",
            "token.issued",
            Some(format!("user-{n}")),
            json!({"n": n, "client_id": "tpp-1"})
                .as_object()
                .unwrap()
                .clone(),
        ))
    }

    /// Links `events` into the chain from its start.
    fn chain_of(events: impl IntoIterator<Item = (i64, SecurityEvent)>) -> Vec<Row> {
        let mut head = ChainHead::genesis(CHAIN);
        events
            .into_iter()
            .map(|(seq, event)| {
                let link = head.link(&event);
                head = link.head();
                (seq, event, link)
            })
            .collect()
    }

    /// What an attacker without the key can do after changing rows: renumber and rehash the
    /// whole chain so that every event links up again.
    fn rechain(rows: &[Row]) -> Vec<Row> {
        chain_of(rows.iter().map(|(seq, event, _)| (*seq, event.clone())))
    }

    /// Ten events, sealed after 3 and after 7.
    fn trail() -> (Vec<Row>, Vec<Seal>) {
        let rows = chain_of((1..=10).map(|n| (n + 100, event(n))));
        let k = key();
        let first = k.seal(&rows[2].2.head(), at(100), None);
        let second = k.seal(&rows[6].2.head(), at(200), Some(&first));
        (rows, vec![first, second])
    }

    fn verify(rows: &[Row], seals: &[Seal]) -> Result<ChainReport, Break> {
        let k = key();
        let mut walk = ChainVerifier::new(&k, CHAIN, seals.to_vec());
        for (seq, event, link) in rows {
            walk.row(*seq, event, link)?;
        }
        walk.finish()
    }

    #[track_caller]
    fn assert_break(result: Result<ChainReport, Break>, check: Check, chain_seq: i64) {
        let found = result.expect_err("the tampering must be found");
        assert_eq!(
            (found.check, found.chain_seq),
            (check, Some(chain_seq)),
            "{found}"
        );
        assert_eq!(found.chain_id, Some(CHAIN));
    }

    #[test]
    fn an_untouched_trail_verifies_and_reports_its_unsealed_tail() {
        let (rows, seals) = trail();
        let report = verify(&rows, &seals).unwrap();
        assert_eq!(
            report,
            ChainReport {
                chain_id: CHAIN,
                events: 10,
                last_chain_seq: 10,
                seals: 2,
                sealed_up_to: Some(7),
            }
        );
        assert_eq!(report.unsealed_tail(), 3);
        // Seals come in any order.
        let mut reversed = seals.clone();
        reversed.reverse();
        assert!(verify(&rows, &reversed).is_ok());
    }

    #[test]
    fn an_edited_event_is_found_at_its_position() {
        let (mut rows, seals) = trail();
        rows[4].1.details.insert("n".into(), json!(999));
        assert_break(verify(&rows, &seals), Check::Hash, 5);
        let (mut rows, seals) = trail();
        rows[8].1.actor = "mallory".into();
        assert_break(verify(&rows, &seals), Check::Hash, 9);
    }

    #[test]
    fn an_edit_with_every_hash_recomputed_is_caught_by_the_next_seal() {
        let (mut rows, seals) = trail();
        rows[4].1.details.insert("n".into(), json!(999));
        let rows = rechain(&rows);
        assert_break(verify(&rows, &seals), Check::SealHead, 7);
    }

    #[test]
    fn an_inserted_event_is_found() {
        let (rows, seals) = trail();
        // As stored, with a position of its own taken twice.
        let mut inserted = rows.clone();
        let mut forged = rows[4].clone();
        forged.1.actor = "mallory".into();
        inserted.insert(5, forged);
        assert_break(verify(&inserted, &seals), Check::Contiguity, 6);
        // Renumbered and rehashed: the seal at 7 no longer matches.
        assert_break(verify(&rechain(&inserted), &seals), Check::SealHead, 7);
    }

    #[test]
    fn a_deleted_event_is_found() {
        let (rows, seals) = trail();
        let mut deleted = rows.clone();
        deleted.remove(4);
        assert_break(verify(&deleted, &seals), Check::Contiguity, 5);
        assert_break(verify(&rechain(&deleted), &seals), Check::SealHead, 7);
        // In the sealed part after the last seal but one, the same.
        let mut deleted = rows.clone();
        deleted.remove(1);
        assert_break(verify(&rechain(&deleted), &seals), Check::SealHead, 3);
    }

    #[test]
    fn reordered_events_are_found() {
        let (rows, seals) = trail();
        let mut swapped = rows.clone();
        swapped.swap(4, 5);
        assert_break(verify(&swapped, &seals), Check::Contiguity, 5);
        // Contents swapped under the original links.
        let mut contents = rows.clone();
        let fifth = contents[4].1.clone();
        contents[4].1 = contents[5].1.clone();
        contents[5].1 = fifth;
        assert_break(verify(&contents, &seals), Check::Hash, 5);
        assert_break(verify(&rechain(&contents), &seals), Check::SealHead, 7);
    }

    #[test]
    fn forged_removed_and_stale_seals_are_found() {
        let (rows, seals) = trail();
        // A seal made without the key, over the rehashed chain.
        let mut edited = rows.clone();
        edited[4].1.actor = "mallory".into();
        let edited = rechain(&edited);
        let wrong_key = SealKey::new(&Zeroizing::new([1; 32]));
        let forged_first = wrong_key.seal(&edited[2].2.head(), at(100), None);
        let forged = vec![
            forged_first,
            wrong_key.seal(&edited[6].2.head(), at(200), Some(&forged_first)),
        ];
        assert_break(verify(&edited, &forged), Check::SealMac, 3);
        // A seal's head changed.
        let mut changed = seals.clone();
        changed[1].head_hash = edited[6].2.hash;
        assert_break(verify(&edited, &changed), Check::SealMac, 7);
        // The first seal removed: the second no longer links up.
        assert_break(verify(&rows, &seals[1..]), Check::SealLink, 7);
        // Events removed from the end up to a seal.
        assert_break(verify(&rows[..5], &seals), Check::SealBeyondEnd, 7);
        // A seal naming position 0.
        let zero = key().seal(&ChainHead::genesis(CHAIN), at(1), None);
        assert_break(verify(&rows, &[zero]), Check::SealHead, 0);
    }

    #[test]
    fn the_unsealed_tail_is_the_honest_limit() {
        // Events after the last seal removed from the end: not detectable until the next seal.
        let (rows, seals) = trail();
        let report = verify(&rows[..8], &seals).unwrap();
        assert_eq!((report.events, report.sealed_up_to), (8, Some(7)));
        // An empty registered chain is a break of its own.
        let found = verify(&[], &[]).unwrap_err();
        assert_eq!(found.check, Check::EmptyChain);
    }

    #[test]
    fn a_break_names_what_and_where() {
        let (mut rows, seals) = trail();
        rows[4].1.actor = "mallory".into();
        let text = verify(&rows, &seals).unwrap_err().to_string();
        assert!(text.starts_with("hash check failed in chain "), "{text}");
        assert!(text.contains("at chain_seq 5 (event seq 105)"), "{text}");
    }
}
