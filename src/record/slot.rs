//! A certificate slot: one place on a listener where a shared ACM certificate lives,
//! the hostnames it covers, and the replacement being issued when they change.
//!
//! ACM certificates are immutable, so a slot changes its names by issuing a new
//! certificate (a new *generation*) with all of them, attaching it next to the old one
//! and only then retiring the old one. Everything needed to resume that sequence after
//! a crash is in the slot itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Hostname, Region, TenantId};

/// Hostnames and the tenant each belongs to.
pub type Names = BTreeMap<Hostname, TenantId>;

/// An issued certificate attached to the slot's listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    pub arn: String,
    pub generation: u64,
    pub names: Names,
}

/// How far the slot's next certificate has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Issuance {
    /// Not requested yet: other tenants' names may still join.
    Open,
    /// The names are frozen and the worker that froze them is requesting the
    /// certificate (with the slot's idempotency token).
    Claimed {
        at: DateTime<Utc>,
    },
    Requested {
        arn: String,
    },
    /// DNS validation records are in the hosted zone; waiting for `ISSUED`.
    Validating {
        arn: String,
    },
    /// Issued and attached next to the current certificate.
    Attached {
        arn: String,
    },
}

impl Issuance {
    pub fn arn(&self) -> Option<&str> {
        match self {
            Issuance::Open | Issuance::Claimed { .. } => None,
            Issuance::Requested { arn } | Issuance::Validating { arn } | Issuance::Attached { arn } => {
                Some(arn)
            }
        }
    }
}

/// The certificate a slot is moving to. Empty `names` retire the slot: no new
/// certificate, the current one leaves once its names are covered elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCertificate {
    pub generation: u64,
    pub names: Names,
    pub opened_at: DateTime<Utc>,
    pub issuance: Issuance,
}

/// What the allocator may do with a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing changing: the current certificate covers the slot's names.
    Idle,
    /// A change is planned but not requested: names may join or leave for free.
    Open,
    /// A certificate is being issued for frozen names: changes wait until it is done.
    InFlight,
    /// Going away (no names left, or they moved to other slots).
    Retiring,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub region: Region,
    pub n: u32,
    /// Tells this slot apart from an earlier one with the same number, so idempotency
    /// tokens never repeat across slots.
    pub incarnation: String,
    pub listener_arn: String,
    /// Generation of the newest certificate the slot has planned.
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<IssuedCertificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingCertificate>,
    /// Replaced certificates still to detach from the listener and delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<IssuedCertificate>,
    /// Optimistic-concurrency version of the stored item (kept outside the JSON body).
    #[serde(skip)]
    pub version: u64,
}

impl Slot {
    /// A new slot whose first certificate will cover `names`.
    pub fn open(region: Region, n: u32, listener_arn: String, names: Names, now: DateTime<Utc>) -> Self {
        Self {
            region,
            n,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            listener_arn,
            generation: 1,
            current: None,
            pending: Some(PendingCertificate {
                generation: 1,
                names,
                opened_at: now,
                issuance: Issuance::Open,
            }),
            retired: Vec::new(),
            version: 0,
        }
    }

    /// The names the slot is converging to.
    pub fn target(&self) -> Names {
        match (&self.pending, &self.current) {
            (Some(p), _) => p.names.clone(),
            (None, Some(c)) => c.names.clone(),
            (None, None) => Names::new(),
        }
    }

