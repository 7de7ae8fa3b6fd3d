//! The command line: every public RPC as a command, with examples in each `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ROOT_EXAMPLES: &str = "\
Examples:
  # a source, a store and a nightly backup
  cairn connector create local-path web-data --path /srv/www
  cairn connector create local-store nas --path /mnt/backups/nas --password-file ./nas.pass --create-if-missing
  cairn task create backup web-nightly --source web-data --store nas --label web --keep-daily 7
  cairn schedule add web-weeknights --task web-nightly --calendar 'Mon..Fri 18:00' --tz Europe/Berlin
  cairn schedule preview --calendar 'Mon..Fri 18:00' --tz Europe/Berlin --count 5
  cairn run web-nightly --wait --follow
  cairn snapshot list --store nas
  cairn task create restore web-restore --store nas --destination restore-area --label web
  cairn run web-restore --wait

Endpoints come from CAIRN_CATALOG_URL and CAIRN_SCHEDULER_URL (or the flags); commands work in
the project of --project / CAIRN_PROJECT (default `default`).
Every name argument accepts a display name or an id within that project, or a full name
(projects/team-a/tasks/nightly).
Exit codes: 0 ok; 1 the job failed, or the server refused for another reason; 2 bad input
(usage or an invalid field); 3 not found; 4 not authenticated or permission denied; 5 a server
could not be reached.";

/// Cairn: backup control plane client.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, after_help = ROOT_EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// Catalog gRPC endpoint (connectors, tasks) [default: the context's, else
    /// http://127.0.0.1:50051].
    #[arg(long, env = "CAIRN_CATALOG_URL", global = true)]
    pub catalog_url: Option<String>,
    /// Scheduler gRPC endpoint (schedules, jobs, snapshots) [default: the context's, else
    /// http://127.0.0.1:50052].
    #[arg(long, env = "CAIRN_SCHEDULER_URL", global = true)]
    pub scheduler_url: Option<String>,
    /// The project to work in (its id) [default: the context's, else `default`].
    #[arg(long, env = "CAIRN_PROJECT", global = true)]
    pub project: Option<String>,
    /// The context of ~/.config/cairn/config.toml to use (cairn context list).
    #[arg(long, env = "CAIRN_CONTEXT", global = true)]
    pub context: Option<String>,
    /// Bearer credential: an API token or a login's access token. Never sent in plaintext
    /// beyond loopback.
    #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA bundle (PEM) that https:// servers must chain to; default: the system's roots.
    #[arg(long, env = "CAIRN_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for servers that require one (mTLS).
    #[arg(long, env = "CAIRN_CLIENT_CERT", global = true, requires = "client_key")]
    pub client_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "CAIRN_CLIENT_KEY", global = true, requires = "client_cert")]
    pub client_key: Option<std::path::PathBuf>,
    /// Output format: tables for people, or the API's proto3 JSON.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Never use colours.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Idempotency key of the command's change (a UUID): repeating a create, run, update,
    /// delete, cancel, pause or resume with the same one returns the first result instead of
    /// doing it twice [default: a fresh one].
    #[arg(long, env = "CAIRN_REQUEST_ID", global = true)]
    pub request_id: Option<String>,
    /// Do not ask before deleting or cancelling (needed without a terminal).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human tables.
    Table,
    /// proto3 JSON (one document per line for streams).
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Projects: the tenancy unit every resource belongs to.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Sources, stores and destinations.
    #[command(subcommand)]
    Connector(ConnectorCmd),
    /// Backup, restore, sync, check and prune tasks.
    #[command(subcommand)]
    Task(Box<TaskCmd>),
    /// When tasks run.
    #[command(subcommand)]
    Schedule(ScheduleCmd),
    /// Runs of tasks: history, logs, cancel, watch.
    #[command(subcommand)]
    Job(JobCmd),
    /// Snapshots in stores (from Cairn's index).
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Retention policies.
    #[command(subcommand)]
    Retention(RetentionCmd),
    /// Run a task now (same as `cairn task run`).
    #[command(
        after_help = "Examples:\n  cairn run web-nightly\n  cairn run web-nightly --wait --follow\n  cairn run web-nightly --full --wait"
    )]
    Run(RunArgs),
    /// Run a RESTORE task once, with another snapshot, paths or destination if given (the
    /// task is not edited); waits for it.
    #[command(
        after_help = "Examples:\n  cairn restore web-restore\n  cairn restore web-restore --snapshot 1a2b3c4d --path /srv/www/index.html --path /srv/www/img\n  cairn restore web-restore --destination scratch --follow"
    )]
    Restore(RunArgs),
    /// Upcoming runs of the next days as a heatmap, with overlapping runs.
    #[command(after_help = "Examples:\n  cairn forecast\n  cairn forecast --horizon 14d --tz Europe/Berlin")]
    Forecast(ForecastArgs),
    /// Which sources were backed up within their recovery point objective, worst first.
    #[command(
        after_help = "Examples:\n  cairn status\n  cairn status --state violated --state never-backed-up\n  cairn status --source db1-etc --fail-on-violation"
    )]
    Status(StatusArgs),
    /// Exit 0 when a Cairn server reports SERVING (for container health checks).
    #[command(after_help = "Examples:\n  cairn health http://127.0.0.1:50051")]
    Health(HealthArgs),
    /// Log in as a local user: the tokens are kept in the context (refreshed when they expire).
    #[command(
        after_help = "Examples:\n  cairn login admin\n  echo \"$PW\" | cairn login alice --password-stdin\n  \
                            cairn --context prod --catalog-url https://cairn.example:50051 --scheduler-url https://cairn.example:50052 login alice"
    )]
    Login(LoginArgs),
    /// End the context's login (its tokens stop working at once).
    Logout,
    /// Named sets of server URLs, CA, project and credential.
    #[command(subcommand)]
    Context(ContextCmd),
    /// Local users (platform admins).
    #[command(subcommand)]
    User(UserCmd),
    /// Users' roles in the project.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Service accounts of the project (for automation; they use API tokens).
    #[command(subcommand, name = "service-account")]
    ServiceAccount(ServiceAccountCmd),
    /// API tokens of service accounts.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Worker pools and their enrolment tokens (platform admins).
    #[command(subcommand, name = "worker-pool")]
    WorkerPool(WorkerPoolCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Print shell completions.
    #[command(after_help = "Examples:\n  cairn completions bash > /etc/bash_completion.d/cairn")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Project commands.
#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Create a project.
    #[command(
        after_help = "Examples:\n  cairn project create team-a --display-name 'Team A' --label cost-center=42"
    )]
    Create {
        /// Project id (lowercase letters, digits and `-`; never changes).
        id: String,
        /// Human name (unique; default: the id).
        #[arg(long)]
        display_name: Option<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Labels, `key=value` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List projects.
    #[command(after_help = "Examples:\n  cairn project list")]
    List,
    /// Show a project.
    #[command(after_help = "Examples:\n  cairn project get team-a")]
    Get(NameArg),
    /// Change a project's display name, description or labels.
    #[command(after_help = "Examples:\n  cairn project update team-a --display-name 'Team A (web)'")]
    Update {
        /// Project id.
        name: String,
        /// New human name.
        #[arg(long)]
        display_name: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Replace the labels, `key=value` (repeatable; `--label ''` clears them).
        #[arg(long = "label")]
        labels: Option<Vec<String>>,
    },
    /// Delete a project (refused while it holds anything, unless --force).
    #[command(after_help = "Examples:\n  cairn project delete team-a\n  cairn project delete team-a --force")]
    Delete {
        /// Project id.
        name: String,
        /// Also delete everything it holds: schedules, tasks, connectors, job history.
        #[arg(long)]
        force: bool,
    },
}

