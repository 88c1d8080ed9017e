"""CloudFormation change sets closer to what AWS reports.

moto's DescribeChangeSet lists only an Action per resource, compares template
text only (a change of parameters alone is no change), and its
ExecuteChangeSet bypasses the stack update (no outputs, no failure states).
Here:

1. Each resource's properties are resolved with the stack's current template and
   parameters and with the change set's, and compared: a resource whose resolved
   properties differ is a Modify, whether the template or only a parameter
   changed, and one whose text changed but resolves the same is no change.
2. Every Modify carries `Replacement` ("True", "Conditional" or "False"),
   `Scope` and `Details` (Target Attribute/Name/RequiresRecreation, Evaluation,
   ChangeSource), from a table of the properties AWS documents as "Update
   requires: Replacement" for the resource types the tenant stacks use. A
   property that reads a resource being replaced changes dynamically: if that
   property requires replacement, the replacement is "Conditional", as in AWS.
   (Properties AWS marks "Conditional" on their own belong to types the tenant
   stacks do not use, e.g. AWS::EC2::Instance, and are not modelled.)
3. A change set that changes nothing is FAILED with AWS's reason ("The
   submitted information didn't contain changes. ..."), rather than refused at
   CreateChangeSet.
4. Names: CreateChangeSet with a name the stack already has a change set of is
   refused with AlreadyExistsException, and Describe/DeleteChangeSet of an
   unknown one answer ChangeSetNotFound, as in AWS (moto made a second change
   set of the same name, and failed with a 500 on deleting a missing one).
5. ExecuteChangeSet of an UPDATE runs the stack update itself (propagation,
   cleanup, failure states of moto_ext.cfn), and records its ClientRequestToken
   on the stack events as UpdateStack does.
6. ListChangeSets lists the change sets of the stack named, and Describe/
   DeleteChangeSet find a name among that stack's change sets only, as in AWS
   (moto listed every stack's change sets, and found a name on any stack).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation.exceptions import AlreadyExistsException, CloudFormationError, ValidationError
from moto.core.responses import ActionResult, EmptyResult

from . import cfn, rds

NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to create a change set."
)

# Properties whose change replaces the resource ("Update requires: Replacement"
# in the AWS resource reference); the RDS ones are those moto_ext.rds replaces on.
REPLACES: dict[str, set[str]] = {
    "AWS::RDS::DBCluster": set(rds._CLUSTER_REPLACE) | {"SourceRegion", "UseLatestRestorableTime"},
    "AWS::RDS::DBInstance": set(rds._INSTANCE_REPLACE) | {"Timezone"},
    "AWS::S3::Bucket": {"BucketName", "ObjectLockEnabled"},
    "AWS::SSM::Parameter": {"Name"},
    "AWS::IAM::Role": {"RoleName", "Path"},
    "AWS::CloudWatch::Alarm": {"AlarmName"},
    "AWS::SQS::Queue": {"QueueName", "FifoQueue"},
}

_PSEUDO = {
    "AWS::AccountId", "AWS::Region", "AWS::StackName", "AWS::StackId", "AWS::Partition",
    "AWS::URLSuffix", "AWS::NotificationARNs",
}
_NO_VALUE = object()
_SUB_VAR = re.compile(r"\$\{([^!}][^}]*)\}")


class _Resolver:
    """Resolves a template's intrinsic functions with given parameters. References
    to resources stay symbolic (`<Ref Cluster>`, `<GetAtt Cluster.Endpoint.Address>`),
    so they compare equal between two versions unless the reference itself changes."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any]) -> None:
        self.template = template or {}
        self.parameters = cfn._effective_parameters(self.template, parameters)
        self.conditions: dict[str, bool] = {}
        self.resources = set((self.template.get("Resources") or {}).keys())

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            body = (self.template.get("Conditions") or {}).get(name)
            self.conditions[name] = bool(self.value(body)) if body is not None else False
        return self.conditions[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in _PSEUDO:
            return f"<{name}>"
        return f"<Ref {name}>"

    def sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            var = match.group(1)
            if var in extra:
                return str(self.value(extra[var]))
            if "." in var:
                return f"<GetAtt {var}>"
            return str(self.ref(var))

        return _SUB_VAR.sub(one, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                target = arg.split(".", 1) if isinstance(arg, str) else [str(a) for a in arg]
                return f"<GetAtt {'.'.join(target)}>"
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], arg[1] if len(arg) > 1 else {})
                return self.sub(arg, {})
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = (self.value(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(i) for i in self.value(items))
            if key == "Fn::Select":
                index, items = self.value(arg)
                items = items if isinstance(items, list) else str(items).split(",")
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.value(text)).split(sep)
            if key == "Fn::FindInMap":
                table, first, second = (self.value(a) for a in arg)
                return (self.template.get("Mappings") or {})[table][first][second]
        out = {}
        for key, item in node.items():
            resolved = self.value(item)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def properties(self, name: str) -> dict[str, Any] | None:
        """The resource's resolved properties; None when its condition is false."""
        body = (self.template.get("Resources") or {}).get(name) or {}
        condition = body.get("Condition")
        if isinstance(condition, str) and not self.condition(condition):
            return None
        return self.value(body.get("Properties") or {})


