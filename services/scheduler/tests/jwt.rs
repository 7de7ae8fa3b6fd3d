//! Bearer JWTs from an external identity provider, through the real catalog and scheduler:
//! a local JWKS HTTP server, role mapping from the groups claim, every kind of bad token
//! refused as UNAUTHENTICATED, and key rotation.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use cairn_api::v1::{
    self, catalog_service_client::CatalogServiceClient, job_service_client::JobServiceClient,
};
use cairn_runtime::grpc::ClientInterceptor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::KeyPair;
use tonic::Code;

mod common;
use common::front::{ADMIN, front_with};

const ISSUER: &str = "https://idp.example.test";

struct Key {
    kid: String,
    pair: KeyPair,
}

impl Key {
    fn new(kid: &str) -> Key {
        Key { kid: kid.into(), pair: KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap() }
    }

    fn jwk(&self) -> serde_json::Value {
        let raw = self.pair.public_key_raw(); // 0x04 || x || y
        serde_json::json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                           "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..65])})
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        let k = EncodingKey::from_ec_pem(self.pair.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&h, claims, &k).unwrap()
    }
}

fn jwks(keys: &[&Key]) -> String {
    serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(groups: &[&str]) -> serde_json::Value {
    serde_json::json!({"iss": ISSUER, "aud": "cairn", "sub": "alice@example.test", "name": "Alice",
                       "groups": groups, "iat": now(), "exp": now() + 600})
}

async fn list_tasks(url: &str, token: &str, project: &str) -> Result<(), tonic::Status> {
    let channel = cairn_runtime::grpc::channel(url).unwrap();
    let mut c = CatalogServiceClient::with_interceptor(channel, ClientInterceptor::new(Some(token)));
    c.list_tasks(v1::ListTasksRequest { parent: format!("projects/{project}"), ..Default::default() })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn identity_provider_tokens_map_to_project_roles() {
    let k1 = Key::new("k1");
    let k2 = Key::new("k2");
    let idp = cairn_testkit::http::Receiver::start().await;
    idp.serve_body(&jwks(&[&k1]));
    let f = front_with(|c| {
        c.oidc = cairn_catalog::oidc::OidcConfig {
            oidc_issuer: Some(ISSUER.into()),
            oidc_audience: Some("cairn".into()),
            oidc_jwks_url: Some(format!("{}/jwks.json", idp.url)),
            oidc_role_map: Some("ops=team-a:operator, platform=*:platform-admin".into()),
            ..Default::default()
        };
    })
    .await;
    let (catalog, scheduler) = (f.catalog.clone(), f.scheduler.clone());
    for p in ["team-a", "team-b"] {
        let mut admin = CatalogServiceClient::with_interceptor(
            cairn_runtime::grpc::channel(&catalog).unwrap(),
            ClientInterceptor::new(Some(ADMIN)),
        );
        admin
            .create_project(v1::CreateProjectRequest {
                project_id: p.into(),
                project: Some(v1::Project { display_name: p.into(), ..Default::default() }),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // A member of `ops` is an operator of team-a, and of nothing else.
    let ops = k1.sign(&claims(&["ops", "unmapped"]));
    list_tasks(&catalog, &ops, "team-a").await.unwrap();
    assert_eq!(list_tasks(&catalog, &ops, "team-b").await.unwrap_err().code(), Code::PermissionDenied);
    let mut who = v1::identity_service_client::IdentityServiceClient::with_interceptor(
        cairn_runtime::grpc::channel(&catalog).unwrap(),
        ClientInterceptor::new(Some(&ops)),
    );
    let me = who.get_caller(v1::GetCallerRequest {}).await.unwrap().into_inner();
    assert_eq!(
        (me.name.as_str(), me.auth_method.as_str(), me.platform_admin),
        ("users/alice@example.test", "jwt", false)
    );
    assert_eq!(me.roles.get("team-a"), Some(&(v1::Role::Operator as i32)));
    // The scheduler accepts the same token (it asks the catalog).
    let mut jobs = JobServiceClient::with_interceptor(
        cairn_runtime::grpc::channel(&scheduler).unwrap(),
        ClientInterceptor::new(Some(&ops)),
    );
    jobs.list_jobs(v1::ListJobsRequest { parent: "projects/team-a".into(), ..Default::default() })
        .await
        .unwrap();
    let e =
        jobs.list_jobs(v1::ListJobsRequest { parent: "projects/team-b".into(), ..Default::default() }).await;
    assert_eq!(e.unwrap_err().code(), Code::PermissionDenied);
    // The platform group maps to platform admins.
    let platform = k1.sign(&claims(&["platform"]));
    list_tasks(&catalog, &platform, "team-b").await.unwrap();

    // Every bad token is UNAUTHENTICATED.
    let payload = |c: &serde_json::Value| B64.encode(c.to_string());
    let good = claims(&["ops"]);
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#), payload(&good));
    let hmac_with_public_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let public_pem = k1.pair.public_key_pem();
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap()
    };
    let tampered = {
        let t = k1.sign(&good);
        let parts: Vec<&str> = t.split('.').collect();
        format!("{}.{}.{}", parts[0], payload(&with("groups", serde_json::json!(["platform"]))), parts[2])
    };
    let unknown_kid = Key::new("k-unknown").sign(&good);
    let cases = [
        ("malformed", "eyJhbGciOiJFUzI1NiJ9.not-json.sig".to_owned()),
        ("expired", k1.sign(&with("exp", (now() - 120).into()))),
        ("nbf in the future", k1.sign(&with("nbf", (now() + 600).into()))),
        ("wrong issuer", k1.sign(&with("iss", "https://evil.example".into()))),
        ("wrong audience", k1.sign(&with("aud", "someone-else".into()))),
        ("alg none", none),
        ("HS256 signed with the public key", hmac_with_public_key),
        ("unknown kid", unknown_kid),
        ("tampered", tampered),
    ];
    for (what, token) in &cases {
        let e = list_tasks(&catalog, token, "team-a").await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
        assert!(!e.message().contains(token.as_str()), "{what}: the message repeats the token");
    }
    // Within the leeway, a just-expired token still works.
    list_tasks(&catalog, &k1.sign(&with("exp", (now() - 5).into())), "team-a").await.unwrap();

    // Key rotation: the provider now signs with k2 only; a k2 token works once the catalog
    // has re-fetched the key set (an unknown kid triggers it, at most every few seconds).
    idp.serve_body(&jwks(&[&k2]));
    let rotated = k2.sign(&good);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = list_tasks(&catalog, &rotated, "team-a").await {
        assert!(std::time::Instant::now() < deadline, "rotated key never accepted: {e:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A known kid's old key is gone too once the set no longer lists it.
    assert_eq!(
        list_tasks(&catalog, &k1.sign(&good), "team-a").await.unwrap_err().code(),
        Code::Unauthenticated
    );
}
