//! `/admin/v1/events`: the security-event trail, oldest first, paged by sequence number and
//! filtered by time (`since`, `until`, RFC 3339), `client_id`, `subject` and `type`; and
//! `/admin/v1/events/export`, the same as JSON lines (`application/jsonl`) for a SIEM, streamed
//! from the database a page at a time. Both need scope `admin:audit`. Events never hold secrets
//! (they are removed when an event is made); each carries its hash-chain position and hashes, so
//! that the receiver can check them (the encoding is in `portcullis_core::audit::chain`).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use portcullis_core::audit::RecordedEvent;
use portcullis_core::audit::chain;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::EventFilter;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AdminCaller, AdminError, ErrorBody, Listing, Page};
use crate::app::AppState;

const SCOPE: &str = "admin:audit";

/// How many events an export reads per query.
const EXPORT_PAGE: u32 = 500;

/// The longest `client_id`, `subject` or `type` a filter takes.
const MAX_FILTER_LEN: usize = 512;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(export_events))
}

/// Which events: every parameter given narrows the answer.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events that occurred at or after this time (RFC 3339, e.g. `2026-11-21T09:00:00Z`).
    pub since: Option<String>,
    /// Only events that occurred before this time (RFC 3339).
    pub until: Option<String>,
    /// Only events concerning this client.
    pub client_id: Option<String>,
    /// Only events about this subject: a user id, client id, grant id, key id or resource.
    pub subject: Option<String>,
    /// Only events of this type: `token.issued`, `client.update`, `consent.given`, ...
    #[serde(rename = "type")]
    pub action: Option<String>,
}

fn invalid(description: String) -> AdminError {
    AdminError::Protocol(
        OAuthError::new(ErrorCode::InvalidRequest, description),
        None,
    )
}

impl EventQuery {
    /// The store's filter.
    ///
    /// # Errors
    /// `invalid_request` naming the parameter that is not a date-time or is too long.
    fn filter(&self) -> Result<EventFilter, AdminError> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                        invalid(format!(
                            "{name} must be an RFC 3339 date-time, e.g. 2026-11-21T09:00:00Z"
                        ))
                    })
                })
                .transpose()
        };
        let text = |name: &str, value: &Option<String>| match value {
            Some(text) if text.len() > MAX_FILTER_LEN => Err(invalid(format!(
                "{name} is longer than {MAX_FILTER_LEN} bytes"
            ))),
            other => Ok(other.clone()),
        };
        Ok(EventFilter {
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            client_id: text("client_id", &self.client_id)?,
            subject: text("subject", &self.subject)?,
            action: text("type", &self.action)?,
        })
    }
}

/// An event as the admin API shows it: what happened, and where it stands in its chain.
fn describe(recorded: &RecordedEvent) -> Map<String, Value> {
    let event = &recorded.event;
    let optional = |value: &Option<String>| value.clone().map_or(Value::Null, Value::from);
    let mut shown = Map::new();
    shown.insert("seq".into(), recorded.seq.into());
    shown.insert(
        "occurred_at".into(),
        event.occurred_at.unix_timestamp().into(),
    );
    // The exact time that is hashed.
    shown.insert(
        "occurred_at_us".into(),
        chain::micros(event.occurred_at).into(),
    );
    shown.insert("actor".into(), event.actor.clone().into());
    shown.insert("action".into(), event.action.clone().into());
    shown.insert("subject".into(), optional(&event.subject));
    shown.insert("client_id".into(), optional(&event.client_id));
    shown.insert("details".into(), Value::Object(event.details.clone()));
    shown.insert("request_id".into(), optional(&event.request_id));
    match &recorded.link {
        Some(link) => {
            shown.insert("chain_id".into(), link.chain_id.to_string().into());
            shown.insert("chain_seq".into(), link.chain_seq.into());
            shown.insert("prev_hash".into(), hex::encode(link.prev_hash).into());
            shown.insert("hash".into(), hex::encode(link.hash).into());
        }
        None => {
            for name in ["chain_id", "chain_seq", "prev_hash", "hash"] {
                shown.insert(name.into(), Value::Null);
            }
        }
    }
    shown
}

