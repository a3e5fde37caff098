//! The customer's account page (`/account`): every consent the customer has given, in plain
//! words (the client's name and logo, what it may access with the accounts chosen, when it was
//! given, when it expires, when it was last used), each with a button that withdraws it and every
//! token under it at once ([`crate::revocation::revoke_grant`]); consents that ended recently are
//! listed briefly.
//!
//! Without a session the page is a login form; the login steps are the authorization flow's
//! (`customer.rs`), chained here without an interaction: the password form is protected by a
//! double-submit token (a `__Host-` cookie and a form field, compared in constant time); once the
//! password is right and the customer has a second factor, the cookie carries the pending login
//! (nonce, customer, time) under an HMAC with a key derived from the KEK, so any replica takes the
//! code, and the store bounds the wrong codes per pending login (the replay cache, one entry per
//! failure) and lets it complete once. Both steps pass the login throttle first
//! (`crate::login_throttle`, across logins and replicas): a refused attempt gets its form again
//! with `429` and `Retry-After`. A completed login starts a session as the authorization flow
//! does and redirects (303) to the page.
//!
//! A withdrawal is a POST carrying a per-session CSRF token (an HMAC of the session's handle
//! under a key derived from the KEK), checked in constant time; a cross-site POST
//! (`Sec-Fetch-Site: cross-site`) is refused before anything else. Only the customer's own grant
//! can be withdrawn: another's gets the same 404 page as an unknown one. Pages send the
//! authorization pages' headers (no-store, `frame-ancestors 'none'`, no referrer) with a CSP whose
//! forms may post only here; askama escapes everything shown.

use std::collections::HashMap;

use askama::Template as _;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use portcullis_consent::pages::{
    AccountLoginPage, AccountPage, EndedGrantView, GrantView, describe_granted_detail,
    describe_instant, describe_scope,
};
use portcullis_core::client::ClientId;
use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::mac::Mac;
use portcullis_core::store::{FirstUse, Grant, ReplayKey, ReplayKind, Session, StoreError};
use serde_json::Value;
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::authorize::{
    ACR_PASSWORD, ACR_SCA, LOGIN_FAILED, MAX_FAILURES, cookie, error_page, html, internal,
    read_cookie, secure, service_name, with_cookie,
};
use super::customer::{self, Authenticated, PasswordStep, SecondFactor};
use crate::app::AppState;
use crate::form::Form;
use crate::hardening::page::PagePolicy;
use crate::login_throttle::{refusal_message, too_many};
use crate::revocation::{Reason, revoke_grant};
use crate::source_ip::SourceIp;

/// The path.
pub const PATH: &str = "/account";
/// The login's cookie: its double-submit token, then the pending second-factor step.
const LOGIN_COOKIE: &str = "__Host-portcullis-account-login";
/// How long an ended consent stays listed.
const ENDED_SHOWN_DAYS: i64 = 90;
/// The length of a login nonce (32 random bytes, base64url).
const NONCE_LEN: usize = 43;
const EXPIRED: &str = "This page has expired. Please log in again.";

/// The authorization pages' headers, with this page's policy.
fn own_policy(response: Response) -> Response {
    PagePolicy::own().apply(response)
}

fn see_other(state: &AppState, location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => own_policy(secure(
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        )),
        Err(e) => failure(state, "account: redirect", &e),
    }
}

fn failure(state: &AppState, context: &str, error: &dyn std::fmt::Display) -> Response {
    own_policy(internal(state, context, error))
}

fn refused(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    own_policy(error_page(state, status, title, message))
}

