//! A source's protection verdict: its last successful backup against its recovery point
//! objective.

use std::time::Duration;

use cairn_api::v1::ProtectionState;
use chrono::{DateTime, Utc};

/// What a verdict looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The objective, if any.
    pub rpo: Option<Duration>,
    /// End of the last successful backup, if any.
    pub last_success: Option<DateTime<Utc>>,
    /// Since when the pair has had jobs (a never backed up source is judged from then).
    pub covered_since: Option<DateTime<Utc>>,
}

/// The verdict at `now`: OK until 75 % of the RPO, AT_RISK until all of it, then VIOLATED. A
/// source never backed up is NEVER_BACKED_UP (VIOLATED once covered for longer than its RPO,
/// because that is what it is); without an RPO, a backed up source is NO_OBJECTIVE.
pub fn verdict(f: Facts, now: DateTime<Utc>) -> ProtectionState {
    let age = |since: DateTime<Utc>| (now - since).to_std().unwrap_or(Duration::ZERO);
    match (f.last_success, f.rpo) {
        (None, Some(rpo)) if f.covered_since.is_some_and(|c| age(c) >= rpo) => ProtectionState::Violated,
        (None, _) => ProtectionState::NeverBackedUp,
        (Some(_), None) => ProtectionState::NoObjective,
        (Some(t), Some(rpo)) if age(t) >= rpo => ProtectionState::Violated,
        (Some(t), Some(rpo)) if age(t).as_secs_f64() >= rpo.as_secs_f64() * 0.75 => ProtectionState::AtRisk,
        (Some(_), Some(_)) => ProtectionState::Ok,
    }
}

/// How alarming a state is: lists put the worst first.
pub fn severity(s: ProtectionState) -> u8 {
    match s {
        ProtectionState::Violated => 0,
        ProtectionState::NeverBackedUp => 1,
        ProtectionState::AtRisk => 2,
        ProtectionState::Ok => 3,
        ProtectionState::NoObjective | ProtectionState::Unspecified => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_thresholds_are_75_and_100_percent_of_the_rpo() {
        let f = |last: &str| Facts {
            rpo: Some(Duration::from_secs(3600)),
            last_success: Some(t(last)),
            covered_since: Some(t("2030-01-01T00:00:00Z")),
        };
        let now = t("2030-01-02T12:00:00Z");
        assert_eq!(verdict(f("2030-01-02T11:15:01Z"), now), ProtectionState::Ok);
        assert_eq!(verdict(f("2030-01-02T11:15:00Z"), now), ProtectionState::AtRisk);
        assert_eq!(verdict(f("2030-01-02T11:00:01Z"), now), ProtectionState::AtRisk);
        assert_eq!(verdict(f("2030-01-02T11:00:00Z"), now), ProtectionState::Violated);
        // A success "in the future" (clock skew) is simply fresh.
        assert_eq!(verdict(f("2030-01-02T13:00:00Z"), now), ProtectionState::Ok);
    }

    #[test]
    fn never_backed_up_and_no_objective() {
        let now = t("2030-01-02T12:00:00Z");
        let rpo = Some(Duration::from_secs(3600));
        let never = |since: Option<&str>| Facts { rpo, last_success: None, covered_since: since.map(t) };
        assert_eq!(verdict(never(None), now), ProtectionState::NeverBackedUp);
        assert_eq!(verdict(never(Some("2030-01-02T11:30:00Z")), now), ProtectionState::NeverBackedUp);
        assert_eq!(verdict(never(Some("2030-01-02T11:00:00Z")), now), ProtectionState::Violated);
        let no_rpo = Facts { rpo: None, last_success: Some(t("2020-01-01T00:00:00Z")), covered_since: None };
        assert_eq!(verdict(no_rpo, now), ProtectionState::NoObjective);
        assert_eq!(
            verdict(Facts { rpo: None, last_success: None, covered_since: None }, now),
            ProtectionState::NeverBackedUp
        );
    }

    #[test]
    fn the_worst_comes_first() {
        let mut all = [
            ProtectionState::Ok,
            ProtectionState::NoObjective,
            ProtectionState::AtRisk,
            ProtectionState::NeverBackedUp,
            ProtectionState::Violated,
        ];
        all.sort_by_key(|s| severity(*s));
        assert_eq!(all[0], ProtectionState::Violated);
        assert_eq!(all[4], ProtectionState::NoObjective);
    }
}
