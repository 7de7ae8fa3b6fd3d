//! ListAuditEvents: the catalog's own events merged with the scheduler's, newest first. Both
//! sides are asked for one page after the same cursor, and the merge keeps the newest page,
//! so paging is exact across the two.

use cairn_api::{
    names,
    v1::{Decision, ListAuditEventsRequest, ListAuditEventsResponse},
};
use cairn_runtime::{
    auth::{
        Caller,
        audit::{self, Cursor, Filter},
    },
    pagination,
    time::from_timestamp,
};

use crate::{
    State,
    error::{Error, Result},
    projects,
};

/// ListAuditEvents.
pub async fn list(
    state: &State,
    caller: &Caller,
    req: ListAuditEventsRequest,
) -> Result<ListAuditEventsResponse> {
    let parent = names::parse_parent(&req.parent, true).map_err(|e| projects::invalid("parent", e))?;
    let projects = match parent {
        Some(p) => {
            caller.require(&p)?;
            Some(vec![p.as_str().to_owned()])
        }
        None => caller.visible().map(|ps| ps.iter().map(|p| p.as_str().to_owned()).collect()),
    };
    let time = |field: &str, t: &Option<prost_types::Timestamp>| match t {
        Some(ts) => from_timestamp(ts).map(Some).ok_or_else(|| Error::invalid(field, "is not a valid time")),
        None => Ok(None),
    };
    let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = Filter {
        projects,
        principal: nonempty(&req.principal),
        method: nonempty(&req.method),
        allowed: match Decision::try_from(req.decision) {
            Ok(Decision::Unspecified) => None,
            Ok(Decision::Allow) => Some(true),
            Ok(Decision::Deny) => Some(false),
            Err(_) => return Err(Error::invalid("decision", format!("{} is not a decision", req.decision))),
        },
        start: time("start_time", &req.start_time)?,
        end: time("end_time", &req.end_time)?,
    };
    let limit = pagination::page_size(req.page_size)?;
    let f = pagination::fingerprint(&filter);
    let cursor: Option<Cursor> = pagination::decode(&req.page_token, f)?;
    let mut conn = state.pool.acquire().await?;
    let mut events = audit::list(&mut conn, &filter, cursor, limit + 1).await?;
    drop(conn);
    let theirs = state.scheduler.audit_events(filter.to_query(cursor, limit + 1)).await?;
    events.extend(
        theirs
            .into_iter()
            .filter_map(|e| audit::cursor_of(&e).map(|cursor| audit::Listed { cursor, event: e })),
    );
    events.sort_by_key(|e| std::cmp::Reverse(e.cursor));
    let next_page_token = pagination::next_page(&mut events, limit, f, |e| e.cursor);
    Ok(ListAuditEventsResponse { events: events.into_iter().map(|e| e.event).collect(), next_page_token })
}