/// A POST another site's page sent (Fetch Metadata): refused whatever it carries.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// Checks the common preconditions of the page's forms and parses the form.
fn form_of(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Result<Form, Box<Response>> {
    if cross_site(headers) {
        return Err(Box::new(refused(
            state,
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form can only be sent from the bank's own pages.",
        )));
    }
    Form::from_request(headers, body).map_err(|_| {
        Box::new(refused(
            state,
            StatusCode::BAD_REQUEST,
            "Request refused",
            "The form is not valid.",
        ))
    })
}

/// A path segment with everything but unreserved characters percent-encoded (RFC 3986 §2.3).
fn path_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Records, without delaying the token response, that tokens were just issued under a grant
/// (the page's "last used"); the store writes at most once a minute per grant.
pub(crate) fn note_use(state: &AppState, grant_id: &str, now: OffsetDateTime) {
    let store = state.store.clone();
    let grant_id = grant_id.to_owned();
    tokio::spawn(async move {
        if let Err(e) = store.grants().touch(&grant_id, now).await {
            tracing::warn!(error = %e, "could not record when a grant was last used");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// CSRF tokens
// ---------------------------------------------------------------------------------------------

fn csrf_mac(state: &AppState) -> Mac {
    Mac::new(&state.kek.derive_key("account-csrf"))
}

/// The session's CSRF token: an HMAC of its handle, so it changes with every login.
fn csrf_token(state: &AppState, session: &Session) -> String {
    csrf_mac(state).tag(session.handle.as_bytes())
}

fn csrf_ok(state: &AppState, session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|token| csrf_mac(state).verify(session.handle.as_bytes(), token))
}

// ---------------------------------------------------------------------------------------------
// The login
// ---------------------------------------------------------------------------------------------

/// A login whose password was right, waiting for its second factor. In the login cookie as
/// `nonce.customer.time.tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    nonce: String,
    user_id: Uuid,
    auth_time: OffsetDateTime,
}

impl Pending {
    fn mac(state: &AppState) -> Mac {
        Mac::new(&state.kek.derive_key("account-login"))
    }

    fn message(&self) -> String {
        format!(
            "{}.{}.{}",
            self.nonce,
            self.user_id.simple(),
            self.auth_time.unix_timestamp()
        )
    }

    fn seal(&self, mac: &Mac) -> String {
        let message = self.message();
        let tag = mac.tag(message.as_bytes());
        format!("{message}.{tag}")
    }

    /// The pending login in `value`, if its tag is ours and it is not older than `lifetime`.
    fn open(value: &str, mac: &Mac, now: OffsetDateTime, lifetime: Duration) -> Option<Self> {
        let (message, tag) = value.rsplit_once('.')?;
        if !mac.verify(message.as_bytes(), tag) {
            return None;
        }
        let mut parts = message.split('.');
        let (nonce, user, time) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let auth_time = OffsetDateTime::from_unix_timestamp(time.parse().ok()?).ok()?;
        if now - auth_time > lifetime || auth_time > now + Duration::minutes(1) {
            return None;
        }
        Some(Self {
            nonce: nonce.to_owned(),
            user_id: Uuid::parse_str(user).ok()?,
            auth_time,
        })
    }

    fn expires_at(&self, lifetime: Duration) -> OffsetDateTime {
        self.auth_time + lifetime
    }
}

/// A step of a pending login in the replay cache: its failures, its completion.
fn login_step<'a>(nonce: &'a str, step: &'a str) -> ReplayKey<'a> {
    ReplayKey {
        kind: ReplayKind::CustomerLogin,
        issuer: nonce,
        id: step,
    }
}

fn login_lifetime(state: &AppState) -> Duration {
    Duration::seconds(i64::from(
        state.config.authorization.interaction_lifetime_secs,
    ))
}

/// The login's nonce from its cookie (in either step), if there is one.
fn cookie_nonce(headers: &HeaderMap) -> Option<&str> {
    read_cookie(headers, LOGIN_COOKIE)
        .and_then(|value| value.split('.').next())
        .filter(|nonce| nonce.len() == NONCE_LEN)
}

fn same_token(presented: Option<&str>, expected: &str) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}

/// The password form, with the login's nonce (`None`: a fresh one) in the form and the cookie.
fn login_form(
    state: &AppState,
    nonce: Option<&str>,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    let nonce = match nonce {
        Some(nonce) => nonce.to_owned(),
        None => match state.rng.token(32) {
            Ok(nonce) => nonce,
            Err(e) => return failure(state, "account: random", &e),
        },
    };
    let page = html(
        status,
        AccountLoginPage {
            service_name: service_name(state),
            csrf: &nonce,
            username,
            error,
            second_factor: false,
        }
        .render(),
    );
    let lifetime = i64::from(state.config.authorization.interaction_lifetime_secs);
    own_policy(with_cookie(page, cookie(LOGIN_COOKIE, &nonce, lifetime)))
}

fn totp_form(state: &AppState, nonce: &str, status: StatusCode, error: Option<&str>) -> Response {
    own_policy(html(
        status,
        AccountLoginPage {
            service_name: service_name(state),
            csrf: nonce,
            username: "",
            error,
            second_factor: true,
        }
        .render(),
    ))
}

/// A completed login: a fresh session, the login cookie gone, and back to the page.
async fn logged_in(state: &AppState, headers: &HeaderMap, login: &Authenticated) -> Response {
    let page = with_cookie(see_other(state, PATH), cookie(LOGIN_COOKIE, "", 0));
    customer::start_session(state, headers, login, page).await
}

/// Who attempts a login step here: the request's source, and no client.
fn attempt(source: Option<Extension<SourceIp>>) -> customer::Attempt<'static> {
    customer::Attempt {
        // Without the source layer (never in the server's router) every attempt shares one
        // bucket: fail closed.
        source: source.map_or(SourceIp::UNKNOWN, |Extension(s)| s),
        client_id: None,
    }
}

/// `POST /account/login`: the password step.
pub async fn login(
    State(state): State<AppState>,
    source: Option<Extension<SourceIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match form_of(&state, &headers, &body) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let Some(nonce) = cookie_nonce(&headers).filter(|n| same_token(form.get("csrf"), n)) else {
        // Not a form of ours in this browser (a cross-site or stale form): a fresh one.
        return login_form(&state, None, StatusCode::FORBIDDEN, "", Some(EXPIRED));
    };
    let username = form.get("username").unwrap_or_default();
    let password = Zeroizing::new(form.get("password").unwrap_or_default().to_owned());
    let now = state.clock.now();
    let who = attempt(source);
    let user = match customer::password_step(&state, who, username, password, now).await {
        Ok(PasswordStep::Accepted(user)) => user,
        Ok(PasswordStep::Refused) => {
            return login_form(
                &state,
                Some(nonce),
                StatusCode::UNAUTHORIZED,
                username,
                Some(LOGIN_FAILED),
            );
        }
        Ok(PasswordStep::Throttled(refusal)) => {
            let message = refusal_message(&refusal, now);
            let page = login_form(
                &state,
                Some(nonce),
                StatusCode::TOO_MANY_REQUESTS,
                username,
                Some(&message),
            );
            return too_many(page, &refusal, now);
        }
        Err(response) => return own_policy(response),
    };
    if user.totp_secret_encrypted.is_some() {
        let pending = Pending {
            nonce: nonce.to_owned(),
            user_id: user.id,
            auth_time: now,
        };
        let sealed = pending.seal(&Pending::mac(&state));
        let lifetime = login_lifetime(&state).whole_seconds();
        let page = totp_form(&state, nonce, StatusCode::OK, None);
        return with_cookie(page, cookie(LOGIN_COOKIE, &sealed, lifetime));
    }
    let login = Authenticated {
        user_id: user.id,
        auth_time: now,
        acr: Some(ACR_PASSWORD.into()),
        amr: vec!["pwd".into()],
    };
    logged_in(&state, &headers, &login).await
}

/// `POST /account/totp`: the second-factor step.
pub async fn second_factor(
    State(state): State<AppState>,
    source: Option<Extension<SourceIp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match form_of(&state, &headers, &body) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let now = state.clock.now();
    let lifetime = login_lifetime(&state);
    let pending = read_cookie(&headers, LOGIN_COOKIE)
        .and_then(|value| Pending::open(value, &Pending::mac(&state), now, lifetime))
        .filter(|p| same_token(form.get("csrf"), &p.nonce));
    let Some(pending) = pending else {
        return login_form(&state, None, StatusCode::FORBIDDEN, "", Some(EXPIRED));
    };
    let code = form.get("code").unwrap_or_default();
    let expires_at = pending.expires_at(lifetime);
    let who = attempt(source);
    match customer::check_second_factor(&state, who, pending.user_id, code, now).await {
        Ok(SecondFactor::Accepted) => {}
        Ok(SecondFactor::UserGone) => {
            return login_form(&state, None, StatusCode::FORBIDDEN, "", Some(EXPIRED));
        }
        Ok(SecondFactor::Locked(refusal)) => {
            let message = refusal_message(&refusal, now);
            let page = totp_form(
                &state,
                &pending.nonce,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&message),
            );
            return too_many(page, &refusal, now);
        }
        Ok(SecondFactor::Refused) => {
            // The n-th failure takes the n-th entry, so concurrent attempts count apart.
            let mut failures = MAX_FAILURES;
            for n in 1..=MAX_FAILURES {
                let id = format!("failure-{n}");
                match state
                    .store
                    .replay()
                    .record(login_step(&pending.nonce, &id), expires_at, now)
                    .await
                {
                    Ok(FirstUse::First) => {
                        failures = n;
                        break;
                    }
                    Ok(FirstUse::Replayed) => {}
                    Err(e) => return failure(&state, "account: login failures", &e),
                }
            }
            if failures >= MAX_FAILURES {
                return login_form(
                    &state,
                    None,
                    StatusCode::UNAUTHORIZED,
                    "",
                    Some("Too many wrong codes. Please log in again."),
                );
            }
            return totp_form(
                &state,
                &pending.nonce,
                StatusCode::UNAUTHORIZED,
                Some("That code is not right. Try the current code."),
            );
        }
        Err(response) => return own_policy(response),
    }
    // A pending login completes once.
    match state
        .store
        .replay()
        .record(login_step(&pending.nonce, "done"), expires_at, now)
        .await
    {
        Ok(FirstUse::First) => {}
        Ok(FirstUse::Replayed) => {
            return login_form(&state, None, StatusCode::FORBIDDEN, "", Some(EXPIRED));
        }
        Err(e) => return failure(&state, "account: login", &e),
    }
    let login = Authenticated {
        user_id: pending.user_id,
        auth_time: now,
        acr: Some(ACR_SCA.into()),
        amr: vec!["pwd".into(), "otp".into()],
    };
    logged_in(&state, &headers, &login).await
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

/// `GET /account`: the consents, or the login form.
pub async fn get(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let now = state.clock.now();
    let Some(session) = customer::find_session(&state, &headers, now).await else {
        return login_form(&state, cookie_nonce(&headers), StatusCode::OK, "", None);
    };
    customer::touch_session(&state, &session, now).await;
    let withdrawn = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "withdrawn")
        .map(|(_, value)| value.into_owned());
    consents_page(&state, &session, withdrawn.as_deref(), now).await
}

