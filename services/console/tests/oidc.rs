//! Console sign-in with an OpenID Connect provider: a local provider (authorisation code +
//! PKCE, ES256 ID tokens, a JWKS) that the real catalog trusts; the console signs the user in
//! with the provider, the catalog maps the token's groups to roles, and answers that do not
//! belong to the sign-in (wrong state, replayed code, bad verifier) are refused.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Query, State},
    response::{IntoResponse, Redirect},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use common::*;
use sha2::Digest as _;

const CLIENT: &str = "cairn-console";
const CLIENT_SECRET: &str = "the console's client secret";

/// What an issued code stands for.
struct Issued {
    nonce: String,
    challenge: String,
    redirect: String,
}

#[derive(Clone)]
struct Idp {
    issuer: String,
    key: Arc<rcgen::KeyPair>,
    codes: Arc<Mutex<HashMap<String, Issued>>>,
}

async fn authorize(State(idp): State<Idp>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    let code = format!("code-{}", idp.codes.lock().unwrap().len());
    idp.codes.lock().unwrap().insert(
        code.clone(),
        Issued {
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            redirect: q["redirect_uri"].clone(),
        },
    );
    // The user consents at once.
    Redirect::to(&format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]))
}

async fn token(State(idp): State<Idp>, Form(f): Form<HashMap<String, String>>) -> axum::response::Response {
    let Some(Issued { nonce, challenge, redirect }) = idp.codes.lock().unwrap().remove(&f["code"]) else {
        return (axum::http::StatusCode::BAD_REQUEST, "invalid_grant").into_response();
    };
    let verified = B64.encode(sha2::Sha256::digest(f["code_verifier"].as_bytes())) == challenge;
    if !verified || f["client_secret"] != CLIENT_SECRET || f["redirect_uri"] != redirect {
        return (axum::http::StatusCode::BAD_REQUEST, "invalid_grant").into_response();
    }
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"iss": idp.issuer, "aud": CLIENT, "sub": "olga@example.test", "name": "Olga Operator",
                                    "groups": ["ops"], "nonce": nonce, "iat": now, "exp": now + 600});
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("k1".into());
    let k = jsonwebtoken::EncodingKey::from_ec_pem(idp.key.serialize_pem().as_bytes()).unwrap();
    Json(serde_json::json!({"id_token": jsonwebtoken::encode(&h, &claims, &k).unwrap(), "token_type": "Bearer", "expires_in": 600}))
        .into_response()
}

async fn jwks(State(idp): State<Idp>) -> impl IntoResponse {
    let raw = idp.key.public_key_raw();
    Json(serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
                                      "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..65])}]}))
}

#[tokio::test]
async fn signing_in_with_an_identity_provider() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp = Idp {
        issuer: issuer.clone(),
        key: Arc::new(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()),
        codes: Default::default(),
    };
    let app = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = stack_with(
        |c| {
            c.oidc.oidc_issuer = Some(issuer.clone());
            c.oidc.oidc_audience = Some(CLIENT.into());
            c.oidc.oidc_jwks_url = Some(format!("{issuer}/jwks"));
            c.oidc.oidc_role_map = Some("ops=default:operator".into());
        },
        |u| {
            u.oidc.oidc_client_id = Some(CLIENT.into());
            u.oidc.oidc_client_secret = Some(CLIENT_SECRET.into());
            u.oidc.oidc_authorize_url = Some(format!("{issuer}/authorize"));
            u.oidc.oidc_token_url = Some(format!("{issuer}/token"));
            u.oidc.oidc_label = Some("Example SSO".into());
        },
    )
    .await;
    // A browser that follows redirects across the console and the provider, with cookies.
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = browser.get(format!("{}/login", s.console)).send().await.unwrap().text().await.unwrap();
    assert!(login.contains("Sign in with Example SSO"), "{login}");
    let landed = browser
        .get(format!("{}/login/oidc?next=/projects/default/schedules", s.console))
        .send()
        .await
        .unwrap();
    assert_eq!(landed.url().path(), "/projects/default/schedules", "back where the user was going");
    let page = landed.text().await.unwrap();
    assert!(
        page.contains("Olga Operator") && page.contains("operator"),
        "the provider's user, with the mapped role: {page}"
    );
    assert!(!page.contains("nav-administration"), "an operator is no admin");

    // An answer that does not belong to a sign-in started here is refused.
    let stranger = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = stranger
        .get(format!("{}/login/oidc/callback?code=code-0&state=guess", s.console))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A started sign-in whose state is tampered with is refused too, and signs nobody in.
    let start = stranger.get(format!("{}/login/oidc", s.console)).send().await.unwrap();
    let to = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(&issuer));
    let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert!(!q.contains_key("client_secret"), "the secret never goes through the browser");
    let r = stranger
        .get(format!("{}/login/oidc/callback?code=whatever&state={}x", s.console, q["state"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(stranger.get(format!("{}/projects/default", s.console)).send().await.unwrap().status(), 303);
    // The right state but a code the provider never issued: refused by the token endpoint.
    let r = stranger
        .get(format!("{}/login/oidc/callback?code=forged&state={}", s.console, q["state"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("did not accept the sign-in"));
}
