//! Whether a tenant's maintenance windows let a rollout start it now, given the
//! strategy's outage budget: the one rule the planner's timeline and the controller
//! both start tenants by. A tenant starts only in a window that stays open for the
//! whole budget, so an upgrade that keeps it out of service that long still ends
//! inside the window.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::rollout::OutageBudget;
use crate::domain::MaintenanceWindows;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowTurn {
    /// It may start now: it has no windows, or one is open and stays open for the
    /// budget.
    Open,
    /// No window is open; the next that holds the budget (if any) opens at `next`.
    Closed { next: DateTime<Utc> },
    /// A window is open but closes at `closes`, before the budget would run out; the
    /// next window that holds the budget opens at `next`.
    ClosesTooSoon {
        closes: DateTime<Utc>,
        next: DateTime<Utc>,
        budget: OutageBudget,
    },
    /// No window stays open for the budget: it can never start within one.
    TooShort { longest: Duration, budget: OutageBudget },
}

/// Where a tenant with `windows` stands at `at` for a rollout with `budget`.
pub fn window_turn(
    windows: Option<&MaintenanceWindows>,
    budget: Option<OutageBudget>,
    at: DateTime<Utc>,
) -> WindowTurn {
    let Some(windows) = windows else {
        return WindowTurn::Open;
    };
    let Some(budget) = budget else {
        return match windows.contains(at) {
            true => WindowTurn::Open,
            false => WindowTurn::Closed {
                next: windows.next_start(at),
            },
        };
    };
    match (
        windows.next_start_lasting(at, budget.get()),
        windows.open_until(at),
    ) {
        (Some(next), _) if next == at => WindowTurn::Open,
        (Some(next), Some(closes)) => WindowTurn::ClosesTooSoon { closes, next, budget },
        (Some(next), None) => WindowTurn::Closed { next },
        (None, _) => WindowTurn::TooShort {
            longest: windows.longest_opening(at),
            budget,
        },
    }
}

/// How long until a window closes, in whole seconds, as operators read it (`4m 10s`).
pub(super) fn whole_seconds(d: chrono::TimeDelta) -> Duration {
    Duration::from_secs(u64::try_from(d.num_seconds()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_window_must_hold_the_budget_for_the_tenant_to_start() {
        let windows: MaintenanceWindows = "UTC Mon 07:00 1h10m, Tue 02:00 4h".parse().unwrap();
        let monday_8 = utc("2030-01-07T08:00:00Z");
        let budget = |text: &str| Some(OutageBudget::parse(text).unwrap());

        assert_eq!(window_turn(None, budget("1h"), monday_8), WindowTurn::Open);
        assert_eq!(window_turn(Some(&windows), None, monday_8), WindowTurn::Open);
        assert_eq!(
            window_turn(Some(&windows), budget("10m"), monday_8),
            WindowTurn::Open
        );
        assert_eq!(
            window_turn(Some(&windows), budget("30m"), monday_8),
            WindowTurn::ClosesTooSoon {
                closes: utc("2030-01-07T08:10:00Z"),
                next: utc("2030-01-08T02:00:00Z"),
                budget: budget("30m").unwrap(),
            }
        );
        assert_eq!(
            window_turn(Some(&windows), budget("30m"), utc("2030-01-07T12:00:00Z")),
            WindowTurn::Closed {
                next: utc("2030-01-08T02:00:00Z")
            }
        );
        assert_eq!(
            window_turn(Some(&windows), budget("5h"), monday_8),
            WindowTurn::TooShort {
                longest: Duration::from_secs(4 * 3600),
                budget: budget("5h").unwrap(),
            }
        );
    }
}
