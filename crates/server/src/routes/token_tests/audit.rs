//! The security-event trail of the token endpoint: `token.issued` for every token response, with
//! who got what and never a token, durable before the answer (a token whose event cannot be
//! committed is not handed out); and `client_auth.failure` for a refused client.

use portcullis_core::audit::RecordedEvent;
use portcullis_core::store::EventFilter;

use super::code::{flow, issue_code, redeem, refresh, verify_ours};
use super::*;

/// The events of type `action`, oldest first.
async fn events_of(h: &Harness, action: &str) -> Vec<RecordedEvent> {
    let filter = EventFilter {
        action: Some(action.into()),
        ..EventFilter::default()
    };
    h.state.store.events().find(&filter, 0, 100).await.unwrap()
}

#[tokio::test]
async fn every_token_response_is_recorded_with_its_jti_and_binding_and_never_a_token() {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    let key = dpop_key();
    let answer = redeem(&h, &f.tpp, &code, &key, &[]).await;
    let access_token = answer.issued("DPoP", "openid accounts");
    let refresh_token = answer.body["refresh_token"].as_str().unwrap().to_owned();
    let id_token = answer.body["id_token"].as_str().unwrap().to_owned();
    let claims = verify_ours(&h, &access_token, ACCOUNTS).await;

    let refreshed = refresh(&h, &f.tpp, &refresh_token, Some(&key), &[]).await;
    let second = refreshed.issued("DPoP", "openid accounts");
    let second_claims = verify_ours(&h, &second, ACCOUNTS).await;

    let issued = events_of(&h, "token.issued").await;
    assert_eq!(issued.len(), 2);
    let (code_event, refresh_event) = (&issued[0].event, &issued[1].event);
    assert_eq!(code_event.actor, format!("client:{}", f.tpp.id));
    assert_eq!(code_event.client_id.as_deref(), Some(f.tpp.id.as_str()));
    assert_eq!(code_event.subject, Some(f.user.to_string()));
    let details = Value::Object(code_event.details.clone());
    assert_eq!(details["grant_type"], "authorization_code");
    assert_eq!(details["jti"], claims["jti"]);
    assert_eq!(details["grant_id"], f.grant_id);
    assert_eq!(details["refresh_token_issued"], true);
    assert_eq!(details["token_format"], "jwt");
    assert_eq!(
        details["binding"],
        json!({"kind": "dpop", "jkt": thumbprint(&key)})
    );
    let details = Value::Object(refresh_event.details.clone());
    assert_eq!(details["grant_type"], "refresh_token");
    assert_eq!(details["jti"], second_claims["jti"]);
    assert_eq!(details["refresh_token_issued"], false, "FAPI: not rotated");
    // Each event is chained, and carries the request it came from.
    for recorded in &issued {
        assert!(recorded.link.is_some());
        assert!(recorded.event.request_id.is_some());
    }

    // A client-credentials token: the client is the subject.
    let tpp = private_key_jwt_client(&h).await;
    let cc = post_assertion(&h, &tpp.assertion(&h), &[("scope", "accounts")]).await;
    let cc_token = cc.issued("DPoP", "accounts");
    let issued = events_of(&h, "token.issued").await;
    let last = &issued.last().unwrap().event;
    assert_eq!(last.details["grant_type"], "client_credentials");
    assert_eq!(last.subject.as_deref(), Some(tpp.id.as_str()));
    assert_eq!(last.details["refresh_token_issued"], false);

    // Never a token, a code, or an assertion anywhere in the trail.
    let trail = h.state.store.events().list(0, 1000).await.unwrap();
    let text = format!("{trail:?}");
    for secret in [
        &access_token,
        &refresh_token,
        &id_token,
        &second,
        &cc_token,
        &code,
    ] {
        assert!(!text.contains(secret.as_str()), "a secret in the trail");
    }
}

/// Makes every insert into the trail fail, as a database that refuses writes would.
async fn break_the_trail(h: &Harness) {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&h.state.config.database_url())
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER trail_down BEFORE INSERT ON security_events BEGIN SELECT RAISE(ABORT, 'the trail is down'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_token_whose_event_cannot_be_recorded_is_not_handed_out() {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    let tpp = private_key_jwt_client(&h).await;
    break_the_trail(&h).await;

    let answer = redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await;
    answer.refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server could not complete the request",
    );
    assert!(answer.body.get("access_token").is_none());
    assert!(answer.body.get("refresh_token").is_none());

    let cc = post_assertion(&h, &tpp.assertion(&h), &[("scope", "accounts")]).await;
    cc.refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server could not complete the request",
    );
    assert!(cc.body.get("access_token").is_none());
}

#[tokio::test]
async fn a_refused_client_authentication_is_recorded_with_the_client_it_named() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let other = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let forged = sign(&other, &assertion_claims(&h, &tpp.id));
    post_assertion(&h, &forged, &[("scope", "accounts")])
        .await
        .invalid_client("");

    let refused = events_of(&h, "client_auth.failure").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let event = &refused[0].event;
    assert_eq!(event.actor, "unauthenticated");
    assert_eq!(event.subject.as_deref(), Some(tpp.id.as_str()));
    // The client it named did not prove itself: not in the client column the admin API filters.
    assert_eq!(event.client_id, None);
    assert_eq!(event.details["named_client_id"], tpp.id.as_str());
    assert_eq!(event.details["endpoint"], "/token");
    assert_eq!(event.details["reason"], "invalid_assertion");
    assert!(!format!("{event:?}").contains(&forged));

    // A request that cannot even say which client it is (two methods at once) names none.
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_id", tpp.id.as_str()),
        ("client_secret", "guess"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", forged.as_str()),
    ];
    let answer = send(&h, token_request(&pairs, &[])).await;
    assert_eq!(answer.body["error"], "invalid_request", "{}", answer.body);
    let refused = events_of(&h, "client_auth.failure").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    let malformed = &refused[1].event;
    assert_eq!(malformed.details["reason"], "malformed");
    assert_eq!(malformed.subject, None);
    assert!(!malformed.details.contains_key("named_client_id"));
}
