//! The OAuth endpoints (§1): `GET /auth/oauth/authorize` (auto-approves, 302 to the redirect
//! URI), `POST /auth/oauth/token` (code exchange and refresh; form, JSON or multipart body) and
//! `POST /auth/oauth/revoke`. Error bodies are `{"error","error_description","hint"}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use tokio::time::Instant;

use super::grants::GrantError;
use super::respond::plain;
use super::{Shared, TokenPair, json};

fn describe(error: &str) -> &'static str {
    match error {
        "invalid_request" => {
            "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed."
        }
        "invalid_client" => "Client authentication failed",
        "invalid_grant" => {
            "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."
        }
        "invalid_scope" => "The requested scope is invalid, unknown, or malformed",
        "unsupported_grant_type" => {
            "The authorization grant type is not supported by the authorization server."
        }
        _ => "The request could not be processed.",
    }
}

fn oauth_error(sh: &Shared, status: u16, error: &str, hint: &str) -> Response {
    {
        let mut c = sh.counters.lock().expect("counters");
        match error {
            "invalid_grant" => c.invalid_grants += 1,
            "invalid_client" => c.invalid_clients += 1,
            _ => {}
        }
    }
    plain(
        status,
        "application/json",
        json::oauth_error(error, describe(error), hint),
    )
}

fn missing(sh: &Shared, field: &str) -> Response {
    oauth_error(
        sh,
        400,
        "invalid_request",
        &format!("Check the `{field}` parameter"),
    )
}

/// `GET /auth/oauth/authorize`: validate, record a code, redirect with `code` and `state`.
/// The account is `account_id` when given (a simulator extension), else the next in turn.
pub(crate) async fn authorize(State(sh): State<Arc<Shared>>, uri: Uri) -> Response {
    let p: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if get("response_type") != Some("code") {
        return missing(&sh, "response_type");
    }
    match get("client_id") {
        None => return missing(&sh, "client_id"),
        Some(id) if id != sh.cfg.client_id => {
            return oauth_error(&sh, 400, "invalid_client", "Unknown client");
        }
        _ => {}
    }
    if get("redirect_uri").is_some_and(|r| r != sh.cfg.redirect_uri) {
        return oauth_error(
            &sh,
            400,
            "invalid_request",
            "Check the `redirect_uri` parameter: it must match the registered one",
        );
    }
    let scope = get("scope").unwrap_or("employee:all").to_string();
    if let Some(bad) = scope
        .split([' ', '+'])
        .find(|s| !s.is_empty() && !s.starts_with("employee:"))
    {
        return oauth_error(
            &sh,
            400,
            "invalid_scope",
            &format!("Check the `{bad}` scope"),
        );
    }
    let challenge = match (
        get("code_challenge"),
        get("code_challenge_method").unwrap_or("plain"),
    ) {
        (None, _) => None,
        (Some(c), m @ ("S256" | "plain")) => Some((c.to_string(), m.to_string())),
        (Some(_), _) => {
            return oauth_error(
                &sh,
                400,
                "invalid_request",
                "Code challenge method must be one of `plain` or `S256`",
            );
        }
    };
    let account = match get("account_id").map(str::parse::<u64>) {
        Some(Ok(a)) if sh.data.contains_key(&a) => a,
        Some(_) => return missing(&sh, "account_id"),
        None => {
            sh.account_ids[sh.next_authorize.fetch_add(1, Ordering::Relaxed) % sh.account_ids.len()]
        }
    };
    let code =
        sh.grants
            .lock()
            .expect("grants")
            .new_code(account, scope, challenge, Instant::now());
    let mut location = url::Url::parse(&sh.cfg.redirect_uri)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| sh.cfg.redirect_uri.clone());
    location.push(if location.contains('?') { '&' } else { '?' });
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("code", &code);
    if let Some(state) = get("state") {
        q.append_pair("state", state);
    }
    location.push_str(&q.finish());
    let mut resp = plain(302, "text/html; charset=UTF-8", String::new());
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("url is ascii"),
    );
    resp
}

