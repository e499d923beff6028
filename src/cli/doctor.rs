//! `lightspeed-sync doctor`: the first command a user with a real account runs, and whose output can
//! be pasted into a bug report. It checks the configuration, the database, and per account the
//! credentials, a token, `Account.json`, `Account/{id}.json` and one small page of customers, each
//! parsed by the code `sync` uses; it names every field or shape it did not expect (path and kind,
//! never the value), prints the rate-limit headers it saw and estimates the first sync's duration.
//! It prints no token, secret or personal data: names and emails of customers are never read out,
//! only counted.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret;

use crate::config::{Settings, is_loopback, redact_url};
use crate::error::report;
use crate::lightspeed::query::{Archived, CustomerQuery};
use crate::lightspeed::wire::audit::{self, Shape};
use crate::lightspeed::wire::{Customer, DetailShape, WireError};
use crate::lightspeed::{ApiClient, TokenProvider};
use crate::model::AccountId;
use crate::tokens::TokenSource;
use crate::tokens::store::{self, AccountStatus};

/// Flags of `doctor`.
#[derive(Debug, Default, clap::Args)]
pub struct DoctorArgs {
    /// Only these accounts (repeatable). Default: every connected account.
    #[arg(long = "account", value_name = "ID")]
    pub accounts: Vec<AccountId>,
}

/// Customers in the sample page.
const SAMPLE: u32 = 5;
/// Records per page of a sync (the API's maximum).
const PAGE: u64 = 100;

/// Run `doctor`, printing to stdout; fails when any check failed.
pub async fn run(settings: Settings, args: DoctorArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    let failed = check(&settings, &args, &mut out).await?;
    if failed > 0 {
        anyhow::bail!("doctor: {failed} check(s) failed (each FAIL line says what to do)");
    }
    Ok(())
}

/// The report: `ok`, `FAIL`, `note` (an unexpected shape: sync still works) and `info` lines.
struct Report<'w> {
    out: &'w mut (dyn Write + Send),
    failed: usize,
}

impl Report<'_> {
    fn line(&mut self, tag: &str, what: &str) -> std::io::Result<()> {
        // Nothing printed comes from the server raw: control characters are dropped.
        let clean: String = what
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        writeln!(self.out, "{tag:<5} {clean}")
    }
    fn ok(&mut self, what: &str) -> std::io::Result<()> {
        self.line("ok", what)
    }
    fn fail(&mut self, what: &str) -> std::io::Result<()> {
        self.failed += 1;
        self.line("FAIL", what)
    }
}

