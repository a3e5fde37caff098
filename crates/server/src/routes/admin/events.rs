//! `/admin/v1/events`: the security-event trail, oldest first, paged by sequence number. Scope
//! `admin:audit`. Events never hold secrets (they are removed when an event is made); filtering by
//! time, client, subject and type and the SIEM export come with the audit issue.

use axum::Json;
use axum::extract::{Query, State};
use portcullis_core::audit::RecordedEvent;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCaller, AdminError, ErrorBody, Listing, Page};
use crate::app::AppState;

const SCOPE: &str = "admin:audit";

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// An event as the admin API shows it.
fn describe(recorded: &RecordedEvent) -> Map<String, Value> {
    let event = &recorded.event;
    let mut shown = Map::new();
    shown.insert("seq".into(), recorded.seq.into());
    shown.insert(
        "occurred_at".into(),
        event.occurred_at.unix_timestamp().into(),
    );
    shown.insert("actor".into(), event.actor.clone().into());
    shown.insert("action".into(), event.action.clone().into());
    shown.insert(
        "subject".into(),
        event.subject.clone().map_or(Value::Null, Value::from),
    );
    shown.insert("details".into(), Value::Object(event.details.clone()));
    shown.insert(
        "request_id".into(),
        event.request_id.clone().map_or(Value::Null, Value::from),
    );
    shown
}

/// List security events after a sequence number, oldest first.
#[utoipa::path(get, path = "/admin/v1/events", tag = "audit", params(Page),
    responses((status = 200, body = Listing), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(page): Query<Page>,
) -> Result<Json<Listing>, AdminError> {
    caller.require(SCOPE)?;
    let after = page.after_seq()?;
    let limit = page.limit();
    let found = state
        .store
        .events()
        .list(after, limit)
        .await
        .map_err(|e| AdminError::internal("events", &e))?;
    Ok(Json(Listing::by_seq(&found, limit, |e| e.seq, describe)))
}
