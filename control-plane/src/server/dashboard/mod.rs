//! The web dashboard at `/`: server-rendered pages of the fleet, the tasks and each task
//! with its live log, behind the admin token. Logging in sets an HttpOnly, SameSite=Strict
//! cookie holding the token; it authorises reads (GET) only, so no other site can act in
//! the operator's name. No build step and no framework: HTML from Rust, one small script.

mod html;
mod pages;

use axum::extract::{Form, FromRequestParts, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::auth::{check_admin, dashboard_cookie, DASHBOARD_COOKIE};
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

async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let token = Token::from_secret(form.token.trim());
    if let Err(refused) = check_admin(&state, &token).await {
        tracing::warn!(reason = %refused, "dashboard login refused");
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("That is not a valid admin token.")),
        )
            .into_response();
    }
    let secure = if state.settings.secure_cookies {
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

async fn logout() -> Response {
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