/// List security events after a sequence number, oldest first, optionally filtered by time,
/// client, subject and type.
#[utoipa::path(get, path = "/admin/v1/events", tag = "audit", params(Page, EventQuery),
    responses((status = 200, body = Listing), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(page): Query<Page>,
    Query(query): Query<EventQuery>,
) -> Result<Json<Listing>, AdminError> {
    caller.require(SCOPE)?;
    let after = page.after_seq()?;
    let filter = query.filter()?;
    let limit = page.limit();
    let found = state
        .store
        .events()
        .find(&filter, after, limit)
        .await
        .map_err(|e| AdminError::internal("events", &e))?;
    Ok(Json(Listing::by_seq(&found, limit, |e| e.seq, describe)))
}

/// Where an export starts.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportFrom {
    /// Export the events after this sequence number (to resume an export).
    pub after: Option<String>,
}

/// Export the security events the filters select as JSON lines (`application/jsonl`): one event
/// per line, oldest first, each with its chain position and hashes. Streamed: a failure after the
/// first line ends the response early, so a transfer that is cut short is incomplete.
#[utoipa::path(get, path = "/admin/v1/events/export", tag = "audit", params(ExportFrom, EventQuery),
    responses((status = 200, description = "One JSON event per line", content_type = "application/jsonl", body = String), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn export_events(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(from): Query<ExportFrom>,
    Query(query): Query<EventQuery>,
) -> Result<Response, AdminError> {
    caller.require(SCOPE)?;
    let after = Page {
        after: from.after,
        limit: None,
    }
    .after_seq()?;
    let filter = query.filter()?;
    let store = state.store.clone();
    // One page in memory at a time: the cursor is the last sequence number sent, `None` once a
    // short page said there is no more.
    let pages = futures_util::stream::unfold(Some(after), move |cursor| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let after = cursor?;
            match store.events().find(&filter, after, EXPORT_PAGE).await {
                Ok(found) if found.is_empty() => None,
                Ok(found) => {
                    let next = (found.len() == EXPORT_PAGE as usize)
                        .then(|| found.last().map(|e| e.seq))
                        .flatten();
                    let mut lines = Vec::new();
                    for recorded in &found {
                        if serde_json::to_writer(&mut lines, &describe(recorded)).is_err() {
                            return Some((Err(export_failed()), None));
                        }
                        lines.push(b'\n');
                    }
                    Some((Ok(Bytes::from(lines)), next))
                }
                Err(error) => {
                    tracing::error!(%error, "admin: events export");
                    Some((Err(export_failed()), None))
                }
            }
        }
    });
    let mut response = Body::from_stream(pages).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn export_failed() -> std::io::Error {
    std::io::Error::other("the export could not be completed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_names_every_filter_of_both_routes() {
        let (_, api) = super::super::router();
        let doc = serde_json::to_value(&api).unwrap();
        for (path, paging) in [
            ("/admin/v1/events", ["after", "limit"].as_slice()),
            ("/admin/v1/events/export", ["after"].as_slice()),
        ] {
            let names: Vec<&str> = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for name in paging
                .iter()
                .chain(&["since", "until", "client_id", "subject", "type"])
            {
                assert!(names.contains(name), "{path} lacks {name}: {names:?}");
            }
        }
        assert_eq!(
            doc["paths"]["/admin/v1/events/export"]["get"]["responses"]["200"]["content"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["application/jsonl"]
        );
    }

    #[test]
    fn filters_are_parsed_and_bad_ones_named() {
        let query = |since: &str| EventQuery {
            since: Some(since.into()),
            until: None,
            client_id: Some("tpp-1".into()),
            subject: None,
            action: Some("token.issued".into()),
        };
        let filter = query("2026-11-21T09:00:00Z").filter().unwrap();
        assert_eq!(
            filter.since.map(OffsetDateTime::unix_timestamp),
            Some(1_795_251_600)
        );
        assert_eq!(filter.action.as_deref(), Some("token.issued"));
        assert!(matches!(
            query("yesterday").filter(),
            Err(AdminError::Protocol(e, None)) if e.error_description.contains("since must be an RFC 3339")
        ));
        let long = EventQuery {
            subject: Some("x".repeat(MAX_FILTER_LEN + 1)),
            ..query("2026-11-21T09:00:00Z")
        };
        assert!(long.filter().is_err());
    }
}
