//! `bank-api` with tokens from the real FAPI flow: the account the customer granted, to the
//! holder of the certificate or DPoP key the token is bound to, and to nobody else (checklist
//! #29–#31, SP-5.3.4); a payment within the consent, once.

use portcullis_testkit::certs::ClientIdentity;
use portcullis_testkit::example::Example;
use reqwest::Method;
use serde_json::json;

use super::harness::{Choice, assert_refused, challenges, consent, launch, start_bank};
use crate::flow::{Auth, Binding};
use crate::oauth::{Reply, claims_of};

#[tokio::test]
async fn checklist_29_30_31_bank_api_serves_the_granted_account_only_to_the_holder_of_the_bound_token()
 {
    let bank = start_bank("").await;
    let api = launch(&bank, Example::BankApi, &[]).await;

    // A provider with certificate-bound tokens; the customer shares one of their two accounts.
    let tpp = bank
        .tpp(Auth::TlsClientAuth, Binding::Certificate, "ES256")
        .await;
    let holder = bank.holder(&tpp);
    let given = consent(&bank, &tpp, &holder, &[], Choice::Account(1)).await;
    let token = given.access_token();
    let granted = given.chosen.clone().unwrap();
    let other = given.accounts[0].clone();
    assert_ne!(granted, other);

    // On the connection presenting the certificate: the granted account only.
    let cert = Some(&holder.cert);
    let list = Reply::send(api.bearer(Method::GET, "/accounts", &token, cert)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.header("cache-control"), Some("no-store"));
    let ids: Vec<&str> = list.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [granted.as_str()], "{}", list.body);
    let one =
        Reply::send(api.bearer(Method::GET, &format!("/accounts/{granted}"), &token, cert)).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["id"], granted.as_str());
    let balances = Reply::send(api.bearer(
        Method::GET,
        &format!("/accounts/{granted}/balances"),
        &token,
        cert,
    ))
    .await;
    assert_eq!(balances.status, 200, "{}", balances.body);
    assert_eq!(balances.body["account_id"], granted.as_str());

    // The customer's other account was not granted: 403 insufficient_scope.
    let refused =
        Reply::send(api.bearer(Method::GET, &format!("/accounts/{other}"), &token, cert)).await;
    assert_refused(&refused, 403, "insufficient_scope", "Bearer");

    // #29: the certificate-bound token over a connection with another certificate, or none.
    let stranger = ClientIdentity::self_signed("someone else");
    for presented in [Some(&stranger), None] {
        let refused = Reply::send(api.bearer(Method::GET, "/accounts", &token, presented)).await;
        assert_refused(&refused, 401, "invalid_token", "Bearer");
    }

    // RFC 6750 §3.1: no token at all gets the challenges without an error code.
    let bare = Reply::send(api.client(cert).get(api.url("/accounts"))).await;
    assert_eq!(bare.status, 401, "{}", bare.body);
    let found = challenges(&bare);
    assert!(
        found.iter().any(|c| c.starts_with("Bearer "))
            && found.iter().all(|c| !c.contains("error=")),
        "{found:?}"
    );

    // A provider with DPoP-bound tokens: a fresh proof opens the account…
    let dpop_tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let dpop_holder = bank.holder(&dpop_tpp);
    let given = consent(&bank, &dpop_tpp, &dpop_holder, &[], Choice::Account(0)).await;
    let dpop_token = given.access_token();
    let proof = api.proof(&dpop_holder.dpop, &Method::GET, "/accounts", &dpop_token);
    let list = Reply::send(api.dpop(Method::GET, "/accounts", &dpop_token, &proof)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(
        list.body["accounts"][0]["id"],
        given.chosen.unwrap().as_str()
    );
    // …#31: the same proof again is a replay…
    let replayed = Reply::send(api.dpop(Method::GET, "/accounts", &dpop_token, &proof)).await;
    assert_refused(&replayed, 401, "invalid_dpop_proof", "DPoP");
    // …and #30: the DPoP-bound token as a Bearer token, without a proof, is refused.
    let downgraded = Reply::send(api.bearer(Method::GET, "/accounts", &dpop_token, None)).await;
    assert_refused(&downgraded, 401, "invalid_token", "DPoP");
    // Nor is a certificate-bound token a DPoP one, even with a good proof by some key.
    let proof = api.proof(&dpop_holder.dpop, &Method::GET, "/accounts", &token);
    let crossed = Reply::send(
        api.client(cert)
            .get(api.url("/accounts"))
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof),
    )
    .await;
    assert_refused(&crossed, 401, "invalid_token", "Bearer");
    // A fresh proof still works: the refusals did not end anything.
    let proof = api.proof(&dpop_holder.dpop, &Method::GET, "/accounts", &dpop_token);
    let again = Reply::send(api.dpop(Method::GET, "/accounts", &dpop_token, &proof)).await;
    assert_eq!(again.status, 200, "{}", again.body);
}

