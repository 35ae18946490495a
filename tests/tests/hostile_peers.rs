//! Hostile network peers: a page on another site posting the dashboard's forms, and idle or
//! slow sockets that try to take every connection slot.

use kiln_tests::ControlPlane;
use reqwest::header::{
    CONTENT_SECURITY_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use reqwest::redirect::Policy;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn the_dashboard_refuses_forms_from_other_sites_and_cannot_be_framed() {
    let control_plane = ControlPlane::start().await;
    let http = client();
    let page = http
        .get(format!("{}/login", control_plane.url))
        .send()
        .await
        .expect("login page");
    let headers = page.headers();
    let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
    let body = page.text().await.unwrap();
    assert!(
        !body.contains("<style>") && !body.contains("<script>"),
        "nothing inline: {body}"
    );

    // Login CSRF: another site's page posts a token (its own, say) to log the operator in.
    let form = [("token", control_plane.admin_token.as_str())];
    let from_elsewhere = http
        .post(format!("{}/login", control_plane.url))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(from_elsewhere.status(), 403);
    assert!(from_elsewhere.headers().get(SET_COOKIE).is_none());
    let logout = http
        .post(format!("{}/logout", control_plane.url))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403);

    let host = control_plane.url.trim_start_matches("http://");
    let from_here = http
        .post(format!("{}/login", control_plane.url))
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(from_here.status(), 303);
    assert!(from_here.headers().get(SET_COOKIE).is_some());
    let style = http
        .get(format!("{}/assets/kiln.css", control_plane.url))
        .send()
        .await
        .unwrap();
    assert_eq!(style.status(), 200);
    assert!(style.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}
