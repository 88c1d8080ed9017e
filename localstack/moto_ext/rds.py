"""CloudFormation models for AWS::RDS::DBCluster and AWS::RDS::DBInstance.

moto's CloudFormation skips AWS::RDS::DBCluster altogether, and its
AWS::RDS::DBInstance model ignores DBClusterIdentifier (it creates a standalone
instance on port 3306) and cannot be updated. The models below replace both.

moto discovers CloudFormation models as direct subclasses of
CloudFormationModel (moto/cloudformation/parsing.py: get_model_map), keyed by
cloudformation_type(); a later subclass wins, so defining these after moto's
RDS models is enough to register them. The resources themselves live in moto's
RDS backend, so every RDS API call (describe-db-clusters, cluster snapshots,
...) sees them; the objects kept in the stack are thin handles holding the
identifier and the properties last applied.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBClusterToBeDeletedHasActiveMembers,
    DBInstanceNotFoundError,
    InvalidParameterValue,
)
from moto.rds.models import DBCluster, RDSBackend, rds_backends

from . import cfn

# --- property conversion -----------------------------------------------------

# Template values often arrive as strings (parameters are strings); the RDS
# backend wants real ints and bools ("false" is truthy in Python).
_INT_KWARGS = {
    "allocated_storage",
    "backtrack_window",
    "backup_retention_period",
    "iops",
    "max_allocated_storage",
    "monitoring_interval",
    "port",
    "promotion_tier",
    "storage_throughput",
}
_BOOL_KWARGS = {
    "auto_minor_version_upgrade",
    "copy_tags_to_snapshot",
    "deletion_protection",
    "enable_http_endpoint",
    "enable_iam_database_authentication",
    "manage_master_user_password",
    "multi_az",
    "publicly_accessible",
    "storage_encrypted",
}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _as_name(value: Any) -> Any:
    # A Ref to a moto resource without physical_resource_id yields the object.
    for attr in ("name", "physical_resource_id"):
        if not isinstance(value, (str, int, float, bool, list, dict)) and hasattr(
            value, attr
        ):
            return getattr(value, attr)
    return value


def _convert(cfn_to_kwarg: dict[str, str], props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cfn_name, kwarg in cfn_to_kwarg.items():
        if cfn_name not in props or props[cfn_name] is None:
            continue
        value = _as_name(props[cfn_name])
        if kwarg in _INT_KWARGS:
            value = int(value)
        elif kwarg in _BOOL_KWARGS:
            value = _as_bool(value)
        out[kwarg] = value
    return out


def _physical_name(explicit: Any, generated: str) -> str:
    """RDS identifiers are lower case, at most 63 chars, no '--' or trailing '-'."""
    if explicit:
        return str(explicit).lower()
    name = re.sub(r"[^a-z0-9-]", "-", generated.lower())
    name = re.sub(r"-{2,}", "-", name)[:63].rstrip("-")
    if not name or not name[0].isalpha():
        name = ("db-" + name)[:63].rstrip("-")
    return name


def _random_suffix(length: int = 12) -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(length))


def _backend(account_id: str, region_name: str) -> RDSBackend:
    return rds_backends[account_id][region_name]


def _policy(cloudformation_json: dict[str, Any], key: str) -> str:
    return str(cloudformation_json.get(key) or "")


def _changed(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if old.get(k) != new.get(k)]


def _custom_name_error(name: str) -> cfn.ResourceFailure:
    # Same refusal as CloudFormation's: a custom-named resource cannot be replaced.
    return cfn.ResourceFailure(
        "CloudFormation cannot update a stack when a custom-named resource requires "
        f"replacing. Rename {name} and update the stack again."
    )


# --- AWS::RDS::DBCluster -----------------------------------------------------

_CLUSTER_KWARGS = {
    "AllocatedStorage": "allocated_storage",
    "AutoMinorVersionUpgrade": "auto_minor_version_upgrade",
    "AvailabilityZones": "availability_zones",
    "BacktrackWindow": "backtrack_window",
    "BackupRetentionPeriod": "backup_retention_period",
    "CopyTagsToSnapshot": "copy_tags_to_snapshot",
    "DatabaseName": "database_name",
    "DBClusterInstanceClass": "db_cluster_instance_class",
    "DBClusterParameterGroupName": "db_cluster_parameter_group_name",
    "DBSubnetGroupName": "db_subnet_group_name",
    "DeletionProtection": "deletion_protection",
    "EnableCloudwatchLogsExports": "enable_cloudwatch_logs_exports",
    "EnableHttpEndpoint": "enable_http_endpoint",
    "EnableIAMDatabaseAuthentication": "enable_iam_database_authentication",
    "Engine": "engine",
    "EngineMode": "engine_mode",
    "EngineVersion": "engine_version",
    "GlobalClusterIdentifier": "global_cluster_identifier",
    "Iops": "iops",
    "KmsKeyId": "kms_key_id",
    "ManageMasterUserPassword": "manage_master_user_password",
    "MasterUsername": "master_username",
    "MasterUserPassword": "master_user_password",
    "NetworkType": "network_type",
    "Port": "port",
    "PreferredBackupWindow": "preferred_backup_window",
    "PreferredMaintenanceWindow": "preferred_maintenance_window",
    "ReplicationSourceIdentifier": "replication_source_identifier",
    "ServerlessV2ScalingConfiguration": "serverless_v2_scaling_configuration",
    "StorageEncrypted": "storage_encrypted",
    "StorageType": "storage_type",
    "Tags": "tags",
    "VpcSecurityGroupIds": "vpc_security_group_ids",
}

# Changing any of these makes CloudFormation build a new cluster.
_CLUSTER_REPLACE = (
    "AvailabilityZones",
    "DatabaseName",
    "DBClusterIdentifier",
    "DBSubnetGroupName",
    "Engine",
    "EngineMode",
    "KmsKeyId",
    "MasterUsername",
    "RestoreType",
    "SnapshotIdentifier",
    "SourceDBClusterIdentifier",
    "StorageEncrypted",
)

# Settings the backend cluster keeps under another attribute name.
_CLUSTER_ATTR = {
    "db_cluster_parameter_group_name": "parameter_group",
    "enable_cloudwatch_logs_exports": "enabled_cloudwatch_logs_exports",
    "enable_iam_database_authentication": "iam_auth",
}

# Not changed in place here (secret management stays as created).
_CLUSTER_NOT_INPLACE = {"manage_master_user_password"}

# Taken from the snapshot on a restore, as RDS does.
_RESTORE_IGNORED = {
    "database_name",
    "manage_master_user_password",
    "master_user_password",
    "master_username",
    "storage_encrypted",
}


def _snapshot_name(value: str) -> str:
    # SnapshotIdentifier may be a name or an ARN.
    return value.split(":cluster-snapshot:")[-1].lower()


class _RdsStackHandle:
    """What the stack handles of a cluster and of an instance share: identity,
    properties, deletion policies and the CloudFormation model's boilerplate. A mixin,
    not a model: moto finds models among CloudFormationModel's direct subclasses."""

    ATTRIBUTES: tuple[str, ...] = ()

    def __init__(
        self,
        account_id: str,
        region_name: str,
        identifier: str,
        properties: dict[str, Any],
        cloudformation_json: dict[str, Any],
        custom_name: bool,
    ) -> None:
        self.account_id = account_id
        self.region_name = region_name
        self.identifier = identifier
        self.properties = properties
        self.custom_name = custom_name
        self._set_policies(cloudformation_json)

    def _default_policy(self) -> str:
        return "Snapshot"

    def _set_policies(self, cloudformation_json: dict[str, Any]) -> None:
        default = self._default_policy()
        self.deletion_policy = _policy(cloudformation_json, "DeletionPolicy") or default
        self.update_replace_policy = (
            _policy(cloudformation_json, "UpdateReplacePolicy") or default
        )

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    @property
    def physical_resource_id(self) -> str:
        return self.identifier

    def is_created(self) -> bool:
        return True

    def attribute_values(self) -> dict[str, Any]:
        """Everything a dependent resource can read from this one."""
        values: dict[str, Any] = {"Ref": self.identifier}
        for attr in self.ATTRIBUTES:
            try:
                values[attr] = self.get_cfn_attribute(attr)
            except Exception:  # noqa: BLE001 - missing resource or attribute
                values[attr] = None
        return values

    def delete_for(self, policy: str) -> None:
        raise NotImplementedError

    def delete(self, account_id: str, region_name: str) -> None:
        self.delete_for(self.deletion_policy)


