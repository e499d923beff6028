//! Faults: one-shot injected ones (test hooks) and random ones at a configured rate, and how
//! each one turns a good response into a bad one.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A fault applied to the next API request (see [`crate::sim::Simulator::inject`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Status 200 with a truncated, unparseable JSON body.
    MalformedJson,
    /// Status 200 with well-formed JSON of the wrong types (`"customerID":"abc"`, a bad `timeStamp`).
    WrongTypes,
    /// A Cloudflare-like HTML `503` page (overloaded or down for maintenance).
    ServerError,
    /// A Cloudflare-like HTML error page with this status (e.g. 500, 502, 504).
    Status(u16),
    /// Status 200, then the connection is aborted mid-body.
    Drop,
    /// The normal response, delayed.
    Slow(Duration),
}

/// Pending one-shot faults and the random fault rate.
pub(crate) struct Faults {
    queue: VecDeque<Fault>,
    pub rate: f64,
    slow: Duration,
    rng: SmallRng,
}

impl Faults {
    /// No pending faults; random ones at `rate`, slow ones delayed by `slow`.
    pub(crate) fn new(rate: f64, slow: Duration, seed: u64) -> Self {
        Faults {
            queue: VecDeque::new(),
            rate,
            slow,
            rng: SmallRng::seed_from_u64(seed ^ 0xFA17),
        }
    }

    /// Queue a one-shot fault.
    pub(crate) fn push(&mut self, f: Fault) {
        self.queue.push_back(f);
    }

    /// The fault for the next request, if any: queued ones first, then a random one.
    pub(crate) fn next(&mut self) -> Option<Fault> {
        if let Some(f) = self.queue.pop_front() {
            return Some(f);
        }
        if self.rate <= 0.0 || !self.rng.random_bool(self.rate.min(1.0)) {
            return None;
        }
        Some(match self.rng.random_range(0..6) {
            0 => Fault::Status(500),
            1 => Fault::Status(502),
            2 => Fault::Status(503),
            3 => Fault::Status(504),
            4 => Fault::Drop,
            _ => Fault::Slow(self.slow),
        })
    }
}

/// A Cloudflare-style HTML error page.
pub(crate) fn html_error(status: u16) -> String {
    let what = match status {
        502 => "Bad gateway",
        503 => "Service temporarily unavailable",
        504 => "Gateway time-out",
        _ => "Internal server error",
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>api.lightspeedapp.com | {status}: {what}</title></head>\
         <body><div id=\"cf-error-details\"><h1>{what}</h1><span>Error code {status}</span>\
         <p>Visit <a href=\"https://www.cloudflare.com/\">cloudflare.com</a> for more information.</p></div></body></html>\n"
    )
}

/// Cut a body in half (no longer parseable JSON).
pub(crate) fn truncate(body: &str) -> String {
    let mut cut = body.len() / 2;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body[..cut].to_string()
}

/// Replace the first `customerID` value with `abc` and the first `timeStamp` with a non-date.
pub(crate) fn wrong_types(body: &str) -> String {
    let mut out = replace_value(body, "\"customerID\":\"", "abc");
    out = replace_value(&out, "\"accountID\":\"", "abc");
    replace_value(&out, "\"timeStamp\":\"", "yesterday")
}

fn replace_value(body: &str, key: &str, with: &str) -> String {
    let Some(start) = body.find(key).map(|i| i + key.len()) else {
        return body.to_string();
    };
    let end = body[start..].find('"').map_or(body.len(), |i| start + i);
    format!("{}{with}{}", &body[..start], &body[end..])
}

/// A body that yields the first bytes of `body`, then fails: hyper aborts the connection.
pub(crate) fn dropping_body(body: String) -> Body {
    let mut cut = body.len().min(64);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let first = Bytes::from(body[..cut].to_string());
    // Yield once between the chunk and the error so hyper flushes the head and the first bytes.
    let stream = futures::stream::unfold(0u8, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok(first), 1)),
                1 => {
                    tokio::task::yield_now().await;
                    Some((
                        Err(std::io::Error::other("simulated dropped connection")),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream)
}
