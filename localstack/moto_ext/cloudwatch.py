"""AWS::CloudWatch::Alarm for moto's CloudFormation.

moto serves the CloudWatch alarm API (PutMetricAlarm, SetAlarmState,
DescribeAlarms) but its CloudFormation cannot create an alarm. CfnAlarm creates,
updates and deletes metric alarms through moto's own CloudWatch backend, so a stack's
alarms are the ones DescribeAlarms lists and SetAlarmState drives.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel


def _backend(account_id: str, region_name: str) -> Any:
    return cloudwatch_backends[account_id][region_name]


def _name(value: Any) -> str:
    """A resolved reference as text (a resource's Ref may still be a model)."""
    return str(getattr(value, "physical_resource_id", value))


class CfnAlarm(CloudFormationModel):
    """Stack handle for one metric alarm, named by AlarmName or after the resource."""

    def __init__(self, account_id: str, region_name: str, name: str, custom_name: bool) -> None:
        self.account_id = account_id
        self.region_name = region_name
        self.name = name
        self.custom_name = custom_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def is_created(self) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Arn":
            return _backend(self.account_id, self.region_name).alarms[self.name].alarm_arn
        raise NotImplementedError(attribute_name)

    @staticmethod
    def _put(name: str, props: dict[str, Any], account_id: str, region_name: str) -> None:
        if props.get("Metrics"):
            raise NotImplementedError("metric math alarms (Metrics) are not supported locally")
        _backend(account_id, region_name).put_metric_alarm(
            name=name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            period=int(props.get("Period", 60)),
            threshold=float(props["Threshold"]),
            statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=[
                {"Name": d["Name"], "Value": _name(d["Value"])} for d in props.get("Dimensions") or []
            ],
            alarm_actions=list(props.get("AlarmActions") or []),
            ok_actions=list(props.get("OKActions") or []),
            insufficient_data_actions=list(props.get("InsufficientDataActions") or []),
            datapoints_to_alarm=(
                int(props["DatapointsToAlarm"]) if "DatapointsToAlarm" in props else None
            ),
            extended_statistic=props.get("ExtendedStatistic"),
            unit=props.get("Unit"),
            actions_enabled=str(props.get("ActionsEnabled", True)).lower() == "true",
            treat_missing_data=props.get("TreatMissingData"),
            tags=[{"Key": t["Key"], "Value": t["Value"]} for t in props.get("Tags") or []],
        )

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnAlarm:
        props = cloudformation_json.get("Properties") or {}
        explicit = props.get("AlarmName")
        name = str(explicit) if explicit else resource_name
        cls._put(name, props, account_id, region_name)
        return cls(account_id, region_name, name, bool(explicit))

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: CfnAlarm,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnAlarm:
        props = cloudformation_json.get("Properties") or {}
        name = str(props.get("AlarmName") or original_resource.name)
        if name != original_resource.name:
            # A new name is a new alarm: CloudFormation replaces it.
            _backend(account_id, region_name).delete_alarms([original_resource.name])
        # PutMetricAlarm on an existing name updates it in place and, as in AWS, leaves
        # its state as it was (moto would reset it to OK).
        backend = _backend(account_id, region_name)
        previous = backend.alarms.get(name)
        cls._put(name, props, account_id, region_name)
        if previous is not None:
            alarm = backend.alarms[name]
            for field in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                if hasattr(previous, field):
                    setattr(alarm, field, getattr(previous, field))
        return cls(account_id, region_name, name, bool(props.get("AlarmName")))

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        backend = _backend(account_id, region_name)
        if resource_name and resource_name in backend.alarms:
            backend.delete_alarms([resource_name])
