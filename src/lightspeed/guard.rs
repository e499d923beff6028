//! What may cross the network boundary, in one place: origins (a token goes only to the origin it was
//! configured for), redirects (never followed: a 30x is reported by its `Location`'s origin), body
//! size caps (bodies are read in chunks and refused past a limit, never buffered without bound), and
//! [`printable`], which every piece of server-provided text goes through before it reaches a
//! terminal.

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, LOCATION};
use url::Url;

/// Largest body of one API response: a page of 100 customers with every relation is well below 1 MiB.
pub const MAX_API_BODY: usize = 4 * 1024 * 1024;

/// Largest body of one answer of the auth server (a token pair or an error is a few hundred bytes).
pub const MAX_AUTH_BODY: usize = 64 * 1024;

/// `scheme://host:port` of a URL (the port spelled out even when it is the scheme's default).
pub fn origin(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// True when `a` and `b` have the same scheme, host and port (default ports made explicit).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Where a 30x answer to `url` points, as an origin only (a `Location` may carry anything in its
/// path and query).
pub fn location_origin(url: &Url, headers: &HeaderMap) -> String {
    let Some(value) = headers.get(LOCATION) else {
        return "nowhere (no Location header)".into();
    };
    match value.to_str().ok().and_then(|v| url.join(v.trim()).ok()) {
        Some(target) => origin(&target),
        None => "an unreadable Location".into(),
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body (or its announced length) is larger than the limit.
    TooLarge,
    /// The connection failed while reading it.
    Transport(reqwest::Error),
}

/// Read a whole body, refusing it as soon as it grows past `limit` bytes (or announces more).
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A byte count for messages: `4 MiB`, `64 KiB`, `100 bytes`.
pub fn human_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Text from a server (an account name, an `error_description`) made safe for a terminal: control
/// characters (ESC, BEL, CR, DEL, C1 ...) and bidirectional overrides are removed, line breaks and
/// tabs become spaces; every printable character, in any script, is kept.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let base = url("https://api.lightspeedapp.com");
        assert!(same_origin(
            &base,
            &url("https://api.lightspeedapp.com:443/API/V3/Account.json?offset=100")
        ));
        assert!(!same_origin(
            &base,
            &url("http://api.lightspeedapp.com/API")
        ));
        assert!(!same_origin(
            &base,
            &url("https://api.lightspeedapp.com:8443/API")
        ));
        assert!(!same_origin(&base, &url("https://evil.example/API")));
        assert!(!same_origin(
            &base,
            &url("https://api.lightspeedapp.com.evil.example/API")
        ));
        assert_eq!(origin(&base), "https://api.lightspeedapp.com:443");
        assert_eq!(origin(&url("http://[::1]:9/x?y")), "http://[::1]:9");
    }

    #[test]
    fn location_is_reduced_to_its_origin() {
        let from = url("https://cloud.lightspeedapp.com/auth/oauth/token");
        let mut h = HeaderMap::new();
        assert!(location_origin(&from, &h).contains("no Location"));
        h.insert(
            LOCATION,
            HeaderValue::from_static("http://127.0.0.1:9999/steal?secret=1"),
        );
        assert_eq!(location_origin(&from, &h), "http://127.0.0.1:9999");
        h.insert(LOCATION, HeaderValue::from_static("/elsewhere"));
        assert_eq!(
            location_origin(&from, &h),
            "https://cloud.lightspeedapp.com:443"
        );
    }

    #[test]
    fn printable_strips_controls_and_keeps_unicode() {
        assert_eq!(
            printable("Caf\u{e9} \u{1b}[2JM\u{fc}nchen"),
            "Caf\u{e9} [2JM\u{fc}nchen"
        );
        assert_eq!(printable("a\nb\tc\u{7}\u{7f}\u{9b}d"), "a b cd");
        assert_eq!(printable("x\u{202e}y\u{2066}z"), "xyz");
        assert_eq!(printable("店舗 🛍️"), "店舗 🛍️");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(MAX_API_BODY), "4 MiB");
        assert_eq!(human_size(MAX_AUTH_BODY), "64 KiB");
        assert_eq!(human_size(100), "100 bytes");
    }
}