class CfnDBCluster(_RdsStackHandle, CloudFormationModel):
    """Stack handle for a cluster living in moto's RDS backend."""

    ATTRIBUTES = (
        "DBClusterArn",
        "DBClusterResourceId",
        "Endpoint.Address",
        "Endpoint.Port",
        "ReadEndpoint.Address",
        "MasterUserSecret.SecretArn",
    )

    # CloudFormationModel interface

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DBClusterIdentifier"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::RDS::DBCluster"

    @property
    def cluster(self) -> Any:
        backend = _backend(self.account_id, self.region_name)
        if self.identifier not in backend.clusters:
            raise DBClusterNotFoundError(self.identifier)
        return backend.clusters[self.identifier]

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        cluster = self.cluster
        if attribute_name == "DBClusterArn":
            return cluster.db_cluster_arn
        if attribute_name == "DBClusterResourceId":
            return cluster.db_cluster_resource_id
        if attribute_name == "Endpoint.Address":
            return cluster.endpoint
        if attribute_name == "Endpoint.Port":
            # CloudFormation returns the port as a string.
            return str(cluster.port)
        if attribute_name == "ReadEndpoint.Address":
            return cluster.reader_endpoint
        if attribute_name == "MasterUserSecret.SecretArn" and getattr(
            cluster, "manage_master_user_password", False
        ):
            return cluster.master_user_secret.secret_arn
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnDBCluster:
        props = cloudformation_json.get("Properties") or {}
        explicit = props.get("DBClusterIdentifier")
        identifier = _physical_name(explicit, resource_name)
        cls._create_cluster(_backend(account_id, region_name), identifier, props)
        return cls(
            account_id, region_name, identifier, props, cloudformation_json, bool(explicit)
        )

    @staticmethod
    def _create_cluster(backend: RDSBackend, identifier: str, props: dict[str, Any]) -> Any:
        cluster_kwargs = _convert(_CLUSTER_KWARGS, props)
        cluster_kwargs["db_cluster_identifier"] = identifier
        secret = props.get("MasterUserSecret") or {}
        if secret.get("KmsKeyId"):
            cluster_kwargs["master_user_secret_kms_key_id"] = secret["KmsKeyId"]
        # Automated backups of a deleted cluster of the same name are gone in AWS;
        # moto keeps them and would refuse the new cluster's first backup.
        _drop_automated_snapshots(backend, identifier)
        snapshot_id = props.get("SnapshotIdentifier")
        if snapshot_id:
            overrides = {k: v for k, v in cluster_kwargs.items() if k not in _RESTORE_IGNORED}
            return backend.restore_db_cluster_from_snapshot(
                _snapshot_name(str(snapshot_id)), overrides
            )
        if "engine" not in cluster_kwargs:
            raise InvalidParameterValue("The parameter Engine must be provided.")
        return backend.create_db_cluster(cluster_kwargs)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: CfnDBCluster,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnDBCluster:
        props = cloudformation_json.get("Properties") or {}
        old = original_resource.properties
        # After a restore, keeping the same SnapshotIdentifier is a no-op (as in AWS).
        if _changed(old, props, _CLUSTER_REPLACE):
            if original_resource.custom_name or props.get("DBClusterIdentifier"):
                raise _custom_name_error(original_resource.identifier)
            new = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            # The old cluster goes once dependents have moved over (cleanup phase).
            cfn.defer_cleanup(
                lambda: original_resource.delete_for(original_resource.update_replace_policy)
            )
            return new
        cluster = original_resource.cluster
        wanted = _convert(_CLUSTER_KWARGS, props)
        previous = _convert(_CLUSTER_KWARGS, old)
        for kwarg, value in wanted.items():
            # A removed optional setting keeps its current value, as in RDS.
            if previous.get(kwarg) == value or kwarg in _CLUSTER_NOT_INPLACE:
                continue
            setattr(cluster, _CLUSTER_ATTR.get(kwarg, kwarg), value)
        original_resource.properties = props
        original_resource._set_policies(cloudformation_json)
        return original_resource

    def delete_for(self, policy: str) -> None:
        if policy in ("Retain", "RetainExceptOnCreate"):
            return
        backend = _backend(self.account_id, self.region_name)
        if self.identifier not in backend.clusters:
            return  # already gone: deleting is idempotent for the stack
        if self.cluster.members:
            # Lets moto's delete loop retry after the instances are gone.
            raise DBClusterToBeDeletedHasActiveMembers()
        final_snapshot = None
        if policy == "Snapshot":
            final_snapshot = f"{self.identifier}-snapshot-{_random_suffix()}"
        backend.delete_db_cluster(self.identifier, snapshot_name=final_snapshot)
        _drop_automated_snapshots(backend, self.identifier)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        backend = _backend(account_id, region_name)
        if resource_name and resource_name in backend.clusters:
            backend.delete_db_cluster(resource_name)


