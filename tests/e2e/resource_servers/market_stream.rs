//! `market-stream` sessions with tokens from the real FAPI flow: ticks for the instruments the
//! scope allows, an error for the others; the session closed with 4401 when the customer
//! withdraws the consent (seen through the revocation feed, within two seconds) or when the token
//! expires without renewal, and kept open by an in-band renewal (SP-5.3.4: expiry and revocation
//! are verified for the whole life of a session, not only at the upgrade).
//!
//! Short-lived tokens come from a refresh made while the authorization server's clock is set back
//! ([`short_lived_token`]), so no test waits for a real token lifetime.

use std::time::{Duration, Instant};

use portcullis_testkit::example::Example;
use reqwest::Method;
use serde_json::{Value, json};

use super::harness::{
    Api, Choice, PATIENCE, consent, keys_for_clock_travel, launch, short_lived_token, start_bank,
    unix_now, withdraw,
};
use super::websocket::{Incoming, Session};
use crate::flow::{Auth, Bank, Binding, Tpp};
use crate::oauth::claims_of;

/// What the providers ask for: one instrument, not the whole registration.
const TICKS: &[(&str, &str)] = &[
    ("scope", "openid ticks:EURUSD"),
    ("authorization_details", ""),
];
/// How long short-lived tokens live from the real now.
const TTL: i64 = 6;
/// The authorization server's access-token lifetime in the expiry tests (its shortest).
const LIFETIME: i64 = 60;

/// A provider of market data apps, registered for two instruments.
async fn ticks_tpp(bank: &Bank, auth: Auth, binding: Binding) -> Tpp {
    bank.tpp_with(
        &format!("Ticks {auth:?} {binding:?}"),
        auth,
        binding,
        "ES256",
        &json!({"scope": "openid ticks:EURUSD ticks:GBPUSD"}),
    )
    .await
}

/// Subscribes to `instruments` and waits for the confirmation.
async fn subscribe(session: &mut Session, instruments: &[&str]) -> Value {
    session
        .send(&json!({"type": "subscribe", "instruments": instruments}))
        .await;
    session.expect("subscribed").await
}

/// Waits for the next tick, which must be of `instrument` (the only one subscribed to); what
/// it said.
async fn tick(session: &mut Session, instrument: &str) -> Value {
    match session.next(PATIENCE).await {
        Incoming::Message(m) if m["type"] == "tick" => {
            assert!(m["price"].is_string() && m["time"].is_string(), "{m}");
            assert_eq!(m["instrument"], instrument, "a tick not subscribed to: {m}");
            m
        }
        other => panic!("expected a tick of {instrument}, got {other:?}"),
    }
}

/// The access token's `exp`.
fn exp(token: &str) -> i64 {
    claims_of(token)["exp"].as_i64().unwrap()
}

/// The upgrade headers of a certificate-bound token.
fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// A market-stream with a certificate-bound provider whose customer consented; the provider's
/// refresh token and the access-token lifetime. The authorization server's access tokens live
/// the shortest allowed time (60 s), and it can sign with its clock set back for
/// [`short_lived_token`].
async fn certificate_session_setup() -> (Bank, Api, Tpp, crate::flow::Holder, String, i64) {
    let bank = start_bank(&format!(
        "[keys]\njwks_max_age_secs = 2\nrefresh_interval_secs = 1\n\
         [tokens]\naccess_token_lifetime_secs = {LIFETIME}\n"
    ))
    .await;
    keys_for_clock_travel(&bank, LIFETIME - TTL).await;
    let api = launch(&bank, Example::MarketStream, &[]).await;
    let tpp = ticks_tpp(&bank, Auth::TlsClientAuth, Binding::Certificate).await;
    let holder = bank.holder(&tpp);
    let given = consent(&bank, &tpp, &holder, TICKS, Choice::Nothing).await;
    let lifetime = given.reply.body["expires_in"].as_i64().unwrap();
    assert_eq!(lifetime, LIFETIME, "{}", given.reply.body);
    (bank, api, tpp, holder, given.refresh_token(), lifetime)
}

