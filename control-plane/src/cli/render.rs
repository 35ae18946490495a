//! Small helpers for human-readable output: aligned tables and times.

use kiln_protocol::{now_millis, UnixMillis};

/// Prints rows as columns separated by two spaces, the header first.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// "3m ago" style age of a timestamp.
pub fn ago(at: Option<UnixMillis>) -> String {
    let Some(at) = at else { return "-".to_owned() };
    let seconds = (now_millis() - at).max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds}s ago"),
        60..=3599 => format!("{}m ago", seconds / 60),
        3600..=86_399 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// "29m 12s" style time left.
pub fn remaining(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// An RFC 3339 time.
pub fn time(at: Option<UnixMillis>) -> String {
    let Some(at) = at.and_then(|a| u64::try_from(a).ok()) else {
        return "-".to_owned();
    };
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(at))
        .to_string()
}

/// First `n` characters, with an ellipsis when cut.
pub fn clip(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_owned();
    }
    let kept: String = text.chars().take(n.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// "3 turns, 400 tokens in (+800 cache read, +150 cache write), 300 out (120 reasoning),
/// $0.0125" as the agent reported it.
pub fn usage(usage: &kiln_protocol::Usage) -> String {
    let mut parts = Vec::new();
    if let Some(turns) = usage.turns {
        parts.push(format!("{turns} turn(s)"));
    }
    let mut tokens = format!("{} tokens in", usage.input_tokens);
    let cache: Vec<String> = [
        (usage.cache_read_tokens, "cache read"),
        (usage.cache_write_tokens, "cache write"),
    ]
    .iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("+{count} {what}"))
    .collect();
    if !cache.is_empty() {
        tokens.push_str(&format!(" ({})", cache.join(", ")));
    }
    parts.push(tokens);
    match usage.reasoning_tokens {
        Some(reasoning) if reasoning > 0 => parts.push(format!(
            "{} out ({reasoning} reasoning)",
            usage.output_tokens
        )),
        _ => parts.push(format!("{} out", usage.output_tokens)),
    }
    if let Some(cost) = usage.cost_usd {
        parts.push(format!("${cost:.4} (reported by the agent)"));
    }
    parts.join(", ")
}
