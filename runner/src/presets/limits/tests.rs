//! Reset times as the CLIs print them (texts quoted in tests/fixtures/agents/FLAGS.md).

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::*;

/// 2026-08-27 12:00:00 UTC.
fn noon() -> Timestamp {
    "2026-08-27T12:00:00Z".parse().unwrap()
}

fn utc_at(text: &str) -> String {
    at_time(text, &TimeZone::UTC, noon()).unwrap().to_string()
}

#[test]
fn limits_are_told_from_other_errors() {
    for limited in [
        "You've hit your usage limit. Upgrade to Pro (https://openai.com/chatgpt/pricing), visit https://chatgpt.com/codex/settings/usage to purchase more credits or try again at 8:00 PM.",
        "You've hit your session limit · resets 1:51am (America/New_York)",
        "API Error: Request rejected (429) · This request would exceed your account rate limit. Please try again later.",
        "Attempt 1 failed: You have exhausted your capacity on this model. Your quota will reset after 5s.. Retrying after 6173ms...",
        "[API Error: You have exhausted your daily quota on this model.]",
    ] {
        assert!(is_rate_limit(limited), "{limited}");
    }
    for other in [
        "Quota exceeded. Check your plan and billing details.",
        "API Error: 400 probe: invalid request",
        "stream disconnected before completion: connection reset",
    ] {
        assert!(!is_rate_limit(other), "{other}");
    }
}

#[test]
fn codex_reset_times_are_placed_in_the_local_day() {
    assert_eq!(utc_at("8:00 PM."), "2026-08-27T20:00:00Z");
    // Already past today: tomorrow.
    assert_eq!(utc_at("9:30 AM"), "2026-08-28T09:30:00Z");
    assert_eq!(utc_at("Aug 29th, 2026 8:00 PM."), "2026-08-29T20:00:00Z");
    assert_eq!(utc_at("Sep 1st, 2026 7:05 AM"), "2026-09-01T07:05:00Z");
}

#[test]
fn durations_count_from_now() {
    let in_words = reset_time(
        "You've hit your usage limit. Try again in 2 days 17 hours 14 minutes.",
        noon(),
    )
    .unwrap();
    let expected: Timestamp = "2026-08-30T05:14:00Z".parse().unwrap();
    assert_eq!(in_words, expected.as_millisecond());
    let gemini = reset_time(
        "You have exhausted your capacity on this model. Your quota will reset after 5s.. Retrying after 6173ms...",
        noon(),
    )
    .unwrap();
    assert_eq!(gemini, noon().as_millisecond() + 5_000);
}

#[test]
fn claude_reset_times_name_their_zone() {
    if TimeZone::get("America/New_York").is_err() {
        // No tz database on this machine: the reset is unknown, and the runner waits its
        // default instead (tested in the runner's loop).
        assert_eq!(reset_time("resets 1:51am (America/New_York)", noon()), None);
        return;
    }
    let at = |text: &str| Timestamp::from_millisecond(reset_time(text, noon()).unwrap()).unwrap();
    // 12:00 UTC is 08:00 in New York (EDT): 1:51am is tomorrow's.
    assert_eq!(
        at("You've hit your session limit · resets 1:51am (America/New_York)").to_string(),
        "2026-08-28T05:51:00Z"
    );
    assert_eq!(
        at("You've hit your limit · resets 8pm (Europe/Berlin)").to_string(),
        "2026-08-27T18:00:00Z"
    );
    assert_eq!(
        at("You've hit your limit · resets Sep 23 at 4pm (America/Recife)").to_string(),
        "2026-09-23T19:00:00Z"
    );
}

#[test]
fn no_time_means_unknown() {
    assert_eq!(reset_time("Please try again later.", noon()), None);
    assert_eq!(reset_time("try again at teatime", noon()), None);
}