/// Connector commands.
#[derive(Debug, Subcommand)]
pub enum ConnectorCmd {
    /// Create a connector (one subcommand per type).
    #[command(subcommand)]
    Create(CreateConnector),
    /// List connectors.
    #[command(
        after_help = "Examples:\n  cairn connector list\n  cairn connector list --role store\n  cairn connector list --label host=db1"
    )]
    List(ListConnectors),
    /// Show one connector.
    #[command(after_help = "Examples:\n  cairn connector get nas")]
    Get(NameArg),
    /// Change a connector.
    #[command(
        after_help = "Examples:\n  cairn connector update nas --max-concurrent-jobs 2\n  cairn connector update nas --password-file ./new.pass\n  cairn connector update web-data --selector host=web1"
    )]
    Update(UpdateConnector),
    /// Delete a connector (refused while tasks use it).
    #[command(after_help = "Examples:\n  cairn connector delete old-nas")]
    Delete(NameArg),
    /// Test a connector on a worker that matches it.
    #[command(
        after_help = "Examples:\n  cairn connector test nas\n  cairn connector test s3-offsite --timeout 2m"
    )]
    Test(TestConnector),
}

/// A name or id.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Display name or id.
    pub name: String,
}

/// Fields common to every connector.
#[derive(Debug, Args, Default)]
pub struct ConnectorCommon {
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Labels a worker must carry to touch it (repeatable): `host=db1`.
    #[arg(long = "selector", value_name = "KEY=VALUE")]
    pub selectors: Vec<String>,
    /// Sources: recovery point objective (e.g. 26h), overriding the backup tasks' own.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rpo: Option<std::time::Duration>,
    /// A label fleet tasks select sources by (repeatable): `fleet=web`.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// Fields common to every store.
#[derive(Debug, Args, Default)]
pub struct StoreCommon {
    /// Repository password (visible in the process list; prefer --password-file or CAIRN_REPOSITORY_PASSWORD).
    #[arg(long, env = "CAIRN_REPOSITORY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// File holding the repository password.
    #[arg(long, conflicts_with = "password")]
    pub password_file: Option<PathBuf>,
    /// Initialise the repository on first use.
    #[arg(long)]
    pub create_if_missing: bool,
    /// Jobs touching the store at once (default 4).
    #[arg(long)]
    pub max_concurrent_jobs: Option<i32>,
}

/// Connector types.
#[derive(Debug, Subcommand)]
pub enum CreateConnector {
    /// SOURCE: files and directories on the worker host.
    #[command(
        after_help = "Examples:\n  cairn connector create local-path web-data --path /srv/www --exclude '*.tmp'\n  cairn connector create local-path db1-etc --path /etc --selector host=db1"
    )]
    LocalPath {
        /// Display name.
        name: String,
        /// Absolute path to back up (repeatable).
        #[arg(long = "path", required = true)]
        paths: Vec<String>,
        /// Only files matching this glob (repeatable).
        #[arg(long)]
        include: Vec<String>,
        /// Leave out what matches this glob (repeatable).
        #[arg(long)]
        exclude: Vec<String>,
        /// Skip directories containing a file with this name (repeatable).
        #[arg(long)]
        exclude_if_present: Vec<String>,
        /// Stay on the filesystem of each path.
        #[arg(long)]
        one_file_system: bool,
        #[command(flatten)]
        common: ConnectorCommon,
    },
    /// SOURCE: the standard output of a command, stored as one file.
    #[command(
        after_help = "Examples:\n  cairn connector create command app-db --file-name app.dump -- pg_dump -Fc app"
    )]
    Command {
        /// Display name.
        name: String,
        /// File name of the output inside the snapshot.
        #[arg(long)]
        file_name: String,
        #[command(flatten)]
        common: ConnectorCommon,
        /// Program and arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// STORE: a repository directory on the worker host or a shared filesystem.
    #[command(
        after_help = "Examples:\n  cairn connector create local-store nas --path /mnt/nas/cairn --password-file ./nas.pass --create-if-missing"
    )]
    LocalStore {
        /// Display name.
        name: String,
        /// Absolute repository path.
        #[arg(long)]
        path: String,
        #[command(flatten)]
        store: StoreCommon,
        #[command(flatten)]
        common: ConnectorCommon,
    },
    /// STORE: an S3-compatible bucket.
    #[command(
        after_help = "Examples:\n  cairn connector create s3-store offsite --endpoint https://s3.eu-west-1.amazonaws.com \\\n      --bucket acme-backups --prefix cairn --region eu-west-1 --access-key-id AKIA... \\\n      --secret-access-key-file ./s3.key --password-file ./repo.pass --create-if-missing"
    )]
    S3Store {
        /// Display name.
        name: String,
        /// Service URL.
        #[arg(long)]
        endpoint: String,
        /// Bucket.
        #[arg(long)]
        bucket: String,
        /// Key prefix inside the bucket.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Region.
        #[arg(long, default_value = "")]
        region: String,
        /// Access key id.
        #[arg(long)]
        access_key_id: String,
        /// Secret access key (prefer --secret-access-key-file or CAIRN_S3_SECRET_ACCESS_KEY).
        #[arg(long, env = "CAIRN_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: Option<String>,
        /// File holding the secret access key.
        #[arg(long, conflicts_with = "secret_access_key")]
        secret_access_key_file: Option<PathBuf>,
        #[command(flatten)]
        store: StoreCommon,
        #[command(flatten)]
        common: ConnectorCommon,
    },
    /// STORE: a repository reached over SFTP.
    #[command(
        after_help = "Examples:\n  cairn connector create sftp-store vault --host backup.example.com --user cairn --path /srv/repo --password-file ./repo.pass"
    )]
    SftpStore {
        /// Display name.
        name: String,
        /// Host.
        #[arg(long)]
        host: String,
        /// Port (default 22).
        #[arg(long, default_value_t = 0)]
        port: i32,
        /// User.
        #[arg(long)]
        user: String,
        /// Absolute repository path on the server.
        #[arg(long)]
        path: String,
        #[command(flatten)]
        store: StoreCommon,
        #[command(flatten)]
        common: ConnectorCommon,
    },
    /// STORE: a restic REST server.
    #[command(
        after_help = "Examples:\n  cairn connector create rest-store rest --url https://rest.example.com/cairn --username cairn \\\n      --rest-password-file ./rest.pass --password-file ./repo.pass"
    )]
    RestStore {
        /// Display name.
        name: String,
        /// Server URL with the repository path.
        #[arg(long)]
        url: String,
        /// HTTP user.
        #[arg(long, default_value = "")]
        username: String,
        /// File holding the HTTP password.
        #[arg(long)]
        rest_password_file: Option<PathBuf>,
        #[command(flatten)]
        store: StoreCommon,
        #[command(flatten)]
        common: ConnectorCommon,
    },
    /// DESTINATION: a directory on the worker host that restores write into.
    #[command(
        after_help = "Examples:\n  cairn connector create destination restore-area --path /srv/restore"
    )]
    Destination {
        /// Display name.
        name: String,
        /// Absolute directory.
        #[arg(long)]
        path: String,
        #[command(flatten)]
        common: ConnectorCommon,
    },
}

