//! Browser-facing protections on every response: a content security policy that allows the
//! dashboard's own scripts and styles only, no framing, no MIME sniffing, no referrer; and
//! the same-origin check for the dashboard's cookie-setting forms.

use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, ORIGIN, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

/// The dashboard serves its script and style sheet from `/assets`, and its script talks to
/// this server only: nothing inline, nothing from elsewhere, no framing, forms post here.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// Adds the protective headers to a response (a layer over the whole app).
pub async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// Whether a form post comes from this server's own pages. Browsers send `Sec-Fetch-Site`
/// (and `Origin` on every POST); a request from another site says so in one of them. A
/// client that sends neither is not a browser, so no other site can be acting through it.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::same_origin;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_this_servers_pages_and_non_browsers_may_post_forms() {
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        let ours = [("origin", "http://cp:7700"), ("host", "cp:7700")];
        assert!(same_origin(&headers(&ours)));
        let theirs = [("origin", "https://evil.example"), ("host", "cp:7700")];
        assert!(!same_origin(&headers(&theirs)));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "cp:7700")
        ])));
    }
}
