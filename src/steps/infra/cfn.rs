//! The CloudFormation calls of the infrastructure steps, with the service's answers
//! that are not errors for us ("does not exist", "No updates are to be performed")
//! turned into values.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, ExecutionStatus, Parameter,
    Replacement as SdkReplacement, RollbackConfiguration, TemplateStage,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::status::{self, Operation, StackEvent, Verdict};
use super::template::ParamValue;
use super::InfraError;
use crate::domain::change_set::{ChangeAction as Action, Replacement, ResourceChange};

/// The template creates an IAM role without a name (see the template's unit test).
const CAPABILITIES: [Capability; 1] = [Capability::CapabilityIam];

/// Older pages of events are read only until the operation's start is found.
const MAX_EVENT_PAGES: usize = 5;

/// A stack as DescribeStacks shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub parameters: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub termination_protection: bool,
}

/// The stack named (or with the id) `stack`; `None` when it does not exist. By id,
/// a deleted stack is still found, as `DELETE_COMPLETE`.
pub async fn describe(cf: &Client, stack: &str) -> Result<Option<StackView>, InfraError> {
    let response = match cf.describe_stacks().stack_name(stack).send().await {
        Ok(r) => r,
        Err(err) if err.code() == Some("ValidationError") && err.message().is_some_and(is_missing) => {
            return Ok(None)
        }
        Err(err) => return Err(InfraError::aws(&format!("describing stack {stack}"), err)),
    };
    Ok(response.stacks().first().map(|s| StackView {
        id: s.stack_id().unwrap_or_default().to_owned(),
        name: s.stack_name().unwrap_or_default().to_owned(),
        status: s
            .stack_status()
            .map(|st| st.as_str().to_owned())
            .unwrap_or_default(),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| Some((p.parameter_key()?.to_owned(), p.parameter_value()?.to_owned())))
            .collect(),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect(),
        termination_protection: s.enable_termination_protection().unwrap_or(false),
    }))
}

fn is_missing(message: &str) -> bool {
    message.contains("does not exist")
}

/// CloudFormation answers an update it will not start with a `ValidationError` whose
/// only distinction is its text: nothing to change, or the stack is busy.
fn update_refusal(message: &str) -> Option<UpdateStart> {
    if message.contains("No updates are to be performed") {
        Some(UpdateStart::NoChanges)
    } else if message.contains("_IN_PROGRESS state") {
        Some(UpdateStart::Busy(message.to_owned()))
    } else {
        None
    }
}

/// The template body the stack was last given (before any transform).
pub async fn original_template(cf: &Client, stack: &str) -> Result<String, InfraError> {
    let response = cf
        .get_template()
        .stack_name(stack)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| InfraError::aws(&format!("reading the template of stack {stack}"), e))?;
    Ok(response.template_body().unwrap_or_default().to_owned())
}

async fn events_page(
    cf: &Client,
    stack_id: &str,
    next: Option<String>,
) -> Result<(Vec<StackEvent>, Option<String>, Option<String>), InfraError> {
    let response = cf
        .describe_stack_events()
        .stack_name(stack_id)
        .set_next_token(next)
        .send()
        .await
        .map_err(|e| InfraError::aws(&format!("reading the events of stack {stack_id}"), e))?;
    let latest = response
        .stack_events()
        .first()
        .and_then(|e| e.event_id())
        .map(str::to_owned);
    let events = response
        .stack_events()
        .iter()
        .map(|e| StackEvent {
            logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
            resource_type: e.resource_type().unwrap_or_default().to_owned(),
            status: e
                .resource_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            reason: e.resource_status_reason().map(str::to_owned),
            token: e.client_request_token().map(str::to_owned),
        })
        .collect();
    Ok((events, latest, response.next_token().map(str::to_owned)))
}

/// The id of the stack's newest event: it changes with every operation, so it tells
/// one revision of the stack from the next.
pub async fn latest_event(cf: &Client, stack_id: &str) -> Result<String, InfraError> {
    let (_, latest, _) = events_page(cf, stack_id, None).await?;
    Ok(latest.unwrap_or_default())
}

/// Why the operation sent with `token` failed, from the stack's events.
pub async fn failure_reason(cf: &Client, stack_id: &str, token: Option<&str>) -> Result<String, InfraError> {
    let mut events = Vec::new();
    let mut next = None;
    for _ in 0..MAX_EVENT_PAGES {
        let (page, _, more) = events_page(cf, stack_id, next).await?;
        events.extend(page);
        if more.is_none() || status::reaches_operation_start(&events, token) {
            break;
        }
        next = more;
    }
    Ok(status::failure_reason(&events, token)
        .unwrap_or_else(|| "CloudFormation recorded no reason in the stack's events".into()))
}

fn sdk_parameters(values: impl IntoIterator<Item = (String, ParamValue)>) -> Vec<Parameter> {
    values
        .into_iter()
        .map(|(key, value)| match value {
            ParamValue::Value(v) => Parameter::builder().parameter_key(key).parameter_value(v).build(),
            ParamValue::Previous => Parameter::builder()
                .parameter_key(key)
                .use_previous_value(true)
                .build(),
        })
        .collect()
}

