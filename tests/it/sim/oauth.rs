//! The authorization-code flow (§1.2, §1.4, §1.6): authorize, code exchange, PKCE, errors.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lightspeed_sync::sim::{SimConfig, Simulator};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::sim::helpers::{cfg, client};

pub struct Auth {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

pub async fn auth(cfg: SimConfig) -> Auth {
    Auth {
        sim: Simulator::start(cfg).await.unwrap(),
        http: client(),
    }
}

impl Auth {
    /// Run the authorize step; returns the `code` from the redirect.
    pub async fn code(&self, extra: &str) -> String {
        let url = format!(
            "{}/auth/oauth/authorize?response_type=code&client_id={}&scope=employee:customers_read&state=xyz{extra}",
            self.sim.base_url(),
            self.sim.client_id()
        );
        let r = self.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(loc.as_str().starts_with(self.sim.redirect_uri()));
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "xyz");
        q["code"].clone()
    }

    /// POST the token endpoint with a form body; status and JSON body.
    pub async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let mut all = vec![
            ("client_id", self.sim.client_id()),
            ("client_secret", self.sim.client_secret()),
        ];
        all.extend_from_slice(form);
        let r = self
            .http
            .post(format!("{}/auth/oauth/token", self.sim.base_url()))
            .form(&all)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn exchange(&self, code: &str, verifier: Option<&str>) -> (u16, Value) {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        self.token(&form).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }
}

#[tokio::test(start_paused = true)]
async fn code_exchange_returns_a_bearer_pair_without_scope() {
    let a = auth(cfg(1)).await;
    let code = a.code("").await;
    let (status, body) = a.exchange(&code, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body.get("scope").is_none());
    assert!(body["refresh_token"].as_str().unwrap().starts_with("def50"));
    let jwt: Vec<&str> = body["access_token"].as_str().unwrap().split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt[0]).unwrap()).unwrap();
    assert_eq!(header["kid"], "RT_OAUTH2_2024_07_08");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt[1]).unwrap()).unwrap();
    assert_eq!(claims["acct"], a.sim.account_ids()[0].to_string());
    assert_eq!(claims["aud"], a.sim.client_id());
    assert_eq!(claims["scope"], "employee:customers_read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test(start_paused = true)]
async fn expires_in_follows_the_token_lifetime_knob() {
    let a = auth(SimConfig {
        token_lifetime: Duration::from_secs(1800),
        ..cfg(1)
    })
    .await;
    let (_, body) = a.exchange(&a.code("").await, None).await;
    assert_eq!(body["expires_in"], 1800);
}

#[tokio::test(start_paused = true)]
async fn code_expires_after_sixty_seconds() {
    let a = auth(cfg(1)).await;
    let code = a.code("").await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let (status, body) = a.exchange(&code, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(body["hint"], "Authorization code has expired");
}

#[tokio::test(start_paused = true)]
async fn code_works_once() {
    let a = auth(cfg(1)).await;
    let code = a.code("").await;
    assert_eq!(a.exchange(&code, None).await.0, 200);
    let (status, body) = a.exchange(&code, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(a.sim.counters().invalid_grants, 1);
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn s256(v: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
}

#[tokio::test(start_paused = true)]
async fn pkce_s256_accepts_the_right_verifier_only() {
    let a = auth(cfg(1)).await;
    let extra = format!(
        "&code_challenge={}&code_challenge_method=S256",
        s256(VERIFIER)
    );
    let good = a.code(&extra).await;
    assert_eq!(a.exchange(&good, Some(VERIFIER)).await.0, 200);
    let wrong = a.code(&extra).await;
    let other = "x".repeat(43);
    let (status, body) = a.exchange(&wrong, Some(&other)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let missing = a.code(&extra).await;
    let (status, body) = a.exchange(&missing, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(body["hint"].as_str().unwrap().contains("code_verifier"));
}

#[tokio::test(start_paused = true)]
async fn pkce_plain_and_verifier_syntax() {
    let a = auth(cfg(1)).await;
    let good = a
        .code(&format!(
            "&code_challenge={VERIFIER}&code_challenge_method=plain"
        ))
        .await;
    assert_eq!(a.exchange(&good, Some(VERIFIER)).await.0, 200);
    let short = "abc";
    let bad = a
        .code(&format!(
            "&code_challenge={short}&code_challenge_method=plain"
        ))
        .await;
    let (status, body) = a.exchange(&bad, Some(short)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "a 3-char verifier breaks RFC 7636"
    );
}

#[tokio::test(start_paused = true)]
async fn json_and_multipart_bodies_are_accepted() {
    let a = auth(cfg(1)).await;
    let url = format!("{}/auth/oauth/token", a.sim.base_url());
    let code = a.code("").await;
    let body = serde_json::json!({"client_id": a.sim.client_id(), "client_secret": a.sim.client_secret(), "grant_type": "authorization_code", "code": code});
    let r = a.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let refresh = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let boundary = "XyZ";
    let parts: String = [
        ("client_id", a.sim.client_id()),
        ("client_secret", a.sim.client_secret()),
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
    ]
    .iter()
    .map(|(k, v)| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
    })
    .collect();
    let r = a
        .http
        .post(&url)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(format!("{parts}--{boundary}--\r\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_refuses_non_post_with_405() {
    let a = auth(cfg(1)).await;
    let r = a
        .http
        .get(format!("{}/auth/oauth/token", a.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test(start_paused = true)]
async fn missing_fields_are_invalid_request_with_a_hint() {
    let a = auth(cfg(1)).await;
    let (status, body) = a.token(&[("grant_type", "refresh_token")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(body["hint"], "Check the `refresh_token` parameter");
    assert!(body["error_description"].is_string());
}

#[tokio::test(start_paused = true)]
async fn bad_client_secret_is_invalid_client() {
    let a = auth(cfg(1)).await;
    let form = [
        ("client_id", a.sim.client_id()),
        ("client_secret", "wrong"),
        ("grant_type", "refresh_token"),
        ("refresh_token", "def50200x"),
    ];
    let r = a
        .http
        .post(format!("{}/auth/oauth/token", a.sim.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    assert_eq!(a.sim.counters().invalid_clients, 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_refresh_token_is_invalid_grant() {
    let a = auth(cfg(1)).await;
    let (status, body) = a.refresh("def50200deadbeef").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test(start_paused = true)]
async fn authorize_rejects_a_foreign_client_and_bad_scopes() {
    let a = auth(cfg(1)).await;
    let base = format!(
        "{}/auth/oauth/authorize?response_type=code",
        a.sim.base_url()
    );
    let r = a
        .http
        .get(format!("{base}&client_id=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap()["error"].clone()
        ),
        (400, "invalid_client".into())
    );
    let r = a
        .http
        .get(format!(
            "{base}&client_id={}&scope=admin",
            a.sim.client_id()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap()["error"].clone()
        ),
        (400, "invalid_scope".into())
    );
}