/// Roles for filters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    /// Sources.
    Source,
    /// Stores.
    Store,
    /// Destinations.
    Destination,
}

/// `connector list`.
#[derive(Debug, Args)]
pub struct ListConnectors {
    /// Only this role.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Only this type (local_path, command, local, s3, sftp, rest).
    #[arg(long = "type")]
    pub type_name: Option<String>,
    /// Only connectors whose selector has this label (`key` or `key=value`).
    #[arg(long)]
    pub label: Option<String>,
}

/// `connector update`.
#[derive(Debug, Args)]
pub struct UpdateConnector {
    /// Display name or id.
    pub name: String,
    /// New display name.
    #[arg(long)]
    pub rename: Option<String>,
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
    /// Replace the worker selector (repeatable `key=value`).
    #[arg(long = "selector", value_name = "KEY=VALUE")]
    pub selectors: Vec<String>,
    /// Remove every selector label.
    #[arg(long, conflicts_with = "selectors")]
    pub clear_selector: bool,
    /// Replace the labels fleet tasks select by (repeatable `key=value`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Remove every label.
    #[arg(long, conflicts_with = "labels")]
    pub clear_labels: bool,
    /// New path (local-path sources: replaces all paths; stores and destinations: the path).
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Stores: jobs at once.
    #[arg(long)]
    pub max_concurrent_jobs: Option<i32>,
    /// Sources: recovery point objective (e.g. 26h); `0s` removes it.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rpo: Option<std::time::Duration>,
    /// Stores: initialise on first use.
    #[arg(long)]
    pub create_if_missing: Option<bool>,
    /// Stores: new repository password file.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Only apply if the connector still has this etag.
    #[arg(long)]
    pub etag: Option<String>,
}

/// `connector test`.
#[derive(Debug, Args)]
pub struct TestConnector {
    /// Display name or id.
    pub name: String,
    /// How long to wait for a worker (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Task commands.
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Create a task (one subcommand per type).
    #[command(subcommand)]
    Create(CreateTask),
    /// List tasks.
    #[command(after_help = "Examples:\n  cairn task list\n  cairn task list --connector nas --type backup")]
    List(ListTasks),
    /// Show one task.
    #[command(after_help = "Examples:\n  cairn task get web-nightly")]
    Get(NameArg),
    /// Change a task.
    #[command(
        after_help = "Examples:\n  cairn task update web-nightly --overlap queue-one --timeout 2h\n  cairn task update web-nightly --keep-daily 14 --keep-weekly 8"
    )]
    Update(UpdateTask),
    /// Delete a task and its schedules (its jobs stay in history).
    #[command(after_help = "Examples:\n  cairn task delete web-nightly")]
    Delete(NameArg),
    /// Run a task now.
    #[command(after_help = "Examples:\n  cairn task run web-nightly --wait --follow")]
    Run(RunArgs),
}

