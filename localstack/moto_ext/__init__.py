"""Extensions to moto for the tenant-orchestrator's local AWS.

Importing this package, before moto serves its first request, registers the
CloudFormation models of moto_ext.rds and moto_ext.cloudwatch and applies the fixes of moto_ext.cfn,
moto_ext.cfn_parameters, moto_ext.changesets, moto_ext.rollback_triggers,
moto_ext.elbv2, moto_ext.route53, moto_ext.ssm and moto_ext.model_data. moto_server.py does that and then runs moto's server.
"""

from __future__ import annotations

# Load moto's own models first: ours must be defined after them to win.
from moto.cloudformation import parsing as _parsing

from . import cfn, cfn_parameters, changesets, cloudwatch, elbv2, model_data, rds, rollback_triggers, route53, ssm

EXTENDED_TYPES = {
    "AWS::RDS::DBCluster": rds.CfnDBCluster,
    "AWS::RDS::DBInstance": rds.CfnDBInstance,
    "AWS::CloudWatch::Alarm": cloudwatch.CfnAlarm,
}


def _register() -> None:
    cfn.apply()
    cfn_parameters.apply()
    changesets.apply()
    rollback_triggers.apply()
    elbv2.apply()
    route53.apply()
    ssm.apply()
    rds.apply()
    model_data.apply()
    # The model map is cached on first use; rebuild it with our models in.
    _parsing.get_model_list.cache_clear()
    _parsing.get_model_map.cache_clear()
    _parsing.get_name_type_map.cache_clear()
    model_map = _parsing.get_model_map()
    for resource_type, model in EXTENDED_TYPES.items():
        if model_map.get(resource_type) is not model:
            raise RuntimeError(f"moto_ext: {resource_type} is not served by {model.__name__}")


_register()


def supported_types() -> list[str]:
    """CloudFormation resource types the local moto can create."""
    return sorted(_parsing.get_model_map())
