//! Token strings: JWT-shaped access tokens, `def50…` refresh tokens and codes, and the
//! RFC 7636 verifier syntax.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;

/// RFC 7636: 43–128 characters of `[A-Za-z0-9-._~]`.
pub(super) fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `prefix` followed by random hex, of a random total length in `len`.
pub(super) fn random_token(prefix: &str, len: std::ops::Range<usize>) -> String {
    let mut rng = rand::rng();
    let n = rng.random_range(len);
    let mut s = String::with_capacity(n);
    s.push_str(prefix);
    while s.len() < n {
        s.push(char::from_digit(rng.random_range(0..16), 16).expect("hex digit"));
    }
    s
}

/// A JWT-shaped access token (random signature: nothing verifies it but this simulator).
pub(super) fn jwt(client_id: &str, account: u64, scope: &str, wall: i64, lifetime: u64) -> String {
    let mut rng = rand::rng();
    let header =
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"RT_OAUTH2_2024_07_08"}"#);
    let jti: String = (0..rng.random_range(40..80))
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex"))
        .collect();
    let payload = serde_json::json!({
        "iss": "https://cloud.lightspeedapp.com",
        "aud": client_id,
        "sub": (account % 997 + 1).to_string(),
        "acct": account.to_string(),
        "scope": scope,
        "iat": wall,
        "nbf": wall,
        "exp": wall + lifetime as i64,
        "jti": jti,
    });
    let sig: Vec<u8> = (0..256).map(|_| rng.random()).collect();
    format!(
        "{header}.{}.{}",
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}