/// Sends `CreateStack`. A repeated request (same token, or the stack exists) is not an
/// error: the caller looks at the stack next.
pub async fn create(
    cf: &Client,
    stack: &str,
    template_body: &str,
    parameters: &BTreeMap<String, String>,
    token: &str,
    termination_protection: bool,
) -> Result<(), InfraError> {
    let values = parameters
        .iter()
        .map(|(k, v)| (k.clone(), ParamValue::Value(v.clone())));
    let result = cf
        .create_stack()
        .stack_name(stack)
        .template_body(template_body)
        .set_parameters(Some(sdk_parameters(values)))
        .set_capabilities(Some(CAPABILITIES.to_vec()))
        .enable_termination_protection(termination_protection)
        .client_request_token(token)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                err.code(),
                Some("AlreadyExistsException" | "TokenAlreadyExistsException")
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(InfraError::aws(&format!("creating stack {stack}"), err)),
    }
}

/// The template an update applies.
pub enum TemplateSource<'a> {
    Body(&'a str),
    /// `UsePreviousTemplate`: the stack's own.
    Previous,
}

/// What `UpdateStack` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStart {
    Started,
    /// "No updates are to be performed": the stack already is what was asked.
    NoChanges,
    /// The stack is in the middle of another operation.
    Busy(String),
}

pub async fn update(
    cf: &Client,
    stack: &str,
    template: TemplateSource<'_>,
    parameters: Vec<(String, ParamValue)>,
    token: &str,
) -> Result<UpdateStart, InfraError> {
    let request = cf
        .update_stack()
        .stack_name(stack)
        .set_parameters(Some(sdk_parameters(parameters)))
        .set_capabilities(Some(CAPABILITIES.to_vec()))
        .client_request_token(token);
    let request = match template {
        TemplateSource::Body(body) => request.template_body(body),
        TemplateSource::Previous => request.use_previous_template(true),
    };
    match request.send().await {
        Ok(_) => Ok(UpdateStart::Started),
        Err(err) if err.code() == Some("TokenAlreadyExistsException") => Ok(UpdateStart::Started),
        Err(err) if err.code() == Some("ValidationError") => {
            match update_refusal(err.message().unwrap_or_default()) {
                Some(refusal) => Ok(refusal),
                None => Err(InfraError::aws(&format!("updating stack {stack}"), err)),
            }
        }
        Err(err) => Err(InfraError::aws(&format!("updating stack {stack}"), err)),
    }
}

/// Turns termination protection off if it is on, then sends `DeleteStack` for this
/// very stack (by id, so a newer stack of the same name is never deleted).
pub async fn delete(cf: &Client, stack: &StackView, token: &str) -> Result<(), InfraError> {
    if stack.termination_protection {
        cf.update_termination_protection()
            .stack_name(&stack.id)
            .enable_termination_protection(false)
            .send()
            .await
            .map_err(|e| {
                InfraError::aws(
                    &format!("turning off termination protection of stack {}", stack.name),
                    e,
                )
            })?;
    }
    cf.delete_stack()
        .stack_name(&stack.id)
        .client_request_token(token)
        .send()
        .await
        .map_err(|e| InfraError::aws(&format!("deleting stack {}", stack.name), e))?;
    Ok(())
}

/// Where an operation we started stands.
pub enum Observed {
    Running(StackView),
    Succeeded(StackView),
    /// The stack does not exist (any more).
    Gone,
}

/// Looks at `stack` (name or id) after `operation` was sent with `token`; a failed
/// operation is an error whose message carries the stack's reason and `advice`.
pub async fn observe(
    cf: &Client,
    stack: &str,
    operation: Operation,
    token: Option<&str>,
    advice: &str,
) -> Result<Observed, InfraError> {
    let Some(view) = describe(cf, stack).await? else {
        return Ok(Observed::Gone);
    };
    match status::verdict(operation, &view.status) {
        Verdict::Running => Ok(Observed::Running(view)),
        Verdict::Succeeded => Ok(Observed::Succeeded(view)),
        Verdict::Failed => {
            let reason = failure_reason(cf, &view.id, token).await?;
            Err(InfraError::Stack(format!(
                "stack {} is {}: {reason}. {advice}",
                view.name, view.status
            )))
        }
    }
}

/// A change set as DescribeChangeSet shows it, every page read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSetState {
    /// Still being computed.
    Pending,
    /// Ready: what executing it would do to each resource.
    Ready(Vec<ResourceChange>),
    /// CloudFormation found nothing to change.
    NoChanges,
    /// It could not be created; CloudFormation's reason.
    Failed(String),
    /// No change set of that name exists on the stack.
    Missing,
    /// It was executed (or is being executed): the stack update is under way or done.
    Executed,
    /// The stack changed since it was computed; it can no longer be executed.
    Obsolete,
}

/// Sends `CreateChangeSet` (type UPDATE) named `name` on `stack`. An existing change
/// set of that name (a repeated request) is not an error: the caller describes it next.
pub async fn create_change_set(
    cf: &Client,
    stack: &str,
    name: &str,
    template_body: &str,
    parameters: Vec<(String, ParamValue)>,
) -> Result<(), InfraError> {
    create_update_change_set(cf, stack, name, template_body, parameters, None).await
}

