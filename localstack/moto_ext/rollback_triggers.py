"""CloudFormation rollback triggers (RollbackConfiguration) for moto, which ignores them.

CreateChangeSet and UpdateStack take a RollbackConfiguration: up to 5 CloudWatch
alarms (RollbackTriggers) and MonitoringTimeInMinutes (0-180), checked as AWS does
(more triggers or minutes out of range are a ValidationError). The change set keeps
its triggers; ExecuteChangeSet of it, or the UpdateStack, rolls the update back when
one of them is in ALARM, or does not exist, as the update completes: the stack returns
to its previous template and parameters and ends UPDATE_ROLLBACK_COMPLETE, and the
UPDATE_ROLLBACK_IN_PROGRESS event's reason names the alarm. moto updates a stack
synchronously, so the state at completion stands for the whole operation and its
monitoring time, which is not waited.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation.exceptions import ValidationError
from moto.cloudwatch.models import cloudwatch_backends

from . import cfn, changesets

MAX_TRIGGERS = 5
MAX_MONITORING_MINUTES = 180
TRIGGER_TYPES = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"}

_local = threading.local()
# The stack update this one wraps (moto_ext.cfn's), taken when applied.
_previous: dict[str, Any] = {}


def _triggers(response: Any) -> list[str] | None:
    """The trigger ARNs of the request's RollbackConfiguration; None without one."""
    config = response._get_params().get("RollbackConfiguration")
    if not config:
        return None
    stack = response._get_param("StackName")
    triggers = config.get("RollbackTriggers") or []
    if len(triggers) > MAX_TRIGGERS:
        raise ValidationError(
            stack, message=f"RollbackTriggers has {len(triggers)} triggers; at most {MAX_TRIGGERS} are allowed"
        )
    minutes = config.get("MonitoringTimeInMinutes")
    if minutes is not None and not 0 <= int(minutes) <= MAX_MONITORING_MINUTES:
        raise ValidationError(
            stack,
            message=f"MonitoringTimeInMinutes {minutes} is out of range; it must be 0 to {MAX_MONITORING_MINUTES}",
        )
    for trigger in triggers:
        if trigger.get("Type") not in TRIGGER_TYPES:
            raise ValidationError(
                stack, message=f"Rollback trigger {trigger.get('Arn')} has type {trigger.get('Type')}; "
                f"it must be one of {', '.join(sorted(TRIGGER_TYPES))}"
            )
    return [str(t["Arn"]) for t in triggers]


def tripped(arns: list[str]) -> str | None:
    """Why the update must roll back: a trigger in ALARM, or one that does not exist."""
    for arn in arns:
        parts = arn.split(":", 6)
        alarm = None
        if len(parts) == 7 and parts[2] == "cloudwatch" and parts[5] == "alarm":
            backend = cloudwatch_backends[parts[4]][parts[3]]
            alarm = backend.alarms.get(parts[6])
        if alarm is None:
            return f"Rollback trigger {arn} does not exist."
        if alarm.state_value == "ALARM":
            return f"Rollback triggered by CloudWatch alarm {arn} in ALARM state."
    return None


def _stack_update(self: Any, template: str, role_arn: str | None = None, parameters: Any = None, tags: Any = None) -> None:
    old_template = self.template
    old_parameters = dict(self.resource_map.input_parameters or {})
    _previous["stack_update"](self, template, role_arn, parameters=parameters, tags=tags)
    arns = getattr(_local, "triggers", None)
    if not arns or self.status != "UPDATE_COMPLETE":
        return
    reason = tripped(arns)
    if reason is None:
        return
    # The monitoring happens before the update completes: no UPDATE_COMPLETE.
    if self.events and self.events[-1].resource_status == "UPDATE_COMPLETE":
        self.events.pop()
    cfn.roll_back_update(self, old_template, old_parameters, reason)


def _with_triggers(arns: list[str] | None, call: Any) -> Any:
    outer = getattr(_local, "triggers", None)
    _local.triggers = arns
    try:
        return call()
    finally:
        _local.triggers = outer


def _response_update_stack(original: Any) -> Any:
    def handler(self: Any) -> Any:
        arns = _triggers(self)
        return _with_triggers(arns, lambda: original(self))

    return handler


def _response_create_change_set(original: Any) -> Any:
    def handler(self: Any) -> Any:
        arns = _triggers(self)
        result = original(self)
        change_set = changesets._find(
            self.cloudformation_backend, self._get_param("ChangeSetName"), self._get_param("StackName")
        )
        if change_set is not None:
            change_set.rollback_triggers = arns
        return result

    return handler


def _execute_change_set(original: Any) -> Any:
    def execute(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = changesets._find(self, change_set_name, stack_name)
        arns = getattr(change_set, "rollback_triggers", None)
        _with_triggers(arns, lambda: original(self, change_set_name, stack_name))

    return execute


def apply() -> None:
    """After moto_ext.cfn and moto_ext.changesets, whose handlers this wraps."""
    _previous["stack_update"] = cfn_models.Stack.update
    cfn_models.Stack.update = _stack_update  # type: ignore[method-assign]
    backend_cls = cfn_models.CloudFormationBackend
    backend_cls.execute_change_set = _execute_change_set(backend_cls.execute_change_set)  # type: ignore[method-assign]
    responses_cls = cfn_responses.CloudFormationResponse
    responses_cls.update_stack = _response_update_stack(responses_cls.update_stack)  # type: ignore[method-assign]
    responses_cls.create_change_set = _response_create_change_set(responses_cls.create_change_set)  # type: ignore[method-assign]