    pub fn current_names(&self) -> BTreeSet<Hostname> {
        self.current
            .as_ref()
            .map(|c| c.names.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn state(&self) -> SlotState {
        match &self.pending {
            None => SlotState::Idle,
            Some(p) if p.names.is_empty() => SlotState::Retiring,
            Some(p) if p.issuance == Issuance::Open => SlotState::Open,
            Some(_) => SlotState::InFlight,
        }
    }

    /// Whether nothing is left to do for or with this slot: its item can go.
    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.pending.is_none() && self.retired.is_empty()
    }

    /// Whether a step still has work to do on the slot.
    pub fn is_settled(&self) -> bool {
        self.pending.is_none() && self.retired.is_empty() && self.current.is_some()
    }

    /// The most certificates this slot may have on its listener at once: the current
    /// one, the replacement (attached before the current one leaves), and those retired
    /// but not detached yet.
    pub fn certificates_at_peak(&self) -> usize {
        usize::from(self.current.is_some())
            + usize::from(self.pending.as_ref().is_some_and(|p| !p.names.is_empty()))
            + self.retired.len()
    }

    /// Whether `name` is on this slot's attached certificate and meant to stay there.
    pub fn covers(&self, name: &Hostname) -> bool {
        self.current.as_ref().is_some_and(|c| c.names.contains_key(name)) && self.target().contains_key(name)
    }

    /// Plans the slot's names to become `target`. Only for `Idle` and `Open` slots: an
    /// in-flight request keeps the names it was made with.
    pub fn retarget(&mut self, target: Names, now: DateTime<Utc>) {
        debug_assert!(matches!(self.state(), SlotState::Idle | SlotState::Open));
        if self.current.as_ref().is_some_and(|c| c.names == target) {
            self.pending = None;
        } else if let Some(pending) = &mut self.pending {
            pending.names = target;
        } else {
            self.generation += 1;
            self.pending = Some(PendingCertificate {
                generation: self.generation,
                names: target,
                opened_at: now,
                issuance: Issuance::Open,
            });
        }
    }

    /// The ACM `IdempotencyToken` of the pending certificate: the same slot, generation
    /// and names always give the same token, so a repeated request returns the
    /// certificate of the first one instead of issuing another.
    pub fn idempotency_token(&self) -> Option<String> {
        let pending = self.pending.as_ref()?;
        let names: Vec<&str> = pending.names.keys().map(Hostname::as_str).collect();
        let input = format!(
            "{}|{}|{}|{}|{}",
            self.region,
            self.n,
            self.incarnation,
            pending.generation,
            names.join(",")
        );
        let digest = Sha256::digest(input.as_bytes());
        // 32 hex characters: ACM's limit, alphanumeric as it requires.
        Some(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }

    /// Moves the attached replacement (or nothing, when retiring) into place; the old
    /// certificate is kept in `retired` until it is detached and deleted.
    pub fn swap(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let replacement = match pending.issuance.arn() {
            Some(arn) if !pending.names.is_empty() => Some(IssuedCertificate {
                arn: arn.to_owned(),
                generation: pending.generation,
                names: pending.names,
            }),
            _ => None,
        };
        if let Some(old) = std::mem::replace(&mut self.current, replacement) {
            self.retired.push(old);
        }
    }

    /// Puts a pending certificate whose issuance failed back to `Open` under a new
    /// generation, so the next request gets a new token instead of the failed one.
    pub fn reopen_failed(&mut self, now: DateTime<Utc>) {
        if let Some(p) = &mut self.pending {
            self.generation += 1;
            p.generation = self.generation;
            p.opened_at = now;
            p.issuance = Issuance::Open;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Names {
        list.iter()
            .map(|h| (Hostname::parse(h).unwrap(), TenantId::parse("acme").unwrap()))
            .collect()
    }

    fn slot(list: &[&str]) -> Slot {
        Slot::open(
            Region::parse("eu-west-1").unwrap(),
            3,
            "listener-a".into(),
            names(list),
            Utc::now(),
        )
    }

    fn issued(mut s: Slot, arn: &str) -> Slot {
        s.pending.as_mut().unwrap().issuance = Issuance::Attached { arn: arn.into() };
        s.swap();
        s
    }

    #[test]
    fn a_new_slot_is_open_and_has_no_certificate_yet() {
        let s = slot(&["a.example.com"]);
        assert_eq!(s.state(), SlotState::Open);
        assert_eq!(s.certificates_at_peak(), 1);
        assert!(!s.covers(&Hostname::parse("a.example.com").unwrap()));
    }

    #[test]
    fn swapping_keeps_the_old_certificate_until_it_is_retired() {
        let mut s = issued(slot(&["a.example.com"]), "arn-1");
        assert!(s.is_settled());
        s.retarget(names(&["a.example.com", "b.example.com"]), Utc::now());
        assert_eq!(s.state(), SlotState::Open);
        assert_eq!(
            s.certificates_at_peak(),
            2,
            "replacement attaches next to the current one"
        );
        assert!(!s.covers(&Hostname::parse("b.example.com").unwrap()));
        let s = issued(s, "arn-2");
        assert_eq!(s.current.as_ref().unwrap().arn, "arn-2");
        assert_eq!(s.retired.len(), 1);
        assert_eq!(s.retired[0].arn, "arn-1");
        assert_eq!(s.certificates_at_peak(), 2);
        assert!(s.covers(&Hostname::parse("b.example.com").unwrap()));
    }

    #[test]
    fn retargeting_back_to_the_current_names_drops_the_change() {
        let mut s = issued(slot(&["a.example.com"]), "arn-1");
        s.retarget(names(&["a.example.com", "b.example.com"]), Utc::now());
        s.retarget(names(&["a.example.com"]), Utc::now());
        assert_eq!(s.state(), SlotState::Idle);
        assert!(s.pending.is_none());
    }

    #[test]
    fn tokens_differ_by_generation_and_incarnation_and_fit_acm() {
        let a = slot(&["a.example.com"]);
        let token = a.idempotency_token().unwrap();
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            a.idempotency_token(),
            a.clone().idempotency_token(),
            "deterministic"
        );
        let b = slot(&["a.example.com"]);
        assert_ne!(
            a.idempotency_token(),
            b.idempotency_token(),
            "same number, new slot"
        );
        let mut c = a.clone();
        c.reopen_failed(Utc::now());
        assert_ne!(a.idempotency_token(), c.idempotency_token(), "new generation");
    }

    #[test]
    fn a_retiring_slot_swaps_to_nothing() {
        let mut s = issued(slot(&["a.example.com"]), "arn-1");
        s.retarget(Names::new(), Utc::now());
        assert_eq!(s.state(), SlotState::Retiring);
        assert_eq!(s.certificates_at_peak(), 1);
        s.swap();
        assert!(s.current.is_none());
        assert_eq!(s.retired.len(), 1);
        s.retired.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn the_record_round_trips_through_json() {
        let s = issued(slot(&["a.example.com"]), "arn-1");
        let json = serde_json::to_string(&s).unwrap();
        let back: Slot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