#[tokio::test]
async fn sp_5_3_4_market_stream_ticks_within_the_scope_and_closes_4401_within_2s_of_a_consent_withdrawal()
 {
    let bank = start_bank("").await;
    let app = bank.app();
    let api = launch(&bank, Example::MarketStream, &[]).await;
    api.wait_for_feed("live").await;
    let tpp = ticks_tpp(&bank, Auth::PrivateKeyJwt, Binding::Dpop).await;
    let holder = bank.holder(&tpp);
    let mut given = consent(&bank, &tpp, &holder, TICKS, Choice::Nothing).await;
    let token = given.access_token();
    let proof = || api.proof(&holder.dpop, &Method::GET, "/stream", &token);
    let dpop_headers =
        |proof: String| vec![("Authorization", format!("DPoP {token}")), ("DPoP", proof)];

    // SP-5.3.4: never a token in the query string; and no upgrade without a token.
    let query = format!("/stream?access_token={token}");
    let refused = Session::open(&api, None, &query, &[]).await.err().unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body);
    let refused = Session::open(&api, None, "/stream", &[])
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.body);

    // The upgrade with a DPoP proof for GET <public-url>/stream (RFC 9449 §7.1).
    let mut session = Session::connect(&api, None, &dpop_headers(proof())).await;
    let subscribed = subscribe(&mut session, &["EURUSD"]).await;
    assert_eq!(subscribed["instruments"], json!(["EURUSD"]));
    tick(&mut session, "EURUSD").await;

    // An instrument the scope does not allow: an error, and the session goes on.
    session
        .send(&json!({"type": "subscribe", "instruments": ["GBPUSD"]}))
        .await;
    let error = session.expect("error").await;
    assert_eq!(error["error"], "insufficient_scope", "{error}");
    assert!(error["error_description"].is_string(), "{error}");
    tick(&mut session, "EURUSD").await;

    // A replayed upgrade proof opens nothing (checklist #31).
    let replayed_proof = proof();
    let _second = Session::connect(&api, None, &dpop_headers(replayed_proof.clone())).await;
    let replay = Session::open(&api, None, "/stream", &dpop_headers(replayed_proof))
        .await
        .err()
        .unwrap();
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert_eq!(
        replay.body["error"], "invalid_dpop_proof",
        "{}",
        replay.body
    );

    // The customer withdraws the consent at /account: the session ends with 4401 within 2 s.
    let grant_id = given.grant_id();
    withdraw(app, &mut given.browser, &grant_id).await;
    let withdrawn = Instant::now();
    let (code, reason, at) = session.until_closed(PATIENCE).await;
    let took = at.saturating_duration_since(withdrawn);
    assert_eq!((code, reason.as_str()), (4401, "consent withdrawn"));
    assert!(
        took <= Duration::from_secs(2),
        "the session was closed {took:?} after the withdrawal"
    );
    // Nor can the token open another one.
    let refused = Session::open(&api, None, "/stream", &dpop_headers(proof()))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_token", "{}", refused.body);
}

#[tokio::test]
async fn sp_5_3_4_market_stream_closes_a_session_4401_when_its_token_expires_without_renewal() {
    let (bank, api, tpp, holder, refresh_token, lifetime) = certificate_session_setup().await;
    let token = short_lived_token(&bank, &tpp, &holder, &refresh_token, lifetime, TTL).await;
    let expires = exp(&token);

    let mut session = Session::connect(&api, Some(&holder.cert), &bearer(&token)).await;
    subscribe(&mut session, &["EURUSD"]).await;
    tick(&mut session, "EURUSD").await;
    let (code, reason, _) = session
        .until_closed(Duration::from_secs(u64::try_from(TTL).unwrap()) + PATIENCE)
        .await;
    let closed_at = unix_now();
    assert_eq!((code, reason.as_str()), (4401, "access token expired"));
    assert!(
        closed_at >= expires - 1,
        "closed at {closed_at}, before the token's exp {expires}"
    );
    assert!(
        closed_at <= expires + 3,
        "closed at {closed_at}, long after the token's exp {expires}"
    );
}

#[tokio::test]
async fn market_stream_keeps_a_session_renewed_in_band_open_past_the_first_tokens_expiry() {
    let (bank, api, tpp, holder, refresh_token, lifetime) = certificate_session_setup().await;
    let app = bank.app();
    let first = short_lived_token(&bank, &tpp, &holder, &refresh_token, lifetime, TTL).await;
    let first_exp = exp(&first);

    let mut session = Session::connect(&api, Some(&holder.cert), &bearer(&first)).await;
    subscribe(&mut session, &["EURUSD"]).await;
    tick(&mut session, "EURUSD").await;

    // Before it expires, the app renews in band with a fresh token from a refresh, bound to the
    // same certificate.
    let reply = tpp
        .token(
            app,
            &holder,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let renewed_token = reply.body["access_token"].as_str().unwrap().to_owned();
    assert!(
        unix_now() < first_exp,
        "the renewal must come before the first token expires"
    );
    session
        .send(&json!({"type": "renew", "access_token": renewed_token}))
        .await;
    let renewed = session.expect("renewed").await;
    assert_eq!(renewed["expires_at"], exp(&renewed_token), "{renewed}");

    // Ticks keep coming past the first token's exp (with a margin for the example's checks).
    let deadline = Instant::now() + PATIENCE;
    let mut after_exp = 0;
    while after_exp < 3 || unix_now() <= first_exp + 2 {
        assert!(
            Instant::now() < deadline,
            "no ticks past the first token's exp"
        );
        let left = deadline.saturating_duration_since(Instant::now());
        match session.next(left).await {
            Incoming::Message(m) if m["type"] == "tick" => {
                if unix_now() > first_exp {
                    after_exp += 1;
                }
            }
            other => panic!("the renewed session must go on, got {other:?}"),
        }
    }

    // A renewal with someone else's token is refused, and the session continues.
    let stranger = ticks_tpp(&bank, Auth::TlsClientAuth, Binding::Certificate).await;
    let stranger_holder = bank.holder(&stranger);
    let other = consent(&bank, &stranger, &stranger_holder, TICKS, Choice::Nothing).await;
    session
        .send(&json!({"type": "renew", "access_token": other.access_token()}))
        .await;
    let error = session.expect("error").await;
    assert_eq!(error["error"], "invalid_token", "{error}");
    tick(&mut session, "EURUSD").await;
}