def _cluster_cfg(self: DBCluster) -> dict[str, Any]:
    """DBCluster.get_cfg, also for a cluster whose password is in Secrets Manager.

    moto's version expects a plain master password and fails with KeyError
    '_master_user_password', which breaks RestoreDBClusterFromSnapshot (API and
    CloudFormation) for clusters created with ManageMasterUserPassword.
    """
    cfg = self.__dict__.copy()
    cfg.pop("backend")
    cfg["master_user_password"] = cfg.pop("_master_user_password", None)
    cfg["enable_http_endpoint"] = cfg.pop("_enable_http_endpoint")
    cfg["vpc_security_group_ids"] = cfg.pop("_vpc_security_group_ids")
    cfg.pop("master_user_secret", None)  # the restored cluster gets its own secret
    return cfg


def apply() -> None:
    DBCluster.get_cfg = _cluster_cfg  # type: ignore[method-assign]


def _drop_automated_snapshots(backend: RDSBackend, identifier: str) -> None:
    for snap_id, snap in list(backend.cluster_snapshots.items()):
        if snap.snapshot_type == "automated" and snap.db_cluster_identifier == identifier:
            if identifier not in backend.clusters:
                del backend.cluster_snapshots[snap_id]


# --- AWS::RDS::DBInstance ----------------------------------------------------

