//! The one policy table: every gRPC method Cairn serves, by full name, with the rule that
//! decides who may call it and whether a call is audited as a mutation. A method missing here
//! is denied (see [`lookup`]); `tests/policy.rs` of each service fails when a served method has
//! no entry. The roles are those of SPEC §2.5: viewer < operator < editor < admin per project,
//! platform admin above all.

use super::Role;

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, without a credential (health, reflection, Login).
    Open,
    /// Any authenticated user or service account; the handler limits what it returns.
    Authenticated,
    /// At least this role in the request's project (the handler names the project through
    /// `Caller::require`; a call that never names one is refused).
    Project(Role),
    /// Platform admins only.
    Platform,
    /// Workers authenticated by their pool's token (and, for reports, the lease's token).
    Worker,
    /// Cairn's own services (cluster token or internal mTLS identity).
    Internal,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Full method name (`/cairn.v1.CatalogService/CreateTask`).
    pub method: &'static str,
    /// Who may call it.
    pub rule: Rule,
    /// Whether every allowed call is an audit event (mutations).
    pub mutates: bool,
}

const fn e(method: &'static str, rule: Rule, mutates: bool) -> Entry {
    Entry { method, rule, mutates }
}

use Role::{Admin, Editor, Operator, Viewer};
use Rule::{Authenticated, Internal, Open, Platform, Project, Worker};

const R: bool = false;
const W: bool = true;

