//! The `/API/V3/...` routes: authentication (§8 401 bodies), account scoping, rate limits,
//! faults, then `Account` and `Customer` reads, with the rate headers of §7.1 on every
//! response the API itself answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use tokio::time::Instant;

use super::faults::Fault;
use super::grants::AuthError;
use super::query::{self, ListQuery};
use super::respond::{Out, html_error, plain, respond, spoil, throttled};
use super::{Shared, json};

#[derive(Clone, Copy, Debug)]
enum Route {
    Accounts,
    Account(u64),
    Customers(u64),
    Customer(u64, u64),
    CustomFields(u64),
    CustomerTypes(u64),
}

impl Route {
    fn parse(path: &str) -> Option<(Route, bool)> {
        let rest = path.strip_prefix("/API/V3/")?;
        let json = rest.ends_with(".json");
        let rest = rest.strip_suffix(".json").unwrap_or(rest);
        let seg: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| s.parse::<u64>().ok();
        let route = match seg.as_slice() {
            ["Account"] => Route::Accounts,
            ["Account", a] => Route::Account(id(a)?),
            ["Account", a, "Customer"] => Route::Customers(id(a)?),
            ["Account", a, "Customer", "CustomField"] => Route::CustomFields(id(a)?),
            ["Account", a, "CustomerType"] => Route::CustomerTypes(id(a)?),
            ["Account", a, "Customer", c] => Route::Customer(id(a)?, id(c)?),
            _ => return None,
        };
        Some((route, json))
    }

    fn account(self) -> Option<u64> {
        match self {
            Route::Accounts => None,
            Route::Account(a)
            | Route::Customers(a)
            | Route::Customer(a, _)
            | Route::CustomFields(a)
            | Route::CustomerTypes(a) => Some(a),
        }
    }

    fn xml_root(self) -> &'static str {
        match self {
            Route::Accounts | Route::Account(_) => "Accounts",
            Route::CustomFields(_) => "CustomFields",
            Route::CustomerTypes(_) => "CustomerTypes",
            _ => "Customers",
        }
    }
}

/// Serve one API request.
pub(crate) async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    sh.counters.lock().expect("counters").api_requests += 1;
    let accept_xml = |json_suffix: bool| wants_xml(&headers, json_suffix);
    let Some((route, json_suffix)) = Route::parse(uri.path()) else {
        let out = Out::error(
            404,
            &format!("Route {} not found.", uri.path()),
            "NotFoundException",
            0.0,
        );
        return respond(
            &sh,
            out,
            accept_xml(uri.path().ends_with(".json")),
            "error",
            None,
        );
    };
    let xml = accept_xml(json_suffix);
    let account = match authenticate(&sh, &headers) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    if route.account().is_some_and(|a| a != account) {
        let out = Out::error(
            403,
            "The access token does not grant access to this account.",
            "ForbiddenException",
            0.0,
        );
        return respond(&sh, out, xml, "error", Some(account));
    }
    if method != Method::GET {
        let out = Out::error(
            405,
            "Method not allowed on this resource.",
            "MethodNotAllowedException",
            0.0,
        );
        return respond(&sh, out, xml, "error", Some(account));
    }
    let admitted = sh
        .limits
        .lock()
        .expect("limits")
        .admit(account, Instant::now());
    if let Err(t) = admitted {
        return throttled(&sh, t, account, xml);
    }
    let fault = sh.faults.lock().expect("faults").next();
    if fault.is_some() {
        sh.counters.lock().expect("counters").faults += 1;
    }
    match fault {
        Some(Fault::ServerError) => return html_error(503),
        Some(Fault::Status(code)) => return html_error(code),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let out = serve(&sh, route, account, &uri, &headers);
    let root = if out.classic {
        "error"
    } else {
        route.xml_root()
    };
    let mut resp = respond(&sh, out, xml, root, Some(account));
    if let Some(f) = fault {
        resp = spoil(resp, f).await;
    }
    resp
}

/// The account of the bearer token, or the 401 response (§8: two body shapes).
fn authenticate(sh: &Shared, headers: &HeaderMap) -> Result<u64, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        let body = json::classic_error(
            401,
            "Invalid username/password or API key.",
            "BadAuthenticationRequestError",
        );
        return Err(Box::new(plain(401, "application/json", body)));
    };
    let verdict = sh
        .grants
        .lock()
        .expect("grants")
        .authenticate(token, Instant::now());
    verdict.map_err(|e| {
        let mut c = sh.counters.lock().expect("counters");
        let hint = match e {
            AuthError::Revoked => {
                c.revoked_token_requests += 1;
                "Access token has been revoked"
            }
            AuthError::Expired => {
                c.expired_token_requests += 1;
                "Access token could not be verified"
            }
            AuthError::Unknown => "Access token could not be verified",
        };
        let body = json::oauth_error(
            "access_denied",
            "The resource owner or authorization server denied the request.",
            hint,
        );
        Box::new(plain(401, "application/json", body))
    })
}