_INSTANCE_KWARGS = {
    "AutoMinorVersionUpgrade": "auto_minor_version_upgrade",
    "AvailabilityZone": "availability_zone",
    "CACertificateIdentifier": "ca_certificate_identifier",
    "CopyTagsToSnapshot": "copy_tags_to_snapshot",
    "DBInstanceClass": "db_instance_class",
    "DBName": "db_name",
    "DBParameterGroupName": "db_parameter_group_name",
    "DeletionProtection": "deletion_protection",
    "Engine": "engine",
    "MonitoringInterval": "monitoring_interval",
    "MonitoringRoleArn": "monitoring_role_arn",
    "PreferredMaintenanceWindow": "preferred_maintenance_window",
    "PromotionTier": "promotion_tier",
    "PubliclyAccessible": "publicly_accessible",
    "Tags": "tags",
}

# Only meaningful for an instance outside a cluster (the cluster owns them).
_STANDALONE_KWARGS = {
    "AllocatedStorage": "allocated_storage",
    "BackupRetentionPeriod": "backup_retention_period",
    "CharacterSetName": "character_set_name",
    "DBSubnetGroupName": "db_subnet_group_name",
    "EnableCloudwatchLogsExports": "enable_cloudwatch_logs_exports",
    "EngineVersion": "engine_version",
    "Iops": "iops",
    "KmsKeyId": "kms_key_id",
    "ManageMasterUserPassword": "manage_master_user_password",
    "MasterUsername": "master_username",
    "MasterUserPassword": "master_user_password",
    "MaxAllocatedStorage": "max_allocated_storage",
    "MultiAZ": "multi_az",
    "OptionGroupName": "option_group_name",
    "Port": "port",
    "PreferredBackupWindow": "preferred_backup_window",
    "StorageEncrypted": "storage_encrypted",
    "StorageThroughput": "storage_throughput",
    "StorageType": "storage_type",
}

_INSTANCE_REPLACE = (
    "CharacterSetName",
    "DBClusterIdentifier",
    "DBInstanceIdentifier",
    "DBName",
    "DBSnapshotIdentifier",
    "Engine",
    "KmsKeyId",
    "MasterUsername",
    "SourceDBInstanceIdentifier",
    "StorageEncrypted",
)

# In-place settings a clustered instance accepts (the rest belongs to the cluster).
_INSTANCE_INPLACE = {
    "auto_minor_version_upgrade",
    "ca_certificate_identifier",
    "copy_tags_to_snapshot",
    "db_instance_class",
    "db_parameter_group_name",
    "deletion_protection",
    "monitoring_interval",
    "monitoring_role_arn",
    "preferred_maintenance_window",
    "promotion_tier",
    "publicly_accessible",
    "tags",
}


