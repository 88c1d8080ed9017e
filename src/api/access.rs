//! How the API applies a principal's role bindings ([`crate::domain::access`]) to what
//! a request touches, after [`super::auth::Caller`] established that the principal
//! holds the endpoint's scope somewhere:
//! - a tenant the principal may not read answers 404 exactly like an unknown one, so
//!   ids do not leak; one it may read but not act on answers 403 naming the binding
//!   that is missing, and the refusal is added to the tenant's history; a create or
//!   spec change refused for an id or hostname another tenant holds names that
//!   tenant only if the principal may read it;
//! - a rollout needs bindings that together cover every tenant its selector can reach
//!   ([`crate::domain::Access::covers`]);
//! - fleet-wide settings (policy, freezes, catalog, promotions, redelivery, reports)
//!   need a binding on the whole fleet.
//!
//! Every refusal is logged and counted in `tenantctl_access_refusals_total` (labels
//! `scope` and `kind`: `read`, `tenant`, `rollout`, `fleet`). Refused reads go to the
//! log and the metric only: writing them to a history would let a reader write.
//! Rollout and fleet-wide actions have no tenant history: their refusals and grants
//! go to the audit trail ([`crate::ports::AuditStore`]), bounded by
//! [`AUDIT_WRITE_TIMEOUT`] so a slow store never holds up or fails the decision.

use std::time::Duration;

use crate::domain::rollout::Selector;
use crate::domain::{Access, RolloutId, Scope, TenantId, TenantPlace};
use crate::ports::{Entity, StoreError, TenantSummary};
use crate::record::{Actor, AuditEntry, AuditOutcome, RolloutRecord, TenantRecord};

use super::auth::Caller;
use super::{ApiError, ApiState};

/// Who is asking: the name recorded as the actor, and the bindings.
pub(crate) struct Principal<'a> {
    pub name: &'a str,
    pub access: &'a Access,
    pub actor: Actor,
    /// How the principal was identified, for the audit trail.
    pub identity: String,
}

/// How long an audit entry may take to write before the decision goes on without it
/// (logged and counted in `tenantctl_audit_write_failures_total`).
pub(crate) const AUDIT_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Appends `entry` to the audit trail, waiting at most [`AUDIT_WRITE_TIMEOUT`]; a
/// failed or slow write is logged and counted, and the decision it records stands.
pub(super) async fn append_audit(state: &ApiState, entry: &AuditEntry) {
    let write = state.store().append_audit(entry, state.audit_retention());
    let failure = match tokio::time::timeout(AUDIT_WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => ("store", e.detailed()),
        Err(_) => (
            "timeout",
            format!("no answer within {}s", AUDIT_WRITE_TIMEOUT.as_secs()),
        ),
    };
    ::metrics::counter!("tenantctl_audit_write_failures_total", "reason" => failure.0).increment(1);
    tracing::warn!(caller = %entry.principal, action = %entry.action, target = %entry.target,
        outcome = entry.outcome.as_str(), error = %failure.1,
        "could not append an access decision to the audit trail");
}

fn count_refusal(principal: &str, needs: Scope, kind: &'static str, what: &str) {
    ::metrics::counter!("tenantctl_access_refusals_total", "scope" => needs.as_str(), "kind" => kind)
        .increment(1);
    tracing::warn!(caller = %principal, needs = needs.as_str(), kind, %what, "refused by the caller's role bindings");
}

