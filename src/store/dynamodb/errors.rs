//! Maps SDK errors onto the store's Conflict / NotFound / Retryable / Invalid / Fatal.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

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

/// `err` split by what the caller should do about it. A failure keeps the SDK error as
/// its source; its own message is only the short reason (DynamoDB's code and message,
/// or what failed on the way), so printing the chain says each thing once.
pub fn classify<E, R>(context: &str, table: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let context = context.to_owned();
    let failure = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let reason = service.err().message().unwrap_or("no reason given");
            match code {
                "ConditionalCheckFailedException" => {
                    return StoreError::Conflict {
                        what: context,
                        detail: "the item changed since it was read".into(),
                        kind: Conflict::Version,
                    }
                }
                "ResourceNotFoundException" => StoreError::fatal(
                    context,
                    format!("table {table:?} does not exist; create it with `tenantctl table create --table {table}`"),
                ),
                // Every value is validated before it reaches DynamoDB, so a request it
                // still finds malformed was shaped by input that slipped through: refuse
                // it as invalid input (400, exit 2) with DynamoDB's reason, never a dump.
                "ValidationException" => {
                    tracing::warn!(%context, %reason, "DynamoDB refused a request as malformed");
                    return StoreError::Invalid {
                        context,
                        message: format!("DynamoDB refused the request: {reason}; check the values given"),
                    };
                }
                c if RETRYABLE_CODES.contains(&c) => {
                    StoreError::retryable(context, format!("DynamoDB answered {c}: {reason}"))
                }
                "" => StoreError::fatal(context, "DynamoDB refused the request without an error code"),
                c => StoreError::fatal(context, format!("DynamoDB refused the request with {c}: {reason}")),
            }
        }
        SdkError::TimeoutError(_) => StoreError::retryable(context, "the request to DynamoDB timed out"),
        SdkError::DispatchFailure(_) => StoreError::retryable(
            context,
            "could not reach DynamoDB; check the network and the endpoint",
        ),
        SdkError::ResponseError(_) => StoreError::retryable(context, "DynamoDB's response could not be read"),
        _ => StoreError::fatal(
            context,
            "the request to DynamoDB could not be built; check the AWS configuration",
        ),
    };
    failure.with_source(err)
}

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

/// A failed `TransactWriteItems` whose every condition guards the same thing: a
/// refused one is a conflict of `kind`, with `detail`; anything else as [`classify`]
/// and [`cancellation`] tell it.
pub fn transaction_conflict_as(
    context: &str,
    table: &str,
    err: SdkError<TransactWriteItemsError, HttpResponse>,
    kind: Conflict,
    detail: impl Fn() -> String,
) -> StoreError {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancellation(context, cancelled.cancellation_reasons(), |_, _| {
                (kind.clone(), detail())
            })
        }
        _ => classify(context, table, err),
    }
}

/// A cancelled transaction: a failed condition is a conflict, a conflicting
/// transaction or throttling may be retried.
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
                return StoreError::retryable(
                    context,
                    format!("transaction cancelled: {}", reason.code().unwrap_or_default()),
                )
            }
            _ => {}
        }
    }
    StoreError::fatal(context, format!("transaction cancelled: {reasons:?}"))
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    use super::*;

    fn refused(code: &str, message: &str) -> SdkError<GetItemError, ()> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        SdkError::service_error(GetItemError::generic(meta), ())
    }

    fn unreachable() -> SdkError<GetItemError, ()> {
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused by 127.0.0.1:1",
        );
        SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)))
    }

    /// The text anyhow prints with `{:#}`: the error and every source, joined by ": ".
    fn printed(e: StoreError) -> String {
        format!("{:#}", anyhow::Error::from(e))
    }

    #[test]
    fn a_fatal_service_error_keeps_the_sdk_error_as_its_source() {
        let e = classify(
            "reading tenant t-1",
            "tenants",
            refused("AccessDeniedException", "not authorized"),
        );

        assert!(matches!(e, StoreError::Fatal { .. }), "{e:?}");
        assert!(
            e.to_string().contains("AccessDeniedException: not authorized"),
            "{e}"
        );
        let source = e.source().expect("the SDK error is kept as the source");
        assert!(source.downcast_ref::<SdkError<GetItemError, ()>>().is_some());
        let source_text = source.to_string();
        let text = printed(e);
        assert_eq!(text.matches(&source_text).count(), 1, "{text}");
    }

    #[test]
    fn an_unreachable_store_is_retryable_and_names_the_connection_failure_once() {
        let e = classify("reading tenant t-1", "tenants", unreachable());

        assert!(matches!(e, StoreError::Retryable { .. }), "{e:?}");
        assert!(e.to_string().contains("could not reach DynamoDB"), "{e}");
        assert!(
            !e.to_string().contains("connection refused"),
            "the message repeats its source: {e}"
        );
        let text = printed(e);
        assert_eq!(
            text.matches("connection refused by 127.0.0.1:1").count(),
            1,
            "{text}"
        );
        assert_eq!(text.matches("dispatch failure").count(), 1, "{text}");
    }

    #[test]
    fn a_missing_table_says_how_to_create_it_and_keeps_the_source() {
        let e = classify(
            "reading tenant t-1",
            "tenants",
            refused("ResourceNotFoundException", "Requested resource not found"),
        );

        assert!(
            e.to_string().contains("`tenantctl table create --table tenants`"),
            "{e}"
        );
        assert!(e.source().is_some());
        assert!(
            e.detailed().contains("Requested resource not found"),
            "{}",
            e.detailed()
        );
    }

    #[test]
    fn a_conflict_carries_no_source() {
        let e = classify(
            "writing tenant t-1",
            "tenants",
            refused(
                "ConditionalCheckFailedException",
                "The conditional request failed",
            ),
        );

        assert!(
            matches!(
                e,
                StoreError::Conflict {
                    kind: Conflict::Version,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.source().is_none());
    }
}