fn serve(sh: &Shared, route: Route, account: u64, uri: &Uri, headers: &HeaderMap) -> Out {
    let lock = &sh.data[&account];
    if let Route::CustomFields(_) | Route::CustomerTypes(_) = route {
        let acct = lock.read().expect("account lock");
        let (key, records): (&str, Vec<(u64, String)>) = match route {
            Route::CustomFields(_) => (
                "CustomField",
                acct.fields
                    .iter()
                    .map(|d| (d.id, json::custom_field(d)))
                    .collect(),
            ),
            _ => (
                "CustomerType",
                acct.types
                    .values()
                    .map(|t| (t.id, json::customer_type(t)))
                    .collect(),
            ),
        };
        return definitions_page(sh, headers, uri, key, records);
    }
    let q = match query::parse(uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(msg) => return Out::error(400, &msg, "Exception", 1.0),
    };
    let acct = lock.read().expect("account lock");
    match route {
        Route::Accounts => Out::ok(
            json::counted(
                1,
                "Account",
                Some(&json::account_short(account, &acct.name)),
            ),
            1.0,
        ),
        Route::Account(_) => Out::ok(
            json::account_detail(account, &acct.name, sh.cfg.wrapped_account_detail),
            1.0,
        ),
        Route::Customer(_, id) => match acct.get(id) {
            Some(e) => Out::ok(
                json::counted(
                    1,
                    "Customer",
                    Some(&e.render(q.rels, &acct.types, &acct.fields)),
                ),
                q.cost(false),
            ),
            None => Out::error(
                404,
                &format!("Customer with customerID {id} not found."),
                "NotFoundException",
                1.0,
            ),
        },
        Route::Customers(_) if q.count => {
            Out::ok(json::counted(q.count_in(&acct), "Customer", None), 10.0)
        }
        Route::CustomFields(_) | Route::CustomerTypes(_) => unreachable!("served above"),
        Route::Customers(_) => {
            let page = q.run(&acct, sh.cfg.tie_break);
            let base = base_url(sh, headers);
            let link = |param: &str, c: Option<String>| {
                c.map(|c| page_url(&base, uri.path(), &q, param, &c))
                    .unwrap_or_default()
            };
            let next = link("after", page.next);
            let previous = link("before", page.previous);
            Out::ok(json::page(&next, &previous, &page.records), q.cost(true))
        }
    }
}

/// A page of definitions (records sorted by ID): `limit` (default and at most 100) and the cursor
/// `after` (base64 of `[id]`, as the customer cursors); `next` carries the other parameters.
fn definitions_page(
    sh: &Shared,
    headers: &HeaderMap,
    uri: &Uri,
    key: &str,
    records: Vec<(u64, String)>,
) -> Out {
    use base64::Engine as _;
    let (mut limit, mut after, mut carry) = (100usize, 0u64, Vec::new());
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "limit" => match v.trim().parse::<usize>() {
                Ok(0) => {}
                Ok(n) if n <= 100 => limit = n,
                _ => {
                    return Out::error(
                        400,
                        &format!("Invalid limit value '{v}'."),
                        "Exception",
                        1.0,
                    );
                }
            },
            "after" => {
                let id = base64::engine::general_purpose::STANDARD
                    .decode(v.trim().replace(' ', "+"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
                    .and_then(|a| {
                        a.first()
                            .and_then(|x| x.as_u64().or_else(|| x.as_str()?.parse().ok()))
                    });
                match id {
                    Some(id) => after = id,
                    None => {
                        return Out::error(
                            400,
                            &format!("Invalid cursor '{v}'."),
                            "Exception",
                            1.0,
                        );
                    }
                }
            }
            _ => carry.push(format!(
                "{}={}",
                url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>(),
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )),
        }
    }
    let rest: Vec<&(u64, String)> = records.iter().filter(|(id, _)| *id > after).collect();
    let page: Vec<String> = rest.iter().take(limit).map(|(_, r)| r.clone()).collect();
    let next = match (rest.len() > limit, rest.get(limit.saturating_sub(1))) {
        (true, Some((last, _))) => {
            let cursor = base64::engine::general_purpose::STANDARD.encode(format!("[{last}]"));
            let mut u = format!("{}{}?", base_url(sh, headers), uri.path());
            for c in &carry {
                u.push_str(c);
                u.push('&');
            }
            u.push_str(&format!(
                "limit={limit}&after={}",
                url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()
            ));
            u
        }
        _ => String::new(),
    };
    Out::ok(json::list_page(key, &next, "", &page), 1.0)
}

fn base_url(sh: &Shared, headers: &HeaderMap) -> String {
    if let Some(b) = &sh.cfg.public_base_url {
        return b.trim_end_matches('/').to_string();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    format!(
        "http://{}",
        host.map_or_else(|| sh.local.to_string(), str::to_string)
    )
}

/// `next`/`previous`: every original parameter, then `sort`, `limit` and the cursor.
fn page_url(base: &str, path: &str, q: &ListQuery, param: &str, cursor: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut u = format!("{base}{path}?");
    for seg in &q.carry {
        u.push_str(seg);
        u.push('&');
    }
    u.push_str(&format!(
        "sort={}&limit={}&{param}={}",
        enc(&q.sort_raw),
        q.limit,
        enc(cursor)
    ));
    u
}

fn wants_xml(headers: &HeaderMap, json_suffix: bool) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match (accept.find("xml"), accept.find("json")) {
        (Some(x), Some(j)) => x < j,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => !json_suffix,
    }
}
