//! OAuth state: authorization codes, access tokens and refresh tokens, and the rotation rules
//! of §1.5 in the three [`RotationMode`]s. Pure state, no HTTP: `oauth.rs` maps it to the wire.
//!
//! Every refresh token remembers the refresh token it was issued from (`parent`) and the ones
//! issued from it (`children`), so a forked chain can be resolved the way Lightspeed does since
//! 2026-01-15: the first use of any child pair kills the parent and every sibling subtree.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::codes::Code;
use super::tokens::{jwt, random_token};
use super::{RotationMode, TokenPair};

const REFRESH_IDLE_LIFETIME: Duration = Duration::from_secs(30 * 86_400);
const RETRY_WINDOW: Duration = Duration::from_secs(60);
const RETRIES_PER_WINDOW: usize = 5;

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    Unknown,
    Expired,
    Revoked,
}

/// A token-endpoint failure: the OAuth `error` code and its `hint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrantError {
    pub error: &'static str,
    pub hint: String,
}

pub(super) fn invalid_grant(hint: &str) -> GrantError {
    GrantError {
        error: "invalid_grant",
        hint: hint.into(),
    }
}

struct Access {
    account: u64,
    expires: Instant,
    revoked: bool,
    parent: Option<String>,
    refresh: String,
    used: bool,
}

struct Refresh {
    account: u64,
    grant: u64,
    scope: String,
    revoked: bool,
    parent: Option<String>,
    children: Vec<String>,
    access: Vec<String>,
    attempts: VecDeque<Instant>,
    expires: Instant,
}

/// All OAuth state of one simulator.
pub(crate) struct Grants {
    pub mode: RotationMode,
    pub lifetime: Duration,
    pub client_id: String,
    pub(super) codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    next_grant: u64,
}

impl Grants {
    /// Empty state.
    pub(crate) fn new(mode: RotationMode, lifetime: Duration, client_id: String) -> Self {
        Grants {
            mode,
            lifetime,
            client_id,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            next_grant: 1,
        }
    }

