//! Typed ids: a newtype per kind of id and one for lease generations, so a task id can never
//! be passed where a job id is expected, nor a generation where an attempt is. They are stored
//! as Postgres `uuid` / `bigint` (sqlx `Type`, `Encode`, `Decode`, arrays) and printed as the
//! bare UUID.
//!
//! The stored enums of the API (job state, trigger, task type) are mapped to `text` columns
//! here too, as their proto names without the prefix (`QUEUED`, `CATCH_UP`, `BACKUP`).

use std::{fmt, str::FromStr};

use sqlx::{
    Postgres,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef},
};
use uuid::Uuid;

use crate::{
    names::{Kind, ProjectId},
    v1::{JobState, JobTrigger, NotificationMode, TaskType},
};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident $(, $kind:expr)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7).
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            /// The id of a UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            /// The UUID.
            pub const fn uuid(self) -> Uuid {
                self.0
            }

            $(
            /// The resource name in a project.
            pub fn name(self, project: &ProjectId) -> String {
                $kind.name(project, self.0)
            }
            )?
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl sqlx::Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <Uuid as sqlx::Type<Postgres>>::type_info()
            }
        }

        impl sqlx::Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <Uuid as sqlx::Encode<Postgres>>::encode_by_ref(&self.0, buf)
            }
        }

        impl sqlx::Decode<'_, Postgres> for $name {
            fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
                <Uuid as sqlx::Decode<Postgres>>::decode(value).map($name)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <Uuid as PgHasArrayType>::array_type_info()
            }
        }
    };
}

uuid_id!(
    /// A connector's id.
    ConnectorId,
    Kind::Connector
);
uuid_id!(
    /// A task's id.
    TaskId,
    Kind::Task
);
uuid_id!(
    /// A schedule's id.
    ScheduleId,
    Kind::Schedule
);
uuid_id!(
    /// A job's id.
    JobId,
    Kind::Job
);
uuid_id!(
    /// A lease's id (a new one per attempt).
    LeaseId
);

impl LeaseId {
    /// `leases/{id}`.
    pub fn lease_name(self) -> String {
        format!("leases/{}", self.0)
    }

    /// Reads `leases/{id}`.
    pub fn parse_name(raw: &str) -> Option<LeaseId> {
        raw.strip_prefix("leases/").and_then(|s| Uuid::parse_str(s).ok()).map(LeaseId)
    }
}

/// The fencing number of a job's lease: it grows with every lease of the job, and a report
/// carrying an older one is refused.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Generation(i64);

impl Generation {
    /// The generation a report carries.
    pub const fn new(n: i64) -> Self {
        Generation(n)
    }

    /// The number on the wire.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl sqlx::Type<Postgres> for Generation {
    fn type_info() -> PgTypeInfo {
        <i64 as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for Generation {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as sqlx::Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl sqlx::Decode<'_, Postgres> for Generation {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        <i64 as sqlx::Decode<Postgres>>::decode(value).map(Generation)
    }
}

impl PgHasArrayType for Generation {
    fn array_type_info() -> PgTypeInfo {
        <i64 as PgHasArrayType>::array_type_info()
    }
}

/// An API enum stored in a `text` column by its name without the prefix.
pub trait Stored: Sized + Copy {
    /// The name as stored (`QUEUED`).
    fn stored(self) -> &'static str;
    /// The value of a stored name.
    fn from_stored(s: &str) -> Option<Self>;
}

macro_rules! stored_enum {
    ($ty:ident, $prefix:literal) => {
        impl Stored for $ty {
            fn stored(self) -> &'static str {
                let full = self.as_str_name();
                full.strip_prefix($prefix).unwrap_or(full)
            }
            fn from_stored(s: &str) -> Option<Self> {
                $ty::from_str_name(&format!("{}{s}", $prefix))
            }
        }

        impl sqlx::Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <&str as sqlx::Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as sqlx::Type<Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as sqlx::Encode<Postgres>>::encode(self.stored(), buf)
            }
        }

        impl sqlx::Decode<'_, Postgres> for $ty {
            fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
                let s = <&str as sqlx::Decode<Postgres>>::decode(value)?;
                $ty::from_stored(s).ok_or_else(|| format!("{s:?} is not a stored {}", stringify!($ty)).into())
            }
        }

        impl PgHasArrayType for $ty {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }
    };
}

stored_enum!(JobState, "JOB_STATE_");
stored_enum!(JobTrigger, "JOB_TRIGGER_");
stored_enum!(TaskType, "TASK_TYPE_");
stored_enum!(NotificationMode, "NOTIFICATION_MODE_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_and_parse() {
        let id = TaskId::new();
        let p = ProjectId::default_project();
        assert_eq!(id.name(&p), format!("projects/default/tasks/{id}"));
        assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        let l = LeaseId::new();
        assert_eq!(LeaseId::parse_name(&l.lease_name()), Some(l));
        assert_eq!(LeaseId::parse_name("jobs/x"), None);
    }

    #[test]
    fn stored_names_are_the_proto_names_without_prefix() {
        assert_eq!(JobState::Queued.stored(), "QUEUED");
        assert_eq!(JobTrigger::CatchUp.stored(), "CATCH_UP");
        assert_eq!(TaskType::TestConnection.stored(), "TEST_CONNECTION");
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
            JobState::Skipped,
        ] {
            assert_eq!(JobState::from_stored(s.stored()), Some(s));
        }
        assert_eq!(JobState::from_stored("NOPE"), None);
    }
}
