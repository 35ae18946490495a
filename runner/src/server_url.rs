//! The control plane's address, as given by the operator, and the URLs derived from it.

use std::fmt;

/// A control plane base URL: `http(s)://host[:port][/prefix]`. `ws(s)://` is accepted and
/// read as the matching `http(s)://`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    /// `http://...` or `https://...`, without a trailing slash.
    base: String,
}

/// The URL is not one kiln can use.
#[derive(Debug, thiserror::Error)]
#[error("server URL {url:?} {reason}")]
pub struct BadServerUrl {
    url: String,
    reason: &'static str,
}

impl ServerUrl {
    /// Parses and normalises a base URL.
    pub fn parse(url: &str) -> Result<Self, BadServerUrl> {
        let bad = |reason| BadServerUrl {
            url: url.to_owned(),
            reason,
        };
        let trimmed = url.trim().trim_end_matches('/');
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| bad("has no scheme: use http://, https://, ws:// or wss://"))?;
        let scheme = match scheme {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            _ => {
                return Err(bad(
                    "has an unsupported scheme: use http://, https://, ws:// or wss://",
                ))
            }
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("has no host"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace"));
        }
        Ok(Self {
            base: format!("{scheme}://{rest}"),
        })
    }

    /// An HTTP URL for `path` (which starts with `/`).
    pub fn http(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The runner socket's URL.
    pub fn runner_socket(&self) -> String {
        let ws_base = match self.base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", self.base.trim_start_matches("http://")),
        };
        format!("{ws_base}/v1/runners/connect")
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_schemes_and_slashes() {
        let url = ServerUrl::parse("ws://127.0.0.1:7700/").unwrap();
        assert_eq!(url.http("/v1/tasks"), "http://127.0.0.1:7700/v1/tasks");
        assert_eq!(
            url.runner_socket(),
            "ws://127.0.0.1:7700/v1/runners/connect"
        );
        let tls = ServerUrl::parse("https://kiln.example.com/base").unwrap();
        assert_eq!(
            tls.runner_socket(),
            "wss://kiln.example.com/base/v1/runners/connect"
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in ["127.0.0.1:7700", "ftp://x", "http://", "http:// x"] {
            assert!(ServerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
