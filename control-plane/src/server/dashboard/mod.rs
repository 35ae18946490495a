//! The web dashboard at `/`: server-rendered pages of the fleet, the tasks and each task
//! with its live log, behind the admin token. Logging in sets an HttpOnly, SameSite=Strict
//! cookie holding the token; it authorises reads (GET) only, so no other site can act in
//! the operator's name. No build step and no framework: HTML from Rust, one small script.

mod assets;
mod html;
mod pages;

use axum::extract::{Form, FromRequestParts, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::auth::{check_admin, dashboard_cookie, DASHBOARD_COOKIE};
use super::headers::same_origin;
use super::state::AppState;
use crate::tokens::Token;

/// How long a login lasts: a working day; then the operator pastes the token again.
const LOGIN_SECONDS: u32 = 12 * 60 * 60;

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/tasks", get(pages::tasks))
        .route("/tasks/{id}", get(pages::task))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(assets::STYLE_PATH, get(assets::style))
        .route(assets::LIVE_LOG_PATH, get(assets::live_log))
}

/// An operator logged in to the dashboard; anyone else is sent to the login form.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = dashboard_cookie(parts).ok_or_else(to_login)?;
        check_admin(state, &token).await.map_err(|_| to_login())?;
        Ok(Operator)
    }
}

fn to_login() -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response()
}

fn login_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p class=error id=error>{}</p>", html::escape(e)))
        .unwrap_or_default();
    Html(html::page(
        "Log in",
        &format!(
            "<h1>kiln</h1>{error}<form method=post action='/login'>\
             <label>Admin token <input name=token type=password autocomplete=off \
             placeholder='kiln_adm_...' autofocus></label> <button type=submit>Log in</button></form>"
        ),
    ))
}

async fn login_form() -> Html<String> {
    login_page(None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// A form post from another site's page: refused before anything is looked at, so no
/// page elsewhere can log an operator in (as someone else) or out.
fn cross_site() -> Response {
    tracing::warn!("dashboard form posted from another site refused");
    (
        StatusCode::FORBIDDEN,
        login_page(Some("That form was posted from another site.")),
    )
        .into_response()
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let token = Token::from_secret(form.token.trim());
    if let Err(refused) = check_admin(&state, &token).await {
        tracing::warn!(reason = %refused, "dashboard login refused");
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not a valid admin token.")),
        )
            .into_response();
    }
    let secure = if state.engine.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{DASHBOARD_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={LOGIN_SECONDS}{secure}",
        token.expose()
    );
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return (
            StatusCode::BAD_REQUEST,
            login_page(Some("That token has characters a cookie cannot hold.")),
        )
            .into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, HeaderValue::from_static("/")),
            (SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

async fn logout(headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let cleared = format!("{DASHBOARD_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let cleared = HeaderValue::from_str(&cleared).unwrap_or(HeaderValue::from_static(""));
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, HeaderValue::from_static("/login")),
            (SET_COOKIE, cleared),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use crate::server::app;
    use crate::server::state::{AppState, ServerSettings};
    use crate::store::{SqliteStore, Store as _};
    use crate::tokens::{Token, TokenKind};

    async fn state_with_admin() -> (tempfile::TempDir, AppState, Token) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kiln.db"))
            .await
            .unwrap();
        let admin = Token::generate(TokenKind::Admin);
        store.add_admin_token(&admin.hash(), 1).await.unwrap();
        let state = AppState::new(
            Arc::new(store),
            ServerSettings::default(),
            Default::default(),
        );
        (dir, state, admin)
    }

    async fn get(state: &AppState, path: &str, cookie: Option<&Token>) -> (StatusCode, String) {
        let mut request = Request::get(path);
        if let Some(token) = cookie {
            request = request.header(header::COOKIE, format!("kiln_admin={}", token.expose()));
        }
        let response = app(state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn pages_need_a_login_and_the_cookie_cannot_make_changes() {
        let (_dir, state, admin) = state_with_admin().await;
        assert_eq!(get(&state, "/", None).await.0, StatusCode::SEE_OTHER);
        let forged = Token::generate(TokenKind::Admin);
        assert_eq!(
            get(&state, "/", Some(&forged)).await.0,
            StatusCode::SEE_OTHER
        );
        assert_eq!(get(&state, "/", Some(&admin)).await.0, StatusCode::OK);
        assert_eq!(
            get(&state, "/v1/tasks", Some(&admin)).await.0,
            StatusCode::OK
        );
        let post = Request::post("/v1/tasks")
            .header(header::COOKIE, format!("kiln_admin={}", admin.expose()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"repo":"/tmp/x","command":["true"]}"#))
            .unwrap();
        let response = app(state.clone()).oneshot(post).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "a cookie alone changes nothing"
        );
    }

    #[tokio::test]
    async fn the_task_list_pages_backwards_through_older_tasks() {
        let (_dir, state, admin) = state_with_admin().await;
        let mut ids = Vec::new();
        for n in 0..101 {
            let mut task = crate::testing::new_task();
            task.created_at = n;
            ids.push(task.id);
            state.engine.store.insert_task(&task).await.unwrap();
        }
        let (status, first) = get(&state, "/tasks?state=queued", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !first.contains(&ids[0].to_string()),
            "the oldest is on the next page"
        );
        let older = format!("/tasks?state=queued&amp;before={}", ids[1]);
        assert!(first.contains(&older), "link to older tasks: {first}");
        let (_, second) = get(
            &state,
            &format!("/tasks?state=queued&before={}", ids[1]),
            Some(&admin),
        )
        .await;
        assert!(second.contains(&ids[0].to_string()));
        assert!(!second.contains("id=older"), "no page after the last");
    }
}
