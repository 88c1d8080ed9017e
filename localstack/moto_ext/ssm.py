"""AWS::SSM::Parameter: Tags is a key/value map in CloudFormation.

moto's model hands the map to PutParameter as if it were the API's list of
{Key, Value} and fails ("string indices must be integers"). The map is
converted before moto's own create runs.
"""

from __future__ import annotations

from typing import Any

from moto.ssm.models import Parameter

_original_create = Parameter.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_from_cloudformation_json(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
    region_name: str, **kwargs: Any,
) -> Any:
    properties = cloudformation_json.get("Properties") or {}
    tags = properties.get("Tags")
    if isinstance(tags, dict):
        properties = {**properties, "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()]}
        cloudformation_json = {**cloudformation_json, "Properties": properties}
    return _original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)


def apply() -> None:
    Parameter.create_from_cloudformation_json = classmethod(_create_from_cloudformation_json)  # type: ignore[method-assign,assignment]
