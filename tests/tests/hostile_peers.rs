//! Hostile network peers: a page on another site posting the dashboard's forms, and idle or
//! slow sockets that try to take every connection slot.

use std::time::Duration;

use kiln_tests::ControlPlane;
use reqwest::header::{
    CONTENT_SECURITY_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use reqwest::redirect::Policy;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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

/// Idle sockets opened from 127.0.0.2, so that the test's own requests (from 127.0.0.1)
/// come from another address.
async fn idle_sockets(url: &str, count: usize) -> Vec<tokio::net::TcpStream> {
    let target: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .expect("server address");
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("address"))
            .expect("bind 127.0.0.2");
        sockets.push(socket.connect(target).await.expect("connect"));
    }
    sockets
}

#[tokio::test]
async fn idle_sockets_from_one_address_are_closed_and_lock_nobody_out() {
    let control_plane = ControlPlane::start_with(&["--max-connections", "100"]).await;
    let started = std::time::Instant::now();
    let mut idle = idle_sockets(&control_plane.url, 110).await;

    // Everyone else is still served while the idle sockets are open.
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("{}/healthz", control_plane.url)),
    )
    .await
    .expect("/healthz answered while 110 idle sockets were open")
    .expect("/healthz");
    assert_eq!(health.status(), 200);
    let tasks = tokio::time::timeout(Duration::from_secs(5), control_plane.get("/v1/tasks"))
        .await
        .expect("/v1/tasks answered while 110 idle sockets were open");
    assert!(tasks["tasks"].is_array(), "{tasks}");

    // Every idle socket is closed by the server: from accept, a first byte is due within
    // 10 s; the sockets over the address's share were closed at once.
    for socket in &mut idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut byte))
            .await
            .expect("the server closed the idle socket");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "closed within the deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_peer_that_stops_halfway_through_its_headers_is_dropped() {
    let control_plane = ControlPlane::start().await;
    let mut socket = idle_sockets(&control_plane.url, 1).await.remove(0);
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut rest))
        .await
        .expect("the server dropped the slow peer");
    assert!(read.is_ok() || read.is_err(), "ended");
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "no answer to a request that never ended: {rest:?}"
    );
}