/// Options every task type has.
#[derive(Debug, Args, Default)]
pub struct TaskCommon {
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Snapshot label (repeatable). BACKUP: tags of new snapshots; others: snapshots must carry all.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Engine parallelism (0 = recommended).
    #[arg(long, default_value_t = 0)]
    pub concurrency: i32,
    /// Cancel and fail a run longer than this (e.g. 2h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Attempts of a failing run (default 3).
    #[arg(long)]
    pub max_attempts: Option<i32>,
    /// What a firing does while a run is active.
    #[arg(long, value_enum)]
    pub overlap: Option<Overlap>,
    /// When to notify.
    #[arg(long, value_enum)]
    pub notify: Option<Notify>,
    /// Webhook receiving a signed JSON POST per finished job (repeatable; needs --webhook-secret).
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
    /// Signing key of the webhooks (`X-Cairn-Signature`).
    #[arg(long, env = "CAIRN_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Email recipient (repeatable).
    #[arg(long = "email")]
    pub emails: Vec<String>,
}

/// Retention flags (restic's keep-* options).
#[derive(Debug, Args, Default, Clone)]
pub struct RetentionFlags {
    /// Keep the N most recent snapshots (-1 = all).
    #[arg(long, allow_hyphen_values = true)]
    pub keep_last: Option<i32>,
    /// Keep one snapshot per hour for N hours.
    #[arg(long, allow_hyphen_values = true)]
    pub keep_hourly: Option<i32>,
    /// Keep one per day for N days.
    #[arg(long, allow_hyphen_values = true)]
    pub keep_daily: Option<i32>,
    /// Keep one per week for N weeks.
    #[arg(long, allow_hyphen_values = true)]
    pub keep_weekly: Option<i32>,
    /// Keep one per month for N months.
    #[arg(long, allow_hyphen_values = true)]
    pub keep_monthly: Option<i32>,
    /// Keep one per year for N years.
    #[arg(long, allow_hyphen_values = true)]
    pub keep_yearly: Option<i32>,
    /// Keep everything within this duration (restic form: 1y2m3d4h).
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep hourly snapshots within this duration.
    #[arg(long)]
    pub keep_within_hourly: Option<String>,
    /// Keep daily snapshots within this duration.
    #[arg(long)]
    pub keep_within_daily: Option<String>,
    /// Keep weekly snapshots within this duration.
    #[arg(long)]
    pub keep_within_weekly: Option<String>,
    /// Keep monthly snapshots within this duration.
    #[arg(long)]
    pub keep_within_monthly: Option<String>,
    /// Keep yearly snapshots within this duration.
    #[arg(long)]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots carrying all these labels (comma-separated; repeatable).
    #[arg(long = "keep-tag")]
    pub keep_tags: Vec<String>,
    /// Zone of hour/day/week boundaries (default UTC).
    #[arg(long)]
    pub retention_tz: Option<String>,
}

/// Overlap policies.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Overlap {
    /// Record a SKIPPED job.
    Skip,
    /// Keep at most one waiting.
    QueueOne,
    /// Run anyway.
    Allow,
    /// Cancel the running job.
    CancelRunning,
}

/// Notification modes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Notify {
    /// Every finished job.
    Always,
    /// Failed jobs only.
    Errors,
    /// Never.
    Never,
}

/// Restore overwrite policies.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Overwrite {
    /// Overwrite files that differ.
    IfChanged,
    /// Overwrite every file.
    Always,
    /// Never overwrite.
    Never,
}

