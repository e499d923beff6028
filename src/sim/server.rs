//! The HTTP server: routes, and an accept loop on hyper directly so that header-name case can
//! differ between connections (every other connection uses Title-Case names, §7.1 says the
//! real API varies case) and so a body error aborts the connection (the `Drop` fault).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Shared, api, oauth};

/// All routes of the simulator.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/auth/oauth/authorize", any(oauth::authorize))
        .route("/auth/oauth/token", any(oauth::token))
        .route("/auth/oauth/revoke", any(oauth::revoke))
        .fallback(api::handle)
        .layer(axum::middleware::map_response_with_state(
            shared.clone(),
            count_status,
        ))
        .with_state(shared)
}

async fn count_status(State(shared): State<Arc<Shared>>, resp: Response) -> Response {
    let mut c = shared.counters.lock().expect("counters lock");
    *c.by_status.entry(resp.status().as_u16()).or_default() += 1;
    resp
}

/// Accept connections until `cancel` fires.
pub(crate) async fn run(listener: TcpListener, app: Router, cancel: CancellationToken) {
    let mut n: u64 = 0;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error.message = %e, "simulator accept failed");
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        n += 1;
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        let title_case = n.is_multiple_of(2);
        tokio::spawn(async move {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.title_case_headers(title_case);
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}
