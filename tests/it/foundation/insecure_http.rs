//! Plain `http://` for the Lightspeed URLs is refused at start, naming the key, except on loopback
//! (the simulators) or with `lightspeed.allow_insecure_http = true`.

use std::path::Path;

use lightspeed_sync::config::{ConfigError, Settings};

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::load_from(Path::new("/nonexistent/lightspeed-sync.toml"), false, env)
}

#[test]
fn plain_http_is_refused_for_a_remote_lightspeed_url_naming_the_key() {
    for (var, key) in [
        (
            "LSSYNC__LIGHTSPEED__API_BASE_URL",
            "lightspeed.api_base_url",
        ),
        (
            "LSSYNC__LIGHTSPEED__AUTH_BASE_URL",
            "lightspeed.auth_base_url",
        ),
    ] {
        for url in [
            "http://api.lightspeedapp.com",
            "http://10.0.0.5:8080",
            "http://127.0.0.1.evil.example",
            "http://[2001:db8::1]",
        ] {
            let err = load(&[(var, url)]).unwrap_err();
            match &err {
                ConfigError::Value { key: k, problem } => {
                    assert_eq!(*k, key);
                    assert!(problem.contains("plain http"), "{problem}");
                    assert!(problem.contains("allow_insecure_http"), "{problem}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}

#[test]
fn loopback_https_and_the_opt_in_are_accepted() {
    for url in [
        "http://127.0.0.1:9000",
        "http://127.8.9.10",
        "http://localhost:8080",
        "http://[::1]:9000",
        "https://api.lightspeedapp.com",
    ] {
        let s = load(&[
            ("LSSYNC__LIGHTSPEED__API_BASE_URL", url),
            ("LSSYNC__LIGHTSPEED__AUTH_BASE_URL", url),
        ])
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(!s.lightspeed.allow_insecure_http);
    }
    let s = load(&[
        ("LSSYNC__LIGHTSPEED__API_BASE_URL", "http://api.test.lan"),
        ("LSSYNC__LIGHTSPEED__ALLOW_INSECURE_HTTP", "true"),
    ])
    .unwrap();
    assert!(s.lightspeed.allow_insecure_http);
    assert!(s.redacted_toml().contains("allow_insecure_http = true"));
}
