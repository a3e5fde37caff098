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
use portcullis_core::store::{
    FeedEvent, FirstUse, Grant, Interaction, NewFeedEvent, PushedRequest, Redemption, ReplayKey,
    ReplayKind, Session, Store, StoreError, StoredAccessToken, StoredCode, StoredRefreshToken,
};
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

fn grant(id: &str, client: &Client, subject: Uuid, created_at: OffsetDateTime) -> Grant {
    Grant {
        grant_id: id.to_owned(),
        client_id: client.client_id.clone(),
        subject,
        content: serde_json::json!({
            "scopes": ["openid", "accounts"],
            "claims": {"id_token": {"acr": {"essential": true, "values": ["urn:bank:sca"]}}},
            "resources": ["https://rs.bank.example/accounts"],
            "authorization_details": [{
                "type": "account_information",
                "actions": ["list_accounts", "read_balances"],
                "accounts": [{"iban": "DE40100100103307118608", "label": format!("Girokonto {id}")}],
                "note": null
            }]
        })
        .as_object()
        .unwrap()
        .clone(),
        created_at,
        updated_at: created_at,
        expires_at: Some(created_at + Duration::days(90)),
        revoked_at: None,
        last_used_at: None,
    }
}

fn code(handle: &str, grant: &Grant, created_at: OffsetDateTime) -> StoredCode {
    StoredCode {
        handle: SecretHash::of(handle),
        client_id: grant.client_id.clone(),
        grant_id: grant.grant_id.clone(),
        content: serde_json::json!({
            "redirect_uri": "https://tpp.example/cb",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "dpop_jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            "scopes": ["openid", "accounts"],
            "resources": ["https://rs.bank.example/accounts"],
            "nonce": format!("n-{handle}"),
            "auth_time": 1_800_000_000,
            "amr": ["pwd", "otp"],
            "authorization_details": [{"type": "account_information", "actions": ["list_accounts"]}]
        })
        .as_object()
        .unwrap()
        .clone(),
        created_at,
        expires_at: created_at + Duration::seconds(60),
    }
}

fn session(handle: &str, user: &User, created_at: OffsetDateTime) -> Session {
    Session {
        handle: SecretHash::of(handle),
        user_id: user.id,
        auth_time: created_at,
        acr: Some("urn:bank:sca".into()),
        amr: vec!["pwd".into(), "otp".into()],
        created_at,
        last_seen_at: created_at,
        expires_at: created_at + Duration::hours(8),
    }
}

fn interaction(handle: &str, client: &Client, created_at: OffsetDateTime) -> Interaction {
    Interaction {
        handle: SecretHash::of(handle),
        request_handle: SecretHash::of(&format!("request-of-{handle}")),
        client_id: client.client_id.clone(),
        state: serde_json::json!({
            "stage": "login",
            "interaction": handle,
            "user_id": null,
            "amr": [],
            "failed_attempts": 0,
            "risk": {"score": 0.25, "signals": ["new-device"], "näme": "Zoë \"quoted\" \u{1F510}"}
        })
        .as_object()
        .unwrap()
        .clone(),
        created_at,
        expires_at: created_at + Duration::minutes(10),
    }
}

fn refresh(handle: &str, grant: &Grant, created_at: OffsetDateTime) -> StoredRefreshToken {
    StoredRefreshToken {
        handle: SecretHash::of(handle),
        client_id: grant.client_id.clone(),
        grant_id: grant.grant_id.clone(),
        content: serde_json::json!({
            "subject": grant.subject.to_string(),
            "scopes": ["openid", "accounts"],
            "resources": ["https://rs.bank.example/accounts"],
            "authorization_details": [{
                "type": "account_information",
                "actions": ["list_accounts", "read_balances"],
                "accounts": [{"iban": "DE40100100103307118608"}],
                "note": null
            }],
            "authentication": {"auth_time": 1_800_000_000, "acr": "urn:bank:sca", "amr": ["pwd", "otp"]},
            "dpop_jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            "token": handle
        })
        .as_object()
        .unwrap()
        .clone(),
        created_at,
        expires_at: created_at + Duration::days(30),
        rotated_at: None,
        revoked_at: None,
    }
}