impl Principal<'_> {
    /// Whether the principal may see the tenant at `place`.
    pub fn sees(&self, place: TenantPlace<'_>) -> bool {
        self.access.allows(Scope::Read, place)
    }

    /// Checks `needs` on the loaded tenant `record` for `action` (`upgrade`, `view`…):
    /// 404 when the principal may not read it, 403 (recorded in its history) when it
    /// may read it but not do this.
    pub async fn check_tenant(
        &self,
        state: &ApiState,
        record: &TenantRecord,
        needs: Scope,
        action: &str,
    ) -> Result<(), ApiError> {
        let place = TenantPlace::from(&record.spec);
        if !self.sees(place) {
            count_refusal(
                self.name,
                Scope::Read,
                "read",
                &format!("{action} {}", record.id()),
            );
            // The very answer the store gives for a tenant that does not exist.
            return Err(StoreError::NotFound {
                entity: Entity::Tenant,
                what: format!("tenant {}", record.id()),
            }
            .into());
        }
        if self.access.allows(needs, place) {
            return Ok(());
        }
        count_refusal(self.name, needs, "tenant", &format!("{action} {}", record.id()));
        let said = format!(
            "{} asked to {action}, which needs {} on {place}; it holds {}",
            self.name,
            needs.as_str(),
            self.access.describe(needs)
        );
        if let Err(e) = state
            .commands()
            .record_refusal(record.id(), said, &self.actor)
            .await
        {
            // The refusal stands whether or not its record could be written.
            tracing::warn!(tenant = %record.id(), error = %e.detailed(), "could not record a refused action in the history");
        }
        Err(ApiError::Forbidden(format!(
            "{} may not {action} {place}: that needs a {} binding that includes it, and {} holds {}; \
             ask an administrator for such a binding",
            self.name,
            needs.as_str(),
            self.name,
            self.access.describe(needs)
        )))
    }

    /// Loads tenant `id` and checks `needs` on it for `action`.
    pub async fn tenant(
        &self,
        state: &ApiState,
        id: &TenantId,
        needs: Scope,
        action: &str,
    ) -> Result<TenantRecord, ApiError> {
        let record = state.commands().store().load(id).await?;
        self.check_tenant(state, &record, needs, action).await?;
        Ok(record)
    }

    /// Checks `needs` on a tenant about to be created at `place`.
    pub fn check_new_tenant(
        &self,
        place: TenantPlace<'_>,
        needs: Scope,
        action: &str,
    ) -> Result<(), ApiError> {
        if self.access.allows(needs, place) {
            return Ok(());
        }
        count_refusal(self.name, needs, "tenant", &format!("{action} {}", place.id));
        Err(ApiError::Forbidden(format!(
            "{} may not {action} {place}: that needs a {} binding that includes it, and {} holds {}; \
             pick a place one of its bindings covers, or ask an administrator",
            self.name,
            needs.as_str(),
            self.name,
            self.access.describe(needs)
        )))
    }

    /// The rows of a tenant listing the principal may see. The listing index holds no
    /// environment, so when a read binding names environments the page's tenants are read
    /// in one batch (a request per 100 rows); otherwise the rows decide alone.
    pub async fn visible(
        &self,
        state: &ApiState,
        rows: Vec<TenantSummary>,
    ) -> Result<Vec<TenantSummary>, StoreError> {
        if self.access.is_unrestricted(Scope::Read) {
            return Ok(rows);
        }
        if !self.access.names_environments(Scope::Read) {
            return Ok(rows
                .into_iter()
                .filter(|row| {
                    self.sees(TenantPlace {
                        id: &row.id,
                        environment: None,
                        region: &row.region,
                        group: &row.group,
                    })
                })
                .collect());
        }
        let ids: Vec<TenantId> = rows.iter().map(|row| row.id.clone()).collect();
        // A tenant deleted since it was listed is not among the records.
        let records = state.commands().store().load_many(&ids).await?;
        let seen: std::collections::HashSet<&TenantId> = (records.iter())
            .filter(|record| self.sees(TenantPlace::from(&record.spec)))
            .map(|record| record.id())
            .collect();
        Ok(rows.into_iter().filter(|row| seen.contains(&row.id)).collect())
    }

    /// Whether the principal may see tenant `id` (false when it no longer exists).
    pub async fn sees_tenant(&self, state: &ApiState, id: &TenantId) -> Result<bool, StoreError> {
        match state.commands().store().load(id).await {
            Ok(record) => Ok(self.sees(TenantPlace::from(&record.spec))),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `e`, said without naming a tenant the principal may not see: another tenant's
    /// hold on a hostname names its owner only to a principal that may read it, so a
    /// restricted token cannot learn, by claiming hostnames, which tenants exist
    /// outside its bindings.
    pub async fn unseen_hidden(&self, state: &ApiState, e: StoreError) -> ApiError {
        let StoreError::HostnameTaken { hostname, owner } = &e else {
            return e.into();
        };
        let visible = match TenantId::parse(owner) {
            Ok(owner) => self.sees_tenant(state, &owner).await.unwrap_or(false),
            Err(_) => false,
        };
        match visible {
            true => e.into(),
            false => ApiError::Conflict {
                code: "hostname_taken",
                message: format!(
                    "hostname {hostname} is already used by another tenant; choose another hostname"
                ),
            },
        }
    }

    /// Whether the principal may see an event about `subject` (`tenant/<id>`,
    /// `rollout/<id>`); anything else is for principals that may read every tenant.
    pub async fn sees_subject(&self, state: &ApiState, subject: &str) -> Result<bool, StoreError> {
        if self.access.is_unrestricted(Scope::Read) {
            return Ok(true);
        }
        if let Some(id) = subject
            .strip_prefix("tenant/")
            .and_then(|id| TenantId::parse(id).ok())
        {
            return self.sees_tenant(state, &id).await;
        }
        if let Some(id) = subject
            .strip_prefix("rollout/")
            .and_then(|id| RolloutId::parse(id).ok())
        {
            return match state.store().load_rollout(&id).await {
                Ok(record) => Ok(self.sees_rollout(&record.spec.selector)),
                Err(StoreError::NotFound { .. }) => Ok(false),
                Err(other) => Err(other),
            };
        }
        Ok(false)
    }

    /// Whether the principal may see a rollout: its read bindings together cover its
    /// selector.
    pub fn sees_rollout(&self, selector: &Selector) -> bool {
        self.access.covers(Scope::Read, selector)
    }

    /// Rollout `id` if the principal may see it; an unknown rollout's 404 otherwise.
    pub async fn rollout(&self, state: &ApiState, id: &RolloutId) -> Result<RolloutRecord, ApiError> {
        let record = state.store().load_rollout(id).await?;
        if !self.sees_rollout(&record.spec.selector) {
            count_refusal(self.name, Scope::Read, "read", &format!("view rollout {id}"));
            return Err(StoreError::NotFound {
                entity: Entity::Rollout,
                what: format!("rollout {id}"),
            }
            .into());
        }
        Ok(record)
    }

    /// Checks `needs` on every tenant a rollout's `selector` can reach, for `action`.
    pub fn check_rollout(&self, selector: &Selector, needs: Scope, action: &str) -> Result<(), ApiError> {
        if self.access.covers(needs, selector) {
            return Ok(());
        }
        count_refusal(self.name, needs, "rollout", action);
        Err(ApiError::Forbidden(format!(
            "{} may not {action}: its selector reaches tenants outside the {} bindings of {} ({}); \
             narrow the selector (environment, regions, groups or tenants) to tenants its bindings cover",
            self.name,
            needs.as_str(),
            self.name,
            self.access.describe(needs)
        )))
    }

    /// [`Self::check_rollout`] for a state-changing `action` on `target`
    /// (`rollout/<id>`): the refusal or the grant goes to the audit trail.
    pub async fn check_rollout_action(
        &self,
        state: &ApiState,
        selector: &Selector,
        needs: Scope,
        action: &str,
        target: &str,
    ) -> Result<(), ApiError> {
        let decided = self.check_rollout(selector, needs, action);
        self.audit(state, needs, action, target, &decided).await;
        decided
    }

    /// [`Self::check_fleet_wide`] for a state-changing `action` on `target` (`policy`,
    /// `freeze/<id>`, `promotion/<name>`, `catalog`, `event/<id>`): the refusal or the
    /// grant goes to the audit trail.
    pub async fn check_fleet_action(
        &self,
        state: &ApiState,
        needs: Scope,
        action: &str,
        target: &str,
    ) -> Result<(), ApiError> {
        let decided = self.check_fleet_wide(needs, action);
        self.audit(state, needs, action, target, &decided).await;
        decided
    }

    /// Records a state-changing `action` granted without a check of what it touches
    /// (the principal holds `needs` on the whole fleet).
    pub async fn record_grant(&self, state: &ApiState, needs: Scope, action: &str, target: &str) {
        self.audit(state, needs, action, target, &Ok(())).await;
    }

    /// Appends the decision to the audit trail, waiting at most
    /// [`AUDIT_WRITE_TIMEOUT`]; a failed or slow write is logged and counted, and the
    /// decision stands.
    async fn audit(
        &self,
        state: &ApiState,
        needs: Scope,
        action: &str,
        target: &str,
        decided: &Result<(), ApiError>,
    ) {
        let (outcome, reason) = match decided {
            Ok(()) => (
                AuditOutcome::Granted,
                format!("allowed by {}", self.access.describe(needs)),
            ),
            Err(refused) => (AuditOutcome::Refused, refused.to_string()),
        };
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            principal: self.name.to_owned(),
            identified_by: self.identity.clone(),
            scope: needs,
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
            reason,
        };
        append_audit(state, &entry).await;
    }

    /// Checks that `needs` is granted on the whole fleet, for a fleet-wide `action`.
    pub fn check_fleet_wide(&self, needs: Scope, action: &str) -> Result<(), ApiError> {
        if self.access.is_unrestricted(needs) {
            return Ok(());
        }
        count_refusal(self.name, needs, "fleet", action);
        Err(ApiError::Forbidden(format!(
            "{} may not {action}: it acts on the whole fleet and needs {} on every tenant, and {} holds {}; \
             ask an administrator",
            self.name,
            needs.as_str(),
            self.name,
            self.access.describe(needs)
        )))
    }
}

impl<S> Caller<S> {
    pub(crate) fn principal(&self) -> Principal<'_> {
        Principal {
            name: &self.name,
            access: &self.access,
            actor: self.actor(),
            identity: self.identity.clone(),
        }
    }
}
