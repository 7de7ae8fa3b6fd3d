//! `cairn connector ...`.

use cairn_api::{
    names::Kind,
    v1::{
        CommandSource, ConnectionTest, Connector, ConnectorRole, CreateConnectorRequest,
        DeleteConnectorRequest, GetConnectorRequest, ListConnectorsRequest, LocalPathDestination,
        LocalPathSource, LocalStore, RestStore, S3Store, SftpStore, TestConnectorRequest,
        UpdateConnectorRequest, connector::Config,
    },
};

use super::{pairs, pb_duration, read_secret};
use crate::{
    cli::{ConnectorCmd, ConnectorCommon, CreateConnector, Role, StoreCommon},
    client::{Clients, all_pages},
    error::{CliError, Result},
    output::{self, Printer},
};

pub async fn run(c: &Clients, p: &Printer, cmd: ConnectorCmd) -> Result {
    match cmd {
        ConnectorCmd::Create(create) => {
            let connector = build(create)?;
            let made = c
                .catalog()
                .create_connector(CreateConnectorRequest {
                    parent: c.parent(),
                    connector: Some(connector),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &made, "created");
        }
        ConnectorCmd::List(args) => {
            let all = all_pages(|page_token| async {
                let page = c
                    .catalog()
                    .list_connectors(ListConnectorsRequest {
                        parent: c.parent(),
                        page_size: 1000,
                        page_token,
                        role: match args.role {
                            None => 0,
                            Some(Role::Source) => ConnectorRole::Source as i32,
                            Some(Role::Store) => ConnectorRole::Store as i32,
                            Some(Role::Destination) => ConnectorRole::Destination as i32,
                        },
                        r#type: args.type_name.clone().unwrap_or_default(),
                        selector_label: args.label.clone().unwrap_or_default(),
                    })
                    .await
                    .map_err(c.catalog_err())?
                    .into_inner();
                Ok((page.connectors, page.next_page_token))
            })
            .await?;
            if p.json() {
                p.message(&cairn_api::v1::ListConnectorsResponse {
                    connectors: all,
                    next_page_token: String::new(),
                });
            } else {
                let mut t = output::table(&["NAME", "ROLE", "TYPE", "WHERE", "SELECTOR", "LAST TEST"]);
                for x in &all {
                    t.add_row(vec![
                        x.display_name.clone(),
                        output::enum_name(x.role().as_str_name(), "CONNECTOR_ROLE_"),
                        x.r#type.clone(),
                        location(x),
                        output::labels(&x.worker_selector),
                        last_test(p, &x.last_test),
                    ]);
                }
                output::print_table(t, "No connectors yet. Create one with `cairn connector create --help`.");
            }
        }
        ConnectorCmd::Get(n) => {
            let x = c
                .catalog()
                .get_connector(GetConnectorRequest { name: c.name(Kind::Connector, &n.name) })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &x, "");
        }
        ConnectorCmd::Update(u) => {
            let current = c
                .catalog()
                .get_connector(GetConnectorRequest { name: c.name(Kind::Connector, &u.name) })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            let mut patch = Connector {
                name: current.name.clone(),
                etag: u.etag.clone().unwrap_or_default(),
                ..Default::default()
            };
            let mut paths = Vec::new();
            if let Some(n) = u.rename {
                patch.display_name = n;
                paths.push("display_name".to_owned());
            }
            if let Some(d) = u.description {
                patch.description = d;
                paths.push("description".to_owned());
            }
            if u.clear_selector || !u.selectors.is_empty() {
                patch.worker_selector = pairs(&u.selectors, "--selector")?;
                paths.push("worker_selector".to_owned());
            }
            if u.clear_labels || !u.labels.is_empty() {
                patch.labels = pairs(&u.labels, "--label")?;
                paths.push("labels".to_owned());
            }
            if let Some(n) = u.max_concurrent_jobs {
                patch.max_concurrent_jobs = n;
                paths.push("max_concurrent_jobs".to_owned());
            }
            if let Some(d) = u.rpo {
                patch.rpo = (!d.is_zero()).then(|| pb_duration(d));
                paths.push("rpo".to_owned());
            }
            if let Some(b) = u.create_if_missing {
                patch.create_if_missing = b;
                paths.push("create_if_missing".to_owned());
            }
            if let Some(f) = &u.password_file {
                patch.repository_password = read_secret(f, "the repository password")?;
                paths.push("repository_password".to_owned());
            }
            if !u.paths.is_empty() {
                let one = || u.paths.first().cloned().unwrap_or_default();
                let (config, path) = match &current.config {
                    Some(Config::LocalPathSource(_)) => (
                        Config::LocalPathSource(LocalPathSource {
                            paths: u.paths.clone(),
                            ..Default::default()
                        }),
                        "local_path_source.paths",
                    ),
                    Some(Config::LocalStore(_)) => {
                        (Config::LocalStore(LocalStore { path: one() }), "local_store.path")
                    }
                    Some(Config::LocalPathDestination(_)) => (
                        Config::LocalPathDestination(LocalPathDestination { path: one() }),
                        "local_path_destination.path",
                    ),
                    Some(Config::SftpStore(_)) => (
                        Config::SftpStore(SftpStore { path: one(), ..Default::default() }),
                        "sftp_store.path",
                    ),
                    _ => {
                        return Err(CliError::Usage(format!(
                            "--path: a {} connector has no path",
                            current.r#type
                        )));
                    }
                };
                patch.config = Some(config);
                paths.push(path.to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::Usage("nothing to change: give at least one flag (see --help)".into()));
            }
            let updated = c
                .catalog()
                .update_connector(UpdateConnectorRequest {
                    connector: Some(patch),
                    update_mask: Some(prost_types::FieldMask { paths }),
                    request_id: c.request_id(),
                    ..Default::default()
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            show(p, &updated, "updated");
        }
        ConnectorCmd::Delete(n) => {
            c.confirm(&format!("delete {}", c.name(Kind::Connector, &n.name)))?;
            c.catalog()
                .delete_connector(DeleteConnectorRequest {
                    name: c.name(Kind::Connector, &n.name),
                    etag: String::new(),
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.catalog_err())?;
            p.deleted(&format!("Deleted connector {}.", n.name));
        }
        ConnectorCmd::Test(t) => {
            let v = c
                .catalog()
                .test_connector(TestConnectorRequest {
                    name: c.name(Kind::Connector, &t.name),
                    timeout: Some(pb_duration(t.timeout)),
                    request_id: c.request_id(),
                })
                .await
                .map_err(c.catalog_err())?
                .into_inner();
            if p.json() {
                p.message(&v);
            } else {
                let yn = |b: bool| if b { "yes" } else { "no" };
                output::fields(&[
                    ("verdict", if v.ok { "OK".into() } else { "FAILED".into() }),
                    ("reachable", yn(v.reachable).into()),
                    ("initialized", yn(v.initialized).into()),
                    ("readable", yn(v.readable).into()),
                    ("writable", yn(v.writable).into()),
                    ("message", v.message.clone()),
                    ("worker", v.worker.clone()),
                    ("job", v.job.clone()),
                ]);
            }
            return Ok(if v.ok { 0 } else { 1 });
        }
    }
    Ok(0)
}

fn store_fields(c: &mut Connector, s: StoreCommon) -> Result<()> {
    c.repository_password = match (s.password, s.password_file) {
        (Some(pw), _) => pw,
        (None, Some(f)) => read_secret(&f, "the repository password")?,
        (None, None) => {
            return Err(CliError::Usage(
                "a store needs a repository password: --password-file FILE (or --password, or CAIRN_REPOSITORY_PASSWORD)".into(),
            ));
        }
    };
    c.create_if_missing = s.create_if_missing;
    c.max_concurrent_jobs = s.max_concurrent_jobs.unwrap_or(0);
    Ok(())
}

fn base(name: String, common: ConnectorCommon) -> Result<Connector> {
    Ok(Connector {
        display_name: name,
        description: common.description,
        worker_selector: pairs(&common.selectors, "--selector")?,
        labels: pairs(&common.labels, "--label")?,
        rpo: common.rpo.map(pb_duration),
        ..Default::default()
    })
}

fn build(create: CreateConnector) -> Result<Connector> {
    Ok(match create {
        CreateConnector::LocalPath {
            name,
            paths,
            include,
            exclude,
            exclude_if_present,
            one_file_system,
            common,
        } => {
            let mut c = base(name, common)?;
            c.config = Some(Config::LocalPathSource(LocalPathSource {
                paths,
                include,
                exclude,
                exclude_if_present,
                one_file_system,
            }));
            c
        }
        CreateConnector::Command { name, file_name, common, command } => {
            let mut c = base(name, common)?;
            c.config = Some(Config::CommandSource(CommandSource { command, file_name }));
            c
        }
        CreateConnector::LocalStore { name, path, store, common } => {
            let mut c = base(name, common)?;
            c.config = Some(Config::LocalStore(LocalStore { path }));
            store_fields(&mut c, store)?;
            c
        }
        CreateConnector::S3Store {
            name,
            endpoint,
            bucket,
            prefix,
            region,
            access_key_id,
            secret_access_key,
            secret_access_key_file,
            store,
            common,
        } => {
            let mut c = base(name, common)?;
            let secret = match (secret_access_key, secret_access_key_file) {
                (Some(s), _) => s,
                (None, Some(f)) => read_secret(&f, "the secret access key")?,
                (None, None) => {
                    return Err(CliError::Usage(
                        "an S3 store needs --secret-access-key-file FILE (or CAIRN_S3_SECRET_ACCESS_KEY)"
                            .into(),
                    ));
                }
            };
            c.config = Some(Config::S3Store(S3Store {
                endpoint,
                bucket,
                prefix,
                region,
                access_key_id,
                secret_access_key: secret,
                secret_access_key_set: false,
            }));
            store_fields(&mut c, store)?;
            c
        }
        CreateConnector::SftpStore { name, host, port, user, path, store, common } => {
            let mut c = base(name, common)?;
            c.config = Some(Config::SftpStore(SftpStore { host, port, user, path }));
            store_fields(&mut c, store)?;
            c
        }
        CreateConnector::RestStore { name, url, username, rest_password_file, store, common } => {
            let mut c = base(name, common)?;
            let password = match rest_password_file {
                Some(f) => read_secret(&f, "the REST password")?,
                None => String::new(),
            };
            c.config = Some(Config::RestStore(RestStore { url, username, password, password_set: false }));
            store_fields(&mut c, store)?;
            c
        }
        CreateConnector::Destination { name, path, common } => {
            let mut c = base(name, common)?;
            c.config = Some(Config::LocalPathDestination(LocalPathDestination { path }));
            c
        }
    })
}

/// Where a connector points, in one short string.
pub fn location(c: &Connector) -> String {
    match &c.config {
        Some(Config::LocalPathSource(s)) => s.paths.join(","),
        Some(Config::CommandSource(s)) => format!("`{}` > {}", s.command.join(" "), s.file_name),
        Some(Config::LocalStore(s)) => s.path.clone(),
        Some(Config::S3Store(s)) => {
            format!("s3://{}/{}", s.bucket, s.prefix).trim_end_matches('/').to_owned()
        }
        Some(Config::SftpStore(s)) => format!("sftp://{}@{}{}", s.user, s.host, s.path),
        Some(Config::RestStore(s)) => s.url.clone(),
        Some(Config::LocalPathDestination(d)) => d.path.clone(),
        None => "-".into(),
    }
}

fn last_test(p: &Printer, t: &Option<ConnectionTest>) -> String {
    match t {
        None => "never".into(),
        Some(t) => format!("{} {}", if t.ok { "ok" } else { "FAILED" }, p.time(&t.time)),
    }
}

fn show(p: &Printer, x: &Connector, verb: &str) {
    if p.json() {
        p.message(x);
        return;
    }
    if !verb.is_empty() {
        println!("Connector {} {verb}.", x.display_name);
    }
    let mut rows = vec![
        ("name", x.name.clone()),
        ("display name", x.display_name.clone()),
        ("role", output::enum_name(x.role().as_str_name(), "CONNECTOR_ROLE_")),
        ("type", x.r#type.clone()),
        ("where", location(x)),
        ("selector", output::labels(&x.worker_selector)),
    ];
    if x.rpo.is_some() {
        rows.push(("rpo", output::duration(&x.rpo)));
    }
    if x.role() == ConnectorRole::Store {
        rows.push(("max concurrent jobs", x.max_concurrent_jobs.to_string()));
        rows.push(("create if missing", x.create_if_missing.to_string()));
        rows.push(("password", if x.repository_password_set { "set".into() } else { "unset".into() }));
    }
    if let Some(Config::S3Store(s)) = &x.config {
        rows.push(("secret access key", if s.secret_access_key_set { "set".into() } else { "unset".into() }));
    }
    rows.push(("last test", last_test(p, &x.last_test)));
    if let Some(t) = &x.last_test
        && !t.message.is_empty()
    {
        rows.push(("last test message", t.message.clone()));
    }
    if !x.description.is_empty() {
        rows.push(("description", x.description.clone()));
    }
    rows.push(("etag", x.etag.clone()));
    output::fields(&rows);
}
