//! `/metrics` on the real control plane, scraped and parsed, against a known state: one
//! runner online, one offline, two tasks done, one queued that no runner can take.

use std::collections::HashMap;
use std::time::Duration;

use kiln_tests::prometheus::samples;
use kiln_tests::{git, wait, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn scrape(control_plane: &ControlPlane) -> HashMap<String, f64> {
    let response = reqwest::get(format!("{}/metrics", control_plane.url))
        .await
        .expect("GET /metrics");
    assert!(response.status().is_success(), "{}", response.status());
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    samples(&response.text().await.expect("body"))
}

fn sample(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
}

#[tokio::test]
async fn a_scrape_matches_the_fleet_and_queue_it_describes() {
    let control_plane = ControlPlane::start().await;
    let mut online = Runner::register(&control_plane, "online", &[]);
    online.start_connected(&control_plane).await;
    let _offline = Runner::register(&control_plane, "offline", &[]);
    let repo = git::repo(&control_plane.scratch(), "app");
    for n in 0..2 {
        let id = control_plane.submit(&repo, &[], &format!("seq 1 {} ", 5 + n));
        let task = control_plane.wait_terminal(&id, TIMEOUT).await;
        assert_eq!(task["state"], "succeeded");
    }
    control_plane.submit(&repo, &["--require", "gpu"], "true");

    // The last events of a finished task may still be in flight: wait for the counter.
    let samples = wait::until("metrics to settle", TIMEOUT, || async {
        let samples = scrape(&control_plane).await;
        (sample(&samples, "kiln_tasks{state=\"queued\"}") == 1.0).then_some(samples)
    })
    .await;
    assert_eq!(sample(&samples, "kiln_runners{state=\"online\"}"), 1.0);
    assert_eq!(sample(&samples, "kiln_runners{state=\"offline\"}"), 1.0);
    assert_eq!(sample(&samples, "kiln_runners{state=\"revoked\"}"), 0.0);
    assert_eq!(sample(&samples, "kiln_tasks{state=\"succeeded\"}"), 2.0);
    assert_eq!(sample(&samples, "kiln_tasks{state=\"running\"}"), 0.0);
    assert_eq!(sample(&samples, "kiln_queue_depth"), 1.0);
    assert!(sample(&samples, "kiln_queue_oldest_age_seconds") >= 0.0);
    assert_eq!(sample(&samples, "kiln_websocket_connections"), 1.0);
    // Both tasks printed 5 and 6 lines, among their other events.
    assert!(sample(&samples, "kiln_events_ingested_total") >= 11.0);
    assert!(sample(&samples, "kiln_store_bytes") > 0.0);
    assert_eq!(sample(&samples, "kiln_dispatch_latency_seconds_count"), 2.0);
    assert_eq!(
        sample(
            &samples,
            "kiln_dispatch_latency_seconds_bucket{le=\"+Inf\"}"
        ),
        2.0
    );
    assert!(sample(&samples, "kiln_store_commit_seconds_count") > 0.0);

    online.kill();
    let samples = wait::until("the runner to be counted offline", TIMEOUT, || async {
        let samples = scrape(&control_plane).await;
        (sample(&samples, "kiln_websocket_connections") == 0.0).then_some(samples)
    })
    .await;
    assert_eq!(sample(&samples, "kiln_runners{state=\"offline\"}"), 2.0);
}
