"""CloudFormation behaviour fixes for moto, closer to what AWS does.

1. `!GetAtt Cluster.Endpoint.Address` and `${Cluster.Endpoint.Address}` in
   Fn::Sub: moto splits the attribute at every dot and looks up "Endpoint";
   AWS splits at the first dot only. `!GetAtt [Cluster, Endpoint.Address]`
   reached moto as unparsed YAML nodes.
2. Stack updates: moto updates only resources whose template text changed
   or that `Ref` a changed parameter. AWS also updates resources that read a
   changed parameter through Fn::Sub or a condition, and resources whose
   *resolved* inputs changed, e.g. an instance whose DBClusterIdentifier is a
   Ref to a cluster that was replaced, or an SSM parameter holding that
   cluster's endpoint. Replaced resources are
   deleted afterwards, in a cleanup phase, as AWS does.
3. "No updates are to be performed.": moto detects it only when every
   parameter is passed explicitly; here parameters left to their defaults or
   passed with UsePreviousValue count too, and so does a template that differs
   only in formatting, as in AWS.
4. Failures: moto answers CreateStack/UpdateStack/DeleteStack with an error
   when a resource fails. AWS accepts the call and the stack ends in
   ROLLBACK_COMPLETE, UPDATE_ROLLBACK_COMPLETE or DELETE_FAILED with the reason
   in the stack events. Resource failures are reported that way here;
   template and parameter errors stay synchronous, as in AWS.
5. DescribeStackResources/ListStackResources: moto listed resources it
   skipped (unsupported types, false conditions) as empty entries, which SDKs
   reject; they are left out.
6. ClientRequestToken: moto ignores it. As in AWS, repeating CreateStack or
   UpdateStack with the token of an earlier call of the same kind on the same
   stack returns that call's StackId without doing anything again, and the
   stack events of a call carry its token.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import utils as cfn_utils
from moto.cloudformation.exceptions import ValidationError

logger = logging.getLogger("moto_ext.cfn")


class ResourceFailure(ValidationError):
    """A resource could not be created, updated or deleted."""

    def __init__(
        self,
        message: str,
        logical_id: str | None = None,
        resource_type: str | None = None,
    ) -> None:
        super().__init__(message=message)
        self.reason = message
        self.logical_id = logical_id
        self.resource_type = resource_type


# --- 1. attribute names with dots --------------------------------------------

_original_yaml_tag_constructor = cfn_utils.yaml_tag_constructor


def _yaml_tag_constructor(loader: Any, tag: Any, node: Any) -> Any:
    if tag == "!GetAtt":
        # moto returns raw YAML nodes for `!GetAtt [A, B]`: build real values.
        if isinstance(node.value, list):
            return {"Fn::GetAtt": loader.construct_sequence(node, deep=True)}
        return {"Fn::GetAtt": str(node.value).split(".", 1)}
    return _original_yaml_tag_constructor(loader, tag, node)


_original_clean_json = parsing.clean_json


def _clean_json(resource_json: Any, resources_map: Any) -> Any:
    if isinstance(resource_json, dict) and "Fn::GetAtt" in resource_json:
        target = resource_json["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        elif isinstance(target, list) and len(target) > 2:
            target = [target[0], ".".join(str(p) for p in target[1:])]
        resource_json = {**resource_json, "Fn::GetAtt": target}
    return _original_clean_json(resource_json, resources_map)


# --- 2. update propagation and cleanup ----------------------------------------

_local = threading.local()


def defer_cleanup(action: Callable[[], None]) -> None:
    """Run `action` after the stack update (old resources of a replacement)."""
    queue = getattr(_local, "cleanups", None)
    if queue is None:
        action()
    else:
        queue.append(action)


def _fingerprint(resource: Any) -> Any:
    if resource is None:
        return None
    if hasattr(resource, "attribute_values"):
        return sorted(resource.attribute_values().items(), key=lambda kv: kv[0])
    return getattr(resource, "physical_resource_id", id(resource))


_SUB_VAR = re.compile(r"\$\{([^!}][^}]*)\}")


def _references(node: Any, names: set[str]) -> bool:
    """Does this template fragment read a value from one of `names`?"""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str) and value in names:
                return True
            if key == "Fn::GetAtt" and isinstance(value, (str, list)) and value:
                target = value.split(".", 1)[0] if isinstance(value, str) else value[0]
                if isinstance(target, str) and target in names:
                    return True
            if key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    for var in _SUB_VAR.findall(text):
                        if var.split(".", 1)[0] in names:
                            return True
            if _references(value, names):
                return True
    elif isinstance(node, list):
        return any(_references(item, names) for item in node)
    return False


def _updatable(resource_type: str) -> bool:
    cls = parsing.resource_class_from_type(resource_type)
    return cls is not None and not hasattr(
        cls.update_from_cloudformation_json, "__isabstractmethod__"
    )


def _propagate(resource_map: Any, before: dict[str, Any], diff: dict[str, list[str]]) -> None:
    parsed = resource_map._parsed_resources
    touched = set(diff["Add"]) | set(diff["Modify"])
    changed = {n for n in touched if _fingerprint(parsed.get(n)) != before.get(n)}
    redone: set[str] = set()
    while changed:
        next_changed: set[str] = set()
        for name, resource_json in resource_map._resource_json_map.items():
            if name in redone or name in changed or parsed.get(name) is None:
                continue
            if not _references(resource_json.get("Properties"), changed):
                continue
            if not _updatable(resource_json["Type"]):
                logger.warning("cannot refresh %s (%s): no update support", name, resource_json["Type"])
                continue
            previous = _fingerprint(parsed[name])
            updated = parsing.parse_and_update_resource(
                name,
                resource_json,
                resource_map,
                account_id=resource_map._account_id,
                region_name=resource_map._region_name,
            )
            if updated is None:
                continue
            parsed[name] = updated
            redone.add(name)
            if _fingerprint(updated) != previous:
                next_changed.add(name)
        changed = next_changed


def _run_cleanups(actions: list[Callable[[], None]]) -> None:
    # Several passes: an old cluster goes only after its old instances. As in
    # AWS, a failed cleanup leaves the old resource behind but not the update.
    pending = list(actions)
    while pending:
        failed: list[Callable[[], None]] = []
        for action in pending:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - retried, then logged
                failed.append(action)
                error = exc
        if len(failed) == len(pending):
            logger.warning("stack update cleanup failed: %s", error)
            return
        pending = failed


def _uses_condition(node: Any, conditions: set[str]) -> bool:
    if isinstance(node, dict):
        for key, value in node.items():
            # (an IAM policy's "Condition" is a map, not a condition name)
            if key == "Condition" and isinstance(value, str) and value in conditions:
                return True
            if key == "Fn::If" and isinstance(value, list) and value and isinstance(value[0], str) and value[0] in conditions:
                return True
            if _uses_condition(value, conditions):
                return True
    elif isinstance(node, list):
        return any(_uses_condition(item, conditions) for item in node)
    return False


_original_diff = parsing.ResourceMap.build_resource_diff


def _build_resource_diff(self: Any, other_template: dict[str, Any], parameters: Any = None) -> dict[str, Any]:
    diff = _original_diff(self, other_template, parameters)
    if not parameters:
        return diff
    changed = {p for p in parameters if self.input_parameters.get(p) != parameters[p]}
    if not changed:
        return diff
    conditions = other_template.get("Conditions") or {}
    changed_conditions: set[str] = set()
    while True:  # conditions may build on other conditions
        more = {
            name for name, body in conditions.items()
            if name not in changed_conditions
            and (_references(body, changed) or _uses_condition(body, changed_conditions))
        }
        if not more:
            break
        changed_conditions |= more
    old = self._resource_json_map
    for name, resource_json in other_template.get("Resources", {}).items():
        if name not in old or name in diff["Modify"] or name in diff["Add"]:
            continue
        if _references(resource_json, changed) or _uses_condition(resource_json, changed_conditions):
            diff["Modify"].append(name)
    return diff


_original_update = parsing.ResourceMap.update


def _resource_map_update(self: Any, template: dict[str, Any], parameters: Any = None) -> None:
    before = {name: _fingerprint(res) for name, res in self._parsed_resources.items()}
    diff = self.build_resource_diff(template, parameters)
    outer = getattr(_local, "cleanups", None)
    _local.cleanups = []
    try:
        _original_update(self, template, parameters)
        _propagate(self, before, diff)
        actions = _local.cleanups
    finally:
        _local.cleanups = outer
    _run_cleanups(actions)


# --- 3. resource failures become stack states ------------------------------------


def _as_failure(exc: Exception, logical_id: str | None, resource_type: str | None) -> ResourceFailure:
    if isinstance(exc, ResourceFailure):
        if exc.logical_id is None:
            exc.logical_id, exc.resource_type = logical_id, resource_type
        return exc
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    failure = ResourceFailure(str(message), logical_id, resource_type)
    failure.__cause__ = exc
    return failure


_original_create_resource = parsing.parse_and_create_resource
_original_update_resource = parsing.parse_and_update_resource
_original_delete_resource = parsing.ResourceMap._delete_resource


def _create_resource(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return _original_create_resource(logical_id, resource_json, *args, **kwargs)
    except Exception as exc:
        raise _as_failure(exc, logical_id, resource_json.get("Type")) from exc


def _update_resource(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return _original_update_resource(logical_id, resource_json, *args, **kwargs)
    except Exception as exc:
        raise _as_failure(exc, logical_id, resource_json.get("Type")) from exc


def _delete_resource(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
    try:
        _original_delete_resource(self, parsed_resource, resource_json)
    except Exception as exc:
        logical_id = getattr(parsed_resource, "logical_resource_id", None)
        raise _as_failure(exc, logical_id, resource_json.get("Type")) from exc


def _resource_event(stack: Any, failure: ResourceFailure, status: str) -> None:
    if not failure.logical_id:
        return
    resource = stack.resource_map._parsed_resources.get(failure.logical_id)
    event = cfn_models.Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=failure.logical_id,
        physical_resource_id=getattr(resource, "physical_resource_id", "") or "",
        resource_type=failure.resource_type or "",
        resource_status=status,
        resource_status_reason=failure.reason,
        resource_properties=None,
    )
    stack.events.append(event)


def _forget_resources(stack: Any) -> None:
    # A rolled-back create keeps no resources or outputs; without this moto's
    # lazy resource map would try to build them again when described.
    stack.resource_map._resource_json_map = {}
    stack.resource_map._parsed_resources = {
        k: v for k, v in stack.resource_map._parsed_resources.items() if k.startswith("AWS::")
    }
    stack.output_map = parsing.OutputMap(stack.resource_map, {}, stack.stack_id)


_original_create_resources = cfn_models.Stack.create_resources


def _create_resources(self: Any) -> None:
    try:
        _original_create_resources(self)
    except ResourceFailure as failure:
        _resource_event(self, failure, "CREATE_FAILED")
        self._add_stack_event(
            "ROLLBACK_IN_PROGRESS",
            resource_status_reason=f"The following resource(s) failed to create: [{failure.logical_id}]. "
            "Rollback requested by user.",
        )
        self.status = "ROLLBACK_IN_PROGRESS"
        try:
            self.resource_map.delete()
        except Exception as exc:  # noqa: BLE001
            self.status = "ROLLBACK_FAILED"
            self._add_stack_event("ROLLBACK_FAILED", resource_status_reason=str(exc))
            return
        _forget_resources(self)
        self.status = "ROLLBACK_COMPLETE"
        self._add_stack_event("ROLLBACK_COMPLETE")


_original_stack_update = cfn_models.Stack.update


def _stack_update(self: Any, template: str, role_arn: str | None = None, parameters: Any = None, tags: Any = None) -> None:
    old_template = self.template
    old_parameters = dict(self.resource_map.input_parameters or {})
    try:
        _original_stack_update(self, template, role_arn, parameters=parameters, tags=tags)
    except ResourceFailure as failure:
        _resource_event(self, failure, "UPDATE_FAILED")
        roll_back_update(
            self,
            old_template,
            old_parameters,
            f"The following resource(s) failed to update: [{failure.logical_id}]. ",
        )


def roll_back_update(stack: Any, old_template: str, old_parameters: dict[str, Any], reason: str) -> None:
    """Puts `stack` back on the template and parameters it had before an update, as
    CloudFormation does when the update fails for `reason`."""
    stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
    stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
    stack.template = old_template
    stack._parse_template()
    # Parameters left to their defaults count as given: a parameter the update set
    # goes back to its default.
    effective = _effective_parameters(stack.template_dict, old_parameters)
    parameters = {k: v for k, v in effective.items() if v is not None}
    try:
        stack.resource_map.update(stack.template_dict, parameters)
    except Exception as exc:  # noqa: BLE001
        stack.status = "UPDATE_ROLLBACK_FAILED"
        stack._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=str(exc))
        return
    stack.output_map = stack._create_output_map()
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")


_original_delete_stack = cfn_models.CloudFormationBackend.delete_stack


def _delete_stack(self: Any, name_or_stack_id: str) -> None:
    stack = self.stacks.get(name_or_stack_id) or next(
        (s for s in self.stacks.values() if s.name == name_or_stack_id), None
    )
    try:
        _original_delete_stack(self, name_or_stack_id)
    except ResourceFailure as failure:
        if stack is None:
            raise
        # moto dropped the stack before deleting its resources: keep it, as AWS does.
        self.stacks[stack.stack_id] = stack
        _resource_event(stack, failure, "DELETE_FAILED")
        stack.status = "DELETE_FAILED"
        stack._add_stack_event(
            "DELETE_FAILED",
            resource_status_reason=f"The following resource(s) failed to delete: [{failure.logical_id}]. ",
        )


# --- "No updates are to be performed." ---------------------------------------------


def _effective_parameters(template: dict[str, Any], given: dict[str, Any]) -> dict[str, str]:
    slots = (template or {}).get("Parameters") or {}
    out = {}
    for name, slot in slots.items():
        value = given.get(name, (slot or {}).get("Default"))
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out[name] = None if value is None else str(value)
    return out


def _validate_different_update(
    self: Any, incoming_params: list[dict[str, Any]] | None, stack_body: str, old_stack: Any
) -> None:
    if not stack_body:
        return
    if stack_body != old_stack.template:
        try:
            same = cfn_models.Stack.parse_template(stack_body) == old_stack.template_dict
        except Exception:  # noqa: BLE001 - a broken template is reported later
            return
        if not same:
            return
    old_given = dict(old_stack.resource_map.input_parameters or {})
    new_given: dict[str, Any] = {}
    for param in incoming_params or []:
        key = param.get("ParameterKey")
        if "ParameterValue" in param:
            new_given[key] = param["ParameterValue"]
        elif param.get("UsePreviousValue") and key in old_given:
            new_given[key] = old_given[key]
    template = old_stack.template_dict
    if _effective_parameters(template, new_given) == _effective_parameters(template, old_given):
        raise ValidationError(old_stack.name, message="No updates are to be performed.")


# --- ClientRequestToken --------------------------------------------------------------

_tokens: dict[tuple[str, str, str], tuple[str, str, str]] = {}
_tokens_lock = threading.Lock()


def _find_stack(backend: Any, name_or_id: str) -> Any:
    if name_or_id in backend.stacks:
        return backend.stacks[name_or_id]
    return next((s for s in backend.stacks.values() if s.name == name_or_id), None)


def _with_token(action: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def handler(self: Any) -> Any:
        token = self._get_param("ClientRequestToken")
        name = self._get_param("StackName")
        if not token:
            return original(self)
        key = (self.current_account, self.region, token)
        with _tokens_lock:
            seen = _tokens.get(key)
        if seen and seen[0] == action and name in (seen[1], seen[2]):
            return cfn_responses.ActionResult({"StackId": seen[2]})
        before = _find_stack(self.cloudformation_backend, name)
        known = len(before.events) if before is not None else 0
        result = original(self)
        stack = _find_stack(self.cloudformation_backend, name)
        if stack is not None:
            for event in stack.events[known:]:
                event.client_request_token = token
            with _tokens_lock:
                _tokens[key] = (action, stack.name, stack.stack_id)
        return result

    return handler


def _stack_resources(self: Any) -> list[Any]:
    return [r for r in self.resource_map.values() if getattr(r, "logical_resource_id", None)]


def apply() -> None:
    cfn_models.Stack.stack_resources = property(_stack_resources)  # type: ignore[method-assign,assignment]
    responses_cls = cfn_responses.CloudFormationResponse
    responses_cls.create_stack = _with_token("create", responses_cls.create_stack)  # type: ignore[method-assign]
    responses_cls.update_stack = _with_token("update", responses_cls.update_stack)  # type: ignore[method-assign]
    cfn_responses.CloudFormationResponse._validate_different_update = _validate_different_update  # type: ignore[method-assign]
    cfn_utils.yaml_tag_constructor = _yaml_tag_constructor
    cfn_models.yaml_tag_constructor = _yaml_tag_constructor  # type: ignore[attr-defined]
    cfn_responses.yaml_tag_constructor = _yaml_tag_constructor  # type: ignore[attr-defined]
    parsing.clean_json = _clean_json
    parsing.parse_and_create_resource = _create_resource
    parsing.parse_and_update_resource = _update_resource
    parsing.ResourceMap._delete_resource = _delete_resource
    parsing.ResourceMap.build_resource_diff = _build_resource_diff
    parsing.ResourceMap.update = _resource_map_update
    cfn_models.Stack.create_resources = _create_resources
    cfn_models.Stack.update = _stack_update
    cfn_models.CloudFormationBackend.delete_stack = _delete_stack