#[tokio::test]
async fn bank_api_makes_the_consented_payment_once_and_nothing_beyond_it() {
    let bank = start_bank("").await;
    let api = launch(&bank, Example::BankApi, &[]).await;
    let tpp = bank
        .tpp_with(
            "Payments TPP",
            Auth::TlsClientAuth,
            Binding::Certificate,
            "ES256",
            &json!({
                "scope": "openid accounts payments",
                "authorization_details_types": ["account_information", "payment_initiation"],
            }),
        )
        .await;
    let holder = bank.holder(&tpp);
    let creditor_iban = "DE02120300000000202051";
    let details = json!([{
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "120.00"},
        "creditorName": "Merchant A",
        "creditorAccount": {"iban": creditor_iban},
        "remittanceInformation": "Order 42",
    }])
    .to_string();
    // The consent page makes the customer pick the account paid from.
    let given = consent(
        &bank,
        &tpp,
        &holder,
        &[
            ("scope", "openid payments"),
            ("authorization_details", &details),
        ],
        Choice::Debtor(0),
    )
    .await;
    let token = given.access_token();
    let debtor = given.chosen.clone().unwrap();
    assert_eq!(
        claims_of(&token)["authorization_details"][0]["debtorAccount"]["id"],
        debtor.as_str()
    );
    let cert = Some(&holder.cert);
    let payment = |amount: &str, iban: &str| {
        json!({
            "instructedAmount": {"currency": "EUR", "amount": amount},
            "creditorName": "Merchant A",
            "creditorAccount": {"iban": iban},
            "remittanceInformation": "Order 42",
        })
    };
    let pay = |amount: &str, iban: &str| {
        api.bearer(Method::POST, "/payments", &token, cert)
            .json(&payment(amount, iban))
    };

    // More than consented, or to another creditor: refused, and the consent is not used up.
    Reply::send(pay("120.01", creditor_iban))
        .await
        .assert_error(403, "payment_not_consented");
    Reply::send(pay("120.00", "DE89370400440532013000"))
        .await
        .assert_error(403, "payment_not_consented");
    // The token holds no account access: the accounts are not its to read.
    let accounts = Reply::send(api.bearer(Method::GET, "/accounts", &token, cert)).await;
    assert_refused(&accounts, 403, "insufficient_scope", "Bearer");

    // The consented payment: 201, from the account the customer chose.
    let paid = Reply::send(pay("120.00", creditor_iban)).await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(paid.header("cache-control"), Some("no-store"));
    assert_eq!(paid.body["status"], "accepted");
    assert_eq!(paid.body["debtor_account"], debtor.as_str());
    assert_eq!(
        paid.body["instructed_amount"],
        json!({"currency": "EUR", "amount": "120.00"})
    );
    assert_eq!(paid.body["creditor"]["iban"], creditor_iban);
    assert_eq!(paid.body["grant_id"], given.grant_id().as_str());
    assert!(paid.body["payment_id"].is_string(), "{}", paid.body);

    // A payment consent pays once: a second payment under it is refused, even a smaller one.
    Reply::send(pay("120.00", creditor_iban))
        .await
        .assert_error(403, "consent_used");
    Reply::send(pay("1.00", creditor_iban))
        .await
        .assert_error(403, "consent_used");
    // Someone else's certificate does not get that far.
    let stranger = ClientIdentity::self_signed("someone else");
    let refused = Reply::send(
        api.bearer(Method::POST, "/payments", &token, Some(&stranger))
            .json(&payment("120.00", creditor_iban)),
    )
    .await;
    assert_refused(&refused, 401, "invalid_token", "Bearer");
}