/// Body parameters from a form-encoded, JSON or multipart body.
fn params(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.contains("json") {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).unwrap_or_default();
        return v
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
    }
    if let Some(boundary) = ctype.split("boundary=").nth(1) {
        return multipart(body, boundary.trim_matches('"'));
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn multipart(body: &[u8], boundary: &str) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    text.split(delimiter.as_str())
        .filter_map(|part| {
            let (head, value) = part.split_once("\r\n\r\n")?;
            let name = head.split("name=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), value.trim_end_matches("\r\n").to_string()))
        })
        .collect()
}

/// Check `client_id` and `client_secret` from the body (HTTP Basic is not honoured).
fn client_ok(sh: &Shared, p: &HashMap<String, String>) -> Result<(), Box<Response>> {
    match p.get("client_id").filter(|v| !v.is_empty()) {
        None => Err(Box::new(missing(sh, "client_id"))),
        Some(id)
            if *id == sh.cfg.client_id && p.get("client_secret") == Some(&sh.cfg.client_secret) =>
        {
            Ok(())
        }
        Some(_) => Err(Box::new(oauth_error(
            sh,
            401,
            "invalid_client",
            "Client authentication failed",
        ))),
    }
}

/// `POST /auth/oauth/token`.
pub(crate) async fn token(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sh.counters.lock().expect("counters").token_requests += 1;
    if method != Method::POST {
        return oauth_error(
            &sh,
            405,
            "invalid_request",
            "The token endpoint only accepts POST",
        );
    }
    let p = params(&headers, &body);
    let grant_type = p.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type.is_empty() {
        return missing(&sh, "grant_type");
    }
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return oauth_error(
            &sh,
            400,
            "unsupported_grant_type",
            "Check that all required parameters have been provided",
        );
    }
    if let Err(r) = client_ok(&sh, &p) {
        return *r;
    }
    let field = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (now, wall) = (Instant::now(), sh.clock.wall());
    let result = if grant_type == "authorization_code" {
        let Some(code) = field("code") else {
            return missing(&sh, "code");
        };
        sh.grants
            .lock()
            .expect("grants")
            .exchange(code, field("code_verifier"), now, wall)
    } else {
        let Some(refresh) = field("refresh_token") else {
            return missing(&sh, "refresh_token");
        };
        if field("scope").is_some() {
            // Worst case of timothydc #36: a `scope` on refresh is refused as invalid_grant.
            return oauth_error(
                &sh,
                400,
                "invalid_grant",
                "The `scope` parameter is not accepted when refreshing",
            );
        }
        sh.grants
            .lock()
            .expect("grants")
            .refresh(refresh, now, wall)
    };
    match result {
        Ok(pair) => {
            let mut c = sh.counters.lock().expect("counters");
            if grant_type == "authorization_code" {
                c.code_exchanges += 1
            } else {
                c.refreshes += 1
            }
            drop(c);
            token_response(&pair)
        }
        Err(GrantError { error, hint }) => oauth_error(&sh, 400, error, &hint),
    }
}

fn token_response(pair: &TokenPair) -> Response {
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
    });
    let mut resp = plain(200, "application/json; charset=UTF-8", body.to_string());
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `POST /auth/oauth/revoke`: revokes the whole chain of the given refresh token.
pub(crate) async fn revoke(
    State(sh): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return oauth_error(
            &sh,
            405,
            "invalid_request",
            "The revoke endpoint only accepts POST",
        );
    }
    let p = params(&headers, &body);
    if let Err(r) = client_ok(&sh, &p) {
        return *r;
    }
    let Some(token) = p
        .get("refresh_token")
        .or_else(|| p.get("token"))
        .filter(|t| !t.is_empty())
    else {
        return missing(&sh, "refresh_token");
    };
    sh.grants.lock().expect("grants").revoke_chain(token);
    plain(200, "application/json", "{}".into())
}
