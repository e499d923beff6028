//! Building API responses: charging the bucket, the rate headers of §7.1, 429s, XML, and
//! turning a good response into a faulty one.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use rand::Rng;
use tokio::time::Instant;

use super::faults::{self, Fault};
use super::ratelimit::{Levels, LimitKind, Throttle, num};
use super::{Shared, json, xml};

/// A response under construction.
pub(crate) struct Out {
    status: u16,
    body: String,
    pub classic: bool,
    cost: f64,
}

impl Out {
    pub(crate) fn ok(body: String, cost: f64) -> Self {
        Out {
            status: 200,
            body,
            classic: false,
            cost,
        }
    }

    pub(crate) fn error(status: u16, message: &str, class: &str, cost: f64) -> Self {
        Out {
            status,
            body: json::classic_error(status, message, class),
            classic: true,
            cost,
        }
    }
}

/// Charge, then build the response with the rate headers.
pub(crate) fn respond(
    sh: &Shared,
    out: Out,
    xml: bool,
    root: &str,
    account: Option<u64>,
) -> Response {
    let levels = account.map(|a| {
        let now = Instant::now();
        let mut l = sh.limits.lock().expect("limits");
        l.charge(a, out.cost, now);
        l.levels(a, now)
    });
    if account.is_some() && out.cost > 0.0 && sh.cfg.rate_limits {
        sh.counters.lock().expect("counters").drip_charged += out.cost;
    }
    let (ctype, body) = match (xml, out.classic) {
        (true, _) => ("application/xml", xml::from_json(root, &out.body)),
        (false, true) => ("text/html; charset=UTF-8", out.body),
        (false, false) => ("application/json", out.body),
    };
    let mut resp = plain(out.status, ctype, body);
    if let (Some(a), Some(l)) = (account, levels) {
        rate_headers(sh, resp.headers_mut(), a, &l, out.cost);
    }
    resp
}

pub(crate) fn throttled(sh: &Shared, t: Throttle, account: u64, xml: bool) -> Response {
    {
        let mut c = sh.counters.lock().expect("counters");
        match t.kind {
            LimitKind::Bucket => c.throttled_bucket += 1,
            LimitKind::Burst => c.throttled_burst += 1,
        }
    }
    let msg = match t.kind {
        LimitKind::Burst => {
            "Too Many Requests: burst rate limit exceeded. Wait at least 1 second.".to_string()
        }
        LimitKind::Bucket => format!(
            "Rate limit exceeded: Please retry your request after {} seconds.",
            t.retry_after
        ),
    };
    let out = Out::error(429, &msg, "RateLimitedException", 0.0);
    let mut resp = respond(sh, out, xml, "error", Some(account));
    let h = resp.headers_mut();
    h.insert(
        "x-ls-api-ratelimit-type",
        HeaderValue::from_static(t.kind.header()),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after));
    resp
}

fn rate_headers(sh: &Shared, h: &mut HeaderMap, account: u64, l: &Levels, cost: f64) {
    let v = |s: String| HeaderValue::from_str(&s).expect("ascii header");
    h.insert(
        "x-ls-api-bucket-level",
        v(format!("{}/{}", num(l.level), num(l.size))),
    );
    if l.burst_limit > 0 {
        h.insert(
            "x-ls-api-burst-level",
            v(format!("{}/{}", l.burst, l.burst_limit)),
        );
    }
    h.insert("x-ls-api-drip-rate", v(num(l.drip)));
    h.insert("x-ls-api-request-cost", v(num(cost)));
    h.insert("x-ls-acct-id", v(account.to_string()));
    h.insert("x-ls-oauth-client-id", v(sh.cfg.client_id.clone()));
}

/// A response with a body, a content type and a `Cf-Ray`.
pub(crate) fn plain(status: u16, ctype: &'static str, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    let ray = format!("{:016x}-YUL", rand::rng().random::<u64>());
    h.insert("cf-ray", HeaderValue::from_str(&ray).expect("ascii"));
    resp
}

pub(crate) fn html_error(code: u16) -> Response {
    let mut resp = plain(code, "text/html; charset=UTF-8", faults::html_error(code));
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("cloudflare"));
    resp
}

/// Turn a good response into the faulty one (`Slow`, `ServerError` and `Status` are handled earlier).
pub(crate) async fn spoil(resp: Response, f: Fault) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = match f {
        Fault::MalformedJson => Body::from(faults::truncate(&text)),
        Fault::WrongTypes => Body::from(faults::wrong_types(&text)),
        Fault::Drop => {
            parts.headers.remove(header::CONTENT_LENGTH);
            faults::dropping_body(text)
        }
        Fault::ServerError | Fault::Status(_) | Fault::Slow(_) => Body::from(text),
    };
    Response::from_parts(parts, body)
}