/// A client as the page names it.
struct ClientView {
    name: String,
    logo_uri: Option<String>,
}

async fn client_view(state: &AppState, client_id: &ClientId) -> Result<ClientView, Response> {
    let metadata = match state.store.clients().find_by_id(client_id).await {
        Ok(client) => ClientMetadata::from_stored(client.metadata)
            .inspect_err(|e| tracing::warn!(error = %e, "account: stored client metadata"))
            .ok(),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(failure(state, "account: clients", &e)),
    };
    let name = metadata
        .as_ref()
        .and_then(|m| m.client_name.clone())
        .unwrap_or_else(|| client_id.to_string());
    // Only an https logo: the page's policy loads no other.
    let logo_uri = metadata
        .and_then(|m| m.logo_uri)
        .filter(|uri| url::Url::parse(uri).is_ok_and(|u| u.scheme() == "https"));
    Ok(ClientView { name, logo_uri })
}

fn strings(content: &serde_json::Map<String, Value>, name: &str) -> Vec<String> {
    content
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn grant_view(grant: &Grant, client: &ClientView, labels: &HashMap<String, String>) -> GrantView {
    let label = |id: &str| labels.get(id).cloned().unwrap_or_else(|| id.to_owned());
    GrantView {
        withdraw_path: format!("{PATH}/grants/{}/withdraw", path_segment(&grant.grant_id)),
        client_name: client.name.clone(),
        logo_uri: client.logo_uri.clone(),
        scopes: strings(&grant.content, "scopes")
            .iter()
            .map(|s| describe_scope(s))
            .collect(),
        details: grant
            .content
            .get("authorization_details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|detail| describe_granted_detail(detail, label))
            .collect(),
        given: describe_instant(grant.created_at),
        expires: grant
            .expires_at
            .map_or_else(|| "Until you withdraw it".to_owned(), describe_instant),
        last_used: grant
            .last_used_at
            .map_or_else(|| "Not used yet".to_owned(), describe_instant),
    }
}

/// How a consent that no longer stands ended, if recently enough to list.
fn ended(grant: &Grant, now: OffsetDateTime) -> Option<String> {
    let (how, at) = match (grant.revoked_at, grant.expires_at) {
        (Some(at), _) => ("withdrawn", at),
        (None, Some(at)) if at <= now => ("expired", at),
        _ => return None,
    };
    (now - at <= Duration::days(ENDED_SHOWN_DAYS))
        .then(|| format!("{how} on {}", describe_instant(at)))
}

async fn consents_page(
    state: &AppState,
    session: &Session,
    withdrawn: Option<&str>,
    now: OffsetDateTime,
) -> Response {
    let grants = match state.store.grants().list_for_subject(session.user_id).await {
        Ok(grants) => grants,
        Err(e) => return failure(state, "account: grants", &e),
    };
    // The accounts' names; without the directory, their identifiers stand in.
    let labels: HashMap<String, String> = match state.accounts.accounts_of(session.user_id).await {
        Ok(accounts) => accounts
            .into_iter()
            .map(|a| (a.id.clone(), a.label()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "account: account directory");
            HashMap::new()
        }
    };
    let mut clients: HashMap<String, ClientView> = HashMap::new();
    let mut standing = Vec::new();
    let mut ended_list = Vec::new();
    let mut notice = None;
    for grant in &grants {
        let key = grant.client_id.to_string();
        if !clients.contains_key(&key) {
            match client_view(state, &grant.client_id).await {
                Ok(view) => {
                    clients.insert(key.clone(), view);
                }
                Err(response) => return response,
            }
        }
        let Some(client) = clients.get(&key) else {
            continue;
        };
        if withdrawn == Some(grant.grant_id.as_str()) && !grant.stands(now) {
            notice = Some(format!(
                "You withdrew the access of {}. It can no longer reach your accounts.",
                client.name
            ));
        }
        if grant.stands(now) {
            standing.push(grant_view(grant, client, &labels));
        } else if let Some(how) = ended(grant, now) {
            ended_list.push(EndedGrantView {
                client_name: client.name.clone(),
                ended: how,
            });
        }
    }
    let csrf = csrf_token(state, session);
    // The page shows the logos of the clients listed: their origins, and no other.
    let policy = standing
        .iter()
        .filter_map(|g| g.logo_uri.as_deref())
        .fold(PagePolicy::own(), PagePolicy::showing_image);
    policy.apply(html(
        StatusCode::OK,
        AccountPage {
            service_name: service_name(state),
            grants: standing,
            ended: ended_list,
            csrf: &csrf,
            notice: notice.as_deref(),
        }
        .render(),
    ))
}

/// `POST /account/grants/{grant_id}/withdraw`.
pub async fn withdraw(
    State(state): State<AppState>,
    Path(grant_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match form_of(&state, &headers, &body) {
        Ok(form) => form,
        Err(response) => return *response,
    };
    let now = state.clock.now();
    let Some(session) = customer::find_session(&state, &headers, now).await else {
        // Logged out meanwhile: nothing happens; the page asks for a login.
        return see_other(&state, PATH);
    };
    if !csrf_ok(&state, &session, form.get("csrf")) {
        return refused(
            &state,
            StatusCode::FORBIDDEN,
            "This page has expired",
            "Nothing was withdrawn. Please open your consents again and retry.",
        );
    }
    customer::touch_session(&state, &session, now).await;
    let grant = match state.store.grants().find(&grant_id).await {
        Ok(grant) if grant.subject == session.user_id => grant,
        // Another customer's consent is as unknown as one that does not exist.
        Ok(_) | Err(StoreError::NotFound) => {
            return refused(
                &state,
                StatusCode::NOT_FOUND,
                "Consent not found",
                "There is no such consent among yours.",
            );
        }
        Err(e) => return failure(&state, "account: grants", &e),
    };
    if grant.revoked_at.is_none()
        && let Err(e) = revoke_grant(&state, &grant, &Reason::Customer).await
    {
        return failure(&state, "account: withdrawal", &e);
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("withdrawn", &grant.grant_id)
        .finish();
    see_other(&state, &format!("{PATH}?{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_pending_login_opens_only_with_its_tag_and_within_its_lifetime() {
        let mac = Mac::new(&Zeroizing::new([3u8; 32]));
        let pending = Pending {
            nonce: "n".repeat(NONCE_LEN),
            user_id: Uuid::from_u128(42),
            auth_time: at(0),
        };
        let sealed = pending.seal(&mac);
        let lifetime = Duration::seconds(600);
        assert_eq!(
            Pending::open(&sealed, &mac, at(10), lifetime),
            Some(pending.clone())
        );
        assert_eq!(Pending::open(&sealed, &mac, at(601), lifetime), None);
        let other = Mac::new(&Zeroizing::new([4u8; 32]));
        assert_eq!(Pending::open(&sealed, &other, at(10), lifetime), None);
        // Another customer, or a later time, under the same tag.
        let forged = sealed.replace(
            &Uuid::from_u128(42).simple().to_string(),
            &Uuid::from_u128(43).simple().to_string(),
        );
        assert_eq!(Pending::open(&forged, &mac, at(10), lifetime), None);
        assert_eq!(Pending::open("", &mac, at(10), lifetime), None);
        assert_eq!(Pending::open(&pending.nonce, &mac, at(10), lifetime), None);
    }

    #[test]
    fn path_segments_keep_only_unreserved_characters() {
        assert_eq!(path_segment("aZ0-_.~"), "aZ0-_.~");
        assert_eq!(path_segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }
}
