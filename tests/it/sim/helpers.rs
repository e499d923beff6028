//! Shared helpers: start a simulator, an HTTP client, authenticated GETs, page walks.

use lightspeed_sync::sim::{SimConfig, Simulator};
use serde_json::Value;

/// A running simulator, a client, and a ready token for its first account.
pub struct Ctx {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub account: u64,
    pub token: String,
}

/// A config for tests: small, rate limits off unless a test turns them on.
pub fn cfg(customers: usize) -> SimConfig {
    SimConfig {
        customers,
        rate_limits: false,
        ..SimConfig::default()
    }
}

/// A plain HTTP client with no idle-pool timer (paused-time tests must not see timers jump).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_idle_timeout(None)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Start a simulator and issue a token for its first account.
pub async fn start(cfg: SimConfig) -> Ctx {
    let sim = Simulator::start(cfg).await.expect("simulator starts");
    let account = sim.account_ids()[0];
    let token = sim.issue_tokens(account).access_token;
    Ctx {
        sim,
        http: client(),
        account,
        token,
    }
}

impl Ctx {
    /// `{base}/API/V3/Account/{account}/{rest}`.
    pub fn url(&self, rest: &str) -> String {
        format!(
            "{}/API/V3/Account/{}/{rest}",
            self.sim.base_url(),
            self.account
        )
    }

    /// GET with this context's bearer token.
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.get_with(url, &self.token).await
    }

    /// GET with a given bearer token.
    pub async fn get_with(&self, url: &str, token: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// GET expecting 200 and JSON.
    pub async fn json(&self, url: &str) -> Value {
        let resp = self.get(url).await;
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert_eq!(status, 200, "GET {url}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
    }

    /// Follow `next` from `first` until it is `""`; every record seen, in order.
    pub async fn walk(&self, first: &str) -> Vec<Value> {
        let mut url = first.to_string();
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let page = self.json(&url).await;
            out.extend(records(&page));
            let next = page["@attributes"]["next"]
                .as_str()
                .expect("next is a string");
            if next.is_empty() {
                return out;
            }
            url = next.to_string();
        }
        panic!("pagination did not end");
    }
}

/// The `Customer` records of a page: object → one, array → many, absent → none.
pub fn records(page: &Value) -> Vec<Value> {
    match &page["Customer"] {
        Value::Null => vec![],
        Value::Array(a) => a.clone(),
        o @ Value::Object(_) => vec![o.clone()],
        other => panic!("unexpected Customer value {other}"),
    }
}

/// The IDs of records.
pub fn ids(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| {
            r["customerID"]
                .as_str()
                .expect("string id")
                .parse()
                .expect("numeric id")
        })
        .collect()
}
