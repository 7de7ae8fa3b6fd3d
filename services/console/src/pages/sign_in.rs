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
        @if app.config.oidc.enabled() {
            p.or { "or" }
            a.button href=(format!("/login/oidc?next={}", url::form_urlencoded::byte_serialize(local(next).as_bytes()).collect::<String>())) data-testid="login-oidc" {
                "Sign in with " (app.config.oidc.oidc_label.as_deref().unwrap_or("your identity provider"))
            }
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
    let origin_ok = crate::form::same_origin(&headers, &app);
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

/// What the browser carries between the redirect to the provider and the callback.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    expires: i64,
}

const OIDC_COOKIE: &str = "cairn_oidc";

/// The console's own address as browsers see it.
fn base_url(app: &App, headers: &HeaderMap) -> String {
    match &app.config.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!(
            "http://{}",
            headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost")
        ),
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts provider sign-in: a redirect to its authorisation endpoint with state, nonce and a
/// PKCE challenge; the verifier stays in a sealed cookie.
pub async fn oidc_start(State(app): State<App>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let o = &app.config.oidc;
    let (Some(client), Some(authorize)) = (o.oidc_client_id.clone(), o.oidc_authorize_url.clone()) else {
        return login_page(
            &app,
            &q.next,
            "",
            Some("Sign-in with an identity provider is not configured."),
            axum::http::StatusCode::NOT_FOUND,
        );
    };
    let pending = Pending {
        state: session::token(),
        nonce: session::token(),
        verifier: format!("{}{}", session::token(), session::token()),
        next: local(&q.next).to_owned(),
        expires: chrono::Utc::now().timestamp() + 600,
    };
    use sha2::Digest as _;
    let challenge = b64(&sha2::Sha256::digest(pending.verifier.as_bytes()));
    let mut to = match url::Url::parse(&authorize) {
        Ok(u) => u,
        Err(_) => {
            return login_page(
                &app,
                &q.next,
                "",
                Some("The identity provider's address is not valid."),
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            );
        }
    };
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client)
        .append_pair("redirect_uri", &format!("{}/login/oidc/callback", base_url(&app, &headers)))
        .append_pair("scope", o.oidc_scopes.as_deref().unwrap_or("openid profile email"))
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut resp = Redirect::to(to.as_str()).into_response();
    let c =
        session::set_cookie(OIDC_COOKIE, &app.sealer.seal(&pending), Some(600), app.config.secure_cookies());
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(serde::Deserialize, Default)]
pub struct Callback {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The claims of a JWT, unverified (the catalog verifies the signature before they count).
fn claims(jwt: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The provider sends the browser back with a code: exchange it for an ID token, have the
/// catalog verify it (GetCaller), check the nonce, and start a session with it.
pub async fn oidc_callback(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let refuse = |msg: &str| login_page(&app, "/", "", Some(msg), axum::http::StatusCode::UNAUTHORIZED);
    let pending = session::cookie(&headers, OIDC_COOKIE).and_then(|c| app.sealer.open::<Pending>(c));
    let Some(pending) = pending.filter(|p| p.expires > chrono::Utc::now().timestamp()) else {
        return refuse("The sign-in took too long or did not start here; please try again.");
    };
    if !session::same(&q.state, &pending.state) {
        return refuse("The identity provider's answer does not belong to this sign-in; please try again.");
    }
    if !q.error.is_empty() {
        return refuse(&format!(
            "The identity provider refused the sign-in: {} {}",
            q.error, q.error_description
        ));
    }
    let o = &app.config.oidc;
    let secret = o.secret().ok().flatten();
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", q.code.clone()),
        ("redirect_uri", format!("{}/login/oidc/callback", base_url(&app, &headers))),
        ("client_id", o.oidc_client_id.clone().unwrap_or_default()),
        ("code_verifier", pending.verifier.clone()),
    ];
    if let Some(s) = secret {
        form.push(("client_secret", s));
    }
    let answer = reqwest::Client::new()
        .post(o.oidc_token_url.clone().unwrap_or_default())
        .form(&form)
        .timeout(std::time::Duration::from_secs(15))
        .send()
        .await;
    let body: serde_json::Value = match answer {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => {
            tracing::warn!(status = %r.status(), "the identity provider's token endpoint refused the code");
            return refuse("The identity provider did not accept the sign-in; please try again.");
        }
        Err(e) => {
            tracing::warn!(error = %e, "the identity provider's token endpoint is unreachable");
            return refuse("The identity provider could not be reached.");
        }
    };
    let Some(id_token) = body["id_token"].as_str().map(str::to_owned) else {
        return refuse("The identity provider sent no ID token.");
    };
    // The catalog verifies the token (issuer, audience, signature, expiry) and maps its groups.
    let mut identity = IdentityServiceClient::new(InterceptedService::new(
        app.catalog.clone(),
        ClientInterceptor::new(Some(&id_token)),
    ));
    let principal = match identity.get_caller(v1::GetCallerRequest {}).await {
        Ok(p) => p.into_inner(),
        Err(e) => {
            tracing::info!(code = ?e.code(), "an ID token was refused by the catalog");
            return refuse("Cairn does not accept this identity provider's sign-in.");
        }
    };
    let claims = claims(&id_token).unwrap_or_default();
    if claims["nonce"].as_str().is_none_or(|n| !session::same(n, &pending.nonce)) {
        return refuse("The identity provider's answer does not belong to this sign-in; please try again.");
    }
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap_or(now);
    let user = [principal.display_name.as_str(), principal.name.as_str()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("user")
        .to_owned();
    // No refresh token: when the ID token expires, the provider signs the user in again.
    let s = Session {
        user,
        access: id_token,
        access_expires: exp,
        refresh: String::new(),
        refresh_expires: exp,
        csrf: session::token(),
    };
    let mut resp = Redirect::to(&pending.next).into_response();
    for c in [cookie_for(&app, &s), session::set_cookie(OIDC_COOKIE, "", None, app.config.secure_cookies())] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
