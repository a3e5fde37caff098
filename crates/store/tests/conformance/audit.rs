//! The tamper-evident security-event trail on both backends: events chained per store instance,
//! hashes that recompute byte for byte from what the database hands back (JSONB reorders members
//! and respells numbers), group commit of concurrent appends, the admin API's filters, seals, and
//! tampering found by walking the chain.

use std::sync::Arc;

use portcullis_core::audit::SecurityEvent;
use portcullis_core::audit::chain::{self, ChainHead};
use portcullis_core::audit::seal::SealKey;
use portcullis_core::audit::verify::{Break, ChainReport, ChainVerifier, Check};
use portcullis_core::store::{EventFilter, Store, StoreError};
use portcullis_store::PoolOptions;
use portcullis_testkit::db::{Backend, TestDatabase};
use serde_json::{Map, Value, json};
use time::Duration;
use uuid::Uuid;

use super::{at, execute_raw, open};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn event(n: i64, client: &str) -> SecurityEvent {
    SecurityEvent::new(
        at(n),
        format!("client:{client}"),
        "token.issued",
        Some(format!("user-{n}")),
        object(json!({"client_id": client, "n": n})),
    )
}

/// Details that a database may hand back differently from how they went in.
fn awkward() -> Vec<Map<String, Value>> {
    vec![
        object(json!({
            "zeta": 1, "alpha": 2, "Ärger": "ünïcödé ✓ 𝄞", "emoji": "🔐",
            "escapes": "quote \" backslash \\ newline \n tab \t bell \u{7}",
        })),
        object(json!({
            "nested": {"b": [1, {"y": null, "x": [true, false]}], "a": {"deeper": {"k": "v"}}},
            "empty": {}, "list": [],
        })),
        object(json!({
            "u64_max": u64::MAX, "i64_min": i64::MIN, "big_float_int": 1e16,
            "huge": 1.7976931348623157e308, "tiny": 5e-324, "third": 1.0 / 3.0,
            "tenth": 0.1, "neg_zero": -0.0, "five_point_zero": 5.0, "small": 1.5e-7,
            "exp": 1.2345678901234567e25,
        })),
        object(json!({"nul": "a\u{0}b", "key\u{0}": 1})),
    ]
}

fn key() -> SealKey {
    let kek =
        portcullis_core::keys::KeyEncryptionKey::generate(&portcullis_core::SeededRng::new(42))
            .unwrap();
    SealKey::from_kek(&kek)
}

/// Walks every event of `chain_id` (in pages of 3, so paging is exercised) with its seals.
async fn walk(store: &dyn Store, chain_id: Uuid) -> Result<ChainReport, Break> {
    let events = store.events();
    let k = key();
    let mut walker = ChainVerifier::new(&k, chain_id, events.seals(chain_id).await.unwrap());
    let mut after = (0, 0);
    loop {
        let page = events.chain_events(chain_id, after, 3).await.unwrap();
        for recorded in &page {
            let link = recorded.link.unwrap();
            walker.row(recorded.seq, &recorded.event, &link)?;
            after = (link.chain_seq, recorded.seq);
        }
        if page.len() < 3 {
            return walker.finish();
        }
    }
}

