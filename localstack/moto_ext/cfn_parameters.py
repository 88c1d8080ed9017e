"""DescribeStacks parameter values as AWS gives them.

moto keeps a List<...> or CommaDelimitedList parameter as a Python list after
resolving it and answered DescribeStacks with its repr (`['sg-1', 'sg-2']`);
AWS answers with the value as given, comma-separated (`sg-1,sg-2`). Comparing
a stack's live parameters with the ones the orchestrator sets (drift checks)
needs the AWS form.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation import models as cfn_models


def _as_given(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def _parameter_list(self: Any) -> list[dict[str, Any]]:
    no_echo = self.resource_map.no_echo_parameter_keys
    return [
        {
            "ParameterKey": k,
            "ParameterValue": _as_given(v) if v not in no_echo else "****",
        }
        for k, v in self.resource_map.resolved_parameters.items()
    ]


def apply() -> None:
    cfn_models.Stack.parameter_list = property(_parameter_list)  # type: ignore[assignment]
