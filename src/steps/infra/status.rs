//! Reading CloudFormation: what a stack's status means for the operation a step
//! started, which stack events explain a failure, and request tokens. Pure.

use sha2::{Digest, Sha256};

/// A stack operation a step starts and then polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// Where an operation stands, judged from the stack's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Running,
    Succeeded,
    Failed,
}

/// The status after an operation: `*_IN_PROGRESS` (including the cleanup phases) is
/// still running; only the operation's own `*_COMPLETE` is success.
pub fn verdict(operation: Operation, status: &str) -> Verdict {
    if status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS" {
        return Verdict::Running;
    }
    match (operation, status) {
        (Operation::Create, "CREATE_COMPLETE")
        | (Operation::Update, "UPDATE_COMPLETE")
        | (Operation::Delete, "DELETE_COMPLETE") => Verdict::Succeeded,
        _ => Verdict::Failed,
    }
}

/// What a stack found before any operation of ours allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Another operation is running: wait for it.
    Busy,
    /// Stable and updatable.
    Settled,
    /// Its creation failed: it can only be deleted (and then created again).
    FailedCreate,
    /// Only an operator can move it on.
    Stuck,
}

pub fn standing(status: &str) -> Standing {
    match status {
        "REVIEW_IN_PROGRESS" => Standing::Stuck,
        s if s.ends_with("_IN_PROGRESS") => Standing::Busy,
        "CREATE_COMPLETE"
        | "UPDATE_COMPLETE"
        | "UPDATE_ROLLBACK_COMPLETE"
        | "IMPORT_COMPLETE"
        | "IMPORT_ROLLBACK_COMPLETE" => Standing::Settled,
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => Standing::FailedCreate,
        _ => Standing::Stuck,
    }
}

/// Why a stack in `status` needs an operator, and what they can do.
pub fn stuck_reason(stack: &str, status: &str) -> String {
    let advice = match status {
        "UPDATE_ROLLBACK_FAILED" => format!(
            "continue its rollback (aws cloudformation continue-update-rollback --stack-name {stack}), then retry"
        ),
        "DELETE_FAILED" => "a deletion failed half way; fix what its events name and deprovision the tenant".into(),
        "REVIEW_IN_PROGRESS" => "a change set was created but never executed; execute or delete it, then retry".into(),
        _ => "inspect its events (aws cloudformation describe-stack-events), fix the cause, then retry".into(),
    };
    format!("stack {stack} is {status}, a state the orchestrator does not change on its own: {advice}")
}

/// The part of a stack event that explains failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    pub token: Option<String>,
}

const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

impl StackEvent {
    fn is_stack(&self) -> bool {
        self.resource_type == STACK_TYPE
    }

    /// The stack-level event that begins an operation.
    fn starts_operation(&self) -> bool {
        self.is_stack()
            && matches!(
                self.status.as_str(),
                "CREATE_IN_PROGRESS" | "UPDATE_IN_PROGRESS" | "DELETE_IN_PROGRESS" | "IMPORT_IN_PROGRESS"
            )
    }

    fn is_cancellation(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r.contains("cancelled") || r.contains("canceled"))
    }
}

/// The events of one operation, from a newest-first list: those carrying its request
/// token when the service recorded tokens, otherwise everything back to the event
/// that started the latest operation.
pub fn operation_events<'a>(newest_first: &'a [StackEvent], token: Option<&str>) -> Vec<&'a StackEvent> {
    if let Some(token) = token {
        let tagged: Vec<&StackEvent> = newest_first
            .iter()
            .filter(|e| e.token.as_deref() == Some(token))
            .collect();
        if !tagged.is_empty() {
            return tagged;
        }
    }
    let mut out = Vec::new();
    for event in newest_first {
        out.push(event);
        if event.starts_operation() {
            break;
        }
    }
    out
}

/// Has the list reached the start of the operation (so no older page is needed)?
pub fn reaches_operation_start(newest_first: &[StackEvent], token: Option<&str>) -> bool {
    operation_events(newest_first, token)
        .last()
        .is_some_and(|e| e.starts_operation())
}

