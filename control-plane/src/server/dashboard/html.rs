//! HTML building blocks of the dashboard: escaping, the page frame, times.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use kiln_protocol::UnixMillis;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title` (escaped here) and `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content='width=device-width,initial-scale=1'>\
         <title>{} · kiln</title><link rel=stylesheet href='{}'></head><body>\
         <nav><a href='/'>Fleet</a><a href='/tasks'>Tasks</a>\
         <form method=post action='/logout'><button>Log out</button></form></nav>\
         <main>{body}</main></body></html>",
        escape(title),
        super::assets::STYLE_PATH,
    );
    out
}

/// A time as `2026-11-30 12:00:00 UTC`, or `-`.
pub fn time(at: Option<UnixMillis>) -> String {
    let Some(millis) = at.and_then(|ms| u64::try_from(ms).ok()) else {
        return "-".to_owned();
    };
    let at = UNIX_EPOCH + Duration::from_millis(millis);
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn times_are_utc_and_absent_ones_a_dash() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(None), "-");
    }
}
