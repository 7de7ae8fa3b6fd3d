//! Sign in and out.

use axum::{
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};
use cairn_api::v1::{self, identity_service_client::IdentityServiceClient};
use cairn_runtime::grpc::ClientInterceptor;
use maud::html;
use tonic::service::interceptor::InterceptedService;

use crate::{
    App,
    form::Posted,
    session::{self, Session},
    ui,
    web::{Ctx, cookie_for},
};

#[derive(serde::Deserialize, Default)]
pub struct Next {
    #[serde(default)]
    next: String,
}

/// Only paths on this console (no `//host` or `https://` escapes).
fn local(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/" }
}

fn login_page(
    app: &App,
    next: &str,
    user: &str,
    error: Option<&str>,
    status: axum::http::StatusCode,
) -> Response {
    let token = session::token();
    let body = html! {
        h1 { "Sign in to Cairn" }
        @if let Some(e) = error { div.banner.error role="alert" data-testid="login-error" { (e) } }
        form.card method="post" action="/login" {
            input type="hidden" name="_csrf" value=(token);
            input type="hidden" name="next" value=(local(next));
            div.field { label for="user" { "User" } input id="user" name="user" value=(user) autocomplete="username" required autofocus data-testid="login-user"; }
            div.field { label for="password" { "Password" } input id="password" name="password" type="password" autocomplete="current-password" required data-testid="login-password"; }
            button.primary type="submit" data-testid="login-submit" { "Sign in" }
        }
    };
    let mut resp = (status, ui::bare("Sign in", body)).into_response();
    let c = session::set_cookie(session::LOGIN_COOKIE, &token, Some(3600), app.config.secure_cookies());
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn form(State(app): State<App>, Query(q): Query<Next>) -> Response {
    login_page(&app, &q.next, "", None, axum::http::StatusCode::OK)
}

/// Checks the sign-in form's own CSRF cookie, then logs in with the catalog.
pub async fn submit(State(app): State<App>, headers: HeaderMap, body: String) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (user, password, next) = (get("user").trim().to_owned(), get("password"), get("next"));
    let expected = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default();
    let origin_ok = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).is_none_or(|o| {
        app.config.public_url.as_deref().map_or_else(
            || o.split_once("://").map(|(_, h)| h) == headers.get(header::HOST).and_then(|h| h.to_str().ok()),
            |p| p.trim_end_matches('/') == o,
        )
    });
    if expected.is_empty() || !session::same(&get("_csrf"), expected) || !origin_ok {
        return login_page(
            &app,
            &next,
            &user,
            Some("The sign-in form expired; please try again."),
            axum::http::StatusCode::FORBIDDEN,
        );
    }
    let mut identity = IdentityServiceClient::new(InterceptedService::new(
        app.catalog.clone(),
        ClientInterceptor::new(None),
    ));
    match identity.login(v1::LoginRequest { user: user.clone(), password }).await {
        Ok(r) => {
            let r = r.into_inner();
            let now = chrono::Utc::now().timestamp();
            let s = Session {
                user: r.principal.as_ref().map_or(user, |p| p.name.trim_start_matches("users/").to_owned()),
                access: r.access_token,
                access_expires: r.expire_time.map_or(now, |t| t.seconds),
                refresh: r.refresh_token,
                refresh_expires: r.refresh_expire_time.map_or(now, |t| t.seconds),
                csrf: session::token(),
            };
            let mut resp = Redirect::to(local(&next)).into_response();
            for c in [
                cookie_for(&app, &s),
                session::set_cookie(session::LOGIN_COOKIE, "", None, app.config.secure_cookies()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Err(e) => {
            let (code, msg) = match e.code() {
                tonic::Code::Unauthenticated
                | tonic::Code::InvalidArgument
                | tonic::Code::PermissionDenied => {
                    (axum::http::StatusCode::UNAUTHORIZED, "Wrong user or password.".to_owned())
                }
                _ => (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!("Cairn could not be reached: {}", e.message()),
                ),
            };
            login_page(&app, &next, &user, Some(&msg), code)
        }
    }
}

/// Ends the session on the server (the refresh token is revoked) and in the browser.
pub async fn logout(ctx: Ctx, _form: Posted) -> Response {
    if let Err(e) = ctx.identity().logout(v1::LogoutRequest {}).await {
        tracing::debug!(code = ?e.code(), "logout call failed; the cookie is cleared anyway");
    }
    let mut resp = Redirect::to("/login").into_response();
    let c = session::set_cookie(session::COOKIE, "", None, ctx.app.config.secure_cookies());
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