pub async fn chained_events_recompute_byte_for_byte_from_what_is_read_back(store: Arc<dyn Store>) {
    let events = store.events();
    assert_eq!(events.head(), None);
    let mut written = Vec::new();
    for (i, details) in awkward().into_iter().enumerate() {
        let n = i64::try_from(i).unwrap();
        let mut e = SecurityEvent::new(
            // Nanoseconds that neither database keeps.
            at(n) + Duration::nanoseconds(123_456_789),
            "système",
            "test.awkward",
            Some("subject ✓".into()),
            details,
        )
        .with_request_id("req-\u{0}-1");
        if i == 0 {
            e = e.with_client("tpp-ü");
        }
        let seq = events.append(&e).await.unwrap();
        written.push((seq, e));
    }
    let head = events.head().unwrap();
    assert_eq!(head.chain_seq, 4);
    let listed = events.list(0, 100).await.unwrap();
    assert_eq!(listed.len(), 4);
    let mut previous = ChainHead::genesis(head.chain_id);
    for (recorded, (seq, original)) in listed.iter().zip(&written) {
        assert_eq!(recorded.seq, *seq);
        let link = recorded.link.unwrap();
        // What the database gives back hashes to what was computed before it was written.
        assert_eq!(
            chain::event_hash(
                link.chain_id,
                link.chain_seq,
                &link.prev_hash,
                &recorded.event
            ),
            link.hash,
            "event {seq}: {:?}",
            recorded.event.details
        );
        assert_eq!(link, previous.link(&chain::storable(original)));
        assert_eq!(
            chain::canonical_json(&recorded.event.details),
            chain::canonical_json(&chain::storable(original).details)
        );
        assert_eq!(recorded.event.occurred_at.nanosecond(), 123_456_000);
        assert_eq!(recorded.event.request_id.as_deref(), Some("req-\u{fffd}-1"));
        previous = link.head();
    }
    assert_eq!(previous, head);
    assert_eq!(listed[0].event.client_id.as_deref(), Some("tpp-ü"));
    // The chain is registered with its first events, by host and process.
    let chains = events.chains().await.unwrap();
    assert_eq!(chains.len(), 1);
    assert!(chains[0].registered);
    assert_eq!(chains[0].chain_id, head.chain_id);
    assert_eq!(
        chains[0].started_at,
        Some(written[0].1.occurred_at - Duration::nanoseconds(789))
    );
    assert!(chains[0].host.as_deref().unwrap().contains("pid"));
    let report = walk(store.as_ref(), head.chain_id).await.unwrap();
    assert_eq!((report.events, report.sealed_up_to), (4, None));
}

pub async fn many_concurrent_appends_end_up_contiguous_in_one_chain(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.events().append(&event(n, "tpp-1")).await.unwrap() })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        300,
        "every append has a sequence number of its own"
    );
    let head = store.events().head().unwrap();
    assert_eq!(head.chain_seq, 300);
    let chained = store
        .events()
        .chain_events(head.chain_id, (0, 0), 1000)
        .await
        .unwrap();
    let positions: Vec<i64> = chained.iter().map(|e| e.link.unwrap().chain_seq).collect();
    assert_eq!(positions, (1..=300).collect::<Vec<_>>());
    assert_eq!(store.events().chains().await.unwrap().len(), 1);
    assert_eq!(
        walk(store.as_ref(), head.chain_id).await.unwrap().events,
        300
    );
}

pub async fn events_are_found_by_time_client_subject_and_type(store: Arc<dyn Store>) {
    let events = store.events();
    for n in 0..6 {
        let client = if n % 2 == 0 { "tpp-even" } else { "tpp-odd" };
        events.append(&event(n, client)).await.unwrap();
    }
    let login = SecurityEvent::new(
        at(10),
        "anonymous",
        "login.failure",
        Some("user-3".into()),
        Map::new(),
    );
    events.append(&login).await.unwrap();
    let subjects = |found: Vec<portcullis_core::audit::RecordedEvent>| {
        found
            .into_iter()
            .map(|e| e.event.subject.unwrap())
            .collect::<Vec<_>>()
    };
    let find =
        |filter: EventFilter| async move { subjects(events.find(&filter, 0, 100).await.unwrap()) };
    assert_eq!(find(EventFilter::default()).await.len(), 7);
    assert_eq!(
        find(EventFilter {
            client_id: Some("tpp-odd".into()),
            ..EventFilter::default()
        })
        .await,
        ["user-1", "user-3", "user-5"]
    );
    assert_eq!(
        find(EventFilter {
            since: Some(at(2)),
            until: Some(at(4)),
            ..EventFilter::default()
        })
        .await,
        ["user-2", "user-3"],
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        find(EventFilter {
            subject: Some("user-3".into()),
            ..EventFilter::default()
        })
        .await,
        ["user-3", "user-3"]
    );
    assert_eq!(
        find(EventFilter {
            subject: Some("user-3".into()),
            action: Some("login.failure".into()),
            ..EventFilter::default()
        })
        .await,
        ["user-3"]
    );
    assert!(
        find(EventFilter {
            client_id: Some("tpp-even".into()),
            action: Some("login.failure".into()),
            ..EventFilter::default()
        })
        .await
        .is_empty()
    );
    // Paged by sequence number under a filter.
    let first = events
        .find(
            &EventFilter {
                client_id: Some("tpp-even".into()),
                ..EventFilter::default()
            },
            0,
            2,
        )
        .await
        .unwrap();
    let rest = events
        .find(
            &EventFilter {
                client_id: Some("tpp-even".into()),
                ..EventFilter::default()
            },
            first[1].seq,
            2,
        )
        .await
        .unwrap();
    assert_eq!(subjects(first), ["user-0", "user-2"]);
    assert_eq!(subjects(rest), ["user-4"]);
}

