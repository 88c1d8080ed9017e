//! Maps SDK errors onto the store's Conflict / NotFound / Retryable / Invalid / Fatal.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::super::{Conflict, StoreError};

const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "LimitExceededException",
];

pub fn classify<E, R>(context: &str, table: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = DisplayErrorContext(&err).to_string();
    let context = context.to_owned();
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            match code {
                "ConditionalCheckFailedException" => StoreError::Conflict {
                    what: context,
                    detail: "the item changed since it was read".into(),
                    kind: Conflict::Version,
                },
                "ResourceNotFoundException" => StoreError::Fatal {
                    context,
                    message: format!(
                        "table {table:?} does not exist; create it with `tenantctl table create --table {table}`"
                    ),
                },
                // Every value is validated before it reaches DynamoDB, so a request it
                // still finds malformed was shaped by input that slipped through: refuse
                // it as invalid input (400, exit 2) with DynamoDB's reason, never a dump.
                "ValidationException" => {
                    let reason = service.err().message().unwrap_or("no reason given");
                    tracing::warn!(%context, %reason, "DynamoDB refused a request as malformed");
                    StoreError::Invalid {
                        context,
                        message: format!("DynamoDB refused the request: {reason}; check the values given"),
                    }
                }
                c if RETRYABLE_CODES.contains(&c) => StoreError::Retryable { context, message },
                _ => StoreError::Fatal { context, message },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Retryable { context, message }
        }
        _ => StoreError::Fatal { context, message },
    }
}

/// A cancelled transaction: a failed condition is a conflict, a conflicting
/// transaction or throttling may be retried.
/// `err` told as a conflict of `kind`, with `detail` saying what the refused
/// condition guarded; any other error as it is.
pub fn conflict_as(err: StoreError, kind: Conflict, detail: impl FnOnce() -> String) -> StoreError {
    match err {
        StoreError::Conflict { what, .. } => StoreError::Conflict {
            what,
            kind,
            detail: detail(),
        },
        other => other,
    }
}

pub fn cancellation(
    context: &str,
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
    explain: impl Fn(usize, &aws_sdk_dynamodb::types::CancellationReason) -> (Conflict, String),
) -> StoreError {
    for (i, reason) in reasons.iter().enumerate() {
        match reason.code() {
            Some("ConditionalCheckFailed") => {
                let (kind, detail) = explain(i, reason);
                return StoreError::Conflict {
                    what: context.to_owned(),
                    detail,
                    kind,
                };
            }
            Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded") => {
                return StoreError::Retryable {
                    context: context.to_owned(),
                    message: format!("transaction cancelled: {:?}", reason.code()),
                }
            }
            _ => {}
        }
    }
    StoreError::Fatal {
        context: context.to_owned(),
        message: format!("transaction cancelled: {reasons:?}"),
    }
}
