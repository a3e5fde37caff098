//! `GET /stream`: the WebSocket upgrade, authenticated like any request ([`SessionAuth`]: the
//! `Authorization` header and, for a DPoP-bound token, a proof for `GET <public-url>/stream`;
//! never a token in the query string), then one task per session. The task waits on four things
//! at once: the token's end ([`SessionGuard::ended`]), shutdown, the client's messages, and the
//! ticks of the instruments it subscribed to. A dead token closes the socket with the guard's
//! code and reason (4401, 4503); shutdown with 1001.
//!
//! Every send is bounded in time: a client that stops reading cannot keep its session (and its
//! token) alive past its end.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse as _, Response};
use http::StatusCode;
use portcullis_verify::ws::{SessionAuth, SessionGuard};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::AppState;
use crate::market::{Instrument, Tick};
use crate::metrics::Closed;
use crate::protocol::{self, ClientMessage};

/// The largest message (and frame) a client may send.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// The most sessions open at once; further upgrades are answered 503.
const MAX_SESSIONS: u64 = 10_000;
/// How long one send may take before the client is deemed gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client gets to answer a Close frame (RFC 6455 §7.1.1) before the connection is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The close code and reason of a shutdown (RFC 6455 §7.4.1: going away).
const GOING_AWAY: (u16, &str) = (1001, "server shutting down");