pub async fn seals_are_stored_once_per_position_and_never_changed(
    store: Arc<dyn Store>,
    db_url: String,
) {
    let events = store.events();
    for n in 0..3 {
        events.append(&event(n, "tpp-1")).await.unwrap();
    }
    let head = events.head().unwrap();
    let k = key();
    assert_eq!(events.last_seal(head.chain_id).await.unwrap(), None);
    let first = k.seal(&head, at(100) + Duration::nanoseconds(1_500), None);
    events.add_seal(&first).await.unwrap();
    assert!(matches!(
        events.add_seal(&first).await,
        Err(StoreError::Conflict(_))
    ));
    events.append(&event(3, "tpp-1")).await.unwrap();
    let second = k.seal(&events.head().unwrap(), at(200), Some(&first));
    events.add_seal(&second).await.unwrap();
    assert_eq!(events.last_seal(head.chain_id).await.unwrap(), Some(second));
    assert_eq!(events.seals(head.chain_id).await.unwrap(), [first, second]);
    assert!(events.seals(Uuid::new_v4()).await.unwrap().is_empty());
    let report = walk(store.as_ref(), head.chain_id).await.unwrap();
    assert_eq!((report.sealed_up_to, report.unsealed_tail()), (Some(4), 0));
    // Seals and chains are append-only too.
    for statement in [
        "UPDATE audit_seals SET chain_seq = 9",
        "DELETE FROM audit_seals",
        "UPDATE audit_chains SET host = 'mallory'",
        "DELETE FROM audit_chains",
    ] {
        assert!(
            execute_raw(&db_url, statement).await.is_err(),
            "{statement} must fail"
        );
    }
}

pub async fn each_store_instance_writes_a_chain_of_its_own(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let one = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    let two = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    tokio::join!(
        async {
            for n in 0..20 {
                one.events().append(&event(n, "tpp-1")).await.unwrap();
            }
        },
        async {
            for n in 0..20 {
                two.events().append(&event(n, "tpp-2")).await.unwrap();
            }
        }
    );
    let (head_one, head_two) = (one.events().head().unwrap(), two.events().head().unwrap());
    assert_ne!(head_one.chain_id, head_two.chain_id);
    assert_eq!((head_one.chain_seq, head_two.chain_seq), (20, 20));
    let chains = one.events().chains().await.unwrap();
    assert_eq!(chains.len(), 2);
    for chain in [head_one.chain_id, head_two.chain_id] {
        assert_eq!(walk(one.as_ref(), chain).await.unwrap().events, 20);
    }
    // Events written before chaining began (as before the migration) stand outside the chains.
    let unchained = one.events().unchained().await.unwrap();
    assert_eq!(unchained.count, 0);
    assert!(unchained.first_chained_seq.is_some());
}

/// Lets the superuser rewrite history, as an attacker with database access would.
async fn drop_append_only(url: &str) {
    let statements: &[&str] = if url.starts_with("postgres") {
        &["ALTER TABLE security_events DISABLE TRIGGER security_events_no_update"]
    } else {
        &[
            "DROP TRIGGER security_events_no_update",
            "DROP TRIGGER security_events_no_delete",
        ]
    };
    for statement in statements {
        execute_raw(url, statement).await.unwrap();
    }
}