/// Task types.
#[derive(Debug, Subcommand)]
pub enum CreateTask {
    /// Back a source up into a store.
    #[command(
        after_help = "Examples:\n  cairn task create backup web-nightly --source web-data --store nas --label web --keep-daily 7 --keep-weekly 4\n  cairn task create backup web-weekly --source web-data --store nas --full --keep-weekly 3\n  cairn task create backup fleet-nightly --sources fleet=web --exclude 'web-test-*' --store nas --keep-daily 7\n\nA fleet task (--sources/--include) backs up every SOURCE connector that carries the\nlabels, matches an --include (a display name pattern or key=value) when given and no\n--exclude: one job per source per run, each on a worker matching that source."
    )]
    Backup {
        /// Display name.
        name: String,
        /// SOURCE connector (or select many with --sources/--include).
        #[arg(long, required_unless_present_any = ["sources", "include"], conflicts_with_all = ["sources", "include", "exclude"])]
        source: Option<String>,
        /// Fleet: sources must carry this connector label (repeatable `key=value`).
        #[arg(long = "sources", value_name = "KEY=VALUE")]
        sources: Vec<String>,
        /// Fleet: sources must also match one of these (display name pattern with `*`, or `key=value`).
        #[arg(long = "include", value_name = "PATTERN")]
        include: Vec<String>,
        /// Fleet: never back up sources matching these (same forms as --include).
        #[arg(long = "exclude", value_name = "PATTERN")]
        exclude: Vec<String>,
        /// STORE connector.
        #[arg(long)]
        store: String,
        /// FULL: re-read everything instead of comparing with the parent snapshot.
        #[arg(long)]
        full: bool,
        /// Host name recorded in snapshots (default: the worker's).
        #[arg(long)]
        host: Option<String>,
        /// Recovery point objective (e.g. 26h): the source is AT_RISK past 75 % of it and
        /// VIOLATED past all of it (see `cairn status`).
        #[arg(long, value_parser = humantime::parse_duration)]
        rpo: Option<std::time::Duration>,
        #[command(flatten)]
        retention: RetentionFlags,
        #[command(flatten)]
        common: TaskCommon,
    },
    /// Restore a snapshot into a destination.
    #[command(
        after_help = "Examples:\n  cairn task create restore web-restore --store nas --destination restore-area --label web\n  cairn task create restore one-file --store nas --destination restore-area --snapshot 1a2b3c4d --include /srv/www/index.html"
    )]
    Restore {
        /// Display name.
        name: String,
        /// STORE connector.
        #[arg(long)]
        store: String,
        /// DESTINATION connector.
        #[arg(long)]
        destination: String,
        /// Snapshot id or prefix (default: the latest carrying all labels).
        #[arg(long)]
        snapshot: Option<String>,
        /// Path inside the snapshot to restore (repeatable; default everything).
        #[arg(long = "include")]
        includes: Vec<String>,
        /// Existing files.
        #[arg(long, value_enum, default_value_t = Overwrite::IfChanged)]
        overwrite: Overwrite,
        #[command(flatten)]
        common: TaskCommon,
    },
    /// Copy snapshots from one store to another.
    #[command(
        after_help = "Examples:\n  cairn task create sync offsite-copy --from nas --to s3-offsite --window 7d --keep-weekly 52"
    )]
    Sync {
        /// Display name.
        name: String,
        /// STORE copied from.
        #[arg(long)]
        from: String,
        /// STORE copied to.
        #[arg(long)]
        to: String,
        /// Only snapshots created within this duration (e.g. 7d).
        #[arg(long)]
        window: Option<String>,
        #[command(flatten)]
        retention: RetentionFlags,
        #[command(flatten)]
        common: TaskCommon,
    },
    /// Verify a store.
    #[command(
        after_help = "Examples:\n  cairn task create check nas-verify --store nas --read-data 10 --window 7d"
    )]
    Check {
        /// Display name.
        name: String,
        /// STORE connector.
        #[arg(long)]
        store: String,
        /// Only snapshots created within this duration.
        #[arg(long)]
        window: Option<String>,
        /// Percentage of data to read back and verify.
        #[arg(long, default_value_t = 0.0)]
        read_data: f64,
        #[command(flatten)]
        common: TaskCommon,
    },
    /// Reclaim the space of forgotten snapshots.
    #[command(after_help = "Examples:\n  cairn task create prune nas-prune --store nas --max-unused 5")]
    Prune {
        /// Display name.
        name: String,
        /// STORE connector.
        #[arg(long)]
        store: String,
        /// Tolerated unused space in percent.
        #[arg(long, default_value_t = 5.0)]
        max_unused: f64,
        #[command(flatten)]
        common: TaskCommon,
    },
}

/// Task types for filters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TaskKind {
    /// Backups.
    Backup,
    /// Restores.
    Restore,
    /// Syncs.
    Sync,
    /// Checks.
    Check,
    /// Prunes.
    Prune,
    /// Connection tests (jobs only).
    TestConnection,
}

/// `task list`.
#[derive(Debug, Args)]
pub struct ListTasks {
    /// Only tasks using this connector.
    #[arg(long)]
    pub connector: Option<String>,
    /// Only this type.
    #[arg(long = "type", value_enum)]
    pub kind: Option<TaskKind>,
}

/// `task update`.
#[derive(Debug, Args)]
pub struct UpdateTask {
    /// Display name or id.
    pub name: String,
    /// New display name.
    #[arg(long)]
    pub rename: Option<String>,
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
    /// Replace the labels (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Overlap policy.
    #[arg(long, value_enum)]
    pub overlap: Option<Overlap>,
    /// Run time limit.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Attempts.
    #[arg(long)]
    pub max_attempts: Option<i32>,
    /// Notification mode.
    #[arg(long, value_enum)]
    pub notify: Option<Notify>,
    /// BACKUP: recovery point objective (e.g. 26h); `0s` removes it.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rpo: Option<std::time::Duration>,
    /// Replace the retention policy (BACKUP and SYNC) with these flags.
    #[command(flatten)]
    pub retention: RetentionFlags,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Task display name or id.
    pub task: String,
    /// Wait for the job to end; the exit code reflects it.
    #[arg(long)]
    pub wait: bool,
    /// Show live progress and stream the log (implies --wait).
    #[arg(long)]
    pub follow: bool,
    /// This run only: what it changes of the task.
    #[command(flatten)]
    pub overrides: RunOverrideFlags,
}

/// One-off changes of a run (the task is not edited).
#[derive(Debug, Args, Default)]
pub struct RunOverrideFlags {
    /// RESTORE: this snapshot (id or prefix of at least 8 hex digits) instead of the task's.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// RESTORE: only this path inside the snapshot (repeatable), instead of the task's.
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// RESTORE: into this DESTINATION connector instead of the task's.
    #[arg(long)]
    pub destination: Option<String>,
    /// BACKUP: re-read every file this once (FULL mode).
    #[arg(long)]
    pub full: bool,
}

