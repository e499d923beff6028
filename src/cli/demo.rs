//! `lightspeed-sync demo`: the whole pipeline against the built-in simulator. It starts the simulator
//! in-process, connects two accounts through the real OAuth code path (the same `authorize` flow a
//! person uses, with a pretend browser that follows the authorization URL), syncs them into the
//! configured database, then prints what it did and some queries to try.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::sim::{SimConfig, Simulator};
use crate::sync::RunStatus;
use crate::tokens::authorize::{AuthorizeOptions, Connected, authorize};

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated accounts.
    #[arg(long, default_value_t = 2)]
    pub accounts: usize,
    /// Customers per simulated account.
    #[arg(long, default_value_t = 3_000)]
    pub customers: usize,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Run `demo`.
pub async fn run(settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let pool = crate::db::connect_or_create(&settings.database).await?;
    crate::db::migrate(&pool, &settings.database).await?;
    println!(
        "database: {}",
        crate::config::redact_url(secrecy::ExposeSecret::expose_secret(&settings.database.url))
    );

    // A realistic bucket (90, dripping 10/s) and burst limit: a few thousand customers fit in it.
    let sim = Simulator::start(SimConfig {
        accounts: args.accounts,
        customers: args.customers,
        seed: args.seed,
        bucket_size: 90.0,
        drip_rate: 10.0,
        burst_limit: 20,
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    println!(
        "simulator: {} ({} accounts × {} customers)",
        sim.base_url(),
        args.accounts,
        args.customers
    );
    let settings = for_simulator(settings, &sim)?;

    for _ in 0..args.accounts {
        let c = connect_through_oauth(&settings, &pool).await?;
        println!(
            "connected account {} ({}) through OAuth",
            c.account_id, c.account_name
        );
    }

    let progress = Arc::new(super::sync::TerminalProgress::new());
    let engine = crate::app::App::with_pool(&settings, pool.clone(), progress.clone())?.engine;
    let sim_accounts = sim.account_ids();
    let accounts: Vec<_> = crate::tokens::store::list_accounts(&pool)
        .await?
        .into_iter()
        .filter(|a| sim_accounts.contains(&a.account_id.get()))
        .collect();
    let streams = super::sync::streams(None, false);
    let outcomes = super::sync::sync_all(
        &engine,
        &accounts,
        &streams,
        settings.sync.max_accounts,
        &CancellationToken::new(),
    )
    .await;
    progress.finish();
    let mut ok = true;
    for outcome in outcomes {
        let reports = outcome.map_err(anyhow::Error::new)?;
        for r in reports {
            ok &= r.status == RunStatus::Succeeded;
            println!("{}", super::sync::summary_line(&r));
        }
    }
    let counters = sim.counters();
    println!(
        "the simulator served {} API requests ({} × 429) and {} token requests",
        counters.api_requests,
        counters.throttled_bucket + counters.throttled_burst,
        counters.token_requests
    );
    let (customers, emails): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM lightspeed.customers WHERE account_id = ANY($1)),
                (SELECT count(*) FROM lightspeed.customer_emails WHERE account_id = ANY($1))",
    )
    .bind(sim_accounts.iter().map(|a| *a as i64).collect::<Vec<_>>())
    .fetch_one(&pool)
    .await?;
    println!(
        "mirrored {customers} customers with {emails} emails in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    println!("Try these, in {}:", psql_command(&settings.database)?);
    print!("{}", EXAMPLES);
    sim.shutdown().await;
    if !ok {
        anyhow::bail!("some runs did not succeed (see above)");
    }
    Ok(())
}

const EXAMPLES: &str = r#"
  -- How fresh is the mirror?
  SELECT account_id, stream, last_success_at, lag FROM lightspeed.sync_status;

  -- Customers per account, archived (deleted upstream) included
  SELECT a.name, count(*) AS customers, count(*) FILTER (WHERE c.archived) AS archived
  FROM lightspeed.customers c JOIN lightspeed.accounts a USING (account_id)
  GROUP BY a.name ORDER BY customers DESC;

  -- Active customers with their primary email
  SELECT c.first_name, c.last_name, e.address
  FROM lightspeed.customers c
  JOIN lightspeed.customer_emails e USING (account_id, customer_id)
  WHERE NOT c.archived AND e.use_type = 'Primary'
  ORDER BY c.updated_at DESC LIMIT 10;

  -- Active customers by customer type and loyalty tier (a custom field)
  SELECT coalesce(t.name, '(no type)') AS customer_type, f.value AS loyalty_tier,
         count(*) AS customers
  FROM lightspeed.customers c
  LEFT JOIN lightspeed.customer_types t USING (account_id, customer_type_id)
  LEFT JOIN lightspeed.customer_custom_fields f
    ON f.account_id = c.account_id AND f.customer_id = c.customer_id AND f.name = 'Loyalty tier'
  WHERE NOT c.archived
  GROUP BY 1, 2 ORDER BY 1, 2;
"#;

/// `psql 'postgres://USER@HOST:PORT/DB'` for the database the demo used: the user it connected as
/// filled in, the password left out (psql asks for it, or reads ~/.pgpass or PGPASSWORD).
fn psql_command(db: &crate::config::DatabaseSettings) -> anyhow::Result<String> {
    let o = crate::db::connect_options(db)?;
    let host = o.get_host();
    let host = if host.contains(':') && !host.starts_with('/') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let url = if host.starts_with('/') {
        format!(
            "postgres:///{}?host={host}&port={}&user={}",
            o.get_database().unwrap_or("postgres"),
            o.get_port(),
            o.get_username()
        )
    } else {
        format!(
            "postgres://{}@{host}:{}/{}",
            o.get_username(),
            o.get_port(),
            o.get_database().unwrap_or("postgres")
        )
    };
    Ok(format!("psql '{url}'"))
}

/// The settings with the Lightspeed endpoints and client pointed at the simulator. Without a
/// configured token key, the demo uses a throw-away one (said on stdout).
fn for_simulator(settings: Settings, sim: &Simulator) -> anyhow::Result<Settings> {
    let mut s = settings;
    let base: url::Url = sim.base_url().parse().context("simulator URL")?;
    s.lightspeed.api_base_url = base.clone();
    s.lightspeed.auth_base_url = base;
    s.lightspeed.client_id = sim.client_id().to_string();
    s.lightspeed.client_secret = Some(sim.client_secret().to_string().into());
    s.lightspeed.client_secret_file = None;
    s.lightspeed.redirect_uri = sim
        .redirect_uri()
        .parse()
        .context("simulator redirect URI")?;
    if s.security.token_key().is_err() {
        println!(
            "no security.token_key configured: the demo encrypts its tokens with a throw-away key"
        );
        s.security.token_key = Some(crate::tokens::crypto::generate_key_base64().into());
        s.security.token_key_file = None;
    }
    Ok(s)
}

/// Run the real `authorize` flow with a pretend browser: read the printed URL, follow it to the
/// simulator's consent step (which approves at once), and paste the redirect back.
async fn connect_through_oauth(
    settings: &Settings,
    pool: &sqlx::PgPool,
) -> anyhow::Result<Connected> {
    let (printed, from_flow) = tokio::io::duplex(16 * 1024);
    let (mut to_flow, pasted) = tokio::io::duplex(16 * 1024);
    let browser = async move {
        let mut lines = BufReader::new(from_flow).lines();
        let url = loop {
            match lines.next_line().await? {
                Some(line) if line.starts_with("http") => break line,
                Some(_) => continue,
                None => anyhow::bail!("authorize printed no URL"),
            }
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = http.get(&url).send().await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .context("the consent step did not redirect")?
            .to_string();
        to_flow
            .write_all(format!("{location}\n").as_bytes())
            .await?;
        while lines.next_line().await?.is_some() {}
        Ok(())
    };
    let options = AuthorizeOptions::default();
    let flow = authorize(settings, pool, BufReader::new(pasted), printed, &options);
    let (connected, browsed) = tokio::join!(flow, browser);
    browsed?;
    Ok(connected?)
}
