//! Rendering an error with its causes. An error's `Display` says only its own level and its cause
//! comes from `source()`; wherever an error is shown to a person or stored, [`report`] prints the
//! whole chain, each level once, joined by `": "` (as anyhow's `{:#}` does).

use std::error::Error;
use std::fmt;

/// An error and its causes, displayed as `error: cause: cause` (see [`report`]).
pub struct Report<'a>(&'a (dyn Error + 'a));

/// The error `e` with its chain of causes, each level once, for a log line, a message or a row.
pub fn report<'a>(e: &'a (dyn Error + 'a)) -> Report<'a> {
    Report(e)
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Some errors of other crates (sqlx's, for one) print their cause too: once is enough.
            if !text.is_empty() && !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    /// An error that prints its cause itself, as some of other crates do.
    #[derive(Debug, thiserror::Error)]
    #[error("repeats: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_level_is_printed_once() {
        let e = Outer(Middle(std::io::Error::other("leaf")));
        assert_eq!(report(&e).to_string(), "outer: middle: leaf");
        let e = Outer(Middle(std::io::Error::other("leaf")));
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "outer: middle: leaf"
        );
        let e = Repeats(std::io::Error::other("leaf"));
        assert_eq!(report(&e).to_string(), "repeats: leaf");
    }
}