/// Schedule commands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Add a schedule to a task.
    #[command(
        after_help = "Examples:\n  cairn schedule add weeknights --task web-nightly --calendar 'Mon..Fri 18:00' --tz Europe/Berlin\n  cairn schedule add nightly --task web-nightly --cron '0 2 * * *'\n  cairn schedule add every-6h --task db-dump --every 6h --journalised --jitter 5m\n  cairn schedule add monthly-check --task nas-verify --preset every-30-days --start 2026-12-01T03:00:00Z"
    )]
    Add(AddSchedule),
    /// List schedules with their next run.
    #[command(
        after_help = "Examples:\n  cairn schedule list\n  cairn schedule list --connector nas --paused"
    )]
    List(ListSchedules),
    /// Show one schedule.
    #[command(after_help = "Examples:\n  cairn schedule get weeknights")]
    Get(NameArg),
    /// Change a schedule; the next run is recomputed.
    #[command(
        after_help = "Examples:\n  cairn schedule update weeknights --calendar 'Mon..Fri 19:30'\n  cairn schedule update every-6h --jitter 10m"
    )]
    Update(UpdateSchedule),
    /// Stop firing without deleting.
    #[command(after_help = "Examples:\n  cairn schedule pause weeknights")]
    Pause(NameArg),
    /// Resume firing from the next future occurrence.
    #[command(after_help = "Examples:\n  cairn schedule resume weeknights")]
    Resume(NameArg),
    /// Delete a schedule (its jobs stay in history).
    #[command(after_help = "Examples:\n  cairn schedule delete weeknights")]
    Delete(NameArg),
    /// Show the next fire times of a recurrence without saving anything.
    #[command(
        after_help = "Examples:\n  cairn schedule preview --calendar 'Mon..Fri 18:00' --tz Europe/Berlin\n  cairn schedule preview --calendar '*-*~01 03:00' --count 12\n  cairn schedule preview --cron '*/15 9-17 * * 1-5'\n  cairn schedule preview --every 1d12h --start 2026-01-01T00:00:00Z"
    )]
    Preview(PreviewSchedule),
}

/// How a schedule recurs (exactly one).
#[derive(Debug, Args, Default, Clone)]
#[group(required = false, multiple = false)]
pub struct RecurrenceFlags {
    /// systemd calendar event (`Mon..Fri 18:00`, `*-*-01 03:00`, `hourly`).
    #[arg(long)]
    pub calendar: Option<String>,
    /// 5-field cron (`0 2 * * *`).
    #[arg(long)]
    pub cron: Option<String>,
    /// Fixed interval from the start time (`1d`, `12h`, `1d6h30m`).
    #[arg(long)]
    pub every: Option<String>,
    /// Named interval from the start time.
    #[arg(long, value_enum)]
    pub preset: Option<PresetArg>,
}

/// Presets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PresetArg {
    /// Every 12 hours.
    TwiceDaily,
    /// Every 24 hours.
    Daily,
    /// Every 7 days.
    Weekly,
    /// Every 30 days.
    #[value(name = "every-30-days")]
    Every30Days,
}

/// `schedule add`.
#[derive(Debug, Args)]
pub struct AddSchedule {
    /// Display name.
    pub name: String,
    /// The task to fire.
    #[arg(long)]
    pub task: String,
    #[command(flatten)]
    pub recurrence: RecurrenceFlags,
    /// IANA zone of calendar and cron times (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// First possible run / interval anchor (RFC 3339; default now).
    #[arg(long)]
    pub start: Option<String>,
    /// Catch up once after downtime instead of skipping missed runs.
    #[arg(long)]
    pub journalised: bool,
    /// Random delay up to this (deterministic per occurrence).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub jitter: Option<std::time::Duration>,
    /// Create it paused.
    #[arg(long)]
    pub paused: bool,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
}

/// `schedule list`.
#[derive(Debug, Args)]
pub struct ListSchedules {
    /// Only schedules of this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Only schedules whose task uses this connector.
    #[arg(long)]
    pub connector: Option<String>,
    /// Only enabled schedules.
    #[arg(long, conflicts_with = "paused")]
    pub enabled: bool,
    /// Only paused schedules.
    #[arg(long)]
    pub paused: bool,
}

/// `schedule update`.
#[derive(Debug, Args)]
pub struct UpdateSchedule {
    /// Display name or id.
    pub name: String,
    #[command(flatten)]
    pub recurrence: RecurrenceFlags,
    /// New zone.
    #[arg(long)]
    pub tz: Option<String>,
    /// New start time (RFC 3339).
    #[arg(long)]
    pub start: Option<String>,
    /// Journal mode.
    #[arg(long)]
    pub journalised: Option<bool>,
    /// New jitter.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub jitter: Option<std::time::Duration>,
    /// New display name.
    #[arg(long)]
    pub rename: Option<String>,
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
}

/// `schedule preview`.
#[derive(Debug, Args)]
pub struct PreviewSchedule {
    #[command(flatten)]
    pub recurrence: RecurrenceFlags,
    /// IANA zone (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// Anchor of intervals (RFC 3339).
    #[arg(long)]
    pub start: Option<String>,
    /// Fire times after this (RFC 3339; default now).
    #[arg(long)]
    pub after: Option<String>,
    /// How many (1..1000).
    #[arg(long, default_value_t = 10)]
    pub count: i32,
}

/// Job commands.
#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Job history, newest first.
    #[command(
        after_help = "Examples:\n  cairn job list\n  cairn job list --task web-nightly --state failed --since 7d\n  cairn job list --connector nas --limit 100"
    )]
    List(ListJobs),
    /// Show a job with its stats and last log lines.
    #[command(after_help = "Examples:\n  cairn job show 0193f3a2-6b1c-7cc0-8a5e-3b0c1d2e3f40")]
    Show(JobArg),
    /// Print a job's log (`--follow` streams it until the job ends).
    #[command(after_help = "Examples:\n  cairn job logs 0193f3a2-... --follow")]
    Logs(LogsArgs),
    /// Cancel a queued or running job.
    #[command(after_help = "Examples:\n  cairn job cancel 0193f3a2-... --reason 'maintenance window'")]
    Cancel(CancelArgs),
    /// Watch a job live: progress bar and log until it ends.
    #[command(after_help = "Examples:\n  cairn job watch 0193f3a2-...")]
    Watch(JobArg),
}