    /// A fresh pair on a new chain (code exchange, or the `issue_tokens` hook).
    pub(crate) fn start_chain(
        &mut self,
        account: u64,
        scope: String,
        now: Instant,
        wall: i64,
    ) -> TokenPair {
        let grant = self.next_grant;
        self.next_grant += 1;
        let refresh = random_token("def50200", 560..760);
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                account,
                grant,
                scope,
                revoked: false,
                parent: None,
                children: vec![],
                access: vec![],
                attempts: VecDeque::new(),
                expires: now + REFRESH_IDLE_LIFETIME,
            },
        );
        self.new_access(&refresh, None, now, wall)
    }

    fn new_access(
        &mut self,
        refresh: &str,
        parent: Option<String>,
        now: Instant,
        wall: i64,
    ) -> TokenPair {
        let r = self.refresh.get_mut(refresh).expect("refresh token exists");
        let token = jwt(
            &self.client_id,
            r.account,
            &r.scope,
            wall,
            self.lifetime.as_secs(),
        );
        r.access.push(token.clone());
        let account = r.account;
        self.access.insert(
            token.clone(),
            Access {
                account,
                expires: now + self.lifetime,
                revoked: false,
                parent,
                refresh: refresh.into(),
                used: false,
            },
        );
        TokenPair {
            access_token: token,
            refresh_token: refresh.into(),
            expires_in: self.lifetime.as_secs(),
        }
    }

    /// Spend a refresh token according to the rotation mode.
    pub(crate) fn refresh(
        &mut self,
        token: &str,
        now: Instant,
        wall: i64,
    ) -> Result<TokenPair, GrantError> {
        let mode = self.mode;
        let r = self
            .refresh
            .get_mut(token)
            .ok_or_else(|| invalid_grant("Cannot decrypt the refresh token"))?;
        if r.revoked {
            return Err(invalid_grant("Token has been revoked"));
        }
        if now >= r.expires {
            return Err(invalid_grant("Token has expired"));
        }
        if mode == RotationMode::None {
            r.expires = now + REFRESH_IDLE_LIFETIME;
            return Ok(self.new_access(token, None, now, wall));
        }
        while r
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RETRY_WINDOW)
        {
            r.attempts.pop_front();
        }
        if r.attempts.len() >= RETRIES_PER_WINDOW {
            return Err(invalid_grant(
                "Refresh token retry limit exceeded: at most 5 attempts per minute",
            ));
        }
        r.attempts.push_back(now);
        let (account, grant, scope, parent) =
            (r.account, r.grant, r.scope.clone(), r.parent.clone());
        match mode {
            RotationMode::Strict => self.revoke_one(token),
            // Spending a child refresh token counts as using its pair: the parent chain is settled.
            _ => {
                if let Some(p) = parent {
                    self.retire(&p, token);
                }
            }
        }
        let child = random_token("def50200", 560..760);
        self.refresh.insert(
            child.clone(),
            Refresh {
                account,
                grant,
                scope,
                revoked: false,
                parent: Some(token.into()),
                children: vec![],
                access: vec![],
                attempts: VecDeque::new(),
                expires: now + REFRESH_IDLE_LIFETIME,
            },
        );
        if let Some(r) = self.refresh.get_mut(token) {
            r.children.push(child.clone());
        }
        let parent = (mode == RotationMode::Deferred).then(|| token.to_string());
        Ok(self.new_access(&child, parent, now, wall))
    }

    /// Check an access token; its first use settles its chain (deferred rotation).
    pub(crate) fn authenticate(&mut self, token: &str, now: Instant) -> Result<u64, AuthError> {
        let a = self.access.get_mut(token).ok_or(AuthError::Unknown)?;
        if a.revoked {
            return Err(AuthError::Revoked);
        }
        if now >= a.expires {
            return Err(AuthError::Expired);
        }
        let account = a.account;
        if !a.used {
            a.used = true;
            if let Some(parent) = a.parent.clone() {
                let keep = a.refresh.clone();
                self.retire(&parent, &keep);
            }
        }
        Ok(account)
    }

    /// Revoke `parent` with its own access tokens and every child subtree except `keep`.
    fn retire(&mut self, parent: &str, keep: &str) {
        let children = self
            .refresh
            .get(parent)
            .map(|r| r.children.clone())
            .unwrap_or_default();
        self.revoke_one(parent);
        for c in children.iter().filter(|c| *c != keep) {
            self.revoke_subtree(c);
        }
    }

    fn revoke_subtree(&mut self, token: &str) {
        let children = self
            .refresh
            .get(token)
            .map(|r| r.children.clone())
            .unwrap_or_default();
        self.revoke_one(token);
        for c in &children {
            self.revoke_subtree(c);
        }
    }

    /// Revoke one refresh token and the access tokens issued with it.
    fn revoke_one(&mut self, token: &str) {
        let Some(r) = self.refresh.get_mut(token) else {
            return;
        };
        r.revoked = true;
        for a in r.access.clone() {
            if let Some(a) = self.access.get_mut(&a) {
                a.revoked = true;
            }
        }
    }

    /// `POST /auth/oauth/revoke`: revoke the whole chain the refresh token belongs to.
    pub(crate) fn revoke_chain(&mut self, token: &str) {
        let Some(grant) = self.refresh.get(token).map(|r| r.grant) else {
            return;
        };
        let tokens: Vec<String> = self
            .refresh
            .iter()
            .filter(|(_, r)| r.grant == grant)
            .map(|(t, _)| t.clone())
            .collect();
        for t in tokens {
            self.revoke_one(&t);
        }
    }

    /// Test hook: every refresh token of `account` is revoked (access tokens live on).
    pub(crate) fn revoke_account_refresh(&mut self, account: u64) {
        self.refresh
            .values_mut()
            .filter(|r| r.account == account)
            .for_each(|r| r.revoked = true);
    }

    /// Test hook: every access token of `account` is expired now.
    pub(crate) fn expire_account_access(&mut self, account: u64, now: Instant) {
        self.access
            .values_mut()
            .filter(|a| a.account == account)
            .for_each(|a| a.expires = a.expires.min(now));
    }
}