/// Write the report to `out`; returns how many checks failed.
pub async fn check(
    settings: &Settings,
    args: &DoctorArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<usize> {
    let mut r = Report { out, failed: 0 };
    r.line(
        "info",
        &format!("lightspeed-sync {} doctor", env!("CARGO_PKG_VERSION")),
    )?;
    let config_ok = configuration(settings, &mut r)?;
    let Some(pool) = database(settings, &mut r).await? else {
        return Ok(r.failed);
    };
    if !config_ok {
        r.line(
            "info",
            "account checks skipped: fix the configuration first",
        )?;
        return Ok(r.failed);
    }
    let accounts = match store::list_accounts(&pool).await {
        Ok(a) => a,
        Err(e) => {
            r.fail(&format!(
                "database: cannot list the connected accounts: {}",
                report(&e)
            ))?;
            return Ok(r.failed);
        }
    };
    let wanted: Vec<_> = accounts
        .into_iter()
        .filter(|a| args.accounts.is_empty() || args.accounts.contains(&a.account_id))
        .collect();
    for id in &args.accounts {
        if !wanted.iter().any(|a| a.account_id == *id) {
            r.fail(&format!(
                "account {id}: not connected: run `lightspeed-sync authorize` for it"
            ))?;
        }
    }
    if wanted.is_empty() && args.accounts.is_empty() {
        r.fail("accounts: none connected: run `lightspeed-sync authorize` first")?;
        return Ok(r.failed);
    }
    // Wired as `sync` wires it, so each check goes through the code a sync runs.
    let app =
        crate::app::App::with_pool(settings, pool.clone(), Arc::new(crate::sync::NoProgress))?;
    for info in wanted {
        account(
            info.account_id,
            info.status,
            &app.tokens,
            &app.engine.api,
            &mut r,
        )
        .await?;
    }
    Ok(r.failed)
}

fn configuration(settings: &Settings, r: &mut Report<'_>) -> anyhow::Result<bool> {
    let mut ok = true;
    let ls = &settings.lightspeed;
    for (key, url) in [
        ("lightspeed.api_base_url", &ls.api_base_url),
        ("lightspeed.auth_base_url", &ls.auth_base_url),
    ] {
        // Loading the configuration refused plain http elsewhere than on loopback, unless
        // `lightspeed.allow_insecure_http` opted in: say so.
        if url.scheme() != "https" && !is_loopback(url) {
            r.line(
                "note",
                &format!(
                    "configuration: {key} is plain {} (allowed by lightspeed.allow_insecure_http): tokens cross the network unencrypted",
                    url.scheme()
                ),
            )?;
        }
    }
    if ls.client_id.trim().is_empty() {
        ok = false;
        r.fail(
            "configuration: lightspeed.client_id is empty: set the client ID of your OAuth client",
        )?;
    }
    if let Err(e) = ls.client_secret() {
        ok = false;
        r.fail(&format!("configuration: {}", report(&e)))?;
    }
    if let Err(e) = settings.security.token_key() {
        ok = false;
        r.fail(&format!("configuration: {}", report(&e)))?;
    }
    if ok {
        r.ok(&format!(
            "configuration: API {}, auth {}, client ID, client secret and token key set",
            ls.api_base_url, ls.auth_base_url
        ))?;
    }
    Ok(ok)
}

async fn database(settings: &Settings, r: &mut Report<'_>) -> anyhow::Result<Option<sqlx::PgPool>> {
    let url = redact_url(settings.database.url.expose_secret());
    let pool = match crate::db::connect(&settings.database).await {
        Ok(p) => p,
        Err(e) => {
            r.fail(&format!("database: {}", report(&e)))?;
            return Ok(None);
        }
    };
    // Before the first migration the table does not exist: nothing applied.
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    let pending: Vec<i64> = crate::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if pending.is_empty() {
        r.ok(&format!(
            "database: {url} reachable, {} migration(s) applied, none pending",
            applied.len()
        ))?;
        Ok(Some(pool))
    } else {
        r.fail(&format!(
            "database: {url} reachable but {} migration(s) not applied: run `lightspeed-sync migrate`",
            pending.len()
        ))?;
        Ok(None)
    }
}

async fn account(
    id: AccountId,
    status: AccountStatus,
    tokens: &TokenSource,
    api: &ApiClient,
    r: &mut Report<'_>,
) -> anyhow::Result<()> {
    if status == AccountStatus::NeedsReauth {
        r.fail(&format!(
            "account {id}: needs re-authorization (Lightspeed rejected its refresh token): run `lightspeed-sync authorize`"
        ))?;
        return Ok(());
    }
    // Credentials decrypt with the configured key.
    let stored = match tokens.store().load(id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            r.fail(&format!(
                "account {id}: its credentials vanished: run `lightspeed-sync authorize`"
            ))?;
            return Ok(());
        }
        Err(e) => {
            r.fail(&format!(
                "account {id}: {}: configure the key it was authorized with (security.token_key), or run `lightspeed-sync authorize` again", report(&e)
            ))?;
            return Ok(());
        }
    };
    // A token: refreshed only if it is (nearly) expired.
    let before = stored.generation;
    if let Err(e) = tokens.access_token(id).await {
        let what = if e.needs_reauth {
            "run `lightspeed-sync authorize` again"
        } else {
            "check the network and lightspeed.auth_base_url, then run doctor again"
        };
        r.fail(&format!(
            "account {id}: no access token: {}: {what}",
            e.reason()
        ))?;
        return Ok(());
    }
    let refreshed = match tokens.store().load(id).await {
        Ok(Some(now)) => now.generation != before,
        _ => false,
    };
    let left = stored.access_expires_at - Utc::now();
    r.ok(&format!(
        "account {id}: credentials decrypt; access token {}",
        if refreshed {
            "refreshed (it was near expiry), the new pair stored".to_string()
        } else {
            format!("valid for {} more minutes", left.num_minutes().max(0))
        }
    ))?;

    // Account.json: identity and name.
    let mut notes = BTreeSet::new();
    match api.get_accounts(id).await {
        Ok(listed) => {
            for a in &listed.value {
                audit_raw(a.raw.get(), &audit::ACCOUNT, "Account", &mut notes);
            }
            match listed.value.iter().find(|a| a.account_id == id) {
                Some(a) => r.ok(&format!("account {id}: Account.json lists it ({})", a.name))?,
                None => r.fail(&format!(
                    "account {id}: Account.json does not list it (the token sees {} other account(s)): run `lightspeed-sync authorize` for the right account",
                    listed.value.len()
                ))?,
            }
        }
        Err(e) => r.fail(&format!("account {id}: {}", report(&e)))?,
    }
    // Account/{id}.json: the detail, in either shape.
    match api.get_account_detail(id).await {
        Ok(d) => {
            let shape = match d.value.shape {
                DetailShape::Bare => "the documented bare shape",
                DetailShape::Wrapped => "wrapped in `Account`",
            };
            audit_raw(
                d.value.raw.get(),
                &audit::ACCOUNT_DETAIL,
                "AccountDetail",
                &mut notes,
            );
            r.ok(&format!("account {id}: Account/{id}.json parsed ({shape})"))?;
        }
        Err(e) => r.fail(&format!(
            "account {id}: {}: `sync` would fail the same way; please report it with this output",
            report(&e)
        ))?,
    }
    // One small page of customers, with the relations sync loads.
    let relations = api.customer_relations();
    let query = CustomerQuery {
        limit: Some(SAMPLE),
        archived: Some(Archived::Include),
        ..CustomerQuery::loading(relations)
    };
    let loaded: Vec<&str> = relations.iter().map(|r| r.name()).collect();
    let url = api.customers_url(id, &query);
    match api.get_customers_page(id, &url).await {
        Ok(page) => {
            for c in &page.records {
                audit_raw(c.raw.get(), &audit::CUSTOMER, "Customer", &mut notes);
            }
            r.ok(&format!(
                "account {id}: Customer.json (limit {SAMPLE}, loading {}): {} customer(s) parsed{}",
                if loaded.is_empty() {
                    "no relation".to_string()
                } else {
                    loaded.join(", ")
                },
                page.records.len(),
                contact_summary(&page.records)
            ))?;
        }
        Err(e) => r.fail(&format!(
            "account {id}: {}: `sync` would fail the same way; please report it with this output",
            report(&e)
        ))?,
    }
    for n in &notes {
        r.line("note", &format!("account {id}: {n} (sync keeps it in raw)"))?;
    }
    rate_limits(id, api, r).await
}

