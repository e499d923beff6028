//! A minimal XML rendering of any response, derived from its JSON: `@attributes` become XML
//! attributes, arrays become repeated elements. Enough to show that XML is what a client gets
//! when it does not ask for JSON (§4.8); nobody should parse it.

use serde_json::Value;

/// Render the JSON `body` as XML under a root element `root`.
pub(crate) fn from_json(root: &str, body: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    match serde_json::from_str::<Value>(body) {
        Ok(v) => element(&mut out, root, &v),
        Err(_) => element(&mut out, root, &Value::String(body.into())),
    }
    out.push('\n');
    out
}

fn element(out: &mut String, name: &str, v: &Value) {
    out.push('<');
    out.push_str(name);
    if let Some(Value::Object(attrs)) = v.get("@attributes") {
        for (k, a) in attrs {
            out.push_str(&format!(
                " {k}=\"{}\"",
                escape(a.as_str().unwrap_or_default())
            ));
        }
    }
    out.push('>');
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter().filter(|(k, _)| *k != "@attributes") {
                match child {
                    Value::Array(items) => items.iter().for_each(|i| element(out, k, i)),
                    _ => element(out, k, child),
                }
            }
        }
        Value::String(s) => out.push_str(&escape(s)),
        Value::Null => {}
        other => out.push_str(&escape(&other.to_string())),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