/// Why an operation failed: the root cause, i.e. the oldest resource failure that is
/// not a cancellation (when one resource fails, CloudFormation cancels the others, and
/// those newer events only say "Resource creation cancelled"); failing that, the
/// stack's own reason.
pub fn failure_reason(newest_first: &[StackEvent], token: Option<&str>) -> Option<String> {
    let events = operation_events(newest_first, token);
    let failures: Vec<&&StackEvent> = events
        .iter()
        .filter(|e| !e.is_stack() && e.status.ends_with("_FAILED"))
        .collect();
    let root = failures
        .iter()
        .rev()
        .find(|e| !e.is_cancellation())
        .or_else(|| failures.first());
    if let Some(e) = root {
        return Some(format!(
            "{} ({}) {}: {}",
            e.logical_id,
            e.resource_type,
            e.status,
            e.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    events.iter().filter(|e| e.is_stack()).find_map(|e| {
        e.reason
            .clone()
            .filter(|r| !r.is_empty() && r != "User Initiated")
    })
}

/// A request token for one operation: the step's idempotency token (tenant, release,
/// step, attempt) refined by what distinguishes this operation from an earlier one of
/// the same step, e.g. the stack's latest event, because CloudFormation ignores a
/// request whose token it has already seen for the stack.
pub fn request_token(step_token: &str, distinct: &str) -> String {
    let digest = Sha256::digest(format!("{step_token}|{distinct}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("to-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack_event(status: &str, reason: Option<&str>, token: Option<&str>) -> StackEvent {
        StackEvent {
            logical_id: "tenant-prod-acme".into(),
            resource_type: STACK_TYPE.into(),
            status: status.into(),
            reason: reason.map(Into::into),
            token: token.map(Into::into),
        }
    }

    fn resource_event(id: &str, status: &str, reason: &str, token: Option<&str>) -> StackEvent {
        StackEvent {
            logical_id: id.into(),
            resource_type: "AWS::RDS::DBCluster".into(),
            status: status.into(),
            reason: Some(reason.into()),
            token: token.map(Into::into),
        }
    }

    #[test]
    fn in_progress_statuses_are_running_and_only_the_operations_own_completion_succeeds() {
        assert_eq!(verdict(Operation::Create, "CREATE_IN_PROGRESS"), Verdict::Running);
        assert_eq!(
            verdict(Operation::Update, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
            Verdict::Running
        );
        assert_eq!(
            verdict(Operation::Update, "UPDATE_ROLLBACK_IN_PROGRESS"),
            Verdict::Running
        );
        assert_eq!(verdict(Operation::Create, "CREATE_COMPLETE"), Verdict::Succeeded);
        assert_eq!(verdict(Operation::Update, "UPDATE_COMPLETE"), Verdict::Succeeded);
        assert_eq!(verdict(Operation::Delete, "DELETE_COMPLETE"), Verdict::Succeeded);
        for (op, status) in [
            (Operation::Create, "ROLLBACK_COMPLETE"),
            (Operation::Create, "CREATE_FAILED"),
            (Operation::Create, "ROLLBACK_FAILED"),
            (Operation::Update, "UPDATE_ROLLBACK_COMPLETE"),
            (Operation::Update, "UPDATE_ROLLBACK_FAILED"),
            (Operation::Update, "CREATE_COMPLETE"),
            (Operation::Delete, "DELETE_FAILED"),
            (Operation::Create, "REVIEW_IN_PROGRESS"),
        ] {
            assert_eq!(verdict(op, status), Verdict::Failed, "{op:?} {status}");
        }
    }

    #[test]
    fn a_stack_found_before_an_operation_is_waited_for_updated_replaced_or_left_to_an_operator() {
        assert_eq!(standing("UPDATE_IN_PROGRESS"), Standing::Busy);
        assert_eq!(standing("DELETE_IN_PROGRESS"), Standing::Busy);
        for s in ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"] {
            assert_eq!(standing(s), Standing::Settled, "{s}");
        }
        for s in ["ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"] {
            assert_eq!(standing(s), Standing::FailedCreate, "{s}");
        }
        for s in ["UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "REVIEW_IN_PROGRESS"] {
            assert_eq!(standing(s), Standing::Stuck, "{s}");
        }
        assert!(stuck_reason("s", "UPDATE_ROLLBACK_FAILED").contains("continue-update-rollback"));
    }

    #[test]
    fn the_reason_is_the_root_cause_of_this_operation_not_a_cancellation_or_an_older_failure() {
        // Newest first: this update failed on the cluster, which cancelled the bucket;
        // an older update failed for another reason.
        let events = vec![
            stack_event("UPDATE_ROLLBACK_COMPLETE", None, None),
            stack_event(
                "UPDATE_ROLLBACK_IN_PROGRESS",
                Some("The following resource(s) failed to update: [DatabaseCluster]."),
                None,
            ),
            resource_event("Bucket", "UPDATE_FAILED", "Resource update cancelled", None),
            resource_event(
                "DatabaseCluster",
                "UPDATE_FAILED",
                "DBClusterSnapshot s1 not found.",
                None,
            ),
            stack_event("UPDATE_IN_PROGRESS", Some("User Initiated"), None),
            resource_event("DatabaseCluster", "UPDATE_FAILED", "an older failure", None),
            stack_event("UPDATE_IN_PROGRESS", Some("User Initiated"), None),
        ];
        let reason = failure_reason(&events, None).unwrap();
        assert_eq!(
            reason,
            "DatabaseCluster (AWS::RDS::DBCluster) UPDATE_FAILED: DBClusterSnapshot s1 not found."
        );
        assert!(reaches_operation_start(&events, None));
        assert!(
            !reaches_operation_start(&events[..3], None),
            "needs an older page"
        );
    }

    #[test]
    fn events_carrying_the_request_token_define_the_operation() {
        let events = vec![
            resource_event("Other", "UPDATE_FAILED", "someone else's update", Some("to-b")),
            resource_event("DatabaseCluster", "CREATE_FAILED", "ours", Some("to-a")),
            stack_event("CREATE_IN_PROGRESS", Some("User Initiated"), Some("to-a")),
        ];
        assert!(failure_reason(&events, Some("to-a")).unwrap().ends_with(": ours"));
        assert!(failure_reason(&events, Some("to-b"))
            .unwrap()
            .ends_with(": someone else's update"));
        // A token no event carries: back to the start of the latest operation, whose
        // oldest failure is the root cause.
        assert!(failure_reason(&events, Some("to-z")).unwrap().ends_with(": ours"));
    }

    #[test]
    fn without_resource_failures_the_stack_reason_is_given() {
        let events = vec![
            stack_event("ROLLBACK_COMPLETE", None, None),
            stack_event("ROLLBACK_IN_PROGRESS", Some("Parameter validation failed"), None),
            stack_event("CREATE_IN_PROGRESS", Some("User Initiated"), None),
        ];
        assert_eq!(
            failure_reason(&events, None).unwrap(),
            "Parameter validation failed"
        );
        assert_eq!(failure_reason(&[], None), None);
    }

    #[test]
    fn request_tokens_are_deterministic_distinct_and_valid_for_cloudformation() {
        let a = request_token("to-1", "event-1");
        assert_eq!(a, request_token("to-1", "event-1"));
        assert_ne!(a, request_token("to-1", "event-2"));
        assert_ne!(a, request_token("to-2", "event-1"));
        assert!(a.len() <= 128);
        assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
