//! The contract between the worker and the steps. A step is idempotent: it either
//! starts work or polls work it started, using the facts recorded on the tenant, so
//! running it again after a crash or a lost lease is safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::machine::StepKind;
use crate::record::{TenantFacts, TenantRecord};

/// What a finished step reports.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// One line for the history (`stack UPDATE_COMPLETE`, `revision 4 deployed`).
    pub summary: String,
    /// The tenant's facts after the step.
    pub facts: TenantFacts,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Done(StepOutput),
    /// Work was started or is still running; run the step again after `poll_after`.
    Pending {
        poll_after: Duration,
        facts: TenantFacts,
        note: String,
    },
    /// The step failed. Retryable failures are retried with backoff by the worker
    /// until the step's attempts or deadline run out; the others go to the machine.
    Failed {
        retryable: bool,
        reason: String,
    },
}

impl StepOutcome {
    pub fn done(summary: impl Into<String>, facts: TenantFacts) -> Self {
        StepOutcome::Done(StepOutput {
            summary: summary.into(),
            facts,
        })
    }

    pub fn retry(reason: impl Into<String>) -> Self {
        StepOutcome::Failed {
            retryable: true,
            reason: reason.into(),
        }
    }

    pub fn fail(reason: impl Into<String>) -> Self {
        StepOutcome::Failed {
            retryable: false,
            reason: reason.into(),
        }
    }
}

/// What a step gets to work with.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    pub tenant: &'a TenantRecord,
    pub step: StepKind,
    /// Failed attempts of this step so far: part of idempotency tokens, so a retry
    /// after a definite failure asks for new work while a re-run of the same attempt
    /// finds the work it already started.
    pub attempt: u32,
    pub worker: &'a str,
    pub fence: u64,
}

impl StepContext<'_> {
    /// A deterministic token for requests that accept one (CloudFormation, ACM):
    /// the same tenant, release, step and attempt always produce the same token.
    pub fn idempotency_token(&self) -> String {
        use sha2::{Digest, Sha256};
        let release = self
            .tenant
            .state
            .working_release()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let input = format!("{}|{}|{}|{}", self.tenant.id(), release, self.step, self.attempt);
        let digest = Sha256::digest(input.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("to-{hex}")
    }
}

#[async_trait]
pub trait Step: Send + Sync {
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome;
}

/// The implementation of each step kind the worker can run.
#[derive(Clone, Default)]
pub struct StepRegistry {
    steps: HashMap<StepKind, Arc<dyn Step>>,
}

impl StepRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, kind: StepKind, step: Arc<dyn Step>) -> Self {
        self.steps.insert(kind, step);
        self
    }

    /// The same implementation for every step kind.
    pub fn all(step: Arc<dyn Step>) -> Self {
        StepKind::ALL
            .iter()
            .fold(Self::new(), |r, kind| r.with(*kind, step.clone()))
    }

    pub fn get(&self, kind: StepKind) -> Option<&Arc<dyn Step>> {
        self.steps.get(&kind)
    }
}
