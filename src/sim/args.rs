//! The `sim` command: its flags ([`SimArgs`]) and [`serve`], which runs a simulator until
//! Ctrl-C after printing what a user needs to talk to it (base URL, client, tokens).

use std::net::SocketAddr;
use std::time::Duration;

use super::{RotationMode, SimConfig, Simulator, TieBreak};

/// Flags of `lightspeed-sync sim`.
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Origin to use in `next`/`previous` URLs (default: the request's Host).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Number of accounts.
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Customers per account.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Leaky-bucket size (drips).
    #[arg(long, default_value_t = 90.0)]
    pub bucket_size: f64,
    /// Leaky-bucket drip rate (drips per second).
    #[arg(long, default_value_t = 1.0)]
    pub drip_rate: f64,
    /// Burst limit (requests per one-second window; 0 = off).
    #[arg(long, default_value_t = 20)]
    pub burst_limit: u32,
    /// Turn every rate limit off.
    #[arg(long)]
    pub no_rate_limits: bool,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_lifetime: u64,
    /// Refresh-token rotation.
    #[arg(long, value_enum, default_value_t = RotationMode::Deferred)]
    pub rotation: RotationMode,
    /// Cursor tie breaking on non-unique sorts.
    #[arg(long, value_enum, default_value_t = TieBreak::Skip)]
    pub tie_break: TieBreak,
    /// Fraction of API requests failing at random (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Delay of a slow response, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub slow_ms: u64,
    /// Background mutations per second.
    #[arg(long, default_value_t = 0.0)]
    pub mutations_per_sec: f64,
    /// That many customers per account share exactly one timeStamp.
    #[arg(long, default_value_t = 0)]
    pub shared_timestamp: usize,
    /// Serve `Account/{id}.json` wrapped in an `Account` object (default: the documented bare shape).
    #[arg(long)]
    pub wrapped_account_detail: bool,
    /// Edits of a customer's relations (custom fields, note, credit balance, tags) also move the
    /// customer's timeStamp (default: they do not).
    #[arg(long)]
    pub relation_edits_bump_timestamp: bool,
    /// OAuth client ID.
    #[arg(long, default_value = "sim-client-id")]
    pub client_id: String,
    /// OAuth client secret.
    #[arg(long, default_value = "sim-client-secret")]
    pub client_secret: String,
    /// Registered redirect URI.
    #[arg(long, default_value = "https://localhost:8443/callback")]
    pub redirect_uri: String,
}

impl From<SimArgs> for SimConfig {
    fn from(a: SimArgs) -> Self {
        SimConfig {
            listen: a.listen,
            public_base_url: a.public_url,
            seed: a.seed,
            accounts: a.accounts,
            customers: a.customers,
            bucket_size: a.bucket_size,
            drip_rate: a.drip_rate,
            burst_limit: a.burst_limit,
            rate_limits: !a.no_rate_limits,
            token_lifetime: Duration::from_secs(a.token_lifetime),
            rotation: a.rotation,
            tie_break: a.tie_break,
            fault_rate: a.fault_rate,
            slow: Duration::from_millis(a.slow_ms),
            mutations_per_sec: a.mutations_per_sec,
            shared_timestamp: a.shared_timestamp,
            wrapped_account_detail: a.wrapped_account_detail,
            relation_edits_bump_timestamp: a.relation_edits_bump_timestamp,
            client_id: a.client_id,
            client_secret: a.client_secret,
            redirect_uri: a.redirect_uri,
        }
    }
}

/// Start a simulator, print how to use it (stdout), serve until Ctrl-C.
pub async fn serve(args: SimArgs) -> anyhow::Result<()> {
    let sim = Simulator::start(args.into()).await?;
    println!("base_url       {}", sim.base_url());
    println!("authorize_url  {}/auth/oauth/authorize", sim.base_url());
    println!("token_url      {}/auth/oauth/token", sim.base_url());
    println!("client_id      {}", sim.client_id());
    println!("client_secret  {}", sim.client_secret());
    println!("redirect_uri   {}", sim.redirect_uri());
    for account in sim.account_ids() {
        let pair = sim.issue_tokens(account);
        println!("account        {account}");
        println!("  access_token   {}", pair.access_token);
        println!("  refresh_token  {}", pair.refresh_token);
        println!("  expires_in     {}", pair.expires_in);
    }
    println!("serving; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
