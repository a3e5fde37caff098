//! The storage conformance suite: every test body runs against PostgreSQL and SQLite, through the
//! `Store` trait only, so both backends keep the same contract.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;

use portcullis_core::client::secret::SecretHash;
use portcullis_core::client::settings::{ClientSettings, TokenFormat};
use portcullis_core::client::{Client, ClientId, ClientProfile};
use portcullis_core::keys::{KeyEncryptionKey, StoredSigningKey};
use portcullis_core::resource::{ResourceMetadata, ResourceServer};
use portcullis_core::store::{FirstUse, PushedRequest, ReplayKey, ReplayKind, Store, StoreError};
use portcullis_core::user::{PasswordHash, User, Username};
use portcullis_core::{Rng as _, SeededRng};
use portcullis_jose::SigningAlg;
use portcullis_store::PoolOptions;
use portcullis_testkit::db::{Backend, TestDatabase};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Whole seconds, which both backends store exactly.
fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

async fn open(backend: Backend) -> (TestDatabase, Arc<dyn Store>) {
    let db = TestDatabase::new(backend).await;
    let store = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
        .await
        .unwrap();
    (db, store)
}

fn client(id: &str, profile: ClientProfile) -> Client {
    Client {
        client_id: ClientId::parse(id).unwrap(),
        profile,
        metadata:
            serde_json::json!({"redirect_uris": ["https://tpp.example/cb"], "client_name": id})
                .as_object()
                .unwrap()
                .clone(),
        secret_hash: None,
        settings: ClientSettings::default(),
        registration_token_hash: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn user(name: &str) -> User {
    User {
        id: Uuid::new_v4(),
        username: Username::parse(name).unwrap(),
        password_hash: PasswordHash::from_phc(format!("$argon2id$v=19$m=19456,t=2,p=1${name}")),
        created_at: at(5),
        disabled_at: None,
        claims: serde_json::json!({"name": name, "email": format!("{name}@bank.example"), "email_verified": true})
            .as_object()
            .unwrap()
            .clone(),
        totp_secret_encrypted: None,
        totp_last_step: None,
    }
}

fn pushed(handle: &str, client: &Client, created_at: OffsetDateTime) -> PushedRequest {
    PushedRequest {
        handle: SecretHash::of(handle),
        client_id: client.client_id.clone(),
        parameters: serde_json::json!({
            "response_type": "code",
            "client_id": client.client_id.as_str(),
            "redirect_uri": "https://tpp.example/cb",
            "scope": "openid accounts",
            "state": format!("état-{handle}"),
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "max_age": 300,
            "claims": {"id_token": {"acr": {"essential": true, "values": ["urn:bank:sca"]}}},
            "authorization_details": [{
                "type": "payment_initiation",
                "instructedAmount": {"currency": "EUR", "amount": "123.50"},
                "creditorName": "Merchant A",
                "remittanceInformation": null
            }]
        })
        .as_object()
        .unwrap()
        .clone(),
        created_at,
        expires_at: created_at + Duration::seconds(90),
    }
}

/// Runs a statement on its own connection, around the store.
async fn execute_raw(url: &str, statement: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(statement).execute(&mut conn).await.map(drop)
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(statement).execute(&mut conn).await.map(drop)
    }
}

mod suite {
    use super::*;

    pub async fn signing_keys_round_trip_in_activation_order(store: Arc<dyn Store>) {
        let rng = SeededRng::new(11);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let (later, _) =
            StoredSigningKey::generate(SigningAlg::Es256, 2048, &kek, &rng, at(0), at(300))
                .unwrap();
        let (first, _) =
            StoredSigningKey::generate(SigningAlg::EdDsa, 2048, &kek, &rng, at(0), at(0)).unwrap();
        store.signing_keys().add(&later).await.unwrap();
        store.signing_keys().add(&first).await.unwrap();

        let listed = store.signing_keys().list().await.unwrap();
        assert_eq!(listed, vec![first.clone(), later.clone()]);
        // The private key survives storage and still opens under the KEK.
        assert_eq!(listed[1].open(&kek).unwrap().kid(), later.kid);
    }

    pub async fn signing_key_kids_are_unique(store: Arc<dyn Store>) {
        let rng = SeededRng::new(12);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let (key, _) =
            StoredSigningKey::generate(SigningAlg::Es256, 2048, &kek, &rng, at(0), at(0)).unwrap();
        store.signing_keys().add(&key).await.unwrap();
        let mut again = key.clone();
        again.activates_at = at(10);
        assert!(matches!(
            store.signing_keys().add(&again).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.signing_keys().list().await.unwrap(),
            vec![key.clone()]
        );

        store.signing_keys().remove(&key.kid).await.unwrap();
        assert!(matches!(
            store.signing_keys().remove(&key.kid).await,
            Err(StoreError::NotFound)
        ));
        assert!(store.signing_keys().list().await.unwrap().is_empty());
    }

    pub async fn clients_add_find_update_remove(store: Arc<dyn Store>) {
        let clients = store.clients();
        let mut c = client("tpp-1", ClientProfile::Fapi2);
        clients.add(&c).await.unwrap();
        assert_eq!(clients.find_by_id(&c.client_id).await.unwrap(), c);
        assert!(matches!(
            clients.add(&c).await,
            Err(StoreError::Conflict(_))
        ));

        c.profile = ClientProfile::Fapi2MessageSigning;
        let secret =
            portcullis_core::client::secret::ClientSecret::generate(&SeededRng::new(2)).unwrap();
        c.secret_hash = Some(secret.hash());
        c.metadata.insert("client_name".into(), "Renamed".into());
        c.settings = ClientSettings {
            access_token_format: TokenFormat::Opaque,
            access_token_lifetime_secs: Some(300),
            admin_scopes: vec!["admin:clients".into()],
            ..ClientSettings::default()
        };
        c.registration_token_hash = Some(SecretHash::of("registration-token"));
        c.updated_at = at(60);
        clients.update(&c).await.unwrap();
        let stored = clients.find_by_id(&c.client_id).await.unwrap();
        assert_eq!(stored, c);
        assert!(stored.secret_hash.unwrap().matches(secret.expose()));
        assert!(
            stored
                .registration_token_hash
                .unwrap()
                .matches("registration-token")
        );

        clients.remove(&c.client_id).await.unwrap();
        assert!(matches!(
            clients.find_by_id(&c.client_id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            clients.update(&c).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            clients.remove(&c.client_id).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn resource_servers_add_find_update_remove(store: Arc<dyn Store>) {
        let owner = client("rs-client", ClientProfile::Fapi2);
        store.clients().add(&owner).await.unwrap();
        let resources = store.resource_servers();
        let mut accounts = ResourceServer {
            resource: "https://api.bank.example/accounts".into(),
            metadata: ResourceMetadata {
                name: Some("Accounts".into()),
                token_format: TokenFormat::Jwt,
                scopes: vec!["accounts".into()],
                authorization_details_types: vec!["account_information".into()],
            },
            client_id: Some(owner.client_id.clone()),
            created_at: at(0),
            updated_at: at(0),
        };
        resources.add(&accounts).await.unwrap();
        assert_eq!(resources.find(&accounts.resource).await.unwrap(), accounts);
        assert_eq!(
            resources.find_by_client(&owner.client_id).await.unwrap(),
            accounts
        );
        assert!(matches!(
            resources.add(&accounts).await,
            Err(StoreError::Conflict(_))
        ));
        // One client stands for one resource server.
        let mut payments = accounts.clone();
        payments.resource = "https://api.bank.example/payments".into();
        assert!(matches!(
            resources.add(&payments).await,
            Err(StoreError::Conflict(_))
        ));
        // A resource server cannot name a client that does not exist.
        payments.client_id = Some(ClientId::parse("nobody").unwrap());
        assert!(matches!(
            resources.add(&payments).await,
            Err(StoreError::Conflict(_))
        ));
        payments.client_id = None;
        resources.add(&payments).await.unwrap();
        // A client a resource server authenticates as cannot be deleted under it.
        let removed = store.clients().remove(&owner.client_id).await;
        assert!(
            matches!(removed, Err(StoreError::Conflict(_))),
            "{removed:?}"
        );

        let listed = resources.list(None, 10).await.unwrap();
        assert_eq!(listed, vec![accounts.clone(), payments.clone()]);
        assert_eq!(
            resources.list(Some(&accounts.resource), 10).await.unwrap(),
            vec![payments.clone()]
        );

        accounts.metadata.token_format = TokenFormat::Opaque;
        accounts.client_id = None;
        accounts.updated_at = at(9);
        resources.update(&accounts).await.unwrap();
        assert_eq!(resources.find(&accounts.resource).await.unwrap(), accounts);
        store.clients().remove(&owner.client_id).await.unwrap();

        resources.remove(&accounts.resource).await.unwrap();
        assert!(matches!(
            resources.find(&accounts.resource).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            resources.update(&accounts).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            resources.remove(&accounts.resource).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn clients_list_pages_in_id_order(store: Arc<dyn Store>) {
        for id in ["c", "a", "d", "b"] {
            store
                .clients()
                .add(&client(id, ClientProfile::Oauth))
                .await
                .unwrap();
        }
        let ids = |v: Vec<Client>| {
            v.into_iter()
                .map(|c| c.client_id.to_string())
                .collect::<Vec<_>>()
        };
        let first = store.clients().list(None, 3).await.unwrap();
        assert_eq!(ids(first), ["a", "b", "c"]);
        let rest = store
            .clients()
            .list(Some(&ClientId::parse("c").unwrap()), 3)
            .await
            .unwrap();
        assert_eq!(ids(rest), ["d"]);
    }

    pub async fn users_are_unique_by_username_and_found_by_id_or_name(store: Arc<dyn Store>) {
        let users = store.users();
        let alice = user("alice");
        users.add(&alice).await.unwrap();
        assert_eq!(users.find_by_id(alice.id).await.unwrap(), alice);
        assert_eq!(
            users
                .find_by_username(&Username::parse("ALICE").unwrap())
                .await
                .unwrap(),
            alice
        );

        let impostor = user("Alice");
        assert!(matches!(
            users.add(&impostor).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            users.find_by_id(impostor.id).await,
            Err(StoreError::NotFound)
        ));

        let mut bob = user("bob");
        bob.disabled_at = Some(at(9));
        users.add(&bob).await.unwrap();
        let listed = users.list(None, 10).await.unwrap();
        assert_eq!(listed, vec![alice.clone(), bob.clone()]);
        assert_eq!(
            users.list(Some(&alice.username), 10).await.unwrap(),
            vec![bob]
        );
    }

    fn assertion<'a>(client: &'a str, jti: &'a str) -> ReplayKey<'a> {
        ReplayKey {
            kind: ReplayKind::ClientAssertion,
            issuer: client,
            id: jti,
        }
    }

    pub async fn replay_cache_accepts_an_identifier_once_until_it_expires(store: Arc<dyn Store>) {
        let replay = store.replay();
        let key = assertion("tpp-1", "jti-1");
        assert_eq!(
            replay.record(key, at(60), at(0)).await.unwrap(),
            FirstUse::First
        );
        assert_eq!(
            replay.record(key, at(60), at(1)).await.unwrap(),
            FirstUse::Replayed
        );
        // The same jti from another client, or as another kind, is a different identifier.
        assert_eq!(
            replay
                .record(assertion("tpp-2", "jti-1"), at(60), at(1))
                .await
                .unwrap(),
            FirstUse::First
        );
        let dpop = ReplayKey {
            kind: ReplayKind::DpopProof,
            issuer: "tpp-1",
            id: "jti-1",
        };
        assert_eq!(
            replay.record(dpop, at(60), at(1)).await.unwrap(),
            FirstUse::First
        );
        // Once the first use has expired, the entry no longer blocks (the token it guarded is
        // itself expired by then).
        assert_eq!(
            replay.record(key, at(200), at(60)).await.unwrap(),
            FirstUse::First
        );
        assert_eq!(
            replay.record(key, at(200), at(61)).await.unwrap(),
            FirstUse::Replayed
        );

        assert_eq!(replay.purge_expired(at(100)).await.unwrap(), 2);
        assert_eq!(
            replay.record(key, at(300), at(100)).await.unwrap(),
            FirstUse::Replayed,
            "unexpired entries survive a purge"
        );
    }

    pub async fn replay_cache_lets_exactly_one_of_many_concurrent_uses_through(
        store: Arc<dyn Store>,
    ) {
        let attempts = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .replay()
                    .record(assertion("tpp-1", "raced"), at(60), at(0))
                    .await
                    .unwrap()
            })
        });
        // Spawned all at once, before any is awaited, so that they really race.
        let attempts: Vec<_> = attempts.collect();
        let mut firsts = 0;
        for attempt in attempts {
            if attempt.await.unwrap() == FirstUse::First {
                firsts += 1;
            }
        }
        assert_eq!(firsts, 1);
    }

    pub async fn users_change_password_claims_and_disabled_state(store: Arc<dyn Store>) {
        let users = store.users();
        let mut alice = user("alice");
        users.add(&alice).await.unwrap();
        alice.password_hash = PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$new".into());
        users
            .set_password_hash(alice.id, &alice.password_hash)
            .await
            .unwrap();
        alice
            .claims
            .insert("phone_number".into(), "+44 20 7946 0000".into());
        users.set_claims(alice.id, &alice.claims).await.unwrap();
        alice.disabled_at = Some(at(30));
        users
            .set_disabled(alice.id, alice.disabled_at)
            .await
            .unwrap();
        assert_eq!(users.find_by_id(alice.id).await.unwrap(), alice);
        users.set_disabled(alice.id, None).await.unwrap();
        assert_eq!(users.find_by_id(alice.id).await.unwrap().disabled_at, None);

        let nobody = Uuid::new_v4();
        assert!(matches!(
            users.set_password_hash(nobody, &alice.password_hash).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            users.set_claims(nobody, &alice.claims).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            users.set_disabled(nobody, None).await,
            Err(StoreError::NotFound)
        ));

        // Removal exists only to undo an unrecorded creation; the username is free again.
        users.remove(alice.id).await.unwrap();
        assert!(matches!(
            users.find_by_id(alice.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            users.remove(alice.id).await,
            Err(StoreError::NotFound)
        ));
        users.add(&user("alice")).await.unwrap();
    }

    pub async fn a_totp_step_is_accepted_once_and_only_after_enrolment(store: Arc<dyn Store>) {
        let users = store.users();
        let bob = user("bob");
        users.add(&bob).await.unwrap();
        assert!(
            !users.use_totp_step(bob.id, 100).await.unwrap(),
            "no second factor enrolled"
        );
        users
            .set_totp_secret(bob.id, Some(b"encrypted secret"))
            .await
            .unwrap();
        assert!(users.use_totp_step(bob.id, 100).await.unwrap());
        assert!(
            !users.use_totp_step(bob.id, 100).await.unwrap(),
            "the same step twice"
        );
        assert!(
            !users.use_totp_step(bob.id, 99).await.unwrap(),
            "an earlier step"
        );
        assert!(users.use_totp_step(bob.id, 101).await.unwrap());
        let stored = users.find_by_id(bob.id).await.unwrap();
        assert_eq!(
            stored.totp_secret_encrypted.as_deref(),
            Some(&b"encrypted secret"[..])
        );
        assert_eq!(stored.totp_last_step, Some(101));

        // Re-enrolment forgets the last step; concurrent uses of one step: exactly one wins.
        users
            .set_totp_secret(bob.id, Some(b"another secret"))
            .await
            .unwrap();
        let attempts = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.users().use_totp_step(bob.id, 5).await.unwrap() })
        });
        // Spawned all at once, before any is awaited, so that they really race.
        let attempts: Vec<_> = attempts.collect();
        let mut wins = 0;
        for attempt in attempts {
            wins += usize::from(attempt.await.unwrap());
        }
        assert_eq!(wins, 1);
        users.set_totp_secret(bob.id, None).await.unwrap();
        assert_eq!(
            users
                .find_by_id(bob.id)
                .await
                .unwrap()
                .totp_secret_encrypted,
            None
        );
    }

    pub async fn security_events_are_appended_in_order_and_never_changed(
        store: Arc<dyn Store>,
        db_url: String,
    ) {
        use portcullis_core::audit::SecurityEvent;
        let events = store.events();
        let first = SecurityEvent::new(
            at(0),
            "admin-client:ops",
            "client.create",
            Some("tpp-1".into()),
            serde_json::json!({"after": {"client_name": "TPP", "client_secret": "never stored"}})
                .as_object()
                .unwrap()
                .clone(),
        )
        .with_request_id("req-1");
        let second = SecurityEvent::new(at(1), "cli", "keys.rotate", None, serde_json::Map::new());
        let a = events.append(&first).await.unwrap();
        let b = events.append(&second).await.unwrap();
        assert!(b > a);
        let listed = events.list(0, 10).await.unwrap();
        assert_eq!(listed.iter().map(|e| e.seq).collect::<Vec<_>>(), [a, b]);
        assert_eq!(listed[0].event, first);
        assert!(
            listed[0].event.details["after"]
                .get("client_secret")
                .is_none()
        );
        assert_eq!(events.list(a, 10).await.unwrap().len(), 1);

        // The database itself refuses to rewrite history, whoever asks.
        for statement in [
            "UPDATE security_events SET actor = 'mallory'",
            "DELETE FROM security_events",
        ] {
            assert!(
                execute_raw(&db_url, statement).await.is_err(),
                "{statement} must fail"
            );
        }
        assert_eq!(events.list(0, 10).await.unwrap().len(), 2);
    }

    /// Microseconds, the precision both backends keep.
    fn at_micros(seconds: i64) -> OffsetDateTime {
        at(seconds) + Duration::microseconds(123_456)
    }

    pub async fn pushed_requests_round_trip_until_they_expire(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let requests = store.pushed_requests();
        let request = pushed("uri-1", &tpp, at_micros(0));
        requests.add(&request).await.unwrap();

        assert_eq!(
            requests.find(&request.handle, at(0)).await.unwrap(),
            request
        );
        // Reading does not use it up.
        let just_before = request.expires_at - Duration::microseconds(1);
        assert_eq!(
            requests.find(&request.handle, just_before).await.unwrap(),
            request
        );
        // Expired at its expiry instant and after.
        for now in [request.expires_at, request.expires_at + Duration::hours(1)] {
            assert!(matches!(
                requests.find(&request.handle, now).await,
                Err(StoreError::NotFound)
            ));
        }
        assert!(matches!(
            requests.find(&SecretHash::of("uri-2"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn pushed_request_handles_are_unique_and_name_a_known_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let requests = store.pushed_requests();
        let request = pushed("uri-1", &tpp, at(0));
        requests.add(&request).await.unwrap();

        // The same handle again, even from another client with other parameters, is refused.
        let mut again = pushed("uri-1", &other, at(5));
        again.parameters.insert("scope".into(), "payments".into());
        let duplicate = requests.add(&again).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(
            requests.find(&request.handle, at(0)).await.unwrap(),
            request
        );

        // A request cannot name a client that does not exist.
        let stranger = client("nobody", ClientProfile::Fapi2);
        let orphan = requests.add(&pushed("uri-2", &stranger, at(0))).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        assert!(matches!(
            requests.find(&SecretHash::of("uri-2"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn a_pushed_request_is_consumed_once_and_only_before_it_expires(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let requests = store.pushed_requests();
        let request = pushed("uri-1", &tpp, at_micros(0));
        requests.add(&request).await.unwrap();

        assert_eq!(
            requests.consume(&request.handle, at(10)).await.unwrap(),
            request
        );
        assert!(matches!(
            requests.consume(&request.handle, at(10)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            requests.find(&request.handle, at(10)).await,
            Err(StoreError::NotFound)
        ));

        // An expired request cannot be used, at its expiry instant or after; it stays for the
        // purge.
        let late = pushed("uri-2", &tpp, at_micros(0));
        requests.add(&late).await.unwrap();
        for now in [late.expires_at, late.expires_at + Duration::seconds(1)] {
            assert!(matches!(
                requests.consume(&late.handle, now).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(requests.purge_expired(late.expires_at).await.unwrap(), 1);
        assert!(matches!(
            requests.consume(&SecretHash::of("uri-3"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn pushed_requests_let_exactly_one_of_many_concurrent_consumes_through(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        // Several handles, each raced by 20 consumes, so that a consume that reads and then
        // deletes has many chances to let a second caller through.
        let raced: Vec<PushedRequest> = (0..5)
            .map(|i| pushed(&format!("raced-{i}"), &tpp, at(0)))
            .collect();
        for request in &raced {
            store.pushed_requests().add(request).await.unwrap();
        }

        // All spawned before any is awaited, so that they run at once.
        let attempts: Vec<_> = (0..20)
            .flat_map(|_| raced.iter())
            .map(|request| {
                let store = store.clone();
                let handle = request.handle.clone();
                tokio::spawn(async move { store.pushed_requests().consume(&handle, at(1)).await })
            })
            .collect();
        let mut wins = Vec::new();
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(consumed) => wins.push(consumed),
                Err(StoreError::NotFound) => {}
                Err(other) => panic!("a losing consume must be NotFound: {other:?}"),
            }
        }
        wins.sort_by_key(|request| request.parameters["state"].as_str().unwrap().to_owned());
        assert_eq!(wins, raced, "exactly one consume of each handle wins");
        for request in &raced {
            assert!(matches!(
                store.pushed_requests().find(&request.handle, at(1)).await,
                Err(StoreError::NotFound)
            ));
        }
    }

    pub async fn pushed_requests_go_with_their_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let requests = store.pushed_requests();
        let gone = pushed("uri-1", &tpp, at(0));
        let kept = pushed("uri-2", &other, at(0));
        requests.add(&gone).await.unwrap();
        requests.add(&kept).await.unwrap();

        // A pending request does not hold its client: removing the client removes it.
        store.clients().remove(&tpp.client_id).await.unwrap();
        assert!(matches!(
            requests.find(&gone.handle, at(0)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            requests.consume(&gone.handle, at(0)).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(requests.find(&kept.handle, at(0)).await.unwrap(), kept);
        assert_eq!(requests.purge_expired(at(1000)).await.unwrap(), 1);
    }

    pub async fn pushed_requests_purge_removes_only_expired_ones(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let requests = store.pushed_requests();
        // Expiring at 90, 100, 110 and 120 seconds.
        let all: Vec<PushedRequest> = (0..4)
            .map(|i| pushed(&format!("uri-{i}"), &tpp, at(i * 10)))
            .collect();
        for request in &all {
            requests.add(request).await.unwrap();
        }

        assert_eq!(requests.purge_expired(at(0)).await.unwrap(), 0);
        // Expired at exactly their expiry instant, as `find` sees them.
        assert_eq!(requests.purge_expired(at(100)).await.unwrap(), 2);
        for request in &all[..2] {
            assert!(matches!(
                requests.consume(&request.handle, at(0)).await,
                Err(StoreError::NotFound)
            ));
        }
        for request in &all[2..] {
            assert_eq!(
                requests.find(&request.handle, at(100)).await.unwrap(),
                *request
            );
        }
        assert_eq!(requests.purge_expired(at(100)).await.unwrap(), 0);
        assert_eq!(requests.purge_expired(at(1000)).await.unwrap(), 2);
        for request in &all {
            assert!(matches!(
                requests.find(&request.handle, at(0)).await,
                Err(StoreError::NotFound)
            ));
        }
    }

    pub async fn ping_answers(store: Arc<dyn Store>) {
        store.ping().await.unwrap();
    }

    pub async fn data_survives_reopening(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let rng = SeededRng::new(13);
        let kek = KeyEncryptionKey::generate(&rng).unwrap();
        let (key, _) = StoredSigningKey::generate(
            SigningAlg::Ps256,
            2048,
            &kek,
            &rng,
            at(0),
            at(0) + Duration::minutes(5),
        )
        .unwrap();
        {
            let store = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
                .await
                .unwrap();
            store.signing_keys().add(&key).await.unwrap();
            store
                .clients()
                .add(&client("kept", ClientProfile::Fapi2))
                .await
                .unwrap();
        }
        // Migrating again is a no-op and the rows are still there.
        let store = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
            .await
            .unwrap();
        assert_eq!(store.signing_keys().list().await.unwrap(), vec![key]);
        assert!(
            store
                .clients()
                .find_by_id(&ClientId::parse("kept").unwrap())
                .await
                .is_ok()
        );
        assert!(!rng.token(16).unwrap().is_empty());
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            #[tokio::test]
            async fn security_events_are_appended_in_order_and_never_changed() {
                let (db, store) = super::open(super::Backend::Postgres).await;
                super::suite::security_events_are_appended_in_order_and_never_changed(store, db.url().to_owned()).await;
            }
            $(
                #[tokio::test]
                async fn $name() {
                    let (_db, store) = super::open(super::Backend::Postgres).await;
                    super::suite::$name(store).await;
                }
            )*
            #[tokio::test]
            async fn data_survives_reopening() {
                super::suite::data_survives_reopening(super::Backend::Postgres).await;
            }
        }
        mod sqlite {
            #[tokio::test]
            async fn security_events_are_appended_in_order_and_never_changed() {
                let (db, store) = super::open(super::Backend::Sqlite).await;
                super::suite::security_events_are_appended_in_order_and_never_changed(store, db.url().to_owned()).await;
            }
            $(
                #[tokio::test]
                async fn $name() {
                    let (_db, store) = super::open(super::Backend::Sqlite).await;
                    super::suite::$name(store).await;
                }
            )*
            #[tokio::test]
            async fn data_survives_reopening() {
                super::suite::data_survives_reopening(super::Backend::Sqlite).await;
            }
        }
    };
}

conformance!(
    signing_keys_round_trip_in_activation_order,
    signing_key_kids_are_unique,
    clients_add_find_update_remove,
    clients_list_pages_in_id_order,
    resource_servers_add_find_update_remove,
    users_are_unique_by_username_and_found_by_id_or_name,
    ping_answers,
    users_change_password_claims_and_disabled_state,
    a_totp_step_is_accepted_once_and_only_after_enrolment,
    replay_cache_accepts_an_identifier_once_until_it_expires,
    replay_cache_lets_exactly_one_of_many_concurrent_uses_through,
    pushed_requests_round_trip_until_they_expire,
    pushed_request_handles_are_unique_and_name_a_known_client,
    a_pushed_request_is_consumed_once_and_only_before_it_expires,
    pushed_requests_let_exactly_one_of_many_concurrent_consumes_through,
    pushed_requests_go_with_their_client,
    pushed_requests_purge_removes_only_expired_ones,
);
