//! Authorization codes (§1.2): 60-second, single-use, with optional PKCE (`S256` or `plain`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::TokenPair;
use super::grants::{GrantError, Grants, invalid_grant};
use super::tokens::{random_token, verifier_ok};

const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// A pending authorization code.
pub(super) struct Code {
    account: u64,
    scope: String,
    expires: Instant,
    challenge: Option<(String, String)>,
    used: bool,
}

impl Grants {
    /// Record an authorization code for `account` (valid 60 s, single use).
    pub(crate) fn new_code(
        &mut self,
        account: u64,
        scope: String,
        challenge: Option<(String, String)>,
        now: Instant,
    ) -> String {
        let code = random_token("def502", 300..420);
        self.codes.insert(
            code.clone(),
            Code {
                account,
                scope,
                expires: now + CODE_LIFETIME,
                challenge,
                used: false,
            },
        );
        code
    }

    /// Exchange a code (checking PKCE) for a new token pair starting a new chain.
    pub(crate) fn exchange(
        &mut self,
        code: &str,
        verifier: Option<&str>,
        now: Instant,
        wall: i64,
    ) -> Result<TokenPair, GrantError> {
        let c = self
            .codes
            .get_mut(code)
            .ok_or_else(|| invalid_grant("Cannot decrypt the authorization code"))?;
        if c.used {
            return Err(invalid_grant("Authorization code has been revoked"));
        }
        if now > c.expires {
            return Err(invalid_grant("Authorization code has expired"));
        }
        match (&c.challenge, verifier) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(invalid_grant(
                    "code_verifier received when no code_challenge is present",
                ));
            }
            (Some(_), None) => {
                return Err(GrantError {
                    error: "invalid_request",
                    hint: "Check the `code_verifier` parameter".into(),
                });
            }
            (Some((challenge, method)), Some(v)) => {
                if !verifier_ok(v) {
                    return Err(GrantError {
                        error: "invalid_request",
                        hint: "Code Verifier must follow the specifications of RFC-7636.".into(),
                    });
                }
                let computed = if method == "plain" {
                    v.to_string()
                } else {
                    URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
                };
                if computed != *challenge {
                    return Err(invalid_grant("Failed to verify `code_verifier`."));
                }
            }
        }
        c.used = true;
        let (account, scope) = (c.account, c.scope.clone());
        Ok(self.start_chain(account, scope, now, wall))
    }
}
