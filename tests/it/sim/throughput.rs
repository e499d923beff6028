//! Throughput check (ignored; run with
//! `cargo nextest run --release --run-ignored only -E "test(/^sim::throughput::/)" --no-capture`).

use std::time::Instant;

use lightspeed_sync::sim::{SimConfig, Simulator};

use crate::sim::helpers::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints generation time and pages/s"]
async fn throughput() {
    let t = Instant::now();
    let sim = Simulator::start(SimConfig {
        customers: 100_000,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let generation = t.elapsed();
    let account = sim.account_ids()[0];
    let token = sim.issue_tokens(account).access_token;
    let http = client();
    let first = format!(
        "{}/API/V3/Account/{account}/Customer.json?archived=true&load_relations=%5B%22Contact%22%5D",
        sim.base_url()
    );
    let walk = |mut url: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let (mut pages, mut bytes) = (0usize, 0usize);
            while !url.is_empty() {
                let body = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                bytes += body.len();
                pages += 1;
                url = next_of(&body);
            }
            (pages, bytes)
        }
    };
    let (pages, _) = walk(first.clone()).await; // warm the JSON caches
    let t = Instant::now();
    let runs: Vec<_> = (0..4).map(|_| tokio::spawn(walk(first.clone()))).collect();
    let (mut total, mut bytes) = (0, 0);
    for r in runs {
        let (p, b) = r.await.unwrap();
        total += p;
        bytes += b;
    }
    let secs = t.elapsed().as_secs_f64();
    println!("generated 100000 customers in {generation:?}; first walk {pages} pages");
    println!(
        "{total} pages of 100 with Contact in {secs:.2}s = {:.0} pages/s ({:.0} MB/s)",
        total as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

/// The `next` URL of a page, found without parsing the whole page (the client's JSON parsing
/// would dominate the measurement otherwise).
fn next_of(body: &[u8]) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(2048)]);
    let start = head.find("\"next\":\"").expect("next attribute") + 8;
    let end = start + head[start..].find('"').expect("end of next");
    head[start..end].replace("\\/", "/")
}
