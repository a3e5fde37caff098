//! `portcullis-load admin`: one call of the admin API (`/admin/v1/…`) with a DPoP-bound admin
//! token, for the scripts that set up a load (registering a resource server, for one, which has
//! no CLI command). The token comes from `/token` (client credentials, `private_key_jwt`, a DPoP
//! proof) and goes with a fresh DPoP proof carrying its hash (RFC 9449 §7).

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::token::{self, DpopNonce, Target};

/// The call.
#[derive(Debug)]
pub struct Call {
    /// The method.
    pub method: Method,
    /// The path under the issuer, e.g. `/admin/v1/resources`.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// Gets an admin token for `target` (the admin client, its key and the scope) and makes `call`
/// with it; the answer's status and body.
///
/// # Errors
/// When no token can be had or the call gets no answer.
pub async fn call(
    target: Target,
    http: reqwest::Client,
    call: Call,
) -> anyhow::Result<(StatusCode, String)> {
    let key = target.key.clone();
    let url = format!("{}{}", target.issuer.trim_end_matches('/'), call.path);
    // RFC 9449 §4.2: htu is the URL without query and fragment.
    let htu = url.split(['?', '#']).next().unwrap_or(&url).to_owned();
    let access_token = token::fetch(target, http.clone(), 1, 1)
        .await
        .context("the admin token")?
        .pop()
        .context("no admin token")?;
    let nonce = DpopNonce::default();
    // A second try only if the server asks for a DPoP nonce (RFC 9449 §9).
    for _ in 0..2 {
        let proof = key.resource_proof(
            call.method.as_str(),
            &htu,
            &access_token,
            nonce.get().as_deref(),
        )?;
        let mut request = http
            .request(call.method.clone(), &url)
            .header("Authorization", format!("DPoP {access_token}"))
            .header("DPoP", proof);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{} {url}", call.method))?;
        let status = response.status();
        let asks_nonce = response.headers().get("dpop-nonce").cloned();
        let text = response
            .text()
            .await
            .with_context(|| format!("the answer of {} {url}", call.method))?;
        if status == StatusCode::UNAUTHORIZED && asks_nonce.is_some() && nonce.get().is_none() {
            nonce.remember(asks_nonce.as_ref());
            continue;
        }
        return Ok((status, text));
    }
    anyhow::bail!(
        "{} {url}: the server asked for a DPoP nonce twice",
        call.method
    )
}