def _reads(value: Any, names: set[str]) -> bool:
    text = repr(value)
    return any(f"<Ref {n}>" in text or f"<GetAtt {n}." in text for n in names)


def _change_source(old_json: Any, new_json: Any, prop: str, changed_params: set[str]) -> str:
    old_prop = ((old_json or {}).get("Properties") or {}).get(prop)
    new_prop = ((new_json or {}).get("Properties") or {}).get(prop)
    if old_prop == new_prop and cfn._references(new_prop, changed_params):
        return "ParameterReference"
    return "DirectModification"


def resource_changes(stack: Any, template: dict[str, Any], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The ResourceChange entries of updating `stack` to `template` with `parameters`."""
    old_template = stack.template_dict or {}
    old = _Resolver(old_template, dict(stack.resource_map.input_parameters or {}))
    new = _Resolver(template, parameters)
    old_res = old_template.get("Resources") or {}
    new_res = (template or {}).get("Resources") or {}
    changed_params = {p for p in new.parameters if new.parameters.get(p) != old.parameters.get(p)}
    physical = {
        name: getattr(res, "physical_resource_id", None)
        for name, res in stack.resource_map._parsed_resources.items()
        if name in old_res
    }

    live_old = {n for n in old_res if old.properties(n) is not None}
    live_new = {n for n in new_res if new.properties(n) is not None}
    changes: dict[str, dict[str, Any]] = {}
    for name in sorted(live_new - live_old):
        changes[name] = {"Action": "Add", "LogicalResourceId": name, "ResourceType": new_res[name]["Type"],
                         "Scope": [], "Details": []}
    for name in sorted(live_old - live_new):
        changes[name] = {"Action": "Remove", "LogicalResourceId": name, "ResourceType": old_res[name]["Type"],
                         "PhysicalResourceId": physical.get(name), "Scope": [], "Details": []}

    replaced: set[str] = set()
    pending = sorted(live_old & live_new)
    # Replacements make readers of the replaced resource change too: repeat until stable.
    while True:
        for name in pending:
            rtype = new_res[name]["Type"]
            before, after = old.properties(name), new.properties(name)
            details = []
            replacement = "False"
            type_changed = old_res[name]["Type"] != rtype
            for prop in sorted(set(before) | set(after)):
                static = before.get(prop) != after.get(prop)
                dynamic = not static and _reads(after.get(prop), replaced)
                if not static and not dynamic:
                    continue
                requires = "Never"
                if prop in REPLACES.get(rtype, set()):
                    # A property that reads a replaced resource changes only if its
                    # new value differs, which CloudFormation learns during the update.
                    requires = "Conditionally" if dynamic else "Always"
                attribute = "Tags" if prop == "Tags" else "Properties"
                details.append({
                    "Target": {"Attribute": attribute, "Name": prop, "RequiresRecreation": requires},
                    "Evaluation": "Dynamic" if dynamic else "Static",
                    "ChangeSource": "ResourceReference" if dynamic
                    else _change_source(old_res.get(name), new_res.get(name), prop, changed_params),
                })
                if requires == "Always":
                    replacement = "True"
                elif requires == "Conditionally" and replacement != "True":
                    replacement = "Conditional"
            if type_changed:
                replacement = "True"
            if not details and not type_changed:
                changes.pop(name, None)
                continue
            changes[name] = {
                "Action": "Modify",
                "LogicalResourceId": name,
                "ResourceType": rtype,
                "PhysicalResourceId": physical.get(name),
                "Replacement": replacement,
                "Scope": sorted({d["Target"]["Attribute"] for d in details}),
                "Details": details,
            }
        now_replaced = {n for n, c in changes.items() if c.get("Replacement") in ("True", "Conditional")}
        if now_replaced <= replaced:
            break
        replaced |= now_replaced
        pending = sorted(live_old & live_new)
    return [changes[name] for name in sorted(changes)]


class ChangeSetNotFound(CloudFormationError):
    code = "ChangeSetNotFound"
    # moto finds an error's service model by the package of its module.
    __module__ = "moto.cloudformation.exceptions"


def _find(backend: Any, name: str, stack_name: str | None) -> Any:
    if name in backend.change_sets:
        return backend.change_sets[name]
    return next(
        (cs for cs in backend.change_sets.values()
         if cs.change_set_name == name and (stack_name is None or stack_name in (cs.stack_name, cs.stack_id))),
        None,
    )


class Change:
    """One entry of DescribeChangeSet's Changes (serialised by moto's shape walker)."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.action = entry["Action"]
        self.logical_resource_id = entry["LogicalResourceId"]
        self.resource_type = entry["ResourceType"]
        self.physical_resource_id = entry.get("PhysicalResourceId")
        self.replacement = entry.get("Replacement")
        self.scope = entry["Scope"]
        self.details = entry["Details"]


def _diff(self: Any) -> list[Any]:
    if self.change_set_type != "UPDATE":
        return _original_diff(self)
    return [Change(entry) for entry in resource_changes(self.stack, self.template_dict, self.parameters)]


