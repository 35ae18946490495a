//! Reading a Prometheus text exposition, as the metrics tests scrape it.

use std::collections::HashMap;

/// Samples by name with labels (`kiln_tasks{state="x"}`); a sample named twice fails.
pub fn samples(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample without a value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        assert!(
            samples.insert(name.to_owned(), value).is_none(),
            "{name} appears twice"
        );
    }
    samples
}
