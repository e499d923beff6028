//! The daemon's HTTP endpoints on `server.listen`:
//!
//! - `/healthz`: 200 while the process is alive;
//! - `/readyz`: 200 when the database answers `SELECT 1` within a short timeout and the scheduler
//!   runs; 503 with a JSON reason otherwise (it recovers by itself when the database comes back);
//! - `/metrics`: Prometheus text;
//! - `/status`: the JSON of `lightspeed-sync status --json`;
//! - `/`: the status page, HTML for people ([`super::page`]): `?sort=lag_desc|lag_asc|account`,
//!   `?state=needs_reauth|failing|syncing|never_synced|ok|disconnected`.
//!
//! No secrets are served, and there is no authentication: bind it to localhost or firewall it.
//!
//! [`serve`] bounds what a client can hold: request headers must arrive within
//! [`ServerLimits::header_timeout`], a request is answered (or gets a 503) within
//! [`ServerLimits::request_timeout`], a connection serves one request and lives no longer than both
//! together, and at most [`ServerLimits::max_connections`] are open at once (more wait in the listen
//! backlog). The database reads of `/readyz`, `/metrics` and `/status` are bounded by the readiness
//! timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::worker::Worker;
use super::{metrics, status};
use crate::error::report;

use crate::model::AccountId;

/// How long `/readyz` waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// The request line and headers must arrive within this.
    pub header_timeout: Duration,
    /// A handler answers within this, or the request gets a 503.
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Serve `app` on `listener` within `limits` until `stop` is cancelled; then finish the requests in
/// flight (each within its own bounds) and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_deadline,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // One request per connection: an idle keep-alive connection would hold a slot for nothing.
        .keep_alive(false);
    let lifetime = limits.header_timeout + limits.request_timeout;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %report(&e), "HTTP server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %report(&e), "HTTP connection ended with an error");
                    }
                }
                () = tokio::time::sleep(lifetime) => {
                    tracing::debug!("HTTP connection outlived its limit; closed");
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(lifetime, conn).await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// A handler that does not answer within the limit gets a 503.
async fn request_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path, limit = ?limit, "HTTP request timed out");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": format!("{path} did not answer within {limit:?}") })),
            )
                .into_response()
        }
    }
}

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    /// The database (readiness, status, gauges).
    pub pool: PgPool,
    /// True while the scheduler runs.
    pub scheduling: Arc<AtomicBool>,
    /// How long `/readyz` waits for `SELECT 1`, and `/status` and `/metrics` for their queries.
    pub ready_timeout: Duration,
    /// The worker (for the gauge of active accounts).
    pub worker: Worker,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/status", get(status_json))
        .route("/", get(status_page))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if !state.scheduling.load(Ordering::SeqCst) {
        return not_ready("the scheduler is not running (starting or shutting down)");
    }
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(state.ready_timeout, ping).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "ready": true }))).into_response(),
        Ok(Err(e)) => not_ready(&format!("database: {}", report(&e))),
        Err(_) => not_ready(&format!(
            "database: no answer to SELECT 1 within {:?}",
            state.ready_timeout
        )),
    }
}

fn not_ready(reason: &str) -> Response {
    tracing::debug!(reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "reason": reason })),
    )
        .into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    ::metrics::gauge!("lightspeed_daemon_accounts_active")
        .set(state.worker.active_accounts() as f64);
    // The database gauges are best effort: metrics must render while the database is down.
    let refresh = metrics::refresh_db_gauges(&state.pool);
    match tokio::time::timeout(state.ready_timeout, refresh).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %report(&e), "metrics: could not read the database gauges")
        }
        Err(_) => tracing::debug!("metrics: database gauges timed out"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(),
    )
        .into_response()
}

async fn status_json(State(state): State<AppState>) -> Response {
    let unavailable = |error: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": error })),
        )
            .into_response()
    };
    match tokio::time::timeout(state.ready_timeout, status::collect(&state.pool)).await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => unavailable(format!("database: {}", report(&e))),
        Err(_) => unavailable(format!(
            "database: the status queries did not finish within {:?}",
            state.ready_timeout
        )),
    }
}

/// The query of the status page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    /// `lag_desc` (default), `lag_asc` or `account`.
    pub sort: Option<String>,
    /// Only accounts in this state.
    pub state: Option<String>,
}

async fn status_page(State(state): State<AppState>, Query(query): Query<PageQuery>) -> Response {
    let api = state.worker.engine().api.clone();
    let pace = move |account: AccountId| api.known_pace(account);
    let collect = status::collect_paced(&state.pool, &pace);
    let html_error = |status: StatusCode, message: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>lightspeed-sync status</title></head>\
                 <body><h1>lightspeed-sync</h1><p>{}</p></body></html>\n",
                super::page::escape(&message)
            ),
        )
            .into_response()
    };
    match tokio::time::timeout(state.ready_timeout, collect).await {
        Ok(Ok(report)) => {
            let sort = super::page::Sort::parse(query.sort.as_deref());
            let html = super::page::render(&report, sort, query.state.as_deref());
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'",
                    ),
                ],
                html,
            )
                .into_response()
        }
        Ok(Err(e)) => html_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {}", report(&e)),
        ),
        Err(_) => html_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "database: the status queries did not finish within {:?}",
                state.ready_timeout
            ),
        ),
    }
}
