//! Recognising a provider's rate or usage limit in what an agent CLI printed, and the reset
//! time in its words: Codex's "try again at 8:00 PM" or "at Aug 27th, 2026 8:00 PM" (the
//! machine's local time) or "in 2 days 17 hours 14 minutes", Claude's "resets 1:51am
//! (America/New_York)" or "resets Apr 23 at 4pm (America/Recife)", Gemini's "Your quota
//! will reset after 5s". Texts from tests/fixtures/agents/FLAGS.md.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use kiln_protocol::UnixMillis;

/// Phrases that mean the provider refused more requests for now. Billing failures with no
/// reset ("Quota exceeded. Check your plan and billing details.") are not among them: the
/// agent fails.
const LIMIT_PHRASES: [&str; 9] = [
    "usage limit",
    "rate limit",
    "rate_limit",
    "hit your limit",
    "hit your session limit",
    "resource_exhausted",
    "exhausted your capacity",
    "exhausted your daily quota",
    "too many requests",
];

/// True when `message` says a rate or usage limit stopped the agent.
pub fn is_rate_limit(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    LIMIT_PHRASES.iter().any(|p| lower.contains(p)) || lower.contains("(429)")
}

/// When the limit `message` speaks of resets, if it says; `now` and the machine's time
/// zone place a time without a date or zone.
pub fn reset_time(message: &str, now: Timestamp) -> Option<UnixMillis> {
    let reset = after_phrase(message, &["try again in ", "reset after ", "retry after "])
        .and_then(|rest| in_duration(rest, now))
        .or_else(|| {
            after_phrase(message, &["try again at "])
                .and_then(|rest| at_time(rest, &TimeZone::system(), now))
        })
        .or_else(|| after_phrase(message, &["resets "]).and_then(|rest| resets(rest, now)))?;
    Some(reset.as_millisecond())
}

fn after_phrase<'a>(message: &'a str, phrases: &[&str]) -> Option<&'a str> {
    let lower = message.to_ascii_lowercase();
    phrases
        .iter()
        .find_map(|p| lower.find(p).map(|at| &message[at + p.len()..]))
}

/// "2 days 17 hours 14 minutes", "5s", "6173ms", "1h2m3s".
fn in_duration(text: &str, now: Timestamp) -> Option<Timestamp> {
    let words: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == ',')
        .collect();
    let cleaned = words.replace(',', " ");
    let cleaned = cleaned.trim();
    let duration = humantime::parse_duration(cleaned)
        .ok()
        .or_else(|| shortest_prefix_duration(cleaned))?;
    let millis = i64::try_from(duration.as_millis()).ok()?;
    Timestamp::from_millisecond(now.as_millisecond().checked_add(millis)?).ok()
}

/// The longest run of leading words that reads as a duration ("17 hours and more" → 17h).
fn shortest_prefix_duration(text: &str) -> Option<std::time::Duration> {
    let words: Vec<&str> = text.split_whitespace().collect();
    (1..=words.len())
        .rev()
        .find_map(|n| humantime::parse_duration(&words[..n].join(" ")).ok())
}

/// "8:00 PM" (today, or tomorrow if past) or "Aug 27th, 2026 8:00 PM", in `tz`.
fn at_time(text: &str, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    let text = text.trim_end_matches(['.', ' ']);
    let (date, clock) = match text.rfind(", ") {
        Some(comma) if text[..comma].split_whitespace().count() == 2 => {
            let (month_day, rest) = (&text[..comma], &text[comma + 2..]);
            let mut rest = rest.splitn(2, ' ');
            let year: i16 = rest.next()?.parse().ok()?;
            (Some(month_and_day(month_day, Some(year))?), rest.next()?)
        }
        _ => (None, text),
    };
    let (hour, minute) = clock_time(
        clock
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("")
            .as_str(),
    )?;
    place(date, hour, minute, tz, now)
}

/// Claude's "1:51am (America/New_York)", "8pm (Europe/Berlin)", "Apr 23 at 4pm
/// (America/Recife)", "Jan 21, 5am (Etc/GMT-9)".
fn resets(text: &str, now: Timestamp) -> Option<Timestamp> {
    let open = text.find('(')?;
    let close = open + text[open..].find(')')?;
    let tz = TimeZone::get(text[open + 1..close].trim()).ok()?;
    let when = text[..open].trim().replace(" at ", " ").replace(',', "");
    let words: Vec<&str> = when.split_whitespace().collect();
    let (date, clock) = match words.as_slice() {
        [clock] => (None, *clock),
        [month, day, clock] => (
            Some(month_and_day(&format!("{month} {day}"), None)?),
            *clock,
        ),
        _ => return None,
    };
    let (hour, minute) = clock_time(clock)?;
    place(date, hour, minute, &tz, now)
}

/// A month's name and a day ("Aug 27th"), in `year` or the current one.
fn month_and_day(text: &str, year: Option<i16>) -> Option<(Option<i16>, i8, i8)> {
    let mut words = text.split_whitespace();
    let month = month_number(words.next()?)?;
    let day: String = words
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((year, month, day.parse().ok()?))
}

fn month_number(name: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let lower = name.to_ascii_lowercase();
    let index = MONTHS.iter().position(|m| lower.starts_with(m))?;
    i8::try_from(index + 1).ok()
}

/// "8:00PM", "1:51am", "8pm", "20:00" as a 24-hour hour and minute.
fn clock_time(text: &str) -> Option<(i8, i8)> {
    let lower = text.to_ascii_lowercase();
    let (digits, meridiem) = match lower.strip_suffix("am") {
        Some(rest) => (rest, Some(false)),
        None => match lower.strip_suffix("pm") {
            Some(rest) => (rest, Some(true)),
            None => (lower.as_str(), None),
        },
    };
    let (hour, minute) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?),
        None => (digits.parse::<i8>().ok()?, 0),
    };
    let hour = match meridiem {
        Some(pm) if (1..=12).contains(&hour) => hour % 12 + if pm { 12 } else { 0 },
        Some(_) => return None,
        None => hour,
    };
    ((0..24).contains(&hour) && (0..60).contains(&minute)).then_some((hour, minute))
}

/// The next moment at `hour:minute` in `tz` on `date` (today when absent; a time already
/// past means tomorrow, a date already past without a year means next year).
fn place(
    date: Option<(Option<i16>, i8, i8)>,
    hour: i8,
    minute: i8,
    tz: &TimeZone,
    now: Timestamp,
) -> Option<Timestamp> {
    let today = now.to_zoned(tz.clone()).date();
    let at = |day: Date| -> Option<Timestamp> {
        Some(
            day.at(hour, minute, 0, 0)
                .to_zoned(tz.clone())
                .ok()?
                .timestamp(),
        )
    };
    match date {
        None => {
            let moment = at(today)?;
            if moment > now {
                Some(moment)
            } else {
                at(today.tomorrow().ok()?)
            }
        }
        Some((Some(year), month, day)) => at(Date::new(year, month, day).ok()?),
        Some((None, month, day)) => {
            let moment = at(Date::new(today.year(), month, day).ok()?)?;
            if moment.as_millisecond() + 86_400_000 > now.as_millisecond() {
                Some(moment)
            } else {
                at(Date::new(today.year() + 1, month, day).ok()?)
            }
        }
    }
}

#[cfg(test)]
mod tests;
