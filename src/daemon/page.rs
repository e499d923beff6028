//! The status page (`GET /`): one HTML document rendered on the server from the [`StatusReport`],
//! no external assets and no script. One row per account: state, last success and lag per stream,
//! rows, the running run's progress (pages, estimated time left at the bucket's pace), last error.
//! Sorting (by lag, by account) and the state filter are plain links (`?sort=…&state=…`). Every
//! text that comes from Lightspeed or the database (names, errors) is escaped.

use std::fmt::Write as _;

use super::status::{AccountView, STATES, StatusReport, StreamView, human_secs, progress};

use crate::model::{RunStatus, Stream};

/// How the rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Largest lag first (never synced first of all): the default.
    LagDesc,
    /// Smallest lag first.
    LagAsc,
    /// By account ID.
    Account,
}

impl Sort {
    /// From the `sort` query parameter; unknown values give the default.
    pub fn parse(s: Option<&str>) -> Sort {
        match s {
            Some("lag_asc") => Sort::LagAsc,
            Some("account") => Sort::Account,
            _ => Sort::LagDesc,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Sort::LagDesc => "lag_desc",
            Sort::LagAsc => "lag_asc",
            Sort::Account => "account",
        }
    }
}

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em;margin:0 0 .3em}p.meta{color:#666;margin:0 0 1em}\
nav a{margin-right:.8em}nav a.on{font-weight:bold;text-decoration:none;color:#000}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;\
text-align:left;vertical-align:top}th{background:#f4f4f4;position:sticky;top:0}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
.badge{display:inline-block;padding:0 .45em;border-radius:.7em;font-size:.85em;background:#e8e8e8}\
tr.state-needs_reauth{background:#ffe3e3}tr.state-needs_reauth .badge{background:#c00;color:#fff;\
font-weight:bold}tr.state-failing{background:#fff4d6}tr.state-failing .badge{background:#e0a000}\
tr.state-syncing .badge{background:#cfe3ff}tr.state-ok .badge{background:#d7f5dd}\
.when{white-space:nowrap}.err{color:#a00;max-width:32em;overflow-wrap:anywhere}.reason{color:#a00;font-size:.85em}";

/// The whole page for `report`, rows filtered to `state` (when given) and ordered by `sort`.
pub fn render(report: &StatusReport, sort: Sort, state: Option<&str>) -> String {
    let state = state.filter(|s| STATES.contains(s));
    let mut rows: Vec<&AccountView> = report
        .accounts
        .iter()
        .filter(|a| state.is_none_or(|s| state_word(a) == s))
        .collect();
    let lag = |a: &AccountView| a.max_lag().unwrap_or(f64::INFINITY);
    match sort {
        Sort::LagDesc => rows.sort_by(|a, b| lag(b).total_cmp(&lag(a))),
        Sort::LagAsc => rows.sort_by(|a, b| lag(a).total_cmp(&lag(b))),
        Sort::Account => rows.sort_by_key(|a| a.account_id),
    }
    let mut out = String::with_capacity(1024 + rows.len() * 600);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width\">");
    out.push_str("<title>lightspeed-sync status</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<h1>lightspeed-sync</h1>");
    let needs = report
        .accounts
        .iter()
        .filter(|a| state_word(a) == "needs_reauth")
        .count();
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} account(s) · {} need re-authorization · read {} UTC</p>",
        report.accounts.len(),
        needs,
        report.generated_at.format("%Y-%m-%d %H:%M:%S")
    );
    // The state filter: plain links keeping the sort.
    out.push_str("<nav id=\"filter\">State: ");
    let link = |sort: Sort, state: Option<&str>| {
        let mut q = format!("?sort={}", sort.as_str());
        if let Some(s) = state {
            q.push_str("&amp;state=");
            q.push_str(s);
        }
        q
    };
    let _ = write!(
        out,
        "<a href=\"{}\"{}>all ({})</a>",
        link(sort, None),
        if state.is_none() { " class=\"on\"" } else { "" },
        report.accounts.len()
    );
    for s in STATES {
        let n = report
            .accounts
            .iter()
            .filter(|a| state_word(a) == s)
            .count();
        if n == 0 {
            continue;
        }
        let _ = write!(
            out,
            "<a href=\"{}\"{}>{} ({n})</a>",
            link(sort, Some(s)),
            if state == Some(s) {
                " class=\"on\""
            } else {
                ""
            },
            s.replace('_', " ")
        );
    }
    out.push_str("</nav>\n");
    let lag_sort = if sort == Sort::LagDesc {
        Sort::LagAsc
    } else {
        Sort::LagDesc
    };
    let arrow = match sort {
        Sort::LagDesc => " ↓",
        Sort::LagAsc => " ↑",
        Sort::Account => "",
    };
    let _ = writeln!(
        out,
        "<table id=\"accounts\"><thead><tr><th><a href=\"{}\">Account</a></th><th>Name</th>\
         <th>State</th><th>Accounts stream</th><th>Customers stream</th>\
         <th><a id=\"sort-lag\" href=\"{}\">Lag{arrow}</a></th><th>Rows</th><th>Progress</th>\
         <th>Last error</th></tr></thead><tbody>",
        link(Sort::Account, state),
        link(lag_sort, state),
    );
    for a in &rows {
        row(&mut out, a);
    }
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\">no account in this state</td></tr>\n");
    }
    out.push_str("</tbody></table>\n</body></html>\n");
    out
}

fn state_word(a: &AccountView) -> &str {
    if a.state.is_empty() {
        a.state_of()
    } else {
        &a.state
    }
}

fn row(out: &mut String, a: &AccountView) {
    let state = state_word(a);
    let _ = write!(
        out,
        "<tr class=\"state-{}\" data-account=\"{}\" data-state=\"{}\" data-lag=\"{}\">",
        escape(state),
        a.account_id,
        escape(state),
        a.max_lag()
            .map_or("never".to_string(), |l| format!("{l:.0}"))
    );
    let _ = write!(
        out,
        "<td class=\"num\">{}</td><td>{}</td><td><span class=\"badge\">{}</span>",
        a.account_id,
        if a.name.is_empty() {
            "<i>unnamed</i>".to_string()
        } else {
            escape(&a.name)
        },
        escape(&state.replace('_', " "))
    );
    if state == "needs_reauth" {
        out.push_str("<div class=\"reason\">run <code>lightspeed-sync authorize</code>");
        if let Some(reason) = &a.authorization_reason {
            let _ = write!(out, ": {}", escape(reason));
        }
        out.push_str("</div>");
    }
    out.push_str("</td>");
    for name in Stream::ALL {
        match a.streams.iter().find(|s| s.stream == name) {
            Some(s) => stream_cell(out, s),
            None => out.push_str("<td>never</td>"),
        }
    }
    let lag = a.max_lag().map_or("never".to_string(), human_secs);
    let _ = write!(out, "<td class=\"num\">{}</td>", escape(&lag));
    let customers = a.streams.iter().find(|s| s.stream == Stream::Customers);
    let rows = customers
        .and_then(|s| s.last_rows)
        .map_or("-".to_string(), |r| r.to_string());
    let _ = write!(out, "<td class=\"num\">{rows}</td>");
    let running: Vec<String> = a
        .streams
        .iter()
        .filter(|s| s.last_status == Some(RunStatus::Running))
        .map(|s| format!("{}: {}", s.stream, progress(s)))
        .collect();
    let _ = write!(
        out,
        "<td>{}</td>",
        if running.is_empty() {
            "-".to_string()
        } else {
            escape(&running.join("; "))
        }
    );
    let errors: Vec<String> = a
        .streams
        .iter()
        .filter(|s| s.last_status != Some(RunStatus::Succeeded))
        .filter_map(|s| s.last_error.as_ref().map(|e| format!("{}: {e}", s.stream)))
        .collect();
    let _ = writeln!(
        out,
        "<td class=\"err\">{}</td></tr>",
        escape(&errors.join("; "))
    );
}

fn stream_cell(out: &mut String, s: &StreamView) {
    let success = s.last_success_at.map_or("never".to_string(), |t| {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    });
    let lag = s.lag_seconds.map_or("-".to_string(), human_secs);
    let _ = write!(
        out,
        "<td><span class=\"when\">{}</span><br><small>lag {} · last run {}</small></td>",
        escape(&success),
        escape(&lag),
        escape(s.last_status.map_or("-", RunStatus::as_str))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn unknown_sort_and_state_fall_back() {
        assert_eq!(Sort::parse(Some("nope")), Sort::LagDesc);
        let report = StatusReport {
            generated_at: chrono::Utc::now(),
            accounts: vec![],
        };
        let html = render(&report, Sort::LagDesc, Some("\"><script>"));
        assert!(!html.contains("<script>"), "{html}");
    }
}
