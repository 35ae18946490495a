//! Diagnostic logging of both binaries to stderr: human-readable text, or one JSON object
//! per line for log collectors (`--log-format json`). `KILN_LOG` sets the filter.

/// How log records are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// Crates that print what crosses the wire (frames, headers, raw bytes) at their debug and
/// trace levels: WebSocket frames carry assignments with secret values and rotated tokens,
/// requests carry bearer tokens. Their records above `info` are dropped, whatever
/// `KILN_LOG` asks for.
const WIRE_CRATES: [&str; 8] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tokio_rustls",
];

/// Whether a record may be written at all: never a wire crate's debug or trace record.
pub fn may_print(target: &str, level: tracing::Level) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    level <= tracing::Level::INFO || !WIRE_CRATES.contains(&crate_name)
}

/// Installs the global subscriber; `default_filter` applies unless `KILN_LOG` is set.
pub fn init(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let wire =
        tracing_subscriber::filter::filter_fn(|meta| may_print(meta.target(), *meta.level()));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(wire))
        .init();
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::may_print;

    #[test]
    fn wire_crates_print_nothing_below_info() {
        assert!(!may_print("tungstenite::protocol", Level::TRACE));
        assert!(!may_print("h2", Level::DEBUG));
        assert!(may_print("hyper::proto", Level::WARN));
        assert!(may_print("kiln_runner::daemon", Level::TRACE));
        assert!(may_print("tungstenite_lookalike", Level::TRACE));
    }
}