class CfnDBInstance(_RdsStackHandle, CloudFormationModel):
    """Stack handle for a DB instance, standalone or member of a cluster."""

    ATTRIBUTES = (
        "DBInstanceArn",
        "DbiResourceId",
        "Endpoint.Address",
        "Endpoint.Port",
        "Endpoint.HostedZoneId",
    )

    def _default_policy(self) -> str:
        # Snapshot is the default only for instances outside a cluster.
        return "Delete" if self.properties.get("DBClusterIdentifier") else "Snapshot"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DBInstanceIdentifier"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::RDS::DBInstance"

    @property
    def instance(self) -> Any:
        backend = _backend(self.account_id, self.region_name)
        if self.identifier not in backend.databases:
            raise DBInstanceNotFoundError(self.identifier)
        return backend.databases[self.identifier]

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        instance = self.instance
        if attribute_name == "DBInstanceArn":
            return instance.db_instance_arn
        if attribute_name == "DbiResourceId":
            return instance.dbi_resource_id
        if attribute_name == "Endpoint.Address":
            return instance.address
        if attribute_name == "Endpoint.Port":
            return str(instance.port)
        if attribute_name == "Endpoint.HostedZoneId":
            return "Z2R2ITUGPM61AM"
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnDBInstance:
        props = cloudformation_json.get("Properties") or {}
        explicit = props.get("DBInstanceIdentifier")
        identifier = _physical_name(explicit, resource_name)
        backend = _backend(account_id, region_name)
        if props.get("DBSnapshotIdentifier"):
            raise cfn.ResourceFailure(
                "DBSnapshotIdentifier on AWS::RDS::DBInstance is not supported by the local emulator"
            )
        db_kwargs = _convert(_INSTANCE_KWARGS, props)
        db_kwargs["db_instance_identifier"] = identifier
        cluster_id = props.get("DBClusterIdentifier")
        if cluster_id:
            cluster_id = str(_as_name(cluster_id)).lower()
            if cluster_id not in backend.clusters:
                raise DBClusterNotFoundError(cluster_id)
            db_kwargs["db_cluster_identifier"] = cluster_id
            db_kwargs["port"] = backend.clusters[cluster_id].port
            # moto's clustered instance takes these from the cluster.
            db_kwargs.pop("db_name", None)
        else:
            db_kwargs.update(_convert(_STANDALONE_KWARGS, props))
            groups = props.get("VPCSecurityGroups") or props.get("VpcSecurityGroupIds")
            if groups:
                db_kwargs["vpc_security_group_ids"] = [str(_as_name(g)) for g in groups]
            db_kwargs["db_security_groups"] = [
                str(_as_name(g)) for g in props.get("DBSecurityGroups") or []
            ]
        if "preferred_maintenance_window" in db_kwargs:
            db_kwargs["preferred_maintenance_window"] = db_kwargs[
                "preferred_maintenance_window"
            ].lower()
        source = props.get("SourceDBInstanceIdentifier")
        if source:
            db_kwargs["source_db_instance_identifier"] = str(_as_name(source))
            backend.create_db_instance_read_replica(db_kwargs)
        else:
            backend.create_db_instance(db_kwargs)
        return cls(
            account_id, region_name, identifier, props, cloudformation_json, bool(explicit)
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: CfnDBInstance,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnDBInstance:
        props = cloudformation_json.get("Properties") or {}
        old = original_resource.properties
        if _changed(old, props, _INSTANCE_REPLACE):
            if original_resource.custom_name or props.get("DBInstanceIdentifier"):
                raise _custom_name_error(original_resource.identifier)
            new = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete_for(original_resource.update_replace_policy)
            return new
        instance = original_resource.instance
        clustered = bool(props.get("DBClusterIdentifier"))
        mapping = dict(_INSTANCE_KWARGS)
        if not clustered:
            mapping.update(_STANDALONE_KWARGS)
        wanted = _convert(mapping, props)
        previous = _convert(mapping, old)
        for kwarg, value in wanted.items():
            if previous.get(kwarg) == value:
                continue
            if clustered and kwarg not in _INSTANCE_INPLACE:
                continue
            if kwarg == "preferred_maintenance_window":
                value = value.lower()
            setattr(instance, kwarg, value)
        original_resource.properties = props
        original_resource._set_policies(cloudformation_json)
        return original_resource

    def delete_for(self, policy: str) -> None:
        if policy in ("Retain", "RetainExceptOnCreate"):
            return
        backend = _backend(self.account_id, self.region_name)
        if self.identifier not in backend.databases:
            return
        final_snapshot = None
        if policy == "Snapshot" and not self.properties.get("DBClusterIdentifier"):
            final_snapshot = f"{self.identifier}-snapshot-{_random_suffix()}"
        backend.delete_db_instance(
            self.identifier,
            final_db_snapshot_identifier=final_snapshot,
            skip_final_snapshot=final_snapshot is None,
        )

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        backend = _backend(account_id, region_name)
        if resource_name and resource_name in backend.databases:
            backend.delete_db_instance(resource_name)
