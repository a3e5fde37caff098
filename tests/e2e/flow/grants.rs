//! The Grant Management API (FAPI Grant Management -02 §6) over real TLS: a consent made through
//! the pages, queried and revoked at `/grants/{grant_id}` by its client with a client-credentials
//! token (DPoP-bound on the main listener), and refused to another client whose token is bound to
//! its `tls_client_auth` certificate on the mTLS listener. Revoking ends the refresh token and
//! the access token at once.

use portcullis_testkit::app::App;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Auth, Bank, Binding, Browser, Holder, PASSWORD, REDIRECT, Tpp};
use crate::oauth::{Reply, dpop_proof, random_id, server_now};

const SCOPES: &str = "grant_management_query grant_management_revoke";

/// A code-flow client that registered the Grant Management scopes and the client-credentials
/// grant that gets tokens for them.
async fn grant_client(bank: &Bank, auth: Auth, binding: Binding) -> Tpp {
    bank.tpp_with(
        &format!("Grants {auth:?} {binding:?}"),
        auth,
        binding,
        "ES256",
        &json!({
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scope": format!("openid accounts {SCOPES}"),
        }),
    )
    .await
}

impl Tpp {
    /// A client-credentials token for the Grant Management API, bound to `holder`.
    async fn grants_token(&self, app: &App, holder: &Holder) -> String {
        let reply = self
            .token(
                app,
                holder,
                &[("grant_type", "client_credentials"), ("scope", SCOPES)],
            )
            .await;
        assert_eq!(reply.status, 200, "grant management token: {}", reply.body);
        assert_eq!(reply.body["scope"], SCOPES);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    /// `method /grants/{grant_id}` with `token`, proving possession as for userinfo.
    async fn grants(
        &self,
        app: &App,
        holder: &Holder,
        method: Method,
        grant_id: &str,
        token: &str,
    ) -> Reply {
        let path = format!("/grants/{grant_id}");
        match self.binding {
            Binding::Dpop => {
                let url = app.url(&path);
                let now = server_now(app).await;
                let proof = dpop_proof(&holder.dpop, method.as_str(), &url, Some(token), now);
                Reply::send(
                    app.client(None)
                        .request(method, &url)
                        .header("Authorization", format!("DPoP {token}"))
                        .header("DPoP", proof),
                )
                .await
            }
            Binding::Certificate => {
                Reply::send(
                    app.client(Some(&holder.cert))
                        .request(method, app.mtls_url(&path))
                        .header("Authorization", format!("Bearer {token}")),
                )
                .await
            }
        }
    }
}

#[tokio::test]
async fn grant_management_query_and_revoke_by_the_grants_client_only() {
    let bank = Bank::start().await;
    let app = bank.app();
    let (status, _, metadata) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(metadata["grant_management_endpoint"], app.url("/grants"));
    assert_eq!(
        metadata["mtls_endpoint_aliases"]["grant_management_endpoint"],
        app.mtls_url("/grants")
    );

    let owner = grant_client(&bank, Auth::PrivateKeyJwt, Binding::Dpop).await;
    let other = grant_client(&bank, Auth::TlsClientAuth, Binding::Certificate).await;
    let holder = bank.holder(&owner);
    let username = format!("cust-{}", random_id().to_lowercase());
    bank.customer(&username).await;

    // A consent through the pages, choosing an account.
    let mut browser = Browser::new(app);
    let pushed = owner.push(app, &holder, &[], None).await;
    let login = browser.get(&pushed.url).await;
    let consent = browser.log_in(app, &login, &username, PASSWORD).await;
    consent.assert_form("/authorize/consent");
    let account = consent.input("account");
    let redirect = browser
        .approve(app, &consent, &[&account])
        .await
        .redirect_to(REDIRECT);
    let reply = owner.redeem(app, &holder, &pushed, &redirect["code"]).await;
    assert_eq!(reply.status, 200, "token: {}", reply.body);
    let grant_id = reply.body["grant_id"].as_str().unwrap().to_owned();
    let access_token = reply.body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = reply.body["refresh_token"].as_str().unwrap().to_owned();

    // The owner sees what the customer consented to.
    let token = owner.grants_token(app, &holder).await;
    let found = owner
        .grants(app, &holder, Method::GET, &grant_id, &token)
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.header("cache-control"), Some("no-store"));
    assert_eq!(found.body["scopes"], json!([{"scope": "openid accounts"}]));
    assert_eq!(
        found.body["authorization_details"],
        json!([{"type": "account_information", "actions": ["read_balances"], "accounts": [account]}])
    );
    assert!(found.body["created_at"].is_i64(), "{}", found.body);

    // Another client, with its own valid token: the grant does not exist for it.
    let stranger = bank.holder(&other);
    let other_token = other.grants_token(app, &stranger).await;
    let unknown = other
        .grants(app, &stranger, Method::GET, "no-such-grant", &other_token)
        .await;
    unknown.assert_error(404, "invalid_grant_id");
    for method in [Method::GET, Method::DELETE] {
        let refused = other
            .grants(app, &stranger, method, &grant_id, &other_token)
            .await;
        refused.assert_error(404, "invalid_grant_id");
        assert_eq!(refused.body, unknown.body);
    }
    let still = owner
        .grants(app, &holder, Method::GET, &grant_id, &token)
        .await;
    assert_eq!(still.status, 200, "{}", still.body);
    assert_eq!(
        owner.userinfo(app, &holder, &access_token).await.status,
        200
    );

    // The owner revokes it: 204, and every token under it dies.
    let revoked = owner
        .grants(app, &holder, Method::DELETE, &grant_id, &token)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_eq!(revoked.body, Value::Null);
    owner
        .grants(app, &holder, Method::GET, &grant_id, &token)
        .await
        .assert_error(404, "invalid_grant_id");
    owner
        .token(
            app,
            &holder,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await
        .assert_error(400, "invalid_grant");
    owner
        .userinfo(app, &holder, &access_token)
        .await
        .assert_error(401, "invalid_token");
}
