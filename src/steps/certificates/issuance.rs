//! The next thing to do with a slot, decided from its record and its region's other
//! slots alone. The order is what keeps every hostname covered:
//!
//! 1. a retired certificate is detached before it is deleted;
//! 2. a new certificate is requested (once, by idempotency token), validated through
//!    DNS, and attached next to the current one once issued;
//! 3. only then does it become current, and only when every name leaving the slot
//!    for another slot is already on that slot's attached certificate.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::Hostname;
use crate::record::slot::{Issuance, Slot};

/// How long to wait for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between looks at a certificate in issuance.
    pub poll: Duration,
    /// How long a new change stays open to other names.
    pub gather: Duration,
}

impl Timing {
    /// How long the worker that claimed a request has to make it before another
    /// worker takes over (the claimer may have crashed or lost the response). A
    /// request takes well under a second; the idempotency token keeps a takeover
    /// from issuing twice.
    pub fn claim_grace(&self) -> Duration {
        self.poll * 4
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Detach a replaced certificate from the listener, delete it, forget it.
    Retire {
        arn: String,
    },
    /// Nothing is left in the slot: delete its record.
    Remove,
    /// Freeze the names of the open change and request the certificate for exactly
    /// them. Only the worker whose claim is written makes the request.
    Claim {
        token: String,
        names: Vec<Hostname>,
    },
    /// Request the certificate of a claim whose worker did not finish it.
    Request {
        token: String,
        names: Vec<Hostname>,
    },
    /// Put the certificate's DNS validation records into the hosted zone.
    PublishValidation {
        arn: String,
    },
    /// Look at the certificate and attach it to the listener once it is issued.
    AttachWhenIssued {
        arn: String,
    },
    /// Make the attached replacement current (or drop the current certificate of a
    /// retiring slot); the old one moves to `retired`.
    Swap,
    Wait {
        after: Duration,
        why: String,
    },
    Settled,
}

pub fn next_action(slot: &Slot, region: &[Slot], now: DateTime<Utc>, timing: Timing) -> Action {
    if let Some(old) = slot.retired.first() {
        return Action::Retire { arn: old.arn.clone() };
    }
    let Some(pending) = &slot.pending else {
        return if slot.current.is_none() {
            Action::Remove
        } else {
            Action::Settled
        };
    };
    if pending.names.is_empty() || matches!(pending.issuance, Issuance::Attached { .. }) {
        return match handoff_blocker(slot, region) {
            Some(why) => Action::Wait {
                after: timing.poll,
                why,
            },
            None => Action::Swap,
        };
    }
    match &pending.issuance {
        Issuance::Open => {
            let ready_at = pending.opened_at + chrono::Duration::from_std(timing.gather).unwrap_or_default();
            match (ready_at - now).to_std() {
                Ok(left) if !left.is_zero() => Action::Wait {
                    after: left,
                    why: format!("certificate slot {} gathers names until {ready_at}", slot.n),
                },
                _ => Action::Claim {
                    token: slot.idempotency_token().unwrap_or_default(),
                    names: pending.names.keys().cloned().collect(),
                },
            }
        }
        Issuance::Claimed { at } => {
            let takeover_at = *at + chrono::Duration::from_std(timing.claim_grace()).unwrap_or_default();
            match (takeover_at - now).to_std() {
                Ok(left) if !left.is_zero() => Action::Wait {
                    after: left.min(timing.poll),
                    why: format!("certificate of slot {} is being requested", slot.n),
                },
                _ => Action::Request {
                    token: slot.idempotency_token().unwrap_or_default(),
                    names: pending.names.keys().cloned().collect(),
                },
            }
        }
        Issuance::Requested { arn } => Action::PublishValidation { arn: arn.clone() },
        Issuance::Validating { arn } => Action::AttachWhenIssued { arn: arn.clone() },
        Issuance::Attached { .. } => unreachable!("handled above"),
    }
}

/// A name leaving `slot` for another slot that does not have it on an attached
/// certificate yet: the current certificate must stay until it does.
fn handoff_blocker(slot: &Slot, region: &[Slot]) -> Option<String> {
    let staying = slot.target();
    let current = slot.current.as_ref()?;
    for name in current.names.keys().filter(|n| !staying.contains_key(*n)) {
        if let Some(other) = region
            .iter()
            .find(|o| o.n != slot.n && o.target().contains_key(name) && !o.covers(name))
        {
            return Some(format!(
                "hostname {name} moves from certificate slot {} to slot {}, whose certificate is not attached yet",
                slot.n, other.n
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Region, TenantId};
    use crate::record::slot::Names;

    const TIMING: Timing = Timing {
        poll: Duration::from_secs(5),
        gather: Duration::from_secs(10),
    };

    fn names(list: &[&str]) -> Names {
        list.iter()
            .map(|h| (Hostname::parse(h).unwrap(), TenantId::parse("acme").unwrap()))
            .collect()
    }

    fn slot(n: u32, list: &[&str], at: DateTime<Utc>) -> Slot {
        Slot::open(
            Region::parse("eu-west-1").unwrap(),
            n,
            "listener-a".into(),
            names(list),
            at,
        )
    }

    fn with(mut s: Slot, issuance: Issuance) -> Slot {
        s.pending.as_mut().unwrap().issuance = issuance;
        s
    }

    fn issued(s: Slot, arn: &str) -> Slot {
        let mut s = with(s, Issuance::Attached { arn: arn.into() });
        s.swap();
        s
    }

    #[test]
    fn a_new_change_gathers_names_then_is_claimed_requested_validated_and_attached() {
        let t0 = Utc::now();
        let s = slot(1, &["a.example.com", "b.example.com"], t0);
        assert!(matches!(next_action(&s, &[], t0, TIMING), Action::Wait { .. }));
        let later = t0 + chrono::Duration::seconds(11);
        match next_action(&s, &[], later, TIMING) {
            Action::Claim { token, names } => {
                assert_eq!(Some(token), s.idempotency_token());
                assert_eq!(names.len(), 2);
            }
            other => panic!("expected a claim, got {other:?}"),
        }
        let s = with(s, Issuance::Claimed { at: later });
        assert!(
            matches!(next_action(&s, &[], later, TIMING), Action::Wait { .. }),
            "the claiming worker makes the request"
        );
        let abandoned = later + chrono::Duration::from_std(TIMING.claim_grace()).unwrap();
        match next_action(&s, &[], abandoned, TIMING) {
            Action::Request { token, .. } => assert_eq!(Some(token), s.idempotency_token()),
            other => panic!("expected a takeover, got {other:?}"),
        }
        let s = with(s, Issuance::Requested { arn: "arn-1".into() });
        assert_eq!(
            next_action(&s, &[], later, TIMING),
            Action::PublishValidation { arn: "arn-1".into() }
        );
        let s = with(s, Issuance::Validating { arn: "arn-1".into() });
        assert_eq!(
            next_action(&s, &[], later, TIMING),
            Action::AttachWhenIssued { arn: "arn-1".into() }
        );
        let s = with(s, Issuance::Attached { arn: "arn-1".into() });
        assert_eq!(next_action(&s, &[], later, TIMING), Action::Swap);
    }

    #[test]
    fn a_replaced_certificate_is_retired_before_anything_else_and_an_empty_slot_removed() {
        let t0 = Utc::now();
        let mut s = issued(slot(1, &["a.example.com"], t0), "arn-1");
        s.retarget(names(&["a.example.com", "b.example.com"]), t0);
        let s = issued(s, "arn-2");
        assert_eq!(
            next_action(&s, &[], t0, TIMING),
            Action::Retire { arn: "arn-1".into() }
        );
        let mut s = s;
        s.retired.clear();
        assert_eq!(next_action(&s, &[], t0, TIMING), Action::Settled);
        s.retarget(Names::new(), t0);
        assert_eq!(
            next_action(&s, &[], t0, TIMING),
            Action::Swap,
            "retiring needs no gathering"
        );
        s.swap();
        s.retired.clear();
        assert_eq!(next_action(&s, &[], t0, TIMING), Action::Remove);
    }

    #[test]
    fn a_slot_keeps_its_certificate_until_names_moving_away_are_attached_elsewhere() {
        let t0 = Utc::now();
        let mut source = issued(slot(1, &["a.example.com", "b.example.com"], t0), "arn-1");
        source.retarget(Names::new(), t0);
        let receiver = slot(2, &["a.example.com", "b.example.com"], t0);
        let region = vec![source.clone(), receiver.clone()];
        match next_action(&source, &region, t0, TIMING) {
            Action::Wait { why, .. } => {
                assert!(why.contains("moves from certificate slot 1 to slot 2"), "{why}")
            }
            other => panic!("expected to wait, got {other:?}"),
        }
        let receiver = issued(receiver, "arn-2");
        let region = vec![source.clone(), receiver];
        assert_eq!(next_action(&source, &region, t0, TIMING), Action::Swap);
    }

    #[test]
    fn a_released_name_does_not_hold_the_old_certificate() {
        let t0 = Utc::now();
        let mut s = issued(slot(1, &["a.example.com", "b.example.com"], t0), "arn-1");
        s.retarget(names(&["a.example.com"]), t0);
        let s = with(s, Issuance::Attached { arn: "arn-2".into() });
        assert_eq!(
            next_action(&s, std::slice::from_ref(&s), t0, TIMING),
            Action::Swap
        );
    }
}