/// `GET /stream`. The token is verified before the upgrade ([`SessionAuth`] first), so every
/// refusal is the JSON answer of `portcullis_verify` with its challenge.
pub async fn upgrade(
    State(app): State<AppState>,
    session: SessionAuth,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let status = rejection.status();
            let body = json!({
                "error": "invalid_request",
                "error_description": format!("not a WebSocket upgrade: {}", rejection.body_text()),
            });
            return (status, axum::Json(body)).into_response();
        }
    };
    if app.stream_metrics.sessions_open() >= MAX_SESSIONS {
        let body = json!({
            "error": "temporarily_unavailable",
            "error_description": "too many sessions are open; try again later",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let guard = session.into_guard();
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run(socket, guard, app))
}

/// What woke the session.
enum Event {
    End(portcullis_verify::ws::SessionEnd),
    Shutdown,
    Inbound(Option<Result<Message, axum::Error>>),
    Tick(Result<Tick, RecvError>),
}

/// One session, until its token dies, the client leaves, or the server stops.
async fn run(mut socket: WebSocket, mut guard: SessionGuard, app: AppState) {
    let mut slot = app.stream_metrics.open_session();
    let mut shutdown = app.shutdown.clone();
    let mut ticks = app.market.subscribe();
    let mut subscribed: BTreeSet<Instrument> = BTreeSet::new();
    tracing::info!(
        client_id = %guard.principal().client_id,
        expires_at = guard.expires_at(),
        "WebSocket session opened"
    );
    loop {
        let event = tokio::select! {
            // The token's end first: nothing more is sent under a dead token.
            biased;
            end = guard.ended() => Event::End(end),
            () = stopping(&mut shutdown) => Event::Shutdown,
            inbound = socket.recv() => Event::Inbound(inbound),
            tick = ticks.recv(), if !subscribed.is_empty() => Event::Tick(tick),
        };
        match event {
            Event::End(end) => {
                slot.closing(Closed::from_session_end(end.as_str()));
                close(&mut socket, end.close_code(), end.reason()).await;
                return;
            }
            Event::Shutdown => {
                slot.closing(Closed::Shutdown);
                close(&mut socket, GOING_AWAY.0, GOING_AWAY.1).await;
                return;
            }
            Event::Inbound(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
            Event::Inbound(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Event::Inbound(Some(Ok(message))) => {
                let was_idle = subscribed.is_empty();
                let reply = answer(message, &mut guard, &mut subscribed, &app).await;
                if was_idle && !subscribed.is_empty() {
                    // Start from now: not from ticks queued while nothing was subscribed.
                    ticks = ticks.resubscribe();
                }
                if !send(&mut socket, Message::Text(reply.to_string().into())).await {
                    slot.closing(Closed::Failed);
                    return;
                }
            }
            Event::Tick(Ok(tick)) => {
                if subscribed.contains(&tick.instrument) {
                    if !send(&mut socket, Message::Text(tick.frame)).await {
                        slot.closing(Closed::Failed);
                        return;
                    }
                    app.stream_metrics.tick_sent();
                }
            }
            Event::Tick(Err(RecvError::Lagged(skipped))) => {
                tracing::debug!(skipped, "a slow session skipped ticks");
            }
            Event::Tick(Err(RecvError::Closed)) => {
                // The tickers stopped: the server is shutting down.
                slot.closing(Closed::Shutdown);
                close(&mut socket, GOING_AWAY.0, GOING_AWAY.1).await;
                return;
            }
        }
    }
}

/// The answer to one client message.
async fn answer(
    message: Message,
    guard: &mut SessionGuard,
    subscribed: &mut BTreeSet<Instrument>,
    app: &AppState,
) -> Value {
    let text = match message {
        Message::Text(text) => text,
        _ => return protocol::invalid_request("binary frames are not accepted; send JSON text"),
    };
    let parsed = match serde_json::from_str::<ClientMessage>(text.as_str()) {
        Ok(parsed) => parsed,
        Err(e) => {
            return protocol::invalid_request(format!(
                "not a message of this stream ({e}); its type is subscribe, unsubscribe or renew"
            ));
        }
    };
    match parsed {
        ClientMessage::Subscribe { instruments } => {
            let wanted = match instruments_named(&instruments) {
                Ok(wanted) => wanted,
                Err(refusal) => return refusal,
            };
            let principal = guard.principal();
            let refused: Vec<Instrument> = wanted
                .iter()
                .copied()
                .filter(|i| !principal.has_scope(&i.scope()))
                .collect();
            if !refused.is_empty() {
                // All or nothing: one answer per request.
                return protocol::insufficient_scope(&refused);
            }
            subscribed.extend(wanted.iter().copied());
            protocol::instruments("subscribed", &wanted)
        }
        ClientMessage::Unsubscribe { instruments } => {
            let unwanted = match instruments_named(&instruments) {
                Ok(unwanted) => unwanted,
                Err(refusal) => return refusal,
            };
            for instrument in &unwanted {
                subscribed.remove(instrument);
            }
            protocol::instruments("unsubscribed", &unwanted)
        }
        ClientMessage::Renew { access_token, dpop } => {
            match guard.renew(&access_token, dpop.as_deref()).await {
                Ok(principal) => {
                    app.stream_metrics.renewal(true);
                    let dropped: Vec<Instrument> = subscribed
                        .iter()
                        .copied()
                        .filter(|i| !principal.has_scope(&i.scope()))
                        .collect();
                    let expires_at = principal.expires_at;
                    for instrument in &dropped {
                        subscribed.remove(instrument);
                    }
                    protocol::renewed(expires_at, &dropped)
                }
                Err(error) => {
                    app.stream_metrics.renewal(false);
                    tracing::info!(error = %error, "in-band renewal refused");
                    protocol::renewal_refused(&error)
                }
            }
        }
    }
}

/// The instruments `names` name, without repeats, in order; or the error to answer.
fn instruments_named(names: &[String]) -> Result<Vec<Instrument>, Value> {
    if names.is_empty() {
        return Err(protocol::invalid_request(
            "instruments must name at least one instrument",
        ));
    }
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match Instrument::parse(name) {
            Some(instrument) if !found.contains(&instrument) => found.push(instrument),
            Some(_) => {}
            None => unknown.push(name.chars().take(32).collect::<String>()),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = Instrument::ALL.iter().map(|i| i.as_str()).collect();
        return Err(protocol::invalid_request(format!(
            "unknown instrument {}; this stream has {}",
            unknown.join(", "),
            known.join(", ")
        )));
    }
    Ok(found)
}

/// Resolves once shutdown has been signalled (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Sends `message` within [`SEND_TIMEOUT`]; whether it went.
async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sends a Close frame and waits briefly for the client's (RFC 6455 §7.1.1).
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if send(socket, Message::Close(Some(frame))).await {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn instruments_are_deduplicated_in_order_and_unknown_ones_refused() {
        assert_eq!(
            instruments_named(&names(&["GBPUSD", "EURUSD", "GBPUSD"])).unwrap(),
            [Instrument::GbpUsd, Instrument::EurUsd]
        );
        let error = instruments_named(&names(&["EURUSD", "DOGEUSD"])).unwrap_err();
        assert_eq!(error["error"], "invalid_request");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains("DOGEUSD")
        );
        let error = instruments_named(&[]).unwrap_err();
        assert_eq!(error["error"], "invalid_request");
    }
}