/// A job id.
#[derive(Debug, Args)]
pub struct JobArg {
    /// Job id (`jobs/{id}` or the bare id).
    pub id: String,
}

/// `job logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id.
    pub id: String,
    /// Keep streaming until the job ends.
    #[arg(short, long)]
    pub follow: bool,
}

/// `job cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Job id.
    pub id: String,
    /// Why (recorded on the job).
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// Job states for filters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    /// Waiting.
    Queued,
    /// Running.
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Skipped.
    Skipped,
}

/// Triggers for filters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TriggerArg {
    /// Schedule.
    Schedule,
    /// RunTask.
    Manual,
    /// Catch-up after downtime.
    CatchUp,
    /// Retry.
    Retry,
    /// Cairn itself.
    System,
}

/// `job list`.
#[derive(Debug, Args)]
pub struct ListJobs {
    /// Only jobs of this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Only jobs of this schedule.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Only jobs touching this connector.
    #[arg(long)]
    pub connector: Option<String>,
    /// Only these states (repeatable).
    #[arg(long = "state", value_enum)]
    pub states: Vec<StateArg>,
    /// Only these triggers (repeatable).
    #[arg(long = "trigger", value_enum)]
    pub triggers: Vec<TriggerArg>,
    /// Created within this duration (`24h`) or since this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Created before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Jobs of every project (names of tasks and schedules must then be full names).
    #[arg(long)]
    pub all_projects: bool,
}

/// Snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Snapshots from the index, newest first.
    #[command(
        after_help = "Examples:\n  cairn snapshot list --store nas\n  cairn snapshot list --task web-nightly --label web --since 30d"
    )]
    List(ListSnapshots),
    /// The entries of one directory of a snapshot (read from the store by a worker).
    #[command(
        after_help = "Examples:\n  cairn snapshot ls nas 1a2b3c4d\n  cairn snapshot ls nas 1a2b3c4d /srv/www --long\n  cairn snapshot ls nas 1a2b3c4d /srv/www -o json"
    )]
    Ls(LsSnapshot),
    /// What changed between two snapshots of one store (as `restic diff` shows it).
    #[command(
        after_help = "Examples:\n  cairn snapshot diff nas 1a2b3c4d 5e6f7a8b\n  cairn snapshot diff nas 1a2b3c4d 5e6f7a8b --metadata\n\nEach line is a modifier and a path: + added, - removed, M content changed,\nT type changed, U metadata changed (with --metadata); directories end with /."
    )]
    Diff(DiffSnapshot),
    /// Writes one file of a snapshot to standard output (or --to FILE).
    #[command(
        after_help = "Examples:\n  cairn snapshot cat nas 1a2b3c4d /srv/www/index.html\n  cairn snapshot cat nas 1a2b3c4d /etc/hosts --to hosts.restored"
    )]
    Cat(CatSnapshot),
}

/// `snapshot ls`.
#[derive(Debug, Args)]
pub struct LsSnapshot {
    /// The store holding the snapshot.
    pub store: String,
    /// Snapshot id (at least 8 hex digits).
    pub snapshot: String,
    /// Directory inside the snapshot.
    #[arg(default_value = "/")]
    pub path: String,
    /// Mode, owner, size and time of each entry.
    #[arg(long, short = 'l')]
    pub long: bool,
}

/// `snapshot diff`.
#[derive(Debug, Args)]
pub struct DiffSnapshot {
    /// The store holding both snapshots.
    pub store: String,
    /// The older snapshot.
    pub snapshot_a: String,
    /// The newer snapshot.
    pub snapshot_b: String,
    /// Also show entries whose metadata alone changed.
    #[arg(long)]
    pub metadata: bool,
}

/// `snapshot cat`.
#[derive(Debug, Args)]
pub struct CatSnapshot {
    /// The store holding the snapshot.
    pub store: String,
    /// Snapshot id (at least 8 hex digits).
    pub snapshot: String,
    /// The file inside the snapshot.
    pub path: String,
    /// Write to this new file instead of standard output (an existing file is not overwritten).
    #[arg(long)]
    pub to: Option<std::path::PathBuf>,
}

/// `snapshot list`.
#[derive(Debug, Args)]
pub struct ListSnapshots {
    /// Only this store.
    #[arg(long)]
    pub store: Option<String>,
    /// Only snapshots made by this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Only snapshots carrying all these labels (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Taken within this duration (`30d`) or since this time.
    #[arg(long)]
    pub since: Option<String>,
    /// Taken before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// Retention commands.
#[derive(Debug, Subcommand)]
pub enum RetentionCmd {
    /// What a forget with this policy would keep and remove (changes nothing).
    #[command(
        after_help = "Examples:\n  cairn retention simulate --store nas --task web-nightly --keep-daily 7 --keep-weekly 4\n  cairn retention simulate --snapshots snaps.json --keep-last 3\n\nA snapshots file is JSON: [{\"id\": \"a1\", \"time\": \"2026-01-01T02:00:00Z\", \"labels\": [\"web\"]}, ...]"
    )]
    Simulate(SimulateArgs),
}

/// `retention simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The store of the indexed snapshots (with --task).
    #[arg(long, requires = "task")]
    pub store: Option<String>,
    /// The task whose snapshots are considered (with --store).
    #[arg(long, requires = "store")]
    pub task: Option<String>,
    /// A JSON file listing snapshots instead.
    #[arg(long, conflicts_with_all = ["store", "task"])]
    pub snapshots: Option<PathBuf>,
    #[command(flatten)]
    pub policy: RetentionFlags,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these states (repeatable).
    #[arg(long = "state", value_enum)]
    pub states: Vec<Protection>,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only this BACKUP task.
    #[arg(long)]
    pub task: Option<String>,
    /// Exit 1 when a listed source is VIOLATED or NEVER_BACKED_UP (for monitoring scripts).
    #[arg(long)]
    pub fail_on_violation: bool,
}

