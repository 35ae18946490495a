//! Who is calling: extractors that check the bearer token before a handler runs.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::Method;

use super::error::ApiError;
use super::state::AppState;
use crate::model::RunnerRecord;
use crate::tokens::{Token, TokenHash, TokenKind};

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Result<Token, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not text".into()))?;
    let token = value.strip_prefix("Bearer ").ok_or_else(|| {
        ApiError::Unauthorized("Authorization header is not a Bearer token".into())
    })?;
    Ok(Token::from_secret(token))
}

fn expect_kind(token: &Token, kind: TokenKind, what: &str) -> Result<(), ApiError> {
    if token.is_kind(kind) {
        return Ok(());
    }
    Err(ApiError::Unauthorized(format!(
        "this endpoint needs {what} (a {}... token)",
        kind.prefix()
    )))
}

/// The caller holds a valid admin token.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = match (parts.headers.contains_key(AUTHORIZATION), read_only(parts)) {
            (false, true) => dashboard_cookie(parts).ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer token".into())
            })?,
            _ => bearer(parts)?,
        };
        check_admin(state, &token).await?;
        Ok(Admin)
    }
}

/// Name of the dashboard's login cookie (HttpOnly, SameSite=Strict; holds the admin token).
pub const DASHBOARD_COOKIE: &str = "kiln_admin";

/// GET and HEAD change nothing, so they are the only requests a cookie may authorise:
/// no cross-site request can make a change in the operator's name.
fn read_only(parts: &Parts) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD)
}

/// The admin token in the dashboard's cookie, if any.
pub fn dashboard_cookie(parts: &Parts) -> Option<Token> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == DASHBOARD_COOKIE).then(|| Token::from_secret(value))
        })
}

/// Accepts `token` if it is a valid admin token.
pub async fn check_admin(state: &AppState, token: &Token) -> Result<(), ApiError> {
    expect_kind(token, TokenKind::Admin, "the admin token")?;
    let hash = token.hash();
    if state.known_admins.contains(&hash) {
        return Ok(());
    }
    if !state.engine.store.is_admin_token(&hash).await? {
        return Err(ApiError::Unauthorized("admin token is not valid".into()));
    }
    state.known_admins.insert(hash);
    Ok(())
}

/// Most admin token hashes remembered: there are a handful; the bound stops growth.
const KNOWN_ADMINS_LIMIT: usize = 64;

/// Hashes of admin tokens the store confirmed.
#[derive(Debug, Default)]
pub struct KnownAdmins(std::sync::Mutex<Vec<TokenHash>>);

impl KnownAdmins {
    fn contains(&self, hash: &TokenHash) -> bool {
        let known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known.iter().any(|k| k.matches(hash))
    }

    fn insert(&self, hash: TokenHash) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() < KNOWN_ADMINS_LIMIT {
            known.push(hash);
        }
    }
}

/// The caller is a registered, unrevoked runner.
#[derive(Debug)]
pub struct Runner(pub RunnerRecord);

impl FromRequestParts<AppState> for Runner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if !token.is_kind(TokenKind::Sandbox) {
            expect_kind(&token, TokenKind::Runner, "a runner token")?;
        }
        let runner = state
            .engine
            .store
            .runner_by_token(&token.hash())
            .await?
            .ok_or_else(|| ApiError::Unauthorized("runner token is not valid".into()))?;
        if runner.sandbox_id.is_some() != token.is_kind(TokenKind::Sandbox) {
            return Err(ApiError::Unauthorized("runner token is not valid".into()));
        }
        if runner.revoked_at.is_some() {
            return Err(ApiError::Unauthorized(format!(
                "runner {} has been revoked",
                runner.id
            )));
        }
        Ok(Runner(runner))
    }
}

/// The caller presents a registration token (checked when it is spent).
#[derive(Debug)]
pub struct Registration(pub Token);

impl FromRequestParts<AppState> for Registration {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        expect_kind(&token, TokenKind::Registration, "a registration token")?;
        Ok(Registration(token))
    }
}
