//! `/admin/v1/revocation-events`: the revocation event feed the resource servers poll at
//! `/events` (RFC 8936), oldest first, paged by sequence number, acknowledged or not. Scope
//! `admin:audit`. Each item is an event's place in the feed (`seq`), its SET's `jti`, what
//! happened (`kind`: `grant-revoked`, `token-revoked`), the grant and the access token's `jti`
//! it concerns, when it was made, how many recipients have not acknowledged it yet (`pending`),
//! and the signed SET itself (it holds identifiers, never a token). Events every recipient
//! acknowledged go an hour later, and undelivered ones after seven days
//! (`crate::housekeeping`).

use axum::Json;
use axum::extract::{Query, State};
use portcullis_core::store::FeedEvent;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCaller, AdminError, ErrorBody, Listing, Page};
use crate::app::AppState;

const SCOPE: &str = "admin:audit";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_revocation_events))
}

/// An event as the admin API shows it.
fn describe(event: &FeedEvent) -> Map<String, Value> {
    let mut shown = Map::new();
    shown.insert("seq".into(), event.seq.into());
    shown.insert("jti".into(), event.jti.clone().into());
    shown.insert("kind".into(), event.kind.clone().into());
    shown.insert(
        "grant_id".into(),
        event.grant_id.clone().map_or(Value::Null, Value::from),
    );
    shown.insert(
        "token_jti".into(),
        event.token_jti.clone().map_or(Value::Null, Value::from),
    );
    shown.insert(
        "created_at".into(),
        event.created_at.unix_timestamp().into(),
    );
    shown.insert("pending".into(), event.pending.into());
    shown.insert("set".into(), event.set.clone().into());
    shown
}

/// List the revocation events of the feed after a sequence number, oldest first.
#[utoipa::path(get, path = "/admin/v1/revocation-events", tag = "audit", params(Page),
    responses((status = 200, body = Listing), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_revocation_events(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(page): Query<Page>,
) -> Result<Json<Listing>, AdminError> {
    caller.require(SCOPE)?;
    let after = page.after_seq()?;
    let limit = page.limit();
    let found = state
        .store
        .revocations()
        .list(after, limit)
        .await
        .map_err(|e| AdminError::internal("revocation events", &e))?;
    Ok(Json(Listing::by_seq(&found, limit, |e| e.seq, describe)))
}
