//! Parsing the configuration values that are text: durations and sizes.

use std::time::Duration;

use super::ConfigError;

/// Parses a duration such as `10s` or `5m`, naming `key` when it is not one.
pub fn duration(key: &'static str, text: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    text.map(|text| {
        humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
            key,
            reason: format!("{text:?} is not a duration such as 10s: {e}"),
        })
    })
    .transpose()
}

/// Parses a size such as `500M`, `20GiB` or `1048576` (powers of 1024), naming `key` when
/// it is not one.
pub fn size(key: &'static str, text: Option<&str>) -> Result<Option<u64>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    let invalid = || ConfigError::Invalid {
        key,
        reason: format!("{text:?} is not a size such as 500M or 20GiB"),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let shift = match unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches('i')
    {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(1u64 << shift)
        .map(Some)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(size("k", Some("1024")).unwrap(), Some(1024));
        assert_eq!(size("k", Some("500M")).unwrap(), Some(500 << 20));
        assert_eq!(size("k", Some("20GiB")).unwrap(), Some(20 << 30));
        assert_eq!(size("k", None).unwrap(), None);
        let error = size("cache_max_size", Some("lots"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("cache_max_size \"lots\""), "{error}");
    }

    #[test]
    fn durations_name_the_key() {
        assert_eq!(
            duration("k", Some("90s")).unwrap(),
            Some(Duration::from_secs(90))
        );
        let error = duration("kill_grace", Some("soon"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("kill_grace \"soon\""), "{error}");
    }
}
