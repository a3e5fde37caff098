//! The revocation event feed cut off: `bank-api` polls the feed through a forwarder the test
//! cuts. Once the feed lags beyond `--feed-max-lag-secs`, a good token is still served, now
//! asked about at the authorization server (introspection), so a revocation made while the feed
//! is down is refused at the very next request (SP-5.3.4: revocation is verified).

use portcullis_testkit::example::Example;
use reqwest::Method;

use super::harness::{Choice, Forwarder, assert_refused, consent, launch, start_bank};
use crate::flow::{Auth, Binding};
use crate::oauth::Reply;

#[tokio::test]
async fn sp_5_3_4_with_the_revocation_feed_cut_off_bank_api_introspects_and_refuses_a_revoked_token_at_once()
 {
    let bank = start_bank("").await;
    let app = bank.app();
    // The feed's poll endpoint is the AS's mTLS listener, reached through the forwarder.
    let forwarder = Forwarder::start(app.mtls_listen).await;
    let events_url = format!("https://127.0.0.1:{}/events", forwarder.addr.port());
    let api = launch(
        &bank,
        Example::BankApi,
        &["--events-url", &events_url, "--feed-max-lag-secs", "3"],
    )
    .await;
    api.wait_for_feed("live").await;

    let tpp = bank
        .tpp(Auth::TlsClientAuth, Binding::Certificate, "ES256")
        .await;
    let holder = bank.holder(&tpp);
    let given = consent(&bank, &tpp, &holder, &[], Choice::Account(0)).await;
    let token = given.access_token();
    let cert = Some(&holder.cert);
    let served = Reply::send(api.bearer(Method::GET, "/accounts", &token, cert)).await;
    assert_eq!(served.status, 200, "{}", served.body);

    // The feed goes down: live connections closed, new ones refused. Within the allowed lag
    // (plus a poll) the example says it lags.
    forwarder.cut().await;
    api.wait_for_feed("lagging").await;

    // A good token still works, asked about at the authorization server.
    let before = api.counter("introspections").await;
    let served = Reply::send(api.bearer(Method::GET, "/accounts", &token, cert)).await;
    assert_eq!(served.status, 200, "{}", served.body);
    let after = api.counter("introspections").await;
    assert!(
        after > before,
        "a lagging feed makes the example introspect ({before} → {after})"
    );

    // The provider revokes the token (RFC 7009, on the mTLS listener with its certificate)…
    let revoked = Reply::send(
        app.client(cert)
            .post(app.mtls_url("/revoke"))
            .form(&[("token", token.as_str()), ("client_id", tpp.id.as_str())]),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    // …and the very next request is refused, although no event can arrive.
    let refused = Reply::send(api.bearer(Method::GET, "/accounts", &token, cert)).await;
    assert_refused(&refused, 401, "invalid_token", "Bearer");
    assert_eq!(api.feed_state().await, "lagging");
}
