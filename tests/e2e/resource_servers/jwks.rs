//! A key rotation at the authorization server while requests flow to `bank-api`: the new key is
//! published (a JWKS max-age of 2 s, a key refresh of 1 s: it signs about 3 s later) before it
//! signs, the example follows the JWKS, and not one request fails, before, during or after the
//! switch to the new `kid` (SP-5.4.3: keys are selected by `kid`).

use std::collections::HashSet;
use std::time::Instant;

use portcullis_testkit::example::Example;
use reqwest::Method;

use super::harness::{Choice, PATIENCE, consent, launch, rotate_keys, start_bank};
use crate::flow::{Auth, Binding};
use crate::oauth::{Reply, header_of};

#[tokio::test]
async fn bank_api_accepts_every_token_across_a_key_rotation_at_the_authorization_server() {
    let bank = start_bank("[keys]\njwks_max_age_secs = 2\nrefresh_interval_secs = 1\n").await;
    let app = bank.app();
    let api = launch(&bank, Example::BankApi, &["--jwks-min-refresh-secs", "1"]).await;
    let tpp = bank
        .tpp(Auth::TlsClientAuth, Binding::Certificate, "ES256")
        .await;
    let holder = bank.holder(&tpp);
    let given = consent(&bank, &tpp, &holder, &[], Choice::Account(0)).await;
    let refresh_token = given.refresh_token();
    let cert = Some(&holder.cert);
    let first_kid = header_of(&given.access_token())["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let served =
        Reply::send(api.bearer(Method::GET, "/accounts", &given.access_token(), cert)).await;
    assert_eq!(served.status, 200, "{}", served.body);

    // The operator rotates every key: each new one is published now and signs later.
    let new_kids: HashSet<String> = rotate_keys(&bank, &[]).await.into_iter().collect();
    assert!(!new_kids.contains(&first_kid), "{new_kids:?}");

    // Requests keep flowing, each with a fresh token, until one signed with a new key has been
    // accepted. Every one must be served.
    let deadline = Instant::now() + PATIENCE;
    let mut served_by_kid: Vec<(String, u32)> = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no token signed with a new key within {PATIENCE:?}: {served_by_kid:?}"
        );
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
        assert_eq!(reply.status, 200, "refresh: {}", reply.body);
        let token = reply.body["access_token"].as_str().unwrap();
        let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
        let served = Reply::send(api.bearer(Method::GET, "/accounts", token, cert)).await;
        assert_eq!(
            served.status, 200,
            "a token signed with {kid} was refused after {served_by_kid:?}: {}",
            served.body
        );
        match served_by_kid.last_mut() {
            Some((last, n)) if *last == kid => *n += 1,
            _ => served_by_kid.push((kid.clone(), 1)),
        }
        if new_kids.contains(&kid) {
            break;
        }
    }
    assert_eq!(served_by_kid[0].0, first_kid, "{served_by_kid:?}");
    assert!(api.counter("jwks_fetches").await >= 2);
}