/// An access token of `client`, under `grant` when given (a `client_credentials` token has none).
fn access(
    handle: &str,
    client: &Client,
    grant: Option<&Grant>,
    created_at: OffsetDateTime,
) -> StoredAccessToken {
    let expires_at = created_at + Duration::minutes(10);
    let subject = grant.map_or_else(
        || client.client_id.as_str().to_owned(),
        |grant| grant.subject.to_string(),
    );
    StoredAccessToken {
        handle: SecretHash::of(handle),
        client_id: client.client_id.clone(),
        grant_id: grant.map(|grant| grant.grant_id.clone()),
        claims: serde_json::json!({
            "iss": "https://as.bank.example",
            "sub": subject,
            "aud": ["https://rs.bank.example/accounts"],
            "client_id": client.client_id.as_str(),
            "iat": created_at.unix_timestamp(),
            "exp": expires_at.unix_timestamp(),
            "jti": handle,
            "scope": "openid accounts",
            "authorization_details": [{
                "type": "account_information",
                "actions": ["list_accounts", "read_balances"],
                "accounts": [{"iban": "DE40100100103307118608"}],
                "note": null
            }],
            "acr": "urn:bank:sca",
            "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
            "näme": "Zoë \"quoted\" \u{1F510}"
        })
        .as_object()
        .unwrap()
        .clone(),
        created_at,
        expires_at,
        revoked_at: None,
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

/// The login throttle's counters, in a file of their own (a directory of `tests/` is not a test
/// binary of its own).
#[path = "conformance/login_throttle.rs"]
mod login_throttle;

#[path = "conformance/audit.rs"]
mod audit;

/// The rate-limit buckets (`RateLimitStore`), in a file of their own.
#[path = "conformance/rate_limits.rs"]
mod rate_limits;

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

    pub async fn grants_round_trip_with_all_fields(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let grants = store.grants();
        let subject = Uuid::new_v4();
        let open = grant("grant-1", &tpp, subject, at_micros(0));
        // Every optional field set, and the other way round.
        let mut closed = grant("grant-2", &tpp, subject, at_micros(1));
        closed.updated_at = at_micros(2);
        closed.expires_at = None;
        closed.revoked_at = Some(at_micros(3));
        closed.last_used_at = Some(at_micros(4));
        grants.add(&open).await.unwrap();
        grants.add(&closed).await.unwrap();

        assert_eq!(grants.find("grant-1").await.unwrap(), open);
        // A revoked grant is still found.
        assert_eq!(grants.find("grant-2").await.unwrap(), closed);
        assert!(matches!(
            grants.find("grant-3").await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn grant_ids_are_unique_and_name_a_known_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let grants = store.grants();
        let first = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        grants.add(&first).await.unwrap();

        // The same grant_id again, even for another client and customer, is refused.
        let mut again = grant("grant-1", &other, Uuid::new_v4(), at(5));
        again
            .content
            .insert("scopes".into(), serde_json::json!(["payments"]));
        let duplicate = grants.add(&again).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(grants.find("grant-1").await.unwrap(), first);

        // A grant cannot name a client that does not exist.
        let stranger = client("nobody", ClientProfile::Fapi2);
        let orphan = grants
            .add(&grant("grant-2", &stranger, Uuid::new_v4(), at(0)))
            .await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        assert!(matches!(
            grants.find("grant-2").await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn a_grant_is_updated_only_until_it_is_revoked(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let grants = store.grants();
        let original = grant("grant-1", &tpp, Uuid::new_v4(), at_micros(0));
        grants.add(&original).await.unwrap();

        // A merge: more accounts, a later expiry, a new updated_at.
        let mut merged = original.clone();
        merged.content["authorization_details"][0]["accounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"iban": "DE02120300000000202051", "label": "Sparkonto"}));
        merged.updated_at = at_micros(60);
        merged.expires_at = Some(at_micros(60) + Duration::days(180));
        grants.update(&merged).await.unwrap();
        assert_eq!(grants.find("grant-1").await.unwrap(), merged);

        // A replace can also drop the expiry. Only content, updated_at and expires_at change:
        // the rest of what is passed is not written.
        let mut replaced = merged.clone();
        replaced.content = serde_json::json!({"scopes": ["openid"]})
            .as_object()
            .unwrap()
            .clone();
        replaced.updated_at = at_micros(120);
        replaced.expires_at = None;
        let mut sneaky = replaced.clone();
        sneaky.subject = Uuid::new_v4();
        sneaky.created_at = at(999);
        sneaky.revoked_at = Some(at(999));
        grants.update(&sneaky).await.unwrap();
        assert_eq!(grants.find("grant-1").await.unwrap(), replaced);

        let mut unknown = replaced.clone();
        unknown.grant_id = "grant-2".into();
        assert!(matches!(
            grants.update(&unknown).await,
            Err(StoreError::NotFound)
        ));

        // Once revoked, it is not changed any more.
        assert!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at_micros(180),
                    &grant_event("set-1", "grant-1", &[], at_micros(180)),
                )
                .await
                .unwrap()
        );
        let mut late = merged.clone();
        late.updated_at = at_micros(240);
        assert!(matches!(
            grants.update(&late).await,
            Err(StoreError::NotFound)
        ));
        let mut revoked = replaced.clone();
        revoked.revoked_at = Some(at_micros(180));
        assert_eq!(grants.find("grant-1").await.unwrap(), revoked);
    }

    pub async fn a_grant_records_its_last_use_at_most_once_a_minute(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let grants = store.grants();
        let subject = Uuid::new_v4();
        grants
            .add(&grant("grant-1", &tpp, subject, at(0)))
            .await
            .unwrap();
        grants
            .add(&grant("grant-2", &tpp, subject, at(0)))
            .await
            .unwrap();
        let last_used = |g: Grant| g.last_used_at;
        assert_eq!(last_used(grants.find("grant-1").await.unwrap()), None);

        // The first use is written.
        assert!(grants.touch("grant-1", at_micros(100)).await.unwrap());
        assert_eq!(
            last_used(grants.find("grant-1").await.unwrap()),
            Some(at_micros(100))
        );
        // Uses within the next minute are not, up to and including 60 s later.
        assert!(!grants.touch("grant-1", at_micros(130)).await.unwrap());
        assert!(
            !grants
                .touch("grant-1", at_micros(100) + Duration::seconds(60))
                .await
                .unwrap()
        );
        assert_eq!(
            last_used(grants.find("grant-1").await.unwrap()),
            Some(at_micros(100))
        );
        // Nor is an earlier instant (another replica's clock behind).
        assert!(!grants.touch("grant-1", at_micros(50)).await.unwrap());
        // Past the minute it is.
        let later = at_micros(100) + Duration::seconds(60) + Duration::microseconds(1);
        assert!(grants.touch("grant-1", later).await.unwrap());
        assert_eq!(
            last_used(grants.find("grant-1").await.unwrap()),
            Some(later)
        );
        // Only that grant changed; an unknown one is no error and nothing is written.
        assert_eq!(last_used(grants.find("grant-2").await.unwrap()), None);
        assert!(!grants.touch("grant-9", at_micros(500)).await.unwrap());

        // A merge or replace keeps it; a revocation keeps it too.
        let mut changed = grants.find("grant-1").await.unwrap();
        changed
            .content
            .insert("scopes".into(), serde_json::json!(["openid"]));
        changed.updated_at = at_micros(600);
        changed.last_used_at = None;
        grants.update(&changed).await.unwrap();
        assert_eq!(
            last_used(grants.find("grant-1").await.unwrap()),
            Some(later)
        );
        assert!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at_micros(700),
                    &grant_event("set-1", "grant-1", &[], at_micros(700)),
                )
                .await
                .unwrap()
        );
        assert_eq!(
            last_used(grants.find("grant-1").await.unwrap()),
            Some(later)
        );
    }

    pub async fn grants_are_listed_per_subject_newest_first(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let grants = store.grants();
        let alice = Uuid::new_v4();
        let bob = Uuid::new_v4();
        // Added out of order, for two clients; one of them revoked.
        let a1 = grant("a-1", &tpp, alice, at(10));
        let a2 = grant("a-2", &other, alice, at(30));
        let a3 = grant("a-3", &tpp, alice, at(20));
        let b1 = grant("b-1", &tpp, bob, at(25));
        for each in [&a1, &a2, &b1, &a3] {
            grants.add(each).await.unwrap();
        }
        store
            .revocations()
            .revoke_grant("a-3", at(40), &grant_event("set-1", "a-3", &[], at(40)))
            .await
            .unwrap();
        let a3 = grants.find("a-3").await.unwrap();

        assert_eq!(
            grants.list_for_subject(alice).await.unwrap(),
            vec![a2, a3, a1]
        );
        assert_eq!(grants.list_for_subject(bob).await.unwrap(), vec![b1]);
        assert!(
            grants
                .list_for_subject(Uuid::new_v4())
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn grants_go_with_their_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let grants = store.grants();
        let subject = Uuid::new_v4();
        let gone = grant("grant-1", &tpp, subject, at(0));
        let kept = grant("grant-2", &other, subject, at(0));
        grants.add(&gone).await.unwrap();
        grants.add(&kept).await.unwrap();

        store.clients().remove(&tpp.client_id).await.unwrap();
        assert!(matches!(
            grants.find("grant-1").await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at(1),
                    &grant_event("set-1", "grant-1", &[], at(1))
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(grants.list_for_subject(subject).await.unwrap(), vec![kept]);
    }

    pub async fn a_code_is_redeemed_once_then_reported_reused(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at_micros(0));
        store.grants().add(&consent).await.unwrap();
        let codes = store.codes();
        let issued = code("code-1", &consent, at_micros(0));
        codes.add(&issued).await.unwrap();
        // Finding a code does not use it up.
        assert_eq!(codes.find(&issued.handle).await.unwrap(), issued);
        assert_eq!(codes.find(&issued.handle).await.unwrap(), issued);

        assert_eq!(
            codes.redeem(&issued.handle, at(1)).await.unwrap(),
            Redemption::Redeemed(issued.clone())
        );
        assert_eq!(codes.find(&issued.handle).await.unwrap(), issued);
        assert!(matches!(
            codes.find(&SecretHash::of("no-such-code")).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            codes.redeem(&issued.handle, at(2)).await.unwrap(),
            Redemption::Reused(issued.clone())
        );
        assert_eq!(
            codes.redeem(&issued.handle, at(3)).await.unwrap(),
            Redemption::Reused(issued.clone())
        );

        // Expiry is the caller's to check: an expired, unused code is still handed out.
        let late = code("code-2", &consent, at_micros(0));
        codes.add(&late).await.unwrap();
        let now = late.expires_at + Duration::hours(1);
        assert_eq!(
            codes.redeem(&late.handle, now).await.unwrap(),
            Redemption::Redeemed(late.clone())
        );

        assert!(matches!(
            codes.redeem(&SecretHash::of("code-3"), at(1)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn code_handles_are_unique_and_name_a_known_client_and_grant(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        let second = grant("grant-2", &tpp, consent.subject, at(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&second).await.unwrap();
        let codes = store.codes();
        let issued = code("code-1", &consent, at(0));
        codes.add(&issued).await.unwrap();

        // The same handle again, even under another grant, is refused.
        let duplicate = codes.add(&code("code-1", &second, at(5))).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );

        // A code cannot name a grant, or a client, that does not exist.
        let mut no_grant = code("code-2", &consent, at(0));
        no_grant.grant_id = "grant-3".into();
        let orphan = codes.add(&no_grant).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        let mut no_client = code("code-3", &consent, at(0));
        no_client.client_id = ClientId::parse("nobody").unwrap();
        let orphan = codes.add(&no_client).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        for handle in ["code-2", "code-3"] {
            assert!(matches!(
                codes.redeem(&SecretHash::of(handle), at(1)).await,
                Err(StoreError::NotFound)
            ));
        }

        // The first one is untouched and still unused.
        assert_eq!(
            codes.redeem(&issued.handle, at(1)).await.unwrap(),
            Redemption::Redeemed(issued)
        );
    }

    pub async fn codes_let_exactly_one_of_many_concurrent_redeems_through(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        // Several codes, each raced by 20 redemptions, so that a redeem that reads and then
        // writes has many chances to let a second caller through.
        let raced: Vec<StoredCode> = (0..5)
            .map(|i| code(&format!("raced-{i}"), &consent, at(0)))
            .collect();
        for issued in &raced {
            store.codes().add(issued).await.unwrap();
        }

        // All spawned before any is awaited, so that they run at once.
        let attempts: Vec<_> = (0..20)
            .flat_map(|_| raced.iter())
            .map(|issued| {
                let store = store.clone();
                let handle = issued.handle.clone();
                tokio::spawn(async move { store.codes().redeem(&handle, at(1)).await })
            })
            .collect();
        let mut wins = Vec::new();
        let mut replays = Vec::new();
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(Redemption::Redeemed(redeemed)) => wins.push(redeemed),
                Ok(Redemption::Reused(reused)) => replays.push(reused),
                Err(other) => panic!("a losing redeem must be Reused: {other:?}"),
            }
        }
        let nonce = |issued: &StoredCode| issued.content["nonce"].as_str().unwrap().to_owned();
        wins.sort_by_key(nonce);
        assert_eq!(wins, raced, "exactly one redeem of each code wins");
        assert_eq!(replays.len(), 19 * raced.len());
        for issued in &raced {
            assert_eq!(replays.iter().filter(|r| *r == issued).count(), 19);
            assert_eq!(
                store.codes().redeem(&issued.handle, at(2)).await.unwrap(),
                Redemption::Reused(issued.clone())
            );
        }
    }

    pub async fn codes_go_with_their_grant_and_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let subject = Uuid::new_v4();
        let consent = grant("grant-1", &tpp, subject, at(0));
        let kept_consent = grant("grant-2", &other, subject, at(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&kept_consent).await.unwrap();
        let codes = store.codes();
        let used = code("code-1", &consent, at(0));
        let unused = code("code-2", &consent, at(0));
        let kept = code("code-3", &kept_consent, at(0));
        for each in [&used, &unused, &kept] {
            codes.add(each).await.unwrap();
        }
        codes.redeem(&used.handle, at(1)).await.unwrap();

        // Revoking the grant keeps its codes: a replay is still recognised, and the caller
        // checks the grant of a code it redeems.
        assert!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at(2),
                    &grant_event("set-1", "grant-1", &[], at(2))
                )
                .await
                .unwrap()
        );
        assert_eq!(
            codes.redeem(&used.handle, at(3)).await.unwrap(),
            Redemption::Reused(used.clone())
        );

        // Removing the client removes its grants, and their codes with them.
        store.clients().remove(&tpp.client_id).await.unwrap();
        for gone in [&used, &unused] {
            assert!(matches!(
                codes.redeem(&gone.handle, at(3)).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(
            codes.redeem(&kept.handle, at(3)).await.unwrap(),
            Redemption::Redeemed(kept.clone())
        );
        assert_eq!(codes.purge_expired(at(1000)).await.unwrap(), 1);
    }

    pub async fn codes_purge_removes_only_expired_ones(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let codes = store.codes();
        // Expiring at 60, 70, 80 and 90 seconds; the first and third used.
        let all: Vec<StoredCode> = (0..4)
            .map(|i| code(&format!("code-{i}"), &consent, at(i * 10)))
            .collect();
        for issued in &all {
            codes.add(issued).await.unwrap();
        }
        for issued in [&all[0], &all[2]] {
            codes.redeem(&issued.handle, at(45)).await.unwrap();
        }

        assert_eq!(codes.purge_expired(at(0)).await.unwrap(), 0);
        // Expired at exactly their expiry instant, used or not.
        assert_eq!(codes.purge_expired(at(70)).await.unwrap(), 2);
        for issued in &all[..2] {
            assert!(matches!(
                codes.redeem(&issued.handle, at(70)).await,
                Err(StoreError::NotFound)
            ));
        }
        // The others are kept as they were: a used one is still a replay.
        assert_eq!(
            codes.redeem(&all[2].handle, at(70)).await.unwrap(),
            Redemption::Reused(all[2].clone())
        );
        assert_eq!(
            codes.redeem(&all[3].handle, at(70)).await.unwrap(),
            Redemption::Redeemed(all[3].clone())
        );
        assert_eq!(codes.purge_expired(at(70)).await.unwrap(), 0);
        assert_eq!(codes.purge_expired(at(1000)).await.unwrap(), 2);
        for issued in &all {
            assert!(matches!(
                codes.redeem(&issued.handle, at(1000)).await,
                Err(StoreError::NotFound)
            ));
        }
        // Purging codes leaves their grant.
        assert_eq!(store.grants().find("grant-1").await.unwrap(), consent);
    }

    pub async fn sessions_round_trip_with_all_fields_until_they_expire(store: Arc<dyn Store>) {
        let alice = user("alice");
        store.users().add(&alice).await.unwrap();
        let sessions = store.sessions();
        let mut full = session("cookie-1", &alice, at_micros(0));
        full.auth_time = at_micros(-30);
        full.last_seen_at = at_micros(60);
        // The other way round: no acr, no amr.
        let mut bare = session("cookie-2", &alice, at_micros(1));
        bare.acr = None;
        bare.amr = Vec::new();
        sessions.add(&full).await.unwrap();
        sessions.add(&bare).await.unwrap();

        assert_eq!(sessions.find(&full.handle, at(10)).await.unwrap(), full);
        assert_eq!(sessions.find(&bare.handle, at(10)).await.unwrap(), bare);
        let just_before = full.expires_at - Duration::microseconds(1);
        assert_eq!(
            sessions.find(&full.handle, just_before).await.unwrap(),
            full
        );
        // Expired at its expiry instant and after, whatever last_seen_at says.
        for now in [full.expires_at, full.expires_at + Duration::hours(1)] {
            assert!(matches!(
                sessions.find(&full.handle, now).await,
                Err(StoreError::NotFound)
            ));
        }
        assert!(matches!(
            sessions.find(&SecretHash::of("cookie-3"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn session_handles_are_unique_and_name_a_known_user(store: Arc<dyn Store>) {
        let alice = user("alice");
        let bob = user("bob");
        store.users().add(&alice).await.unwrap();
        store.users().add(&bob).await.unwrap();
        let sessions = store.sessions();
        let first = session("cookie-1", &alice, at(0));
        sessions.add(&first).await.unwrap();

        // The same handle again, even for another customer, is refused.
        let mut again = session("cookie-1", &bob, at(5));
        again.amr = vec!["pwd".into()];
        let duplicate = sessions.add(&again).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(sessions.find(&first.handle, at(10)).await.unwrap(), first);

        // A session cannot name a customer that does not exist.
        let stranger = user("stranger");
        let orphan = sessions.add(&session("cookie-2", &stranger, at(0))).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        assert!(matches!(
            sessions.find(&SecretHash::of("cookie-2"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn a_session_is_touched_and_removed_idempotently(store: Arc<dyn Store>) {
        let alice = user("alice");
        store.users().add(&alice).await.unwrap();
        let sessions = store.sessions();
        let active = session("cookie-1", &alice, at_micros(0));
        let other = session("cookie-2", &alice, at_micros(0));
        sessions.add(&active).await.unwrap();
        sessions.add(&other).await.unwrap();

        // Only last_seen_at moves, and only on that session.
        sessions
            .touch(&active.handle, at_micros(300))
            .await
            .unwrap();
        let mut touched = active.clone();
        touched.last_seen_at = at_micros(300);
        assert_eq!(
            sessions.find(&active.handle, at(301)).await.unwrap(),
            touched
        );
        assert_eq!(sessions.find(&other.handle, at(301)).await.unwrap(), other);
        assert!(matches!(
            sessions.touch(&SecretHash::of("cookie-3"), at(301)).await,
            Err(StoreError::NotFound)
        ));

        // Logging out twice is fine; the session is gone after the first.
        sessions.remove(&active.handle).await.unwrap();
        assert!(matches!(
            sessions.find(&active.handle, at(302)).await,
            Err(StoreError::NotFound)
        ));
        sessions.remove(&active.handle).await.unwrap();
        sessions.remove(&SecretHash::of("cookie-3")).await.unwrap();
        assert!(matches!(
            sessions.touch(&active.handle, at(303)).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(sessions.find(&other.handle, at(303)).await.unwrap(), other);
    }

    pub async fn sessions_are_removed_per_user(store: Arc<dyn Store>) {
        let alice = user("alice");
        let bob = user("bob");
        store.users().add(&alice).await.unwrap();
        store.users().add(&bob).await.unwrap();
        let sessions = store.sessions();
        let laptop = session("cookie-1", &alice, at(0));
        let phone = session("cookie-2", &alice, at(10));
        let kept = session("cookie-3", &bob, at(0));
        for each in [&laptop, &phone, &kept] {
            sessions.add(each).await.unwrap();
        }

        assert_eq!(sessions.remove_for_user(alice.id).await.unwrap(), 2);
        for gone in [&laptop, &phone] {
            assert!(matches!(
                sessions.find(&gone.handle, at(20)).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(sessions.find(&kept.handle, at(20)).await.unwrap(), kept);
        assert_eq!(sessions.remove_for_user(alice.id).await.unwrap(), 0);
        assert_eq!(sessions.remove_for_user(Uuid::new_v4()).await.unwrap(), 0);
        // The account itself stays.
        assert_eq!(store.users().find_by_id(alice.id).await.unwrap(), alice);
    }

    pub async fn sessions_go_with_their_user(store: Arc<dyn Store>) {
        let alice = user("alice");
        let bob = user("bob");
        store.users().add(&alice).await.unwrap();
        store.users().add(&bob).await.unwrap();
        let sessions = store.sessions();
        let gone = session("cookie-1", &alice, at(0));
        let kept = session("cookie-2", &bob, at(0));
        sessions.add(&gone).await.unwrap();
        sessions.add(&kept).await.unwrap();

        // A session does not hold its customer: removing the account removes it.
        store.users().remove(alice.id).await.unwrap();
        assert!(matches!(
            sessions.find(&gone.handle, at(1)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            sessions.touch(&gone.handle, at(1)).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(sessions.find(&kept.handle, at(1)).await.unwrap(), kept);
        assert_eq!(sessions.purge_expired(at(100_000)).await.unwrap(), 1);
    }

    pub async fn sessions_purge_removes_only_expired_ones(store: Arc<dyn Store>) {
        let alice = user("alice");
        store.users().add(&alice).await.unwrap();
        let sessions = store.sessions();
        // Expiring at 8 hours plus 0, 10, 20 and 30 seconds.
        let all: Vec<Session> = (0..4)
            .map(|i| session(&format!("cookie-{i}"), &alice, at(i * 10)))
            .collect();
        for each in &all {
            sessions.add(each).await.unwrap();
        }
        let expiry = |seconds: i64| at(seconds) + Duration::hours(8);

        assert_eq!(sessions.purge_expired(at(0)).await.unwrap(), 0);
        // Expired at exactly their expiry instant, as `find` sees them; recent use does not
        // matter.
        sessions.touch(&all[1].handle, expiry(5)).await.unwrap();
        assert_eq!(sessions.purge_expired(expiry(10)).await.unwrap(), 2);
        for gone in &all[..2] {
            assert!(matches!(
                sessions.touch(&gone.handle, expiry(10)).await,
                Err(StoreError::NotFound)
            ));
        }
        for kept in &all[2..] {
            assert_eq!(
                sessions.find(&kept.handle, expiry(10)).await.unwrap(),
                *kept
            );
        }
        assert_eq!(sessions.purge_expired(expiry(10)).await.unwrap(), 0);
        assert_eq!(sessions.purge_expired(expiry(1000)).await.unwrap(), 2);
        for each in &all {
            assert!(matches!(
                sessions.find(&each.handle, at(0)).await,
                Err(StoreError::NotFound)
            ));
        }
        // Purging sessions leaves the account.
        assert_eq!(store.users().find_by_id(alice.id).await.unwrap(), alice);
    }

    pub async fn interactions_round_trip_until_they_expire(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let interactions = store.interactions();
        // The pushed request it completes is stored, but not referenced: consuming the request
        // leaves the interaction.
        let request = pushed("uri-1", &tpp, at(0));
        store.pushed_requests().add(&request).await.unwrap();
        let mut started = interaction("flow-1", &tpp, at_micros(0));
        started.request_handle = request.handle.clone();
        interactions.add(&started).await.unwrap();
        // A request handle naming nothing stored is accepted too.
        let unbound = interaction("flow-2", &tpp, at_micros(1));
        interactions.add(&unbound).await.unwrap();

        assert_eq!(
            interactions.find(&started.handle, at(10)).await.unwrap(),
            started
        );
        assert_eq!(
            interactions.find(&unbound.handle, at(10)).await.unwrap(),
            unbound
        );
        store
            .pushed_requests()
            .consume(&request.handle, at(10))
            .await
            .unwrap();
        assert_eq!(
            interactions.find(&started.handle, at(10)).await.unwrap(),
            started
        );

        let just_before = started.expires_at - Duration::microseconds(1);
        assert_eq!(
            interactions
                .find(&started.handle, just_before)
                .await
                .unwrap(),
            started
        );
        // Expired at its expiry instant and after.
        for now in [started.expires_at, started.expires_at + Duration::hours(1)] {
            assert!(matches!(
                interactions.find(&started.handle, now).await,
                Err(StoreError::NotFound)
            ));
        }
        assert!(matches!(
            interactions.find(&SecretHash::of("flow-3"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn interaction_handles_are_unique_and_name_a_known_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let interactions = store.interactions();
        let first = interaction("flow-1", &tpp, at(0));
        interactions.add(&first).await.unwrap();

        // The same handle again, even for another client with another state, is refused.
        let mut again = interaction("flow-1", &other, at(5));
        again.state.insert("stage".into(), "consent".into());
        let duplicate = interactions.add(&again).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(
            interactions.find(&first.handle, at(10)).await.unwrap(),
            first
        );

        // An interaction cannot name a client that does not exist.
        let stranger = client("nobody", ClientProfile::Fapi2);
        let orphan = interactions
            .add(&interaction("flow-2", &stranger, at(0)))
            .await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        assert!(matches!(
            interactions.find(&SecretHash::of("flow-2"), at(0)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn an_interaction_advances_only_from_the_expected_state(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let interactions = store.interactions();
        let started = interaction("flow-1", &tpp, at_micros(0));
        let untouched = interaction("flow-2", &tpp, at_micros(0));
        interactions.add(&started).await.unwrap();
        interactions.add(&untouched).await.unwrap();
        let object = |value: serde_json::Value| value.as_object().unwrap().clone();
        let user_id = Uuid::new_v4().to_string();

        // Login: from the state it was started with.
        let logged_in = object(serde_json::json!({
            "stage": "second_factor",
            "interaction": "flow-1",
            "user_id": user_id,
            "amr": ["pwd"],
            "failed_attempts": 1,
            "risk": {"score": 0.25, "signals": ["new-device"], "näme": "Zoë \"quoted\" \u{1F510}"}
        }));
        assert!(
            interactions
                .advance(&started.handle, &started.state, &logged_in)
                .await
                .unwrap()
        );
        let mut expected = started.clone();
        expected.state = logged_in.clone();
        assert_eq!(
            interactions.find(&started.handle, at(1)).await.unwrap(),
            expected
        );

        // A second tab still holding the first state loses, and changes nothing.
        let stale = object(serde_json::json!({"stage": "consent", "user_id": "someone-else"}));
        assert!(
            !interactions
                .advance(&started.handle, &started.state, &stale)
                .await
                .unwrap()
        );
        assert_eq!(
            interactions.find(&started.handle, at(1)).await.unwrap(),
            expected
        );
        // Nor does an expected state that differs only in one nested value.
        let mut almost = logged_in.clone();
        almost["risk"]["signals"] = serde_json::json!(["new-device", "tor"]);
        assert!(
            !interactions
                .advance(&started.handle, &almost, &stale)
                .await
                .unwrap()
        );

        // Equality is semantic: the same state with its members, at every depth, inserted in
        // another order still matches.
        let reordered = object(serde_json::json!({
            "risk": {"näme": "Zoë \"quoted\" \u{1F510}", "signals": ["new-device"], "score": 0.25},
            "failed_attempts": 1,
            "amr": ["pwd"],
            "user_id": user_id,
            "interaction": "flow-1",
            "stage": "second_factor"
        }));
        assert_eq!(
            reordered.keys().next().map(String::as_str),
            Some("risk"),
            "the map keeps insertion order, so the order really differs"
        );
        let authenticated = object(serde_json::json!({
            "stage": "consent",
            "interaction": "flow-1",
            "user_id": user_id,
            "amr": ["pwd", "otp"],
            "failed_attempts": 0,
            "auth_time": 1_800_000_030
        }));
        assert!(
            interactions
                .advance(&started.handle, &reordered, &authenticated)
                .await
                .unwrap()
        );

        // The state as read back is a valid expected state.
        let read_back = interactions.find(&started.handle, at(2)).await.unwrap();
        assert_eq!(read_back.state, authenticated);
        let consented = object(serde_json::json!({"stage": "done", "grant_id": "grant-1"}));
        assert!(
            interactions
                .advance(&started.handle, &read_back.state, &consented)
                .await
                .unwrap()
        );
        expected.state = consented;
        assert_eq!(
            interactions.find(&started.handle, at(3)).await.unwrap(),
            expected
        );
        // Only that interaction.
        assert_eq!(
            interactions.find(&untouched.handle, at(3)).await.unwrap(),
            untouched
        );

        assert!(matches!(
            interactions
                .advance(&SecretHash::of("flow-3"), &started.state, &stale)
                .await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn interactions_let_exactly_one_of_many_concurrent_advances_through(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        // Several interactions, each raced by 20 advances from the same state, so that an
        // advance that reads and then writes has many chances to let a second caller through.
        let raced: Vec<Interaction> = (0..5)
            .map(|i| interaction(&format!("raced-{i}"), &tpp, at(0)))
            .collect();
        for each in &raced {
            store.interactions().add(each).await.unwrap();
        }

        // All spawned before any is awaited, so that they run at once.
        let attempts: Vec<_> = (0..20)
            .flat_map(|attempt| raced.iter().map(move |each| (attempt, each)))
            .map(|(attempt, each)| {
                let store = store.clone();
                let handle = each.handle.clone();
                let expected = each.state.clone();
                let mut next = each.state.clone();
                next.insert("stage".into(), "second_factor".into());
                next.insert("by".into(), attempt.into());
                tokio::spawn(async move {
                    let won = store
                        .interactions()
                        .advance(&handle, &expected, &next)
                        .await;
                    (handle, next, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for attempt in attempts {
            let (handle, next, won) = attempt.await.unwrap();
            match won {
                Ok(true) => winners.push((handle, next)),
                Ok(false) => {}
                Err(other) => panic!("a losing advance must be false: {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            raced.len(),
            "exactly one advance of each wins"
        );
        for each in &raced {
            let won: Vec<_> = winners
                .iter()
                .filter(|(handle, _)| *handle == each.handle)
                .collect();
            assert_eq!(won.len(), 1, "exactly one advance of each wins");
            // The winner's state is the one stored.
            assert_eq!(
                store
                    .interactions()
                    .find(&each.handle, at(1))
                    .await
                    .unwrap()
                    .state,
                won[0].1
            );
        }
    }

    pub async fn an_interaction_is_removed_once(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let interactions = store.interactions();
        let finished = interaction("flow-1", &tpp, at(0));
        let kept = interaction("flow-2", &tpp, at(0));
        interactions.add(&finished).await.unwrap();
        interactions.add(&kept).await.unwrap();

        assert!(interactions.remove(&finished.handle).await.unwrap());
        assert!(!interactions.remove(&finished.handle).await.unwrap());
        assert!(
            !interactions
                .remove(&SecretHash::of("flow-3"))
                .await
                .unwrap()
        );
        assert!(matches!(
            interactions.find(&finished.handle, at(1)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            interactions
                .advance(&finished.handle, &finished.state, &kept.state)
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(interactions.find(&kept.handle, at(1)).await.unwrap(), kept);

        // Of concurrent removes of one interaction, exactly one finishes it; all spawned before
        // any is awaited, so that they run at once.
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                let handle = kept.handle.clone();
                tokio::spawn(async move { store.interactions().remove(&handle).await.unwrap() })
            })
            .collect();
        let mut removed = 0;
        for attempt in attempts {
            if attempt.await.unwrap() {
                removed += 1;
            }
        }
        assert_eq!(removed, 1, "exactly one remove finishes it");
    }

    pub async fn interactions_go_with_their_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let interactions = store.interactions();
        let gone = interaction("flow-1", &tpp, at(0));
        let kept = interaction("flow-2", &other, at(0));
        interactions.add(&gone).await.unwrap();
        interactions.add(&kept).await.unwrap();

        // An interaction does not hold its client: removing the client removes it.
        store.clients().remove(&tpp.client_id).await.unwrap();
        assert!(matches!(
            interactions.find(&gone.handle, at(1)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            interactions
                .advance(&gone.handle, &gone.state, &kept.state)
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(!interactions.remove(&gone.handle).await.unwrap());
        assert_eq!(interactions.find(&kept.handle, at(1)).await.unwrap(), kept);
        assert_eq!(interactions.purge_expired(at(100_000)).await.unwrap(), 1);
    }

    pub async fn interactions_purge_removes_only_expired_ones(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let interactions = store.interactions();
        // Expiring at 600, 610, 620 and 630 seconds.
        let all: Vec<Interaction> = (0..4)
            .map(|i| interaction(&format!("flow-{i}"), &tpp, at(i * 10)))
            .collect();
        for each in &all {
            interactions.add(each).await.unwrap();
        }

        assert_eq!(interactions.purge_expired(at(0)).await.unwrap(), 0);
        // Expired at exactly their expiry instant, as `find` sees them.
        assert_eq!(interactions.purge_expired(at(610)).await.unwrap(), 2);
        for gone in &all[..2] {
            assert!(!interactions.remove(&gone.handle).await.unwrap());
        }
        for kept in &all[2..] {
            assert_eq!(
                interactions.find(&kept.handle, at(610)).await.unwrap(),
                *kept
            );
        }
        assert_eq!(interactions.purge_expired(at(610)).await.unwrap(), 0);
        assert_eq!(interactions.purge_expired(at(1000)).await.unwrap(), 2);
        for each in &all {
            assert!(matches!(
                interactions.find(&each.handle, at(0)).await,
                Err(StoreError::NotFound)
            ));
        }
    }

    pub async fn refresh_tokens_round_trip_with_all_fields(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.refresh_tokens();
        let fresh = refresh("rt-1", &consent, at_micros(0));
        // Every optional field set.
        let mut spent = refresh("rt-2", &consent, at_micros(1));
        spent.rotated_at = Some(at_micros(2));
        spent.revoked_at = Some(at_micros(3));
        tokens.add(&fresh).await.unwrap();
        tokens.add(&spent).await.unwrap();

        assert_eq!(tokens.find(&fresh.handle).await.unwrap(), fresh);
        // Whatever its state: rotated, revoked, and long expired, it is still found.
        assert_eq!(tokens.find(&spent.handle).await.unwrap(), spent);
        assert!(matches!(
            tokens.find(&SecretHash::of("rt-3")).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn refresh_token_handles_are_unique_and_name_a_known_client_and_grant(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        let second = grant("grant-2", &tpp, consent.subject, at(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&second).await.unwrap();
        let tokens = store.refresh_tokens();
        let first = refresh("rt-1", &consent, at(0));
        tokens.add(&first).await.unwrap();

        // The same handle again, even under another grant, is refused.
        let duplicate = tokens.add(&refresh("rt-1", &second, at(5))).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(tokens.find(&first.handle).await.unwrap(), first);

        // A token cannot name a grant, or a client, that does not exist.
        let mut no_grant = refresh("rt-2", &consent, at(0));
        no_grant.grant_id = "grant-3".into();
        let orphan = tokens.add(&no_grant).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        let mut no_client = refresh("rt-3", &consent, at(0));
        no_client.client_id = ClientId::parse("nobody").unwrap();
        let orphan = tokens.add(&no_client).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        for handle in ["rt-2", "rt-3"] {
            assert!(matches!(
                tokens.find(&SecretHash::of(handle)).await,
                Err(StoreError::NotFound)
            ));
        }
    }

    pub async fn a_refresh_token_is_rotated_once(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.refresh_tokens();
        let first = refresh("rt-1", &consent, at_micros(0));
        let untouched = refresh("rt-untouched", &consent, at_micros(0));
        tokens.add(&first).await.unwrap();
        tokens.add(&untouched).await.unwrap();

        // The old token is marked rotated, and its successor is stored as passed.
        let second = refresh("rt-2", &consent, at_micros(60));
        assert!(
            tokens
                .rotate(&first.handle, &second, at_micros(60))
                .await
                .unwrap()
        );
        let mut rotated = first.clone();
        rotated.rotated_at = Some(at_micros(60));
        assert_eq!(tokens.find(&first.handle).await.unwrap(), rotated);
        assert_eq!(tokens.find(&second.handle).await.unwrap(), second);

        // Rotating the old token again (a replay) changes nothing and stores nothing: the first
        // rotation instant stays.
        let replayed = refresh("rt-2-bis", &consent, at_micros(120));
        assert!(
            !tokens
                .rotate(&first.handle, &replayed, at_micros(120))
                .await
                .unwrap()
        );
        assert_eq!(tokens.find(&first.handle).await.unwrap(), rotated);
        assert!(matches!(
            tokens.find(&replayed.handle).await,
            Err(StoreError::NotFound)
        ));

        // The successor rotates in turn; a revoked or expired token still rotates: judging
        // those is the caller's.
        let mut revoked = refresh("rt-revoked", &consent, at_micros(0));
        revoked.revoked_at = Some(at_micros(1));
        tokens.add(&revoked).await.unwrap();
        let third = refresh("rt-3", &consent, at_micros(180));
        assert!(
            tokens
                .rotate(
                    &second.handle,
                    &third,
                    second.expires_at + Duration::days(1)
                )
                .await
                .unwrap()
        );
        let successor = refresh("rt-revoked-next", &consent, at_micros(180));
        assert!(
            tokens
                .rotate(&revoked.handle, &successor, at_micros(180))
                .await
                .unwrap()
        );
        assert_eq!(tokens.find(&third.handle).await.unwrap(), third);
        assert_eq!(tokens.find(&successor.handle).await.unwrap(), successor);
        // Only that token.
        assert_eq!(tokens.find(&untouched.handle).await.unwrap(), untouched);

        // An unknown old token: NotFound, and nothing stored.
        let stray = refresh("rt-stray", &consent, at_micros(240));
        assert!(matches!(
            tokens
                .rotate(&SecretHash::of("rt-unknown"), &stray, at_micros(240))
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            tokens.find(&stray.handle).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn a_failed_rotation_leaves_the_old_refresh_token_unrotated(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.refresh_tokens();
        let old = refresh("rt-1", &consent, at_micros(0));
        let taken = refresh("rt-taken", &consent, at_micros(0));
        tokens.add(&old).await.unwrap();
        tokens.add(&taken).await.unwrap();

        // A successor whose handle is taken, or that names an unknown grant or client, is refused
        // as `add` refuses it, and the old token is left as it was, still rotatable.
        let mut duplicate = refresh("rt-taken", &consent, at_micros(60));
        duplicate
            .content
            .insert("token".into(), "the second rt-taken".into());
        let mut no_grant = refresh("rt-2", &consent, at_micros(60));
        no_grant.grant_id = "grant-2".into();
        let mut no_client = refresh("rt-3", &consent, at_micros(60));
        no_client.client_id = ClientId::parse("nobody").unwrap();
        for refused in [&duplicate, &no_grant, &no_client] {
            let failed = tokens.rotate(&old.handle, refused, at_micros(60)).await;
            assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
            assert_eq!(tokens.find(&old.handle).await.unwrap(), old);
        }
        assert_eq!(tokens.find(&taken.handle).await.unwrap(), taken);
        for handle in ["rt-2", "rt-3"] {
            assert!(matches!(
                tokens.find(&SecretHash::of(handle)).await,
                Err(StoreError::NotFound)
            ));
        }

        let next = refresh("rt-4", &consent, at_micros(120));
        assert!(
            tokens
                .rotate(&old.handle, &next, at_micros(120))
                .await
                .unwrap()
        );
        let mut rotated = old.clone();
        rotated.rotated_at = Some(at_micros(120));
        assert_eq!(tokens.find(&old.handle).await.unwrap(), rotated);
        assert_eq!(tokens.find(&next.handle).await.unwrap(), next);
    }

    pub async fn refresh_tokens_let_exactly_one_of_many_concurrent_rotations_through(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        // Several tokens, each raced by 20 rotations with different successors, so that a rotate
        // that reads and then writes has many chances to let a second caller through.
        let raced: Vec<StoredRefreshToken> = (0..5)
            .map(|i| refresh(&format!("raced-{i}"), &consent, at(0)))
            .collect();
        for token in &raced {
            store.refresh_tokens().add(token).await.unwrap();
        }

        // All spawned before any is awaited, so that they run at once.
        let attempts: Vec<_> = (0..20)
            .flat_map(|attempt| raced.iter().map(move |token| (attempt, token)))
            .map(|(attempt, token)| {
                let store = store.clone();
                let old = token.handle.clone();
                let new = refresh(
                    &format!("{}-by-{attempt}", token.content["token"].as_str().unwrap()),
                    &consent,
                    at(1),
                );
                tokio::spawn(async move {
                    let won = store.refresh_tokens().rotate(&old, &new, at(1)).await;
                    (old, new, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for attempt in attempts {
            let (old, new, won) = attempt.await.unwrap();
            match won {
                Ok(true) => winners.push((old, new)),
                Ok(false) => losers.push(new),
                Err(other) => panic!("a losing rotation must be false: {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            raced.len(),
            "exactly one rotation of each wins"
        );
        assert_eq!(losers.len(), 19 * raced.len());
        for token in &raced {
            let won: Vec<_> = winners
                .iter()
                .filter(|(old, _)| *old == token.handle)
                .collect();
            assert_eq!(won.len(), 1, "exactly one rotation of each wins");
            let mut rotated = token.clone();
            rotated.rotated_at = Some(at(1));
            assert_eq!(
                store.refresh_tokens().find(&token.handle).await.unwrap(),
                rotated
            );
            // The winner's successor is the one stored.
            assert_eq!(
                store.refresh_tokens().find(&won[0].1.handle).await.unwrap(),
                won[0].1
            );
        }
        // No loser's successor is.
        for new in &losers {
            assert!(matches!(
                store.refresh_tokens().find(&new.handle).await,
                Err(StoreError::NotFound)
            ));
        }
    }

    pub async fn revoking_a_grant_revokes_its_refresh_tokens_rotated_or_not(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        let other = grant("grant-2", &tpp, consent.subject, at(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&other).await.unwrap();
        let tokens = store.refresh_tokens();
        let live = refresh("rt-1", &consent, at_micros(0));
        let mut revoked_before = refresh("rt-2", &consent, at_micros(0));
        revoked_before.revoked_at = Some(at_micros(10));
        // Rotated, and so perhaps still usable within the grace period.
        let mut rotated = refresh("rt-3", &consent, at_micros(0));
        rotated.rotated_at = Some(at_micros(20));
        let kept = refresh("rt-4", &other, at_micros(0));
        for each in [&live, &revoked_before, &rotated, &kept] {
            tokens.add(each).await.unwrap();
        }
        let revocations = store.revocations();

        // Only that grant's unrevoked tokens, rotated or not, are changed; an earlier
        // revocation instant stays.
        assert!(
            revocations
                .revoke_grant(
                    "grant-1",
                    at_micros(30),
                    &grant_event("set-1", "grant-1", &[], at_micros(30)),
                )
                .await
                .unwrap()
        );
        let mut revoked = live.clone();
        revoked.revoked_at = Some(at_micros(30));
        assert_eq!(tokens.find(&live.handle).await.unwrap(), revoked);
        assert_eq!(
            tokens.find(&revoked_before.handle).await.unwrap(),
            revoked_before
        );
        let mut rotated_revoked = rotated.clone();
        rotated_revoked.revoked_at = Some(at_micros(30));
        assert_eq!(tokens.find(&rotated.handle).await.unwrap(), rotated_revoked);
        assert_eq!(tokens.find(&kept.handle).await.unwrap(), kept);

        // Again, later: nothing is revoked, and the instants stay.
        assert!(
            !revocations
                .revoke_grant(
                    "grant-1",
                    at_micros(40),
                    &grant_event("set-2", "grant-1", &[], at_micros(40)),
                )
                .await
                .unwrap()
        );
        assert_eq!(tokens.find(&live.handle).await.unwrap(), revoked);
        assert_eq!(tokens.find(&rotated.handle).await.unwrap(), rotated_revoked);
        assert_eq!(tokens.find(&kept.handle).await.unwrap(), kept);
    }

    pub async fn refresh_tokens_go_with_their_grant_and_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        let third = client("tpp-3", ClientProfile::Fapi2);
        for each in [&tpp, &other, &third] {
            store.clients().add(each).await.unwrap();
        }
        let subject = Uuid::new_v4();
        let consent = grant("grant-1", &tpp, subject, at(0));
        let other_consent = grant("grant-2", &other, subject, at(0));
        let third_consent = grant("grant-3", &third, subject, at(0));
        for each in [&consent, &other_consent, &third_consent] {
            store.grants().add(each).await.unwrap();
        }
        let tokens = store.refresh_tokens();
        let own = refresh("rt-1", &consent, at(0));
        // Tokens whose client is not their grant's client, so that each cascade is seen alone:
        // `by_client` goes only with its client, `by_grant` only with its grant.
        let mut by_client = refresh("rt-2", &third_consent, at(0));
        by_client.client_id = tpp.client_id.clone();
        let mut by_grant = refresh("rt-3", &other_consent, at(0));
        by_grant.client_id = third.client_id.clone();
        let kept = refresh("rt-4", &third_consent, at(0));
        for each in [&own, &by_client, &by_grant, &kept] {
            tokens.add(each).await.unwrap();
        }

        // A revoked grant and its revoked tokens go too.
        assert!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at(1),
                    &grant_event("set-1", "grant-1", &[], at(1))
                )
                .await
                .unwrap()
        );
        let mut revoked = own.clone();
        revoked.revoked_at = Some(at(1));
        assert_eq!(tokens.find(&own.handle).await.unwrap(), revoked);

        // Removing a client removes its tokens, and its grants with their tokens.
        store.clients().remove(&tpp.client_id).await.unwrap();
        for gone in [&own, &by_client] {
            assert!(matches!(
                tokens.find(&gone.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(tokens.find(&by_grant.handle).await.unwrap(), by_grant);
        store.clients().remove(&other.client_id).await.unwrap();
        assert!(matches!(
            tokens.find(&by_grant.handle).await,
            Err(StoreError::NotFound)
        ));
        let successor = refresh("rt-5", &third_consent, at(2));
        assert!(matches!(
            tokens.rotate(&by_grant.handle, &successor, at(2)).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(tokens.find(&kept.handle).await.unwrap(), kept);
        assert!(matches!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at(3),
                    &grant_event("set-2", "grant-1", &[], at(3))
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            tokens
                .purge_expired(at(0) + Duration::days(1000))
                .await
                .unwrap(),
            1
        );
    }

    pub async fn refresh_tokens_purge_removes_only_expired_ones(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.refresh_tokens();
        // Expiring at 30 days plus 0, 10, 20 and 30 seconds; the first rotated, the third
        // revoked.
        let mut all: Vec<StoredRefreshToken> = (0..4)
            .map(|i| refresh(&format!("rt-{i}"), &consent, at(i * 10)))
            .collect();
        all[0].rotated_at = Some(at(5));
        all[2].revoked_at = Some(at(5));
        for each in &all {
            tokens.add(each).await.unwrap();
        }
        let expiry = |seconds: i64| at(seconds) + Duration::days(30);

        assert_eq!(tokens.purge_expired(at(0)).await.unwrap(), 0);
        // Expired at exactly their expiry instant, whatever their state.
        assert_eq!(tokens.purge_expired(expiry(10)).await.unwrap(), 2);
        for gone in &all[..2] {
            assert!(matches!(
                tokens.find(&gone.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        for kept in &all[2..] {
            assert_eq!(tokens.find(&kept.handle).await.unwrap(), *kept);
        }
        assert_eq!(tokens.purge_expired(expiry(10)).await.unwrap(), 0);
        assert_eq!(tokens.purge_expired(expiry(1000)).await.unwrap(), 2);
        for each in &all {
            assert!(matches!(
                tokens.find(&each.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        // Purging tokens leaves their grant.
        assert_eq!(store.grants().find("grant-1").await.unwrap(), consent);
    }

    pub async fn access_tokens_round_trip_with_all_fields(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.access_tokens();
        let granted = access("at-1", &tpp, Some(&consent), at_micros(0));
        // No grant (a client_credentials token), and revoked.
        let mut grantless = access("at-2", &tpp, None, at_micros(1));
        grantless.revoked_at = Some(at_micros(2));
        tokens.add(&granted).await.unwrap();
        tokens.add(&grantless).await.unwrap();

        assert_eq!(tokens.find(&granted.handle).await.unwrap(), granted);
        // Whatever its state: revoked, and long expired, it is still found.
        assert_eq!(tokens.find(&grantless.handle).await.unwrap(), grantless);
        assert!(matches!(
            tokens.find(&SecretHash::of("at-3")).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn access_token_handles_are_unique_and_name_a_known_client_and_grant(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        store.clients().add(&other).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.access_tokens();
        let first = access("at-1", &tpp, Some(&consent), at(0));
        tokens.add(&first).await.unwrap();

        // The same handle again, even for another client and without a grant, is refused.
        let duplicate = tokens.add(&access("at-1", &other, None, at(5))).await;
        assert!(
            matches!(duplicate, Err(StoreError::Conflict(_))),
            "{duplicate:?}"
        );
        assert_eq!(tokens.find(&first.handle).await.unwrap(), first);

        // A token cannot name a grant, or a client, that does not exist.
        let mut no_grant = access("at-2", &tpp, Some(&consent), at(0));
        no_grant.grant_id = Some("grant-2".into());
        let orphan = tokens.add(&no_grant).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        let mut no_client = access("at-3", &tpp, Some(&consent), at(0));
        no_client.client_id = ClientId::parse("nobody").unwrap();
        let orphan = tokens.add(&no_client).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        let mut no_client = access("at-4", &tpp, None, at(0));
        no_client.client_id = ClientId::parse("nobody").unwrap();
        let orphan = tokens.add(&no_client).await;
        assert!(matches!(orphan, Err(StoreError::Conflict(_))), "{orphan:?}");
        for handle in ["at-2", "at-3", "at-4"] {
            assert!(matches!(
                tokens.find(&SecretHash::of(handle)).await,
                Err(StoreError::NotFound)
            ));
        }
    }

    pub async fn denying_an_access_token_revokes_its_row_alone_even_when_expired(
        store: Arc<dyn Store>,
    ) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.access_tokens();
        let granted = access("at-1", &tpp, Some(&consent), at_micros(0));
        let grantless = access("at-2", &tpp, None, at_micros(0));
        let untouched = access("at-untouched", &tpp, Some(&consent), at_micros(0));
        for each in [&granted, &grantless, &untouched] {
            tokens.add(each).await.unwrap();
        }
        let revocations = store.revocations();

        // A token of a grant: its row is revoked at `now`; its grant, and the grant's other
        // tokens, are not.
        assert!(
            revocations
                .deny_access_token(
                    "jti-1",
                    Some(&granted.handle),
                    granted.expires_at,
                    at_micros(60),
                    &feed_event("set-1", &[], at_micros(60)),
                )
                .await
                .unwrap()
        );
        let mut revoked = granted.clone();
        revoked.revoked_at = Some(at_micros(60));
        assert_eq!(tokens.find(&granted.handle).await.unwrap(), revoked);
        assert_eq!(tokens.find(&untouched.handle).await.unwrap(), untouched);
        assert_eq!(store.grants().find("grant-1").await.unwrap(), consent);

        // An expired token is still revoked: judging expiry is the caller's.
        let late = grantless.expires_at + Duration::days(1);
        assert!(
            revocations
                .deny_access_token(
                    "jti-2",
                    Some(&grantless.handle),
                    grantless.expires_at,
                    late,
                    &feed_event("set-2", &[], late),
                )
                .await
                .unwrap()
        );
        let mut revoked_grantless = grantless.clone();
        revoked_grantless.revoked_at = Some(late);
        assert_eq!(
            tokens.find(&grantless.handle).await.unwrap(),
            revoked_grantless
        );
        assert_eq!(tokens.find(&granted.handle).await.unwrap(), revoked);
        assert_eq!(tokens.find(&untouched.handle).await.unwrap(), untouched);
    }

    pub async fn revoking_a_grant_revokes_its_access_tokens_even_expired(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        let other = grant("grant-2", &tpp, consent.subject, at(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&other).await.unwrap();
        let tokens = store.access_tokens();
        let live = access("at-1", &tpp, Some(&consent), at_micros(0));
        let mut revoked_before = access("at-2", &tpp, Some(&consent), at_micros(0));
        revoked_before.revoked_at = Some(at_micros(10));
        // Expired, but not purged yet.
        let expired = access(
            "at-3",
            &tpp,
            Some(&consent),
            at_micros(0) - Duration::days(1),
        );
        let kept = access("at-4", &tpp, Some(&other), at_micros(0));
        let grantless = access("at-5", &tpp, None, at_micros(0));
        for each in [&live, &revoked_before, &expired, &kept, &grantless] {
            tokens.add(each).await.unwrap();
        }
        let revocations = store.revocations();

        // Only that grant's unrevoked tokens, expired or not, are changed; an earlier
        // revocation instant stays.
        assert!(
            revocations
                .revoke_grant(
                    "grant-1",
                    at_micros(30),
                    &grant_event("set-1", "grant-1", &[], at_micros(30)),
                )
                .await
                .unwrap()
        );
        let mut revoked = live.clone();
        revoked.revoked_at = Some(at_micros(30));
        assert_eq!(tokens.find(&live.handle).await.unwrap(), revoked);
        assert_eq!(
            tokens.find(&revoked_before.handle).await.unwrap(),
            revoked_before
        );
        let mut expired_revoked = expired.clone();
        expired_revoked.revoked_at = Some(at_micros(30));
        assert_eq!(tokens.find(&expired.handle).await.unwrap(), expired_revoked);
        assert_eq!(tokens.find(&kept.handle).await.unwrap(), kept);
        assert_eq!(tokens.find(&grantless.handle).await.unwrap(), grantless);

        // Again, later: nothing is revoked, and the instants stay.
        assert!(
            !revocations
                .revoke_grant(
                    "grant-1",
                    at_micros(40),
                    &grant_event("set-2", "grant-1", &[], at_micros(40)),
                )
                .await
                .unwrap()
        );
        assert_eq!(tokens.find(&live.handle).await.unwrap(), revoked);
        assert_eq!(tokens.find(&expired.handle).await.unwrap(), expired_revoked);
        assert_eq!(tokens.find(&kept.handle).await.unwrap(), kept);
    }

    pub async fn access_tokens_go_with_their_grant_and_client(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let other = client("tpp-2", ClientProfile::Fapi2);
        let third = client("tpp-3", ClientProfile::Fapi2);
        for each in [&tpp, &other, &third] {
            store.clients().add(each).await.unwrap();
        }
        let subject = Uuid::new_v4();
        let consent = grant("grant-1", &tpp, subject, at(0));
        let other_consent = grant("grant-2", &other, subject, at(0));
        let third_consent = grant("grant-3", &third, subject, at(0));
        for each in [&consent, &other_consent, &third_consent] {
            store.grants().add(each).await.unwrap();
        }
        let tokens = store.access_tokens();
        let own = access("at-1", &tpp, Some(&consent), at(0));
        let own_grantless = access("at-2", &tpp, None, at(0));
        // Tokens whose client is not their grant's client, so that each cascade is seen alone:
        // `by_client` goes only with its client, `by_grant` only with its grant.
        let by_client = access("at-3", &tpp, Some(&third_consent), at(0));
        let by_grant = access("at-4", &third, Some(&other_consent), at(0));
        let kept = access("at-5", &third, Some(&third_consent), at(0));
        let kept_grantless = access("at-6", &other, None, at(0));
        for each in [
            &own,
            &own_grantless,
            &by_client,
            &by_grant,
            &kept,
            &kept_grantless,
        ] {
            tokens.add(each).await.unwrap();
        }

        // A revoked grant and its revoked tokens go too.
        assert!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at(1),
                    &grant_event("set-1", "grant-1", &[], at(1))
                )
                .await
                .unwrap()
        );
        let mut revoked = own.clone();
        revoked.revoked_at = Some(at(1));
        assert_eq!(tokens.find(&own.handle).await.unwrap(), revoked);

        // Removing a client removes its tokens, with a grant or without, and its grants with
        // their tokens.
        store.clients().remove(&tpp.client_id).await.unwrap();
        for gone in [&own, &own_grantless, &by_client] {
            assert!(matches!(
                tokens.find(&gone.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(tokens.find(&by_grant.handle).await.unwrap(), by_grant);
        assert_eq!(
            tokens.find(&kept_grantless.handle).await.unwrap(),
            kept_grantless
        );
        // Removing `other` removes its grant, and with it `by_grant`, whose client stays.
        store.clients().remove(&other.client_id).await.unwrap();
        for gone in [&by_grant, &kept_grantless] {
            assert!(matches!(
                tokens.find(&gone.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(tokens.find(&kept.handle).await.unwrap(), kept);
        assert!(matches!(
            store
                .revocations()
                .revoke_grant(
                    "grant-1",
                    at(3),
                    &grant_event("set-2", "grant-1", &[], at(3))
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            tokens
                .purge_expired(at(0) + Duration::days(1000))
                .await
                .unwrap(),
            1
        );
    }

    pub async fn access_tokens_purge_removes_only_expired_ones(store: Arc<dyn Store>) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        store.clients().add(&tpp).await.unwrap();
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        let tokens = store.access_tokens();
        // Expiring at 10 minutes plus 0, 10, 20 and 30 seconds; the first without a grant, the
        // second revoked.
        let mut all: Vec<StoredAccessToken> = (0..4)
            .map(|i| access(&format!("at-{i}"), &tpp, Some(&consent), at(i * 10)))
            .collect();
        all[0].grant_id = None;
        all[1].revoked_at = Some(at(5));
        for each in &all {
            tokens.add(each).await.unwrap();
        }
        let expiry = |seconds: i64| at(seconds) + Duration::minutes(10);

        assert_eq!(tokens.purge_expired(at(0)).await.unwrap(), 0);
        // Expired at exactly their expiry instant, whatever their state.
        assert_eq!(tokens.purge_expired(expiry(10)).await.unwrap(), 2);
        for gone in &all[..2] {
            assert!(matches!(
                tokens.find(&gone.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        for kept in &all[2..] {
            assert_eq!(tokens.find(&kept.handle).await.unwrap(), *kept);
        }
        assert_eq!(tokens.purge_expired(expiry(10)).await.unwrap(), 0);
        assert_eq!(tokens.purge_expired(expiry(1000)).await.unwrap(), 2);
        for each in &all {
            assert!(matches!(
                tokens.find(&each.handle).await,
                Err(StoreError::NotFound)
            ));
        }
        // Purging tokens leaves their grant and client.
        assert_eq!(store.grants().find("grant-1").await.unwrap(), consent);
        assert!(store.clients().find_by_id(&tpp.client_id).await.is_ok());
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

    /// A feed event about an access token, for `recipients`.
    fn feed_event(jti: &str, recipients: &[&Client], created_at: OffsetDateTime) -> NewFeedEvent {
        NewFeedEvent {
            jti: jti.to_owned(),
            kind: "token-revoked".into(),
            grant_id: None,
            token_jti: Some(format!("token-of-{jti}")),
            set: format!("eyJhbGciOiJFUzI1NiIsInR5cCI6InNlY2V2ZW50K2p3dCJ9.{jti}.c2lnbmF0dXJl"),
            recipients: recipients
                .iter()
                .map(|client| client.client_id.clone())
                .collect(),
            created_at,
        }
    }

    /// A feed event about a grant, for `recipients`.
    fn grant_event(
        jti: &str,
        grant_id: &str,
        recipients: &[&Client],
        created_at: OffsetDateTime,
    ) -> NewFeedEvent {
        NewFeedEvent {
            kind: "grant-revoked".into(),
            grant_id: Some(grant_id.to_owned()),
            token_jti: None,
            ..feed_event(jti, recipients, created_at)
        }
    }

    /// What the feed holds for `event`.
    fn in_feed(event: &NewFeedEvent, seq: i64, pending: i64) -> FeedEvent {
        FeedEvent {
            seq,
            jti: event.jti.clone(),
            kind: event.kind.clone(),
            grant_id: event.grant_id.clone(),
            token_jti: event.token_jti.clone(),
            set: event.set.clone(),
            created_at: event.created_at,
            pending,
        }
    }

    fn jtis(events: &[FeedEvent]) -> Vec<&str> {
        events.iter().map(|event| event.jti.as_str()).collect()
    }

    /// A tpp client and three resource-server clients, all stored.
    async fn tpp_and_resource_servers(store: &Arc<dyn Store>) -> (Client, Client, Client, Client) {
        let tpp = client("tpp-1", ClientProfile::Fapi2);
        let rs1 = client("rs-1", ClientProfile::Fapi2);
        let rs2 = client("rs-2", ClientProfile::Fapi2);
        let rs3 = client("rs-3", ClientProfile::Fapi2);
        for each in [&tpp, &rs1, &rs2, &rs3] {
            store.clients().add(each).await.unwrap();
        }
        (tpp, rs1, rs2, rs3)
    }

    pub async fn revoking_a_grant_revokes_its_tokens_bumps_the_epoch_and_queues_one_event(
        store: Arc<dyn Store>,
    ) {
        let (tpp, rs1, rs2, rs3) = tpp_and_resource_servers(&store).await;
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at_micros(0));
        let other = grant("grant-2", &tpp, consent.subject, at_micros(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&other).await.unwrap();
        let live_refresh = refresh("rt-1", &consent, at_micros(0));
        let mut revoked_refresh = refresh("rt-2", &consent, at_micros(0));
        revoked_refresh.revoked_at = Some(at_micros(10));
        let other_refresh = refresh("rt-3", &other, at_micros(0));
        for each in [&live_refresh, &revoked_refresh, &other_refresh] {
            store.refresh_tokens().add(each).await.unwrap();
        }
        let live_access = access("at-1", &tpp, Some(&consent), at_micros(0));
        let mut revoked_access = access("at-2", &tpp, Some(&consent), at_micros(0));
        revoked_access.revoked_at = Some(at_micros(10));
        let other_access = access("at-3", &tpp, Some(&other), at_micros(0));
        let grantless = access("at-4", &tpp, None, at_micros(0));
        for each in [&live_access, &revoked_access, &other_access, &grantless] {
            store.access_tokens().add(each).await.unwrap();
        }
        let revocations = store.revocations();
        let before = revocations.epoch().await.unwrap();

        // A recipient that is not a client is skipped, not a failure.
        let mut event = grant_event("set-1", "grant-1", &[&rs1, &rs2], at_micros(30));
        event.recipients.push(ClientId::parse("gone").unwrap());
        assert!(
            revocations
                .revoke_grant("grant-1", at_micros(30), &event)
                .await
                .unwrap()
        );

        let mut revoked = consent.clone();
        revoked.revoked_at = Some(at_micros(30));
        assert_eq!(store.grants().find("grant-1").await.unwrap(), revoked);
        assert_eq!(store.grants().find("grant-2").await.unwrap(), other);
        let mut now_revoked = live_refresh.clone();
        now_revoked.revoked_at = Some(at_micros(30));
        assert_eq!(
            store
                .refresh_tokens()
                .find(&live_refresh.handle)
                .await
                .unwrap(),
            now_revoked
        );
        // An earlier revocation instant stays; other grants' tokens are untouched.
        assert_eq!(
            store
                .refresh_tokens()
                .find(&revoked_refresh.handle)
                .await
                .unwrap(),
            revoked_refresh
        );
        assert_eq!(
            store
                .refresh_tokens()
                .find(&other_refresh.handle)
                .await
                .unwrap(),
            other_refresh
        );
        let mut now_revoked = live_access.clone();
        now_revoked.revoked_at = Some(at_micros(30));
        assert_eq!(
            store
                .access_tokens()
                .find(&live_access.handle)
                .await
                .unwrap(),
            now_revoked
        );
        for each in [&revoked_access, &other_access, &grantless] {
            assert_eq!(
                store.access_tokens().find(&each.handle).await.unwrap(),
                *each
            );
        }

        let epoch = revocations.epoch().await.unwrap();
        assert!(epoch > before, "the epoch moves: {before} then {epoch}");
        let feed = revocations.list(0, 10).await.unwrap();
        assert_eq!(feed.len(), 1);
        assert_eq!(feed[0], in_feed(&event, feed[0].seq, 2));
        assert_eq!(revocations.latest_seq().await.unwrap(), feed[0].seq);
        // Delivered to the recipients, and only to them.
        for recipient in [&rs1, &rs2] {
            let poll = revocations.poll(&recipient.client_id, 10).await.unwrap();
            assert_eq!(poll.events, feed);
            assert!(!poll.more);
        }
        for outsider in [&rs3, &tpp] {
            let poll = revocations.poll(&outsider.client_id, 10).await.unwrap();
            assert!(poll.events.is_empty());
            assert!(!poll.more);
        }

        // Again, later and with another event: nothing changes and nothing is queued.
        let again = grant_event("set-2", "grant-1", &[&rs1, &rs3], at_micros(40));
        assert!(
            !revocations
                .revoke_grant("grant-1", at_micros(40), &again)
                .await
                .unwrap()
        );
        assert_eq!(revocations.epoch().await.unwrap(), epoch);
        assert_eq!(revocations.list(0, 10).await.unwrap(), feed);
        assert_eq!(store.grants().find("grant-1").await.unwrap(), revoked);
        assert!(
            revocations
                .poll(&rs3.client_id, 10)
                .await
                .unwrap()
                .events
                .is_empty()
        );
    }

    pub async fn revoking_an_unknown_grant_is_not_found_and_changes_nothing(store: Arc<dyn Store>) {
        let (_, rs1, _, _) = tpp_and_resource_servers(&store).await;
        let revocations = store.revocations();
        let before = revocations.epoch().await.unwrap();
        assert!(matches!(
            revocations
                .revoke_grant(
                    "grant-9",
                    at(10),
                    &grant_event("set-1", "grant-9", &[&rs1], at(10))
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(revocations.epoch().await.unwrap(), before);
        assert!(revocations.list(0, 10).await.unwrap().is_empty());
        assert_eq!(revocations.latest_seq().await.unwrap(), 0);
        assert!(
            revocations
                .poll(&rs1.client_id, 10)
                .await
                .unwrap()
                .events
                .is_empty()
        );
    }

    pub async fn a_revocation_whose_event_jti_is_taken_changes_nothing(store: Arc<dyn Store>) {
        let (tpp, rs1, _, _) = tpp_and_resource_servers(&store).await;
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        let other = grant("grant-2", &tpp, consent.subject, at(0));
        store.grants().add(&consent).await.unwrap();
        store.grants().add(&other).await.unwrap();
        let token = access("at-1", &tpp, Some(&other), at(0));
        store.access_tokens().add(&token).await.unwrap();
        let revocations = store.revocations();
        let first = grant_event("set-1", "grant-1", &[&rs1], at(10));
        assert!(
            revocations
                .revoke_grant("grant-1", at(10), &first)
                .await
                .unwrap()
        );
        let epoch = revocations.epoch().await.unwrap();
        let feed = revocations.list(0, 10).await.unwrap();

        // The same SET jti again: refused, and the whole revocation is undone.
        let taken = grant_event("set-1", "grant-2", &[&rs1], at(20));
        assert!(matches!(
            revocations.revoke_grant("grant-2", at(20), &taken).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.grants().find("grant-2").await.unwrap(), other);
        assert_eq!(
            store.access_tokens().find(&token.handle).await.unwrap(),
            token
        );
        let taken = feed_event("set-1", &[&rs1], at(20));
        assert!(matches!(
            revocations
                .deny_access_token("jti-1", Some(&token.handle), at(600), at(20), &taken)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(!revocations.is_denied("jti-1").await.unwrap());
        assert_eq!(
            store.access_tokens().find(&token.handle).await.unwrap(),
            token
        );
        assert_eq!(revocations.epoch().await.unwrap(), epoch);
        assert_eq!(revocations.list(0, 10).await.unwrap(), feed);
        assert_eq!(
            revocations.poll(&rs1.client_id, 10).await.unwrap().events,
            feed
        );

        // With a fresh jti, both go through.
        let fresh = grant_event("set-2", "grant-2", &[&rs1], at(20));
        assert!(
            revocations
                .revoke_grant("grant-2", at(20), &fresh)
                .await
                .unwrap()
        );
        let fresh = feed_event("set-3", &[&rs1], at(20));
        assert!(
            revocations
                .deny_access_token("jti-1", None, at(600), at(20), &fresh)
                .await
                .unwrap()
        );
        assert_eq!(
            jtis(&revocations.list(0, 10).await.unwrap()),
            ["set-1", "set-2", "set-3"]
        );
    }

    pub async fn an_access_token_is_denied_once(store: Arc<dyn Store>) {
        let (tpp, rs1, rs2, _) = tpp_and_resource_servers(&store).await;
        let opaque = access("at-1", &tpp, None, at_micros(0));
        let mut revoked_before = access("at-2", &tpp, None, at_micros(0));
        revoked_before.revoked_at = Some(at_micros(5));
        let untouched = access("at-3", &tpp, None, at_micros(0));
        for each in [&opaque, &revoked_before, &untouched] {
            store.access_tokens().add(each).await.unwrap();
        }
        let revocations = store.revocations();
        let before = revocations.epoch().await.unwrap();
        assert!(!revocations.is_denied("jti-opaque").await.unwrap());

        // An opaque token: denied by jti, and its row revoked.
        let event = feed_event("set-1", &[&rs1], at_micros(10));
        assert!(
            revocations
                .deny_access_token(
                    "jti-opaque",
                    Some(&opaque.handle),
                    opaque.expires_at,
                    at_micros(10),
                    &event,
                )
                .await
                .unwrap()
        );
        assert!(revocations.is_denied("jti-opaque").await.unwrap());
        let mut revoked = opaque.clone();
        revoked.revoked_at = Some(at_micros(10));
        assert_eq!(
            store.access_tokens().find(&opaque.handle).await.unwrap(),
            revoked
        );
        assert_eq!(
            store.access_tokens().find(&untouched.handle).await.unwrap(),
            untouched
        );
        let epoch = revocations.epoch().await.unwrap();
        assert!(epoch > before);
        let feed = revocations.list(0, 10).await.unwrap();
        assert_eq!(feed.len(), 1);
        assert_eq!(feed[0], in_feed(&event, feed[0].seq, 1));

        // Again: nothing changes and nothing is queued.
        let again = feed_event("set-2", &[&rs1, &rs2], at_micros(20));
        assert!(
            !revocations
                .deny_access_token(
                    "jti-opaque",
                    Some(&opaque.handle),
                    opaque.expires_at,
                    at_micros(20),
                    &again,
                )
                .await
                .unwrap()
        );
        assert_eq!(
            store.access_tokens().find(&opaque.handle).await.unwrap(),
            revoked
        );
        assert_eq!(revocations.epoch().await.unwrap(), epoch);
        assert_eq!(revocations.list(0, 10).await.unwrap(), feed);
        assert!(
            revocations
                .poll(&rs2.client_id, 10)
                .await
                .unwrap()
                .events
                .is_empty()
        );

        // A JWT access token has no row: only the deny list and the feed change.
        let jwt = feed_event("set-3", &[&rs2], at_micros(30));
        assert!(
            revocations
                .deny_access_token("jti-jwt", None, at_micros(600), at_micros(30), &jwt)
                .await
                .unwrap()
        );
        assert!(revocations.is_denied("jti-jwt").await.unwrap());
        assert!(!revocations.is_denied("jti-other").await.unwrap());
        let later = revocations.epoch().await.unwrap();
        assert!(later > epoch);
        assert_eq!(
            store.access_tokens().find(&untouched.handle).await.unwrap(),
            untouched
        );

        // An opaque token revoked before keeps its first revocation instant.
        let event = feed_event("set-4", &[&rs1], at_micros(40));
        assert!(
            revocations
                .deny_access_token(
                    "jti-revoked",
                    Some(&revoked_before.handle),
                    revoked_before.expires_at,
                    at_micros(40),
                    &event,
                )
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .access_tokens()
                .find(&revoked_before.handle)
                .await
                .unwrap(),
            revoked_before
        );
        assert!(revocations.epoch().await.unwrap() > later);
        assert_eq!(
            jtis(&revocations.list(0, 10).await.unwrap()),
            ["set-1", "set-3", "set-4"]
        );
    }

    pub async fn the_feed_is_polled_and_acknowledged_per_recipient(store: Arc<dyn Store>) {
        let (_, rs1, rs2, rs3) = tpp_and_resource_servers(&store).await;
        let revocations = store.revocations();
        assert_eq!(revocations.latest_seq().await.unwrap(), 0);
        let both = feed_event("set-1", &[&rs1, &rs2], at_micros(10));
        let first = feed_event("set-2", &[&rs1], at_micros(20));
        let second = feed_event("set-3", &[&rs2], at_micros(30));
        for (i, event) in [&both, &first, &second].into_iter().enumerate() {
            assert!(
                revocations
                    .deny_access_token(&format!("jti-{i}"), None, at(600), event.created_at, event)
                    .await
                    .unwrap()
            );
        }
        let feed = revocations.list(0, 10).await.unwrap();
        assert_eq!(jtis(&feed), ["set-1", "set-2", "set-3"]);
        assert!(feed[0].seq < feed[1].seq && feed[1].seq < feed[2].seq);
        assert_eq!(feed[0], in_feed(&both, feed[0].seq, 2));
        assert_eq!(feed[1], in_feed(&first, feed[1].seq, 1));
        assert_eq!(feed[2], in_feed(&second, feed[2].seq, 1));
        assert_eq!(revocations.latest_seq().await.unwrap(), feed[2].seq);
        // Paging the operator's view.
        assert_eq!(revocations.list(0, 2).await.unwrap(), feed[..2]);
        assert_eq!(revocations.list(feed[1].seq, 10).await.unwrap(), feed[2..]);
        assert!(revocations.list(feed[2].seq, 10).await.unwrap().is_empty());

        // Oldest first, up to `max`, and whether more wait.
        let poll = revocations.poll(&rs1.client_id, 1).await.unwrap();
        assert_eq!(poll.events, feed[..1]);
        assert!(poll.more);
        let poll = revocations.poll(&rs1.client_id, 2).await.unwrap();
        assert_eq!(poll.events, feed[..2]);
        assert!(!poll.more);
        let poll = revocations.poll(&rs1.client_id, 0).await.unwrap();
        assert!(poll.events.is_empty());
        assert!(poll.more);
        let poll = revocations.poll(&rs2.client_id, 10).await.unwrap();
        assert_eq!(poll.events, [feed[0].clone(), feed[2].clone()]);
        assert!(!poll.more);
        // Polling does not acknowledge.
        assert_eq!(
            revocations.poll(&rs1.client_id, 10).await.unwrap().events,
            feed[..2]
        );

        // Unknown jtis, and other recipients' events, are ignored.
        let acked = revocations
            .acknowledge(
                &rs1.client_id,
                &[
                    "set-1".into(),
                    "set-9".into(),
                    "set-3".into(),
                    "set-1".into(),
                ],
            )
            .await
            .unwrap();
        assert_eq!(acked, 1);
        let poll = revocations.poll(&rs1.client_id, 10).await.unwrap();
        assert_eq!(poll.events, [in_feed(&first, feed[1].seq, 1)]);
        assert!(!poll.more);
        // The other recipient still has both of its events; the shared one is pending once.
        let poll = revocations.poll(&rs2.client_id, 10).await.unwrap();
        assert_eq!(
            poll.events,
            [in_feed(&both, feed[0].seq, 1), feed[2].clone()]
        );
        // Acknowledging again, or nothing, or as a recipient of nothing, counts nothing.
        assert_eq!(
            revocations
                .acknowledge(&rs1.client_id, &["set-1".into()])
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            revocations.acknowledge(&rs1.client_id, &[]).await.unwrap(),
            0
        );
        assert_eq!(
            revocations
                .acknowledge(&rs3.client_id, &["set-1".into(), "set-2".into()])
                .await
                .unwrap(),
            0
        );

        assert_eq!(
            revocations
                .acknowledge(&rs2.client_id, &["set-1".into(), "set-3".into()])
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            revocations
                .acknowledge(&rs1.client_id, &["set-2".into()])
                .await
                .unwrap(),
            1
        );
        for recipient in [&rs1, &rs2] {
            let poll = revocations.poll(&recipient.client_id, 10).await.unwrap();
            assert!(poll.events.is_empty());
            assert!(!poll.more);
        }
        // Acknowledged events stay in the feed until purged.
        let listed = revocations.list(0, 10).await.unwrap();
        assert_eq!(jtis(&listed), ["set-1", "set-2", "set-3"]);
        assert!(listed.iter().all(|event| event.pending == 0));
        assert_eq!(revocations.latest_seq().await.unwrap(), feed[2].seq);
    }

    pub async fn revocations_of_a_deleted_recipient_go_with_it(store: Arc<dyn Store>) {
        let (_, rs1, rs2, _) = tpp_and_resource_servers(&store).await;
        let revocations = store.revocations();
        let event = feed_event("set-1", &[&rs1, &rs2], at(10));
        assert!(
            revocations
                .deny_access_token("jti-1", None, at(600), at(10), &event)
                .await
                .unwrap()
        );
        store.clients().remove(&rs1.client_id).await.unwrap();
        let feed = revocations.list(0, 10).await.unwrap();
        assert_eq!(feed, [in_feed(&event, feed[0].seq, 1)]);
        assert_eq!(
            revocations.poll(&rs2.client_id, 10).await.unwrap().events,
            feed
        );
    }

    pub async fn concurrent_revocations_of_one_grant_let_exactly_one_through(
        store: Arc<dyn Store>,
    ) {
        let (tpp, rs1, _, _) = tpp_and_resource_servers(&store).await;
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        store
            .refresh_tokens()
            .add(&refresh("rt-1", &consent, at(0)))
            .await
            .unwrap();
        let before = store.revocations().epoch().await.unwrap();

        // All spawned before any is awaited, so that they run at once; each with its own event.
        let attempts: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                let event = grant_event(&format!("set-{i}"), "grant-1", &[&rs1], at(10));
                tokio::spawn(async move {
                    store
                        .revocations()
                        .revoke_grant("grant-1", at(10), &event)
                        .await
                })
            })
            .collect();
        let mut revoked = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(true) => revoked += 1,
                Ok(false) => {}
                Err(other) => panic!("a losing revocation must be false: {other:?}"),
            }
        }
        assert_eq!(revoked, 1, "exactly one revocation wins");
        let feed = store.revocations().list(0, 100).await.unwrap();
        assert_eq!(feed.len(), 1, "exactly one event is queued: {feed:?}");
        assert_eq!(
            store
                .revocations()
                .poll(&rs1.client_id, 100)
                .await
                .unwrap()
                .events,
            feed
        );
        assert!(store.revocations().epoch().await.unwrap() > before);
        assert_eq!(
            store.grants().find("grant-1").await.unwrap().revoked_at,
            Some(at(10))
        );
        assert_eq!(
            store
                .refresh_tokens()
                .find(&SecretHash::of("rt-1"))
                .await
                .unwrap()
                .revoked_at,
            Some(at(10))
        );
    }

    pub async fn concurrent_denials_of_one_jti_let_exactly_one_through(store: Arc<dyn Store>) {
        let (_, rs1, _, _) = tpp_and_resource_servers(&store).await;
        let attempts: Vec<_> = (0..10)
            .map(|i| {
                let store = store.clone();
                let event = feed_event(&format!("set-{i}"), &[&rs1], at(10));
                tokio::spawn(async move {
                    store
                        .revocations()
                        .deny_access_token("jti-1", None, at(600), at(10), &event)
                        .await
                })
            })
            .collect();
        let mut denied = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(true) => denied += 1,
                Ok(false) => {}
                Err(other) => panic!("a losing denial must be false: {other:?}"),
            }
        }
        assert_eq!(denied, 1, "exactly one denial wins");
        assert_eq!(store.revocations().list(0, 100).await.unwrap().len(), 1);
        assert!(store.revocations().is_denied("jti-1").await.unwrap());
    }

    pub async fn a_changed_or_removed_client_moves_the_revocation_epoch(store: Arc<dyn Store>) {
        let (tpp, _, _, _) = tpp_and_resource_servers(&store).await;
        let revocations = store.revocations();
        let before = revocations.epoch().await.unwrap();
        let mut changed = store.clients().find_by_id(&tpp.client_id).await.unwrap();
        changed.updated_at += time::Duration::seconds(1);
        store.clients().update(&changed).await.unwrap();
        let updated = revocations.epoch().await.unwrap();
        assert!(updated > before, "an update moves it");
        store.clients().remove(&tpp.client_id).await.unwrap();
        let removed = revocations.epoch().await.unwrap();
        assert!(removed > updated, "a removal moves it");
        // A change that finds no client changes nothing.
        assert!(matches!(
            store.clients().remove(&tpp.client_id).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(revocations.epoch().await.unwrap(), removed);
    }

    pub async fn the_revocation_epoch_strictly_increases(store: Arc<dyn Store>) {
        let (tpp, rs1, _, _) = tpp_and_resource_servers(&store).await;
        let revocations = store.revocations();
        let mut last = revocations.epoch().await.unwrap();
        // Reading does not move it.
        assert_eq!(revocations.epoch().await.unwrap(), last);
        for _ in 0..3 {
            let bumped = revocations.bump().await.unwrap();
            assert!(bumped > last, "{bumped} after {last}");
            assert_eq!(revocations.epoch().await.unwrap(), bumped);
            last = bumped;
        }
        // Concurrent bumps each get their own value.
        let bumps: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.revocations().bump().await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for bump in bumps {
            seen.push(bump.await.unwrap());
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10, "every bump gets a distinct epoch: {seen:?}");
        assert!(seen[0] > last);
        last = *seen.last().unwrap();
        assert_eq!(revocations.epoch().await.unwrap(), last);

        // Revocations move it too.
        let consent = grant("grant-1", &tpp, Uuid::new_v4(), at(0));
        store.grants().add(&consent).await.unwrap();
        revocations
            .revoke_grant(
                "grant-1",
                at(10),
                &grant_event("set-1", "grant-1", &[&rs1], at(10)),
            )
            .await
            .unwrap();
        let revoked = revocations.epoch().await.unwrap();
        assert!(revoked > last);
        revocations
            .deny_access_token(
                "jti-1",
                None,
                at(600),
                at(20),
                &feed_event("set-2", &[], at(20)),
            )
            .await
            .unwrap();
        assert!(revocations.epoch().await.unwrap() > revoked);
    }

    pub async fn revocation_purge_removes_only_what_it_should(store: Arc<dyn Store>) {
        let (_, rs1, rs2, _) = tpp_and_resource_servers(&store).await;
        let revocations = store.revocations();
        let now = at(1000);
        let undelivered_before = at(50);
        let acknowledged_before = at(200);
        // Deny-list entries: expired, expiring right now, live.
        for (jti, expires_at) in [("expired", at(999)), ("expiring", now), ("live", at(2000))] {
            revocations
                .deny_access_token(
                    jti,
                    None,
                    expires_at,
                    at(0),
                    &feed_event(&format!("set-{jti}"), &[], at(300)),
                )
                .await
                .unwrap();
        }
        // Events: never acknowledged and long undelivered; old and still undelivered by rs-1;
        // old and acknowledged by all; old without recipients; recent and acknowledged.
        let abandoned = feed_event("abandoned", &[&rs1, &rs2], at(10));
        let pending = feed_event("pending", &[&rs1, &rs2], at(100));
        let acknowledged = feed_event("acknowledged", &[&rs1], at(100));
        let unaddressed = feed_event("unaddressed", &[], at(100));
        let recent = feed_event("recent", &[&rs2], at(200));
        for (i, event) in [&abandoned, &pending, &acknowledged, &unaddressed, &recent]
            .into_iter()
            .enumerate()
        {
            revocations
                .deny_access_token(&format!("jti-{i}"), None, at(2000), event.created_at, event)
                .await
                .unwrap();
        }
        assert_eq!(
            revocations
                .acknowledge(&rs1.client_id, &["acknowledged".into()])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            revocations
                .acknowledge(&rs2.client_id, &["pending".into(), "recent".into()])
                .await
                .unwrap(),
            2
        );
        let feed = revocations.list(0, 100).await.unwrap();
        let seq_of = |jti: &str| feed.iter().find(|event| event.jti == jti).unwrap().seq;

        // One deny-list entry, two abandoned deliveries, and three events.
        assert_eq!(
            revocations
                .purge(now, acknowledged_before, undelivered_before)
                .await
                .unwrap(),
            6
        );
        assert!(!revocations.is_denied("expired").await.unwrap());
        assert!(revocations.is_denied("expiring").await.unwrap());
        assert!(revocations.is_denied("live").await.unwrap());
        assert!(revocations.is_denied("jti-0").await.unwrap());
        let kept = revocations.list(0, 100).await.unwrap();
        assert_eq!(
            jtis(&kept),
            [
                "set-expired",
                "set-expiring",
                "set-live",
                "pending",
                "recent"
            ]
        );
        assert_eq!(kept[3], in_feed(&pending, seq_of("pending"), 1));
        assert_eq!(kept[4], in_feed(&recent, seq_of("recent"), 0));
        assert_eq!(
            revocations.poll(&rs1.client_id, 10).await.unwrap().events,
            kept[3..4]
        );
        assert!(
            revocations
                .poll(&rs2.client_id, 10)
                .await
                .unwrap()
                .events
                .is_empty()
        );
        // The latest event is still there, so the change check does not go back.
        assert_eq!(
            revocations.latest_seq().await.unwrap(),
            feed.last().unwrap().seq
        );

        // Again: nothing more goes.
        assert_eq!(
            revocations
                .purge(now, acknowledged_before, undelivered_before)
                .await
                .unwrap(),
            0
        );
    }

    pub async fn revocations_survive_reopening(backend: Backend) {
        let db = TestDatabase::new(backend).await;
        let rs1 = client("rs-1", ClientProfile::Fapi2);
        let event = feed_event("set-1", &[&rs1], at_micros(10));
        let epoch = {
            let store = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
                .await
                .unwrap();
            store.clients().add(&rs1).await.unwrap();
            store
                .revocations()
                .deny_access_token("jti-1", None, at_micros(600), at_micros(10), &event)
                .await
                .unwrap();
            store.revocations().epoch().await.unwrap()
        };
        let store = portcullis_store::connect_and_migrate(db.url(), &PoolOptions::default())
            .await
            .unwrap();
        let revocations = store.revocations();
        assert_eq!(revocations.epoch().await.unwrap(), epoch);
        assert!(revocations.is_denied("jti-1").await.unwrap());
        let feed = revocations.list(0, 10).await.unwrap();
        assert_eq!(feed, [in_feed(&event, feed[0].seq, 1)]);
        assert_eq!(
            revocations.poll(&rs1.client_id, 10).await.unwrap().events,
            feed
        );
        // Sequence numbers are not reused after reopening.
        let next = feed_event("set-2", &[&rs1], at_micros(20));
        revocations
            .deny_access_token("jti-2", None, at_micros(600), at_micros(20), &next)
            .await
            .unwrap();
        assert!(revocations.latest_seq().await.unwrap() > feed[0].seq);
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
            #[tokio::test]
            async fn revocations_survive_reopening() {
                super::suite::revocations_survive_reopening(super::Backend::Postgres).await;
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
            #[tokio::test]
            async fn revocations_survive_reopening() {
                super::suite::revocations_survive_reopening(super::Backend::Sqlite).await;
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
    grants_round_trip_with_all_fields,
    grant_ids_are_unique_and_name_a_known_client,
    a_grant_is_updated_only_until_it_is_revoked,
    a_grant_records_its_last_use_at_most_once_a_minute,
    grants_are_listed_per_subject_newest_first,
    grants_go_with_their_client,
    a_code_is_redeemed_once_then_reported_reused,
    code_handles_are_unique_and_name_a_known_client_and_grant,
    codes_let_exactly_one_of_many_concurrent_redeems_through,
    codes_go_with_their_grant_and_client,
    codes_purge_removes_only_expired_ones,
    sessions_round_trip_with_all_fields_until_they_expire,
    session_handles_are_unique_and_name_a_known_user,
    a_session_is_touched_and_removed_idempotently,
    sessions_are_removed_per_user,
    sessions_go_with_their_user,
    sessions_purge_removes_only_expired_ones,
    interactions_round_trip_until_they_expire,
    interaction_handles_are_unique_and_name_a_known_client,
    an_interaction_advances_only_from_the_expected_state,
    interactions_let_exactly_one_of_many_concurrent_advances_through,
    an_interaction_is_removed_once,
    interactions_go_with_their_client,
    interactions_purge_removes_only_expired_ones,
    refresh_tokens_round_trip_with_all_fields,
    refresh_token_handles_are_unique_and_name_a_known_client_and_grant,
    a_refresh_token_is_rotated_once,
    a_failed_rotation_leaves_the_old_refresh_token_unrotated,
    refresh_tokens_let_exactly_one_of_many_concurrent_rotations_through,
    revoking_a_grant_revokes_its_refresh_tokens_rotated_or_not,
    refresh_tokens_go_with_their_grant_and_client,
    refresh_tokens_purge_removes_only_expired_ones,
    access_tokens_round_trip_with_all_fields,
    access_token_handles_are_unique_and_name_a_known_client_and_grant,
    denying_an_access_token_revokes_its_row_alone_even_when_expired,
    revoking_a_grant_revokes_its_access_tokens_even_expired,
    access_tokens_go_with_their_grant_and_client,
    access_tokens_purge_removes_only_expired_ones,
    revoking_a_grant_revokes_its_tokens_bumps_the_epoch_and_queues_one_event,
    revoking_an_unknown_grant_is_not_found_and_changes_nothing,
    a_revocation_whose_event_jti_is_taken_changes_nothing,
    an_access_token_is_denied_once,
    the_feed_is_polled_and_acknowledged_per_recipient,
    revocations_of_a_deleted_recipient_go_with_it,
    concurrent_revocations_of_one_grant_let_exactly_one_through,
    concurrent_denials_of_one_jti_let_exactly_one_through,
    the_revocation_epoch_strictly_increases,
    a_changed_or_removed_client_moves_the_revocation_epoch,
    revocation_purge_removes_only_what_it_should,
);