/// Every method, sorted by service.
pub const TABLE: &[Entry] = &[
    // Health and reflection stay open (reflection can be switched off per server).
    e("/grpc.health.v1.Health/Check", Open, R),
    e("/grpc.health.v1.Health/Watch", Open, R),
    e("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Open, R),
    e("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Open, R),
    // CatalogService
    e("/cairn.v1.CatalogService/CreateProject", Platform, W),
    e("/cairn.v1.CatalogService/GetProject", Project(Viewer), R),
    e("/cairn.v1.CatalogService/ListProjects", Authenticated, R),
    e("/cairn.v1.CatalogService/UpdateProject", Project(Admin), W),
    e("/cairn.v1.CatalogService/DeleteProject", Platform, W),
    e("/cairn.v1.CatalogService/CreateConnector", Project(Admin), W),
    e("/cairn.v1.CatalogService/GetConnector", Project(Viewer), R),
    e("/cairn.v1.CatalogService/ListConnectors", Project(Viewer), R),
    e("/cairn.v1.CatalogService/UpdateConnector", Project(Admin), W),
    e("/cairn.v1.CatalogService/DeleteConnector", Project(Admin), W),
    e("/cairn.v1.CatalogService/TestConnector", Project(Operator), W),
    e("/cairn.v1.CatalogService/CreateTask", Project(Editor), W),
    e("/cairn.v1.CatalogService/GetTask", Project(Viewer), R),
    e("/cairn.v1.CatalogService/ListTasks", Project(Viewer), R),
    e("/cairn.v1.CatalogService/UpdateTask", Project(Editor), W),
    e("/cairn.v1.CatalogService/DeleteTask", Project(Editor), W),
    // IdentityService
    e("/cairn.v1.IdentityService/Login", Open, W),
    e("/cairn.v1.IdentityService/RefreshLogin", Open, W),
    e("/cairn.v1.IdentityService/Logout", Authenticated, W),
    e("/cairn.v1.IdentityService/GetCaller", Authenticated, R),
    e("/cairn.v1.IdentityService/ChangePassword", Authenticated, W),
    e("/cairn.v1.IdentityService/CreateUser", Platform, W),
    e("/cairn.v1.IdentityService/GetUser", Platform, R),
    e("/cairn.v1.IdentityService/ListUsers", Platform, R),
    e("/cairn.v1.IdentityService/UpdateUser", Platform, W),
    e("/cairn.v1.IdentityService/SetPassword", Platform, W),
    e("/cairn.v1.IdentityService/DeleteUser", Platform, W),
    e("/cairn.v1.IdentityService/SetMember", Project(Admin), W),
    e("/cairn.v1.IdentityService/ListMembers", Project(Admin), R),
    e("/cairn.v1.IdentityService/DeleteMember", Project(Admin), W),
    e("/cairn.v1.IdentityService/CreateServiceAccount", Project(Admin), W),
    e("/cairn.v1.IdentityService/ListServiceAccounts", Project(Admin), R),
    e("/cairn.v1.IdentityService/DeleteServiceAccount", Project(Admin), W),
    e("/cairn.v1.IdentityService/CreateApiToken", Project(Admin), W),
    e("/cairn.v1.IdentityService/ListApiTokens", Project(Admin), R),
    e("/cairn.v1.IdentityService/RevokeApiToken", Project(Admin), W),
    e("/cairn.v1.IdentityService/CreateWorkerPool", Platform, W),
    e("/cairn.v1.IdentityService/ListWorkerPools", Platform, R),
    e("/cairn.v1.IdentityService/DeleteWorkerPool", Platform, W),
    // AuditService
    e("/cairn.v1.AuditService/ListAuditEvents", Project(Admin), R),
    // CatalogInternalService
    e("/cairn.v1.CatalogInternalService/ResolveTasks", Internal, R),
    e("/cairn.v1.CatalogInternalService/ResolveConnector", Internal, R),
    e("/cairn.v1.CatalogInternalService/RecordConnectionTest", Internal, R),
    e("/cairn.v1.CatalogInternalService/Authenticate", Internal, R),
    e("/cairn.v1.CatalogInternalService/ListBackupCoverage", Internal, R),
    // ScheduleService
    e("/cairn.v1.ScheduleService/CreateSchedule", Project(Editor), W),
    e("/cairn.v1.ScheduleService/GetSchedule", Project(Viewer), R),
    e("/cairn.v1.ScheduleService/ListSchedules", Project(Viewer), R),
    e("/cairn.v1.ScheduleService/UpdateSchedule", Project(Editor), W),
    e("/cairn.v1.ScheduleService/DeleteSchedule", Project(Editor), W),
    e("/cairn.v1.ScheduleService/PauseSchedule", Project(Operator), W),
    e("/cairn.v1.ScheduleService/ResumeSchedule", Project(Operator), W),
    e("/cairn.v1.ScheduleService/PreviewSchedule", Authenticated, R),
    e("/cairn.v1.ScheduleService/Forecast", Project(Viewer), R),
    // JobService
    e("/cairn.v1.JobService/RunTask", Project(Operator), W),
    e("/cairn.v1.JobService/GetJob", Project(Viewer), R),
    e("/cairn.v1.JobService/ListJobs", Project(Viewer), R),
    e("/cairn.v1.JobService/ListJobLogs", Project(Viewer), R),
    e("/cairn.v1.JobService/CancelJob", Project(Operator), W),
    e("/cairn.v1.JobService/WatchJob", Project(Viewer), R),
    e("/cairn.v1.JobService/ListSnapshotEntries", Project(Viewer), R),
    e("/cairn.v1.JobService/DiffSnapshots", Project(Viewer), R),
    // Reading a file's contents is as much as restoring it, and always audited.
    e("/cairn.v1.JobService/ReadSnapshotFile", Project(Operator), W),
    e("/cairn.v1.JobService/ListSnapshots", Project(Viewer), R),
    e("/cairn.v1.JobService/ListProtectionStatus", Project(Viewer), R),
    // A list of snapshots given inline needs no project; stored ones need viewer there.
    e("/cairn.v1.JobService/SimulateRetention", Authenticated, R),
    // LeaseService: job history records what workers do; releases of secrets are audited by
    // AcquireLease itself.
    e("/cairn.v1.LeaseService/AcquireLease", Worker, R),
    e("/cairn.v1.LeaseService/Heartbeat", Worker, R),
    e("/cairn.v1.LeaseService/AppendLog", Worker, R),
    e("/cairn.v1.LeaseService/CompleteJob", Worker, R),
    e("/cairn.v1.LeaseService/BatchCompleteJobs", Worker, R),
    e("/cairn.v1.LeaseService/AcquireQueries", Worker, R),
    e("/cairn.v1.LeaseService/AnswerQuery", Worker, R),
    // SchedulerInternalService
    e("/cairn.v1.SchedulerInternalService/RunConnectionTest", Internal, R),
    e("/cairn.v1.SchedulerInternalService/ForgetTask", Internal, R),
    e("/cairn.v1.SchedulerInternalService/ForgetProject", Internal, R),
    e("/cairn.v1.SchedulerInternalService/ListAuditEvents", Internal, R),
];

/// The entry of a full method name; `None` = denied.
pub fn lookup(method: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| e.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_api_has_exactly_one_entry() {
        let pool = cairn_api::json::pool();
        let mut missing = Vec::new();
        for service in pool.services() {
            for m in service.methods() {
                let name = format!("/{}/{}", service.full_name(), m.name());
                match TABLE.iter().filter(|e| e.method == name).count() {
                    1 => {}
                    n => missing.push(format!("{name}: {n} entries")),
                }
            }
        }
        assert!(missing.is_empty(), "policy table out of date: {missing:?}");
        // and nothing stale
        for e in TABLE.iter().filter(|e| e.method.starts_with("/cairn.")) {
            let (svc, m) = e.method[1..].split_once('/').unwrap();
            let s = pool.get_service_by_name(svc).unwrap_or_else(|| panic!("{} names no service", e.method));
            assert!(s.methods().any(|x| x.name() == m), "{} names no method", e.method);
        }
    }

    #[test]
    fn unknown_methods_are_denied() {
        assert!(lookup("/cairn.v1.CatalogService/DropEverything").is_none());
        assert!(lookup("").is_none());
    }
}