fn audit_raw(raw: &str, shape: &Shape, path: &str, notes: &mut BTreeSet<String>) {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(raw) {
        audit::audit(&v, shape, path, notes);
    }
}

/// Counts only: no customer's data is printed.
fn contact_summary(records: &[Customer]) -> String {
    let (emails, phones, addresses) =
        records
            .iter()
            .filter_map(|c| c.contact.as_ref())
            .fold((0, 0, 0), |(e, p, a), c| {
                (
                    e + c.emails.len(),
                    p + c.phones.len(),
                    a + c.addresses.len(),
                )
            });
    format!(" ({emails} email(s), {phones} phone(s), {addresses} address(es))")
}

/// The bucket the server reported, and from it and the account's size an estimate of a first sync.
async fn rate_limits(id: AccountId, api: &ApiClient, r: &mut Report<'_>) -> anyhow::Result<()> {
    let pacer = api.pacer(id);
    let page_cost = pacer.cost();
    let Some(bucket) = pacer.bucket() else {
        r.line(
            "info",
            &format!("account {id}: the API sent no rate-limit headers (X-LS-API-Bucket-Level)"),
        )?;
        return Ok(());
    };
    r.line(
        "info",
        &format!(
            "account {id}: rate limit: bucket {}, drip {}/s, a customers page costs {page_cost} drips (X-LS-API-Request-Cost)",
            trim(bucket.size),
            trim(bucket.drip)
        ),
    )?;
    // `count=1` costs 10 drips (fact sheet §3.1): worth it once, for the estimate.
    let mut url = api.customers_url(
        id,
        &CustomerQuery {
            archived: Some(Archived::Include),
            ..CustomerQuery::default()
        },
    );
    url.query_pairs_mut().append_pair("count", "1");
    let count = api.get_parsed(id, &url, parse_count).await;
    match count {
        Ok((n, _)) => {
            let pages = n.div_ceil(PAGE).max(1);
            let drips = pages as f64 * page_cost.max(1.0);
            let secs = ((drips - bucket.size).max(0.0) / bucket.drip.max(0.01)).ceil();
            r.line(
                "info",
                &format!(
                    "account {id}: {n} customers (archived included): a first sync is {pages} page(s), about {} at this bucket's pace (plus the time to write them)",
                    humantime::format_duration(Duration::from_secs(secs as u64))
                ),
            )?;
        }
        Err(e) => r.line(
            "info",
            &format!("account {id}: no estimate: {}", report(&e)),
        )?,
    }
    Ok(())
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `{"@attributes":{"count":"764"}}`.
fn parse_count(body: &[u8]) -> Result<u64, WireError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| WireError::from_problem(format!("count: not JSON: {e}")))?;
    let c = &v["@attributes"]["count"];
    c.as_str()
        .and_then(|s| s.trim().parse().ok())
        .or_else(|| c.as_u64())
        .ok_or_else(|| WireError::from_problem("count: no `@attributes.count`".to_string()))
}
