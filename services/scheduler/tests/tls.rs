//! TLS through the real servers: the catalog and the scheduler serving TLS with certificates
//! from a test CA, the scheduler reaching the catalog over verified TLS with a client
//! certificate, refusals (plaintext, wrong CA, missing client certificate), certificate
//! reload, the exposure check, and Postgres `sslmode=verify-full` against a throwaway cluster
//! started with `ssl=on`.

use std::{path::Path, time::Duration};

use cairn_api::v1::{
    self, catalog_service_client::CatalogServiceClient, job_service_client::JobServiceClient,
};
use cairn_runtime::{
    CancellationToken,
    grpc::ClientInterceptor,
    tls::{ClientTls, ServerTls},
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const CLUSTER: &str = "a-cluster-token-for-tls-tests";
const ADMIN: &str = "bootstrap-token-of-the-tls-tests-0001";

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap() }
    }

    /// Writes `{stem}.pem` / `{stem}.key` for `names`, for servers or clients.
    fn leaf(&self, dir: &Path, stem: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) {
        let mut p =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

fn server_tls(dir: &Path, client_auth_required: bool) -> ServerTls {
    ServerTls {
        tls_cert_file: Some(dir.join("server.pem")),
        tls_key_file: Some(dir.join("server.key")),
        tls_client_ca_file: Some(dir.join("ca.pem")),
        tls_client_auth_required: client_auth_required,
    }
}

fn client(dir: &Path, ca: &str, with_cert: bool) -> ClientTls {
    ClientTls {
        tls_ca_file: Some(dir.join(ca)),
        tls_client_cert_file: with_cert.then(|| dir.join("client.pem")),
        tls_client_key_file: with_cert.then(|| dir.join("client.key")),
    }
}

async fn catalog(db: &str, dir: &Path, required: bool, stop: &CancellationToken) -> u16 {
    let l = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let config = cairn_catalog::Config {
        database_url: Some(db.to_owned()),
        secret_key: Some(KEY.into()),
        scheduler_url: "http://127.0.0.1:9".into(),
        cluster_token: Some(CLUSTER.into()),
        bootstrap_token: Some(ADMIN.into()),
        tls: server_tls(dir, required),
        ..Default::default()
    };
    tokio::spawn(cairn_catalog::run(config, l, stop.clone()));
    port
}

/// A ListProjects call as the admin; the error's code when it fails.
async fn list_projects(url: &str, tls: &ClientTls) -> Result<usize, tonic::Code> {
    let channel = cairn_runtime::grpc::channel_with(url, tls).map_err(|_| tonic::Code::InvalidArgument)?;
    let mut c = CatalogServiceClient::with_interceptor(channel, ClientInterceptor::new(Some(ADMIN)));
    let mut req = tonic::Request::new(v1::ListProjectsRequest::default());
    req.set_timeout(Duration::from_secs(5));
    c.list_projects(req).await.map(|r| r.into_inner().projects.len()).map_err(|s| s.code())
}

async fn eventually_ok(url: &str, tls: &ClientTls) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match list_projects(url, tls).await {
            Ok(_) => return,
            Err(code) if std::time::Instant::now() > deadline => panic!("{url}: {code:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test]
async fn servers_and_peers_speak_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, other) = (Ca::new("Cairn test CA"), Ca::new("Someone else's CA"));
    ca.write(&d.join("ca.pem"));
    other.write(&d.join("other-ca.pem"));
    ca.leaf(d, "server", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    ca.leaf(d, "client", &["scheduler.cairn.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    let db = cairn_testkit::database().await;
    let stop = CancellationToken::new();
    let port = catalog(db.url(), d, false, &stop).await;
    let https = format!("https://localhost:{port}");
    eventually_ok(&https, &client(d, "ca.pem", false)).await;

    // Plaintext to a TLS server fails; so does a server certificate from a CA we do not trust.
    assert!(list_projects(&format!("http://127.0.0.1:{port}"), &ClientTls::default()).await.is_err());
    assert!(list_projects(&https, &client(d, "other-ca.pem", false)).await.is_err());
    assert_eq!(list_projects(&https, &client(d, "ca.pem", true)).await, Ok(1));

    // The scheduler serves TLS too and reaches the catalog over verified TLS with its client
    // certificate: a user's token it receives is authenticated by the catalog over that link.
    let sl = cairn_runtime::grpc::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let sport = sl.local_addr().unwrap().port();
    let s = cairn_scheduler::Config {
        database_url: Some(db.url().to_owned()),
        catalog_url: https.clone(),
        cluster_token: Some(CLUSTER.into()),
        tls: server_tls(d, false),
        peer_tls: client(d, "ca.pem", true),
        ..Default::default()
    };
    tokio::spawn(cairn_scheduler::run(s, sl, stop.clone()));
    let channel =
        cairn_runtime::grpc::channel_with(&format!("https://localhost:{sport}"), &client(d, "ca.pem", false))
            .unwrap();
    let mut jobs = JobServiceClient::with_interceptor(channel, ClientInterceptor::new(Some(ADMIN)));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = jobs
            .list_jobs(v1::ListJobsRequest { parent: "projects/default".into(), ..Default::default() })
            .await;
        match r {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() > deadline => panic!("{e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }

    // A server that requires client certificates refuses a client without one.
    let strict = catalog(db.url(), d, true, &stop).await;
    let strict_url = format!("https://localhost:{strict}");
    eventually_ok(&strict_url, &client(d, "ca.pem", true)).await;
    assert!(list_projects(&strict_url, &client(d, "ca.pem", false)).await.is_err());

    // New certificate files are picked up without a restart.
    other.leaf(d, "next", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::rename(d.join("next.key"), d.join("server.key")).unwrap();
    std::fs::rename(d.join("next.pem"), d.join("server.pem")).unwrap();
    eventually_ok(&https, &client(d, "other-ca.pem", false)).await;
    assert!(list_projects(&https, &client(d, "ca.pem", false)).await.is_err());
    stop.cancel();
}

#[test]
fn a_server_beyond_loopback_needs_tls_or_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Cairn test CA");
    ca.write(&d.join("ca.pem"));
    ca.leaf(d, "server", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let open = cairn_scheduler::Config {
        database_url: Some("postgres://x/y".into()),
        listen: ([0, 0, 0, 0], 50052).into(),
        auth_disabled: true,
        ..Default::default()
    };
    let err = open.validate().unwrap_err().to_string();
    assert!(err.contains("listen") && err.contains("--insecure"), "{err}");
    assert!(cairn_scheduler::Config { insecure: true, ..open.clone() }.validate().is_ok());
    assert!(cairn_scheduler::Config { tls: server_tls(d, false), ..open.clone() }.validate().is_ok());
    let bad = ServerTls { tls_key_file: Some(d.join("missing.key")), ..server_tls(d, false) };
    let err = cairn_scheduler::Config { tls: bad, ..open }.validate().unwrap_err().to_string();
    assert!(err.contains("tls_key_file"), "{err}");
}

#[tokio::test]
async fn postgres_verify_full_checks_the_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Cairn test CA");
    ca.write(&d.join("ca.pem"));
    ca.leaf(d, "pg", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (cert, key) = (d.join("pg.pem"), d.join("pg.key"));
    let is_root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    if is_root {
        let ok = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(&cert)
            .arg(&key)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let cluster = match cairn_localpg::Cluster::start_with(&[
        ("ssl", "on"),
        ("ssl_cert_file", cert.to_str().unwrap()),
        ("ssl_key_file", key.to_str().unwrap()),
    ]) {
        Ok(c) => c,
        Err(cairn_localpg::Error::NoBinaries) => {
            eprintln!("skipped: no PostgreSQL server binaries");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let port = cluster.port();
    let ca_file = d.join("ca.pem");
    let url = |host: &str| {
        format!(
            "postgres://postgres@{host}:{port}/postgres?sslmode=verify-full&sslrootcert={}",
            ca_file.display()
        )
    };
    let ssl: bool = {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&url("localhost")).await.unwrap();
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    assert!(ssl, "the connection is encrypted");
    let err = <sqlx::PgConnection as sqlx::Connection>::connect(&url("127.0.0.1")).await.unwrap_err();
    assert!(
        format!("{err}").to_lowercase().contains("certificate")
            || format!("{err:?}").contains("NotValidForName"),
        "{err:?}"
    );
    // Cairn's own pools take the same URL: the catalog migrates and serves over it.
    let pool = cairn_runtime::db::pool(&url("localhost"), "catalog", &Default::default()).unwrap();
    assert_eq!(sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool).await.unwrap(), 1);
}

#[tokio::test]
async fn the_dev_ca_script_makes_certificates_the_servers_accept() {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/tls/dev-ca.sh");
    assert!(std::process::Command::new("bash").arg(script).arg(d).status().unwrap().success());
    let db = cairn_testkit::database().await;
    let stop = CancellationToken::new();
    let port = catalog(db.url(), d, true, &stop).await;
    let https = format!("https://localhost:{port}");
    eventually_ok(&https, &client(d, "ca.pem", true)).await;
    assert_eq!(list_projects(&format!("https://127.0.0.1:{port}"), &client(d, "ca.pem", true)).await, Ok(1));
    assert!(list_projects(&https, &client(d, "ca.pem", false)).await.is_err(), "mTLS is required");
    stop.cancel();
}