_original_diff = cfn_models.ChangeSet.diff
_original_create = cfn_models.CloudFormationBackend.create_change_set
_original_execute = cfn_models.CloudFormationBackend.execute_change_set
_local = threading.local()


def _create_change_set(self: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    name, stack_name = kwargs.get("change_set_name"), kwargs.get("stack_name")
    if name and _find(self, name, stack_name) is not None:
        raise AlreadyExistsException(f"ChangeSet {name} already exists")
    change_set_id, stack_id = _original_create(self, *args, **kwargs)
    change_set = self.change_sets[change_set_id]
    if change_set.change_set_type != "UPDATE":
        return change_set_id, stack_id
    stack = change_set.stack
    same_template = change_set.template_dict == stack.template_dict
    same_parameters = cfn._effective_parameters(stack.template_dict, change_set.parameters) == (
        cfn._effective_parameters(stack.template_dict, dict(stack.resource_map.input_parameters or {}))
    )
    if same_template and same_parameters and not change_set.changes:
        change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
        change_set.status_reason = NO_CHANGES
    else:
        change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"
        change_set.status_reason = None
    return change_set_id, stack_id


def _describe_change_set(self: Any, change_set_name: str) -> Any:
    change_set = _find(self, change_set_name, None)
    if change_set is None:
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")
    return change_set


def _delete_change_set(self: Any, change_set_name: str) -> None:
    change_set = _find(self, change_set_name, None)
    if change_set is None:
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")
    del self.change_sets[change_set.change_set_id]


def _execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = _find(self, change_set_name, stack_name)
    if change_set is None:
        raise ChangeSetNotFound(f"ChangeSet [{change_set_name}] does not exist")
    if change_set.change_set_type != "UPDATE":
        _original_execute(self, change_set_name, stack_name)
        return
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(
            change_set.stack_name,
            message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status "
            f"of [{change_set.execution_status}]",
        )
    stack = self.stacks[change_set.stack_id]
    parameters = dict(stack.resource_map.input_parameters or {})
    parameters.update(change_set.parameters)
    stack.update(change_set.template, role_arn=change_set.role_arn, parameters=parameters, tags=change_set.tags)
    change_set.execution_status = "EXECUTE_COMPLETE"
    # AWS deletes the stack's other change sets once one is executed.
    for other_id in [i for i, cs in self.change_sets.items() if cs.stack_id == stack.stack_id and cs is not change_set]:
        del self.change_sets[other_id]


def _validate_different_update(self: Any, incoming_params: Any, stack_body: str, old_stack: Any) -> None:
    # A change set without changes is created FAILED (3.), not refused.
    if getattr(_local, "creating_change_set", False):
        return
    cfn._validate_different_update(self, incoming_params, stack_body, old_stack)


def _response_create_change_set(original: Any) -> Any:
    def handler(self: Any) -> Any:
        _local.creating_change_set = True
        try:
            return original(self)
        finally:
            _local.creating_change_set = False

    return handler


def _of_stack(backend: Any, stack: str | None) -> list[Any]:
    return [cs for cs in backend.change_sets.values() if stack in (cs.stack_name, cs.stack_id)]


def _named(response: Any) -> Any:
    name, stack = response._get_param("ChangeSetName"), response._get_param("StackName")
    change_set = _find(response.cloudformation_backend, name, stack)
    if change_set is None:
        raise ChangeSetNotFound(f"ChangeSet [{name}] does not exist")
    return change_set


def _response_list_change_sets(self: Any) -> Any:
    return ActionResult({"Summaries": _of_stack(self.cloudformation_backend, self._get_param("StackName"))})


def _response_describe_change_set(self: Any) -> Any:
    return ActionResult(_named(self))


def _response_delete_change_set(self: Any) -> Any:
    change_set = _named(self)
    self.cloudformation_backend.change_sets.pop(change_set.change_set_id, None)
    return EmptyResult()


def apply() -> None:
    cfn_models.ChangeSet.diff = _diff  # type: ignore[method-assign]
    cfn_models.CloudFormationBackend.create_change_set = _create_change_set  # type: ignore[method-assign]
    cfn_models.CloudFormationBackend.execute_change_set = _execute_change_set  # type: ignore[method-assign]
    cfn_models.CloudFormationBackend.describe_change_set = _describe_change_set  # type: ignore[method-assign]
    cfn_models.CloudFormationBackend.delete_change_set = _delete_change_set  # type: ignore[method-assign]
    responses_cls = cfn_responses.CloudFormationResponse
    responses_cls._validate_different_update = _validate_different_update  # type: ignore[method-assign]
    responses_cls.list_change_sets = _response_list_change_sets  # type: ignore[method-assign]
    responses_cls.describe_change_set = _response_describe_change_set  # type: ignore[method-assign]
    responses_cls.delete_change_set = _response_delete_change_set  # type: ignore[method-assign]
    responses_cls.create_change_set = _response_create_change_set(responses_cls.create_change_set)  # type: ignore[method-assign]
    responses_cls.execute_change_set = cfn._with_token("execute", responses_cls.execute_change_set)  # type: ignore[method-assign]