pub async fn an_edited_or_deleted_event_breaks_its_chain(store: Arc<dyn Store>, db_url: String) {
    let events = store.events();
    for n in 0..6 {
        events.append(&event(n, "tpp-1")).await.unwrap();
    }
    let head = events.head().unwrap();
    drop_append_only(&db_url).await;
    let third = events
        .chain_events(head.chain_id, (2, i64::MAX), 1)
        .await
        .unwrap()[0]
        .seq;
    // Edited: the details of chain position 3.
    let edit = if db_url.starts_with("postgres") {
        format!(r#"UPDATE security_events SET details = '{{"n": 99}}' WHERE seq = {third}"#)
    } else {
        format!(r#"UPDATE security_events SET details = '{{"n":99}}' WHERE seq = {third}"#)
    };
    execute_raw(&db_url, &edit).await.unwrap();
    let found = walk(store.as_ref(), head.chain_id).await.unwrap_err();
    assert_eq!(
        (found.check, found.chain_seq, found.seq),
        (Check::Hash, Some(3), Some(third)),
        "{found}"
    );
    // Deleted: position 3 altogether.
    execute_raw(
        &db_url,
        &format!("DELETE FROM security_events WHERE seq = {third}"),
    )
    .await
    .unwrap();
    let found = walk(store.as_ref(), head.chain_id).await.unwrap_err();
    assert_eq!(
        (found.check, found.chain_seq),
        (Check::Contiguity, Some(3)),
        "{found}"
    );
}

/// Chain columns that are partly empty, or a digest of the wrong length, are named by
/// `unchained().damaged_seq` (whether or not the row names a chain), and the row still lists,
/// without a link.
pub async fn damaged_chain_columns_are_found_and_still_listed(
    store: Arc<dyn Store>,
    db_url: String,
) {
    let events = store.events();
    for n in 0..3 {
        events.append(&event(n, "tpp-1")).await.unwrap();
    }
    assert_eq!(events.unchained().await.unwrap().damaged_seq, None);
    let head = events.head().unwrap();
    let second = events
        .chain_events(head.chain_id, (1, i64::MAX), 1)
        .await
        .unwrap()[0]
        .seq;
    drop_append_only(&db_url).await;
    let short = if db_url.starts_with("postgres") {
        format!(r#"UPDATE security_events SET hash = '\x00ff'::bytea WHERE seq = {second}"#)
    } else {
        format!("UPDATE security_events SET hash = x'00ff' WHERE seq = {second}")
    };
    execute_raw(&db_url, &short).await.unwrap();
    assert_eq!(events.unchained().await.unwrap().damaged_seq, Some(second));
    let listed = events.list(0, 100).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .find(|e| e.seq == second)
            .unwrap()
            .link
            .is_none()
    );
    // Emptied position on another row: the first damaged one is named.
    execute_raw(
        &db_url,
        &format!(
            "UPDATE security_events SET chain_seq = NULL WHERE seq = {}",
            second - 1
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        events.unchained().await.unwrap().damaged_seq,
        Some(second - 1)
    );
    assert_eq!(events.list(0, 100).await.unwrap().len(), 3);
}

macro_rules! audit_conformance {
    ($backend:ident, $name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn chained_events_recompute_byte_for_byte_from_what_is_read_back() {
                let (_db, store) = open(Backend::$backend).await;
                super::chained_events_recompute_byte_for_byte_from_what_is_read_back(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_concurrent_appends_end_up_contiguous_in_one_chain() {
                let (_db, store) = open(Backend::$backend).await;
                super::many_concurrent_appends_end_up_contiguous_in_one_chain(store).await;
            }

            #[tokio::test]
            async fn events_are_found_by_time_client_subject_and_type() {
                let (_db, store) = open(Backend::$backend).await;
                super::events_are_found_by_time_client_subject_and_type(store).await;
            }

            #[tokio::test]
            async fn seals_are_stored_once_per_position_and_never_changed() {
                let (db, store) = open(Backend::$backend).await;
                super::seals_are_stored_once_per_position_and_never_changed(
                    store,
                    db.url().to_owned(),
                )
                .await;
            }

            #[tokio::test]
            async fn each_store_instance_writes_a_chain_of_its_own() {
                super::each_store_instance_writes_a_chain_of_its_own(Backend::$backend).await;
            }

            #[tokio::test]
            async fn damaged_chain_columns_are_found_and_still_listed() {
                let (db, store) = open(Backend::$backend).await;
                super::damaged_chain_columns_are_found_and_still_listed(store, db.url().to_owned())
                    .await;
            }

            #[tokio::test]
            async fn an_edited_or_deleted_event_breaks_its_chain() {
                let (db, store) = open(Backend::$backend).await;
                super::an_edited_or_deleted_event_breaks_its_chain(store, db.url().to_owned())
                    .await;
            }
        }
    };
}

audit_conformance!(Postgres, postgres);
audit_conformance!(Sqlite, sqlite);
