//! The web dashboard in a real browser (headless Chromium through chromedriver): log in
//! with the admin token, see the fleet, and watch a task's log grow while its page is open.
//! Ends with a screenshot of the task page in the target dir.

use std::time::Duration;

use kiln_tests::browser::Browser;
use kiln_tests::{git, ControlPlane, Runner};

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_operator_logs_in_sees_the_fleet_and_follows_a_growing_log() {
    let control_plane = ControlPlane::start().await;
    let mut runner = Runner::register(&control_plane, "box-one", &["--capability", "gpu"]);
    runner.start_connected(&control_plane).await;
    let repo = git::repo(&control_plane.scratch(), "app");
    let release = control_plane.scratch().join("release");
    let task = control_plane.submit(
        &repo,
        &["--prompt", "make <b>it</b> so"],
        &format!(
            "echo first line; echo on stderr >&2; \
             while [ ! -e {} ]; do sleep 0.05; done; echo after release; echo done > out.txt",
            release.display()
        ),
    );
    control_plane.wait_events(&task, 1, 2, TIMEOUT).await;

    let browser = Browser::start().await;
    let url = &control_plane.url;
    browser.goto(&format!("{url}/")).await;
    assert!(
        browser.url().await.ends_with("/login"),
        "not logged in: sent to the login form"
    );
    browser
        .type_into("input[name=token]", "kiln_adm_not-the-token")
        .await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_text("#error", "not a valid admin token", TIMEOUT)
        .await;
    browser
        .type_into("input[name=token]", &control_plane.admin_token)
        .await;
    browser.click("button[type=submit]").await;

    let fleet = browser.wait_for_text("#runners", "box-one", TIMEOUT).await;
    assert!(fleet.contains("online"), "{fleet}");
    assert!(fleet.contains("gpu"), "{fleet}");
    assert!(fleet.contains("1/"), "one task running: {fleet}");

    browser.goto(&format!("{url}/tasks?state=running")).await;
    browser.wait_for_text("#tasks", &task, TIMEOUT).await;
    browser.goto(&format!("{url}/tasks?state=succeeded")).await;
    let none = browser.text("#tasks").await;
    assert!(!none.contains(&task), "filtered out while running: {none}");

    browser.goto(&format!("{url}/tasks/{task}")).await;
    let log = browser.wait_for_text("#log", "first line", TIMEOUT).await;
    assert!(log.contains("on stderr"), "{log}");
    assert!(!log.contains("after release"));
    let prompt = browser.text("#prompt").await;
    assert_eq!(
        prompt, "make <b>it</b> so",
        "the prompt is shown as text, not markup"
    );

    // The page stays open while the agent writes more.
    std::fs::write(&release, b"").expect("release the agent");
    browser
        .wait_for_text("#log", "after release", TIMEOUT)
        .await;
    control_plane.wait_terminal(&task, TIMEOUT).await;
    browser.goto(&format!("{url}/tasks/{task}")).await;
    browser.wait_for_text("#state", "succeeded", TIMEOUT).await;
    browser
        .wait_for_text("#diffstat", "1 files changed", TIMEOUT)
        .await;
    browser
        .wait_for_text("#log", "after release", TIMEOUT)
        .await;
    let attempts = browser.text("#attempts").await;
    assert!(attempts.contains(&runner.id), "{attempts}");

    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-task.png");
    browser.screenshot(&screenshot).await;
    assert!(
        std::fs::metadata(&screenshot)
            .expect("screenshot saved")
            .len()
            > 1000
    );
    eprintln!("screenshot of the task page: {}", screenshot.display());
    browser.quit().await;
}
