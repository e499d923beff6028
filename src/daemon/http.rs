//! The daemon's HTTP endpoints on `server.listen`:
//!
//! - `/healthz`: 200 while the process is alive;
//! - `/readyz`: 200 when the database answers `SELECT 1` within a short timeout and the scheduler
//!   runs; 503 with a JSON reason otherwise (it recovers by itself when the database comes back);
//! - `/metrics`: Prometheus text;
//! - `/status`: the JSON of `lightspeed-sync status --json`.
//!
//! No secrets are served, and there is no authentication: bind it to localhost or firewall it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;

use super::worker::Worker;
use super::{metrics, status};

/// How long `/readyz` waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    /// The database (readiness, status, gauges).
    pub pool: PgPool,
    /// True while the scheduler runs.
    pub scheduling: Arc<AtomicBool>,
    /// How long `/readyz` waits for `SELECT 1`.
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
        Ok(Err(e)) => not_ready(&format!("database: {e}")),
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
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics: could not read the database gauges"),
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
    match status::collect(&state.pool).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": format!("database: {e}") })),
        )
            .into_response(),
    }
}
