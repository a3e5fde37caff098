//! The address's client-authentication failure budget at `/token` with real client
//! authentication (`crate::ratelimit::middleware`): a request reserves one failure on arrival
//! and gives it back once its client has authenticated, so parallel bad assertions never get
//! more verifications than the budget (checklist #14: a forged assertion is `invalid_client`;
//! the "client-assertion and DPoP failures count against the source address").

use futures_util::FutureExt as _;
use futures_util::future::join_all;

use super::*;
use crate::ratelimit::config::Limit;

async fn limited(auth_failures: u32) -> Harness {
    crate::routes::tests::harness_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.ip.auth_failures = Limit {
            quota: auth_failures,
            window_secs: 300,
        };
    })
    .await
}

/// An assertion naming `victim`, signed by a key the victim never registered.
fn forged(h: &Harness, victim: &Tpp) -> String {
    sign_with_kid(
        &dpop_key(),
        victim.key.kid(),
        &assertion_claims(h, &victim.id),
    )
}

fn good_request(h: &Harness, tpp: &Tpp) -> Request<Body> {
    token_request(
        &with_assertion(&tpp.assertion(h), &[]),
        &[("dpop", &dpop_proof(h, &dpop_key()))],
    )
}

/// The `r` of the auth-failure bucket in an answer's `RateLimit` field.
fn failures_left(answer: &Answer) -> u32 {
    let fields = answer.headers["ratelimit"].to_str().unwrap();
    let item = fields
        .split(", ")
        .find(|f| f.starts_with("\"auth-failures\""))
        .unwrap_or_else(|| panic!("no auth-failures in {fields}"));
    let r = item.split(';').find_map(|p| p.strip_prefix("r=")).unwrap();
    r.parse().unwrap()
}

fn count(answers: &[Answer], status: StatusCode) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

#[tokio::test]
async fn parallel_forged_assertions_get_no_more_verifications_than_the_failure_budget() {
    let h = limited(3).await;
    serve_accounts(&h).await;
    let victim = private_key_jwt_client(&h).await;
    // Forty at once: every one arrives before the first has failed.
    let answers = join_all((0..40).map(|_| {
        let request = token_request(
            &with_assertion(&forged(&h, &victim), &[]),
            &[("dpop", &dpop_proof(&h, &dpop_key()))],
        );
        send(&h, request)
    }))
    .await;
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 3);
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 37);
    for answer in &answers {
        if answer.status == StatusCode::UNAUTHORIZED {
            answer.invalid_client("");
        } else {
            answer.refused(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "auth-failures",
            );
        }
    }
    // The budget is spent: even the victim's good request from this address waits. (From its
    // own address it is unaffected: tests/e2e/abuse_limits.rs.)
    let answer = send(&h, good_request(&h, &victim)).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // A window later the budget is whole again, and the good request passes.
    h.clock.advance(time::Duration::seconds(300));
    let answer = send(&h, good_request(&h, &victim)).await;
    answer.issued("DPoP", "accounts");
    assert_eq!(failures_left(&answer), 3);
}

#[tokio::test]
async fn an_authenticated_client_gives_its_reservation_back() {
    let h = limited(3).await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    // Many more good requests than the budget, one after another: none is refused, and every
    // answer shows the whole budget.
    for _ in 0..10 {
        let answer = send(&h, good_request(&h, &tpp)).await;
        answer.issued("DPoP", "accounts");
        assert_eq!(failures_left(&answer), 3);
    }
    // In parallel, the budget bounds the authentications in progress (the documented price of
    // the reservation): three at a time; the others are told to come back.
    let answers = join_all((0..10).map(|_| send(&h, good_request(&h, &tpp)))).await;
    assert_eq!(count(&answers, StatusCode::OK), 3);
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 7);
    // Nothing failed, so nothing was kept.
    let answer = send(&h, good_request(&h, &tpp)).await;
    answer.issued("DPoP", "accounts");
    assert_eq!(failures_left(&answer), 3);
}

#[tokio::test]
async fn a_bad_dpop_proof_after_authentication_still_counts() {
    let h = limited(3).await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    for left in [2, 1, 0] {
        // Checklist #32: a proof for another URL; the client itself authenticated.
        let proof = dpop_proof_at(&h, &key, "POST", "https://evil.example/token", 0);
        let answer = send(
            &h,
            token_request(
                &with_assertion(&tpp.assertion(&h), &[]),
                &[("dpop", &proof)],
            ),
        )
        .await;
        answer.refused(StatusCode::BAD_REQUEST, "invalid_dpop_proof", "htu");
        assert_eq!(failures_left(&answer), left);
    }
    let answer = send(&h, good_request(&h, &tpp)).await;
    answer.refused(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "auth-failures",
    );
}

#[tokio::test]
async fn an_abandoned_request_gives_its_reservation_back() {
    let h = limited(1).await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    // The client goes away while its request waits on the store: the handler is dropped.
    let pending = h
        .router
        .clone()
        .oneshot(good_request(&h, &tpp))
        .now_or_never();
    assert!(pending.is_none(), "the request must still be in progress");
    // The reservation comes back on a task of its own; let it run.
    let mut answer = None;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        let probe = h.state.rate_limits.auth_failure_check(
            &crate::source_ip::SourceIp::UNKNOWN,
            portcullis_core::ratelimit::Op::Probe,
        );
        let applied = h.state.rate_limits.check(&[probe]).await.unwrap();
        if applied[0].outcome.remaining == 1 {
            answer = Some(send(&h, good_request(&h, &tpp)).await);
            break;
        }
    }
    let answer = answer.expect("the reservation never came back");
    answer.issued("DPoP", "accounts");
    assert_eq!(failures_left(&answer), 1);
}
