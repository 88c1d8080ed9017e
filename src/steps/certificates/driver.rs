//! Carries out the next action on a slot: the AWS call, then the slot's conditional
//! write. Every call is safe to repeat (idempotency token, UPSERT, attach of an
//! attached certificate, detach or delete of one that is gone), so when two workers
//! drive the same slot, both may make a call but only one write wins; the other
//! reloads and finds the work done.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::cloud::{CertificateCloud, CloudError, IssueStatus};
use super::issuance::{next_action, Action, Timing};
use crate::ports::{CertificateSlotStore, StoreError};
use crate::record::slot::{Issuance, Slot};

/// Where a slot stands after one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    /// Something changed (by us or by another worker): look again.
    Moved,
    Waiting {
        after: Duration,
        why: String,
    },
    Settled,
    Failed {
        retryable: bool,
        reason: String,
    },
}

pub struct Driver<'a> {
    pub cloud: &'a dyn CertificateCloud,
    pub slots: &'a dyn CertificateSlotStore,
    pub hosted_zone_id: &'a str,
    pub timing: Timing,
}

/// Tags on every certificate, so an operator can tell which slot it belongs to.
fn tags(slot: &Slot) -> Vec<(String, String)> {
    vec![
        ("managed-by".into(), "tenant-orchestrator".into()),
        ("certificate-slot".into(), format!("{}/{}", slot.region, slot.n)),
    ]
}

impl Driver<'_> {
    pub async fn drive(&self, slot: &Slot, region: &[Slot], now: DateTime<Utc>) -> Driven {
        let action = next_action(slot, region, now, self.timing);
        match self.perform(slot, action, now).await {
            Ok(driven) => driven,
            Err(Stop::Store(StoreError::Conflict { .. })) => Driven::Moved,
            Err(Stop::Store(e)) => Driven::Failed {
                retryable: matches!(e, StoreError::Retryable { .. }),
                reason: e.detailed(),
            },
            Err(Stop::Cloud(CloudError::Throttled(throttled))) => Driven::Waiting {
                after: throttled.wait,
                why: throttled.to_string(),
            },
            Err(Stop::Cloud(CloudError::InUse(why))) => Driven::Waiting {
                after: self.timing.poll,
                why,
            },
            Err(Stop::Cloud(CloudError::Retryable(reason))) => Driven::Failed {
                retryable: true,
                reason,
            },
            Err(Stop::Cloud(CloudError::Fatal(reason))) => Driven::Failed {
                retryable: false,
                reason: format!("certificate slot {} in {}: {reason}", slot.n, slot.region),
            },
        }
    }

    async fn perform(&self, slot: &Slot, action: Action, now: DateTime<Utc>) -> Result<Driven, Stop> {
        let region = &slot.region;
        let mut next = slot.clone();
        match action {
            Action::Settled => return Ok(Driven::Settled),
            Action::Wait { after, why } => return Ok(Driven::Waiting { after, why }),
            Action::Remove => {
                self.slots.remove_slot(slot).await?;
                info!(slot = slot.n, region = %region, "certificate slot removed");
                return Ok(Driven::Moved);
            }
            Action::Retire { arn } => {
                // Detach first: AWS refuses to delete a certificate a listener uses.
                self.cloud
                    .detach_certificate(region, &slot.listener_arn, &arn)
                    .await?;
                self.cloud.delete_certificate(region, &arn).await?;
                info!(slot = slot.n, region = %region, certificate = %arn, "replaced certificate detached and deleted");
                next.retired.retain(|c| c.arn != arn);
            }
            Action::Claim { token, names } => {
                // Written first, so only one worker requests; a conflict means another
                // worker claimed (or changed) the slot.
                set_issuance(&mut next, Issuance::Claimed { at: now });
                self.slots.save_slot(&next).await?;
                next.version += 1;
                let arn = self
                    .cloud
                    .request_certificate(region, &names, &token, &tags(slot))
                    .await?;
                info!(slot = slot.n, region = %region, certificate = %arn, names = names.len(), "certificate requested");
                set_issuance(&mut next, Issuance::Requested { arn });
            }
            Action::Request { token, names } => {
                let arn = self
                    .cloud
                    .request_certificate(region, &names, &token, &tags(slot))
                    .await?;
                info!(slot = slot.n, region = %region, certificate = %arn, names = names.len(), "certificate requested");
                set_issuance(&mut next, Issuance::Requested { arn });
            }
            Action::PublishValidation { arn } => {
                let Some(described) = self.cloud.describe_certificate(region, &arn).await? else {
                    return self.lost(slot, &arn, now).await;
                };
                if described.validation.is_empty() {
                    return Ok(Driven::Waiting {
                        after: self.timing.poll.min(Duration::from_secs(2)),
                        why: format!("ACM has not published the validation records of {arn} yet"),
                    });
                }
                self.cloud
                    .upsert_validation_records(region, self.hosted_zone_id, &described.validation)
                    .await?;
                set_issuance(&mut next, Issuance::Validating { arn });
            }
            Action::AttachWhenIssued { arn } => {
                let Some(described) = self.cloud.describe_certificate(region, &arn).await? else {
                    return self.lost(slot, &arn, now).await;
                };
                match described.status {
                    IssueStatus::Pending(status) => {
                        return Ok(Driven::Waiting {
                            after: self.timing.poll,
                            why: format!("certificate {arn} of slot {} is {status}", slot.n),
                        })
                    }
                    IssueStatus::Failed(reason) => return self.failed(slot, &arn, &reason, now).await,
                    IssueStatus::Issued => {
                        self.cloud
                            .attach_certificate(region, &slot.listener_arn, &arn)
                            .await?;
                        info!(slot = slot.n, region = %region, certificate = %arn, "certificate attached");
                        set_issuance(&mut next, Issuance::Attached { arn });
                    }
                }
            }
            Action::Swap => next.swap(),
        }
        self.slots.save_slot(&next).await?;
        Ok(Driven::Moved)
    }

    /// The certificate being issued disappeared (deleted outside the orchestrator):
    /// ask again under a new generation.
    async fn lost(&self, slot: &Slot, arn: &str, now: DateTime<Utc>) -> Result<Driven, Stop> {
        warn!(slot = slot.n, certificate = %arn, "certificate being issued no longer exists; requesting a new one");
        let mut next = slot.clone();
        next.reopen_failed(now);
        self.slots.save_slot(&next).await?;
        Ok(Driven::Moved)
    }

    /// ACM will not issue the certificate. It was never attached, so it can go; the
    /// slot asks again (new generation, new token) when a step runs it next.
    async fn failed(&self, slot: &Slot, arn: &str, reason: &str, now: DateTime<Utc>) -> Result<Driven, Stop> {
        self.cloud.delete_certificate(&slot.region, arn).await?;
        let mut next = slot.clone();
        next.reopen_failed(now);
        self.slots.save_slot(&next).await?;
        let names: Vec<String> = slot
            .pending
            .as_ref()
            .map(|p| p.names.keys().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        Ok(Driven::Failed {
            retryable: false,
            reason: format!(
                "ACM did not issue certificate {arn} for {}: {reason}; check the names' DNS (CAA records, \
                 the validation CNAMEs in the hosted zone) and retry",
                names.join(", ")
            ),
        })
    }
}

fn set_issuance(slot: &mut Slot, issuance: Issuance) {
    if let Some(p) = &mut slot.pending {
        p.issuance = issuance;
    }
}

/// Why an action stopped early.
enum Stop {
    Store(StoreError),
    Cloud(CloudError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl From<CloudError> for Stop {
    fn from(e: CloudError) -> Self {
        Stop::Cloud(e)
    }
}