/// Protection states.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Protection {
    /// Backed up within 75 % of the RPO.
    Ok,
    /// Past 75 % of the RPO.
    AtRisk,
    /// Past the RPO.
    Violated,
    /// No successful backup.
    NeverBackedUp,
    /// Backed up, no RPO set.
    NoObjective,
}

/// `forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// Start (RFC 3339; default now).
    #[arg(long)]
    pub from: Option<String>,
    /// Window length.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub horizon: std::time::Duration,
    /// Zone of the heatmap's hours and weekdays (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// Also list every run.
    #[arg(long)]
    pub runs: bool,
    /// Runs of every project (worker pools may be shared between projects).
    #[arg(long)]
    pub all_projects: bool,
}

/// `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Server URL (`http://host:port`).
    pub url: String,
    /// A service name (default: the server overall).
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up after this.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `cairn login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User id.
    #[arg(default_value = "admin")]
    pub user: String,
    /// Read the password from the first line of standard input (else prompted on a terminal).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Context commands.
#[derive(Debug, Subcommand)]
pub enum ContextCmd {
    /// List contexts (the one in use is marked).
    List,
    /// Make a context the one in use.
    #[command(after_help = "Examples:\n  cairn context use prod")]
    Use {
        /// Its name.
        name: String,
    },
    /// Save URLs, CA and project (from the global flags) in a context.
    #[command(
        after_help = "Examples:\n  cairn --catalog-url https://c:50051 --scheduler-url https://s:50052 --ca-file ca.pem context set prod"
    )]
    Set {
        /// Its name.
        name: String,
    },
    /// Forget a context.
    Delete {
        /// Its name.
        name: String,
    },
}

/// A role word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Read resources, history and logs.
    Viewer,
    /// + run, cancel, pause, test connections.
    Operator,
    /// + tasks and schedules.
    Editor,
    /// + connectors, secrets, members, service accounts, tokens, audit.
    Admin,
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user (its password is read like `cairn login` reads one).
    #[command(
        after_help = "Examples:\n  cairn user create alice --display-name 'Alice'\n  echo \"$PW\" | cairn user create ci-admin --platform-admin --password-stdin"
    )]
    Create {
        /// User id.
        id: String,
        /// Human name.
        #[arg(long, default_value = "")]
        display_name: String,
        /// Make a platform admin.
        #[arg(long)]
        platform_admin: bool,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Create without a password (set one later with `cairn user password`).
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// List users.
    List,
    /// Set a user's password (ends its sessions).
    Password {
        /// User id.
        id: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user (its sessions and tokens stop working).
    Disable {
        /// User id.
        id: String,
    },
    /// Enable a user again.
    Enable {
        /// User id.
        id: String,
    },
    /// Delete a user.
    Delete {
        /// User id.
        id: String,
    },
}

/// Member commands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Give a user a role in the project (never above your own).
    #[command(after_help = "Examples:\n  cairn --project team-a member set alice operator")]
    Set {
        /// User id.
        user: String,
        /// The role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// List the project's members.
    List,
    /// Remove a member.
    Remove {
        /// User id.
        user: String,
    },
}

/// Service account commands.
#[derive(Debug, Subcommand)]
pub enum ServiceAccountCmd {
    /// Create a service account with a role in the project.
    #[command(after_help = "Examples:\n  cairn service-account create ci --role operator")]
    Create {
        /// Its id.
        id: String,
        /// The role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Human name.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// List the project's service accounts.
    List,
    /// Delete a service account and revoke its tokens.
    Delete {
        /// Its id.
        id: String,
    },
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a service account; the secret is printed once.
    #[command(after_help = "Examples:\n  cairn token create ci --name pipeline --expires-in 90d")]
    Create {
        /// The service account's id.
        service_account: String,
        /// Human name.
        #[arg(long = "name", default_value = "")]
        display_name: String,
        /// Expire after this long (e.g. 90d); default: never.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
    },
    /// List a service account's tokens (never their secrets).
    List {
        /// The service account's id.
        service_account: String,
    },
    /// Revoke a token (its name, from `cairn token list`).
    Revoke {
        /// `projects/{p}/serviceAccounts/{id}/tokens/{token}`.
        name: String,
    },
}

/// Worker pool commands.
#[derive(Debug, Subcommand)]
pub enum WorkerPoolCmd {
    /// Create a worker pool; its enrolment token (CAIRN_WORKER_TOKEN) is printed once.
    #[command(
        after_help = "Examples:\n  cairn worker-pool create eu --projects team-a,team-b --label zone=eu\n  cairn worker-pool create all --projects '*' --label '*=*'"
    )]
    Create {
        /// Its id.
        id: String,
        /// Projects its workers may lease from, comma-separated (`*` = every project).
        #[arg(long, required = true, value_delimiter = ',')]
        projects: Vec<String>,
        /// A label its workers may present, `key=value` (`key=*` any value, `*=*` any label; repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Human name.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// List worker pools.
    List,
    /// Delete a worker pool (its token stops working at once).
    Delete {
        /// Its id.
        id: String,
    },
}

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List events, newest first.
    #[command(
        after_help = "Examples:\n  cairn audit list\n  cairn audit list --all-projects --denied --limit 50\n  cairn audit list --principal users/alice --method DeleteTask"
    )]
    List {
        /// Events of every project, and of none (platform admins).
        #[arg(long)]
        all_projects: bool,
        /// Only this principal (`users/alice`).
        #[arg(long)]
        principal: Option<String>,
        /// Only this method (`DeleteTask` or its full name).
        #[arg(long)]
        method: Option<String>,
        /// Only refused calls.
        #[arg(long)]
        denied: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}