/// [`create_change_set`] for a change set that will be executed: with `rollback`,
/// CloudFormation rolls the update back when one of its triggers is in ALARM.
pub async fn create_update_change_set(
    cf: &Client,
    stack: &str,
    name: &str,
    template_body: &str,
    parameters: Vec<(String, ParamValue)>,
    rollback: Option<RollbackConfiguration>,
) -> Result<(), InfraError> {
    let result = cf
        .create_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .change_set_type(ChangeSetType::Update)
        .template_body(template_body)
        .set_parameters(Some(sdk_parameters(parameters)))
        .set_capabilities(Some(CAPABILITIES.to_vec()))
        .set_rollback_configuration(rollback)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("AlreadyExistsException") => Ok(()),
        Err(err) => Err(InfraError::aws(
            &format!("creating change set {name} of stack {stack}"),
            err,
        )),
    }
}

/// CloudFormation tells a change set without changes from a failed one only by its
/// status reason.
fn change_set_outcome(status: &ChangeSetStatus, reason: &str) -> Option<ChangeSetState> {
    match status {
        ChangeSetStatus::CreateComplete => None,
        ChangeSetStatus::Failed
            if reason.contains("didn't contain changes") || reason.contains("No updates") =>
        {
            Some(ChangeSetState::NoChanges)
        }
        ChangeSetStatus::Failed | ChangeSetStatus::DeleteFailed | ChangeSetStatus::DeleteComplete => {
            Some(ChangeSetState::Failed(reason.to_owned()))
        }
        _ => Some(ChangeSetState::Pending),
    }
}

/// The change set `name` of `stack`, with the changes of every page.
pub async fn describe_change_set(cf: &Client, stack: &str, name: &str) -> Result<ChangeSetState, InfraError> {
    let mut changes = Vec::new();
    let mut next = None;
    loop {
        let response = match cf
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(name)
            .set_next_token(next)
            .send()
            .await
        {
            Ok(r) => r,
            Err(err) if err.code() == Some("ChangeSetNotFound") => return Ok(ChangeSetState::Missing),
            Err(err) if err.code() == Some("ValidationError") && err.message().is_some_and(is_missing) => {
                return Ok(ChangeSetState::Missing)
            }
            Err(err) => {
                return Err(InfraError::aws(
                    &format!("describing change set {name} of stack {stack}"),
                    err,
                ))
            }
        };
        let status = response
            .status()
            .cloned()
            .unwrap_or(ChangeSetStatus::CreatePending);
        if let Some(state) = change_set_outcome(&status, response.status_reason().unwrap_or_default()) {
            return Ok(state);
        }
        match response.execution_status() {
            Some(ExecutionStatus::Obsolete) => return Ok(ChangeSetState::Obsolete),
            Some(ExecutionStatus::Available | ExecutionStatus::Unavailable) | None => {}
            Some(_) => return Ok(ChangeSetState::Executed),
        }
        changes.extend(
            response
                .changes()
                .iter()
                .filter_map(|c| c.resource_change())
                .map(resource_change),
        );
        next = response.next_token().map(str::to_owned);
        if next.is_none() {
            return Ok(ChangeSetState::Ready(changes));
        }
    }
}

fn resource_change(c: &aws_sdk_cloudformation::types::ResourceChange) -> ResourceChange {
    let action = match c.action() {
        Some(ChangeAction::Add) => Action::Add,
        Some(ChangeAction::Modify) => Action::Modify,
        Some(ChangeAction::Remove) => Action::Remove,
        _ => Action::Other,
    };
    let replacement = match c.replacement() {
        Some(SdkReplacement::True) => Replacement::Always,
        Some(SdkReplacement::Conditional) => Replacement::Conditional,
        _ => Replacement::Never,
    };
    let mut properties: Vec<String> = c
        .details()
        .iter()
        .filter_map(|d| d.target()?.name().map(str::to_owned))
        .collect();
    properties.sort();
    properties.dedup();
    ResourceChange {
        action,
        logical_id: c.logical_resource_id().unwrap_or_default().to_owned(),
        resource_type: c.resource_type().unwrap_or_default().to_owned(),
        replacement,
        properties,
    }
}

/// Deletes the change set `name` of `stack`; one already gone is not an error.
pub async fn delete_change_set(cf: &Client, stack: &str, name: &str) -> Result<(), InfraError> {
    match cf
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("ChangeSetNotFound") => Ok(()),
        Err(err) => Err(InfraError::aws(
            &format!("deleting change set {name} of stack {stack}"),
            err,
        )),
    }
}

/// Sends `ExecuteChangeSet`; `token` makes a repeat of the same request harmless.
pub async fn execute_change_set(cf: &Client, stack: &str, name: &str, token: &str) -> Result<(), InfraError> {
    cf.execute_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .client_request_token(token)
        .send()
        .await
        .map_err(|e| InfraError::aws(&format!("executing change set {name} of stack {stack}"), e))?;
    Ok(())
}
