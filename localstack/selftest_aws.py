"""Checks the running local AWS (run by selftest.sh with the venv's Python).

Uses only the AWS_* variables printed by start.sh. Prints one line per check,
"ok - ..." or "not ok - ...", and exits non-zero if any check failed.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

FAILED = 0
RUN = uuid.uuid4().hex[:6]


def check(name: str, condition: bool, detail: Any = "") -> None:
    global FAILED
    if condition:
        print(f"ok - {name}", flush=True)
    else:
        FAILED += 1
        print(f"not ok - {name}: {detail}", flush=True)


def section(func: Callable[[], None]) -> None:
    """One failing section reports and lets the others run."""
    try:
        func()
    except Exception:  # noqa: BLE001
        check(func.__name__, False, traceback.format_exc())


def client(service: str) -> Any:
    return boto3.client(service)


def stack_status(cfn: Any, name: str) -> str:
    return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]


def outputs(cfn: Any, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def params(**values: str) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


# A tenant-like stack: Aurora cluster + writer, bucket, SSM parameters fed by
# the cluster's attributes. The cluster name is generated (no
# DBClusterIdentifier), so CloudFormation may replace it on a restore.
TENANT_TEMPLATE = """
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Tenant: {Type: String}
  Release: {Type: String}
  BackupRetention: {Type: Number, Default: 1}
  RestoreSnapshot: {Type: String, Default: ''}
Conditions:
  Restore: !Not [!Equals [!Ref RestoreSnapshot, '']]
Resources:
  Cluster:
    Type: AWS::RDS::DBCluster
    DeletionPolicy: Snapshot
    UpdateReplacePolicy: Delete
    Properties:
      Engine: aurora-postgresql
      EngineVersion: '15.4'
      DatabaseName: app
      MasterUsername: app
      ManageMasterUserPassword: true
      BackupRetentionPeriod: !Ref BackupRetention
      DeletionProtection: 'false'
      SnapshotIdentifier: !If [Restore, !Ref RestoreSnapshot, !Ref AWS::NoValue]
      ServerlessV2ScalingConfiguration: {MinCapacity: 0.5, MaxCapacity: 4}
      Tags: [{Key: tenant, Value: !Ref Tenant}]
  Writer:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: aurora-postgresql
      DBClusterIdentifier: !Ref Cluster
      DBInstanceClass: db.serverless
  Bucket:
    Type: AWS::S3::Bucket
  DbEndpoint:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /tenants/${Tenant}/db-endpoint
      Type: String
      Value: !GetAtt Cluster.Endpoint.Address
      Tags: {tenant: !Ref Tenant}
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: '2012-10-17'
        Statement:
          - Effect: Allow
            Principal: {Federated: !Sub 'arn:aws:iam::${AWS::AccountId}:oidc-provider/oidc.example.test'}
            Action: sts:AssumeRoleWithWebIdentity
            Condition: {StringEquals: {'oidc.example.test:sub': !Sub 'system:serviceaccount:${Tenant}:app'}}
  DbUrl:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /tenants/${Tenant}/db-url
      Type: String
      Value: !Sub postgres://${Cluster.Endpoint.Address}:${Cluster.Endpoint.Port}/app?release=${Release}
Outputs:
  ClusterId: {Value: !Ref Cluster}
  Endpoint: {Value: !GetAtt Cluster.Endpoint.Address}
  Port: {Value: !GetAtt [Cluster, Endpoint.Port]}
  Reader: {Value: !GetAtt Cluster.ReadEndpoint.Address}
  Arn: {Value: !GetAtt Cluster.DBClusterArn}
  ResourceId: {Value: !GetAtt Cluster.DBClusterResourceId}
  Writer: {Value: !Ref Writer}
  Bucket: {Value: !Ref Bucket}
  SecretArn: {Value: !GetAtt Cluster.MasterUserSecret.SecretArn}
"""


def dynamodb_local() -> None:
    ddb = client("dynamodb")
    table = f"selftest-{RUN}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    check("dynamodb: table created", table in ddb.list_tables()["TableNames"])
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "TENANT#acme"}, "sk": {"S": "TENANT"}, "version": {"N": "1"}},
                     "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": table, "Item": {"pk": {"S": "TENANT#acme"}, "sk": {"S": "EVENT#0000000001"}}}},
        ],
        ReturnConsumedCapacity="TOTAL",
    )
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "TENANT#acme"}, "sk": {"S": "TENANT"}}, ConsistentRead=True)
    check("dynamodb: transact write + consistent read", got.get("Item", {}).get("version") == {"N": "1"}, got)
    try:
        ddb.put_item(TableName=table, Item={"pk": {"S": "TENANT#acme"}, "sk": {"S": "TENANT"}},
                     ConditionExpression="version = :v", ExpressionAttributeValues={":v": {"N": "7"}})
        check("dynamodb: conditional write refused", False, "put succeeded")
    except ClientError as err:
        check("dynamodb: conditional write refused", err.response["Error"]["Code"] == "ConditionalCheckFailedException", err)
    ddb.delete_table(TableName=table)


def cloudformation_rds() -> None:
    cfn, rds, ssm, s3 = client("cloudformation"), client("rds"), client("ssm"), client("s3")
    stack = f"selftest-tenant-{RUN}"
    token = f"provision-{RUN}-1"
    first = cfn.create_stack(StackName=stack, TemplateBody=TENANT_TEMPLATE, ClientRequestToken=token,
                             Parameters=params(Tenant=RUN, Release="1.0.0"))["StackId"]
    check("cfn: stack with DBCluster created", stack_status(cfn, stack) == "CREATE_COMPLETE", stack_status(cfn, stack))
    again = cfn.create_stack(StackName=stack, TemplateBody=TENANT_TEMPLATE, ClientRequestToken=token,
                             Parameters=params(Tenant=RUN, Release="1.0.0"))["StackId"]
    tokens = {e.get("ClientRequestToken") for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]}
    check("cfn: CreateStack repeated with its ClientRequestToken is idempotent", first == again and token in tokens, tokens)
    out = outputs(cfn, stack)
    cluster_id = out["ClusterId"]
    clusters = {c["DBClusterIdentifier"]: c for c in rds.describe_db_clusters()["DBClusters"]}
    check("rds: cluster visible in describe-db-clusters", cluster_id in clusters, list(clusters))
    cluster = clusters.get(cluster_id, {})
    check("rds: engine aurora-postgresql, port 5432", (cluster.get("Engine"), cluster.get("Port")) == ("aurora-postgresql", 5432), cluster)
    check("rds: writer instance is a cluster member",
          [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])] == [out["Writer"]], cluster.get("DBClusterMembers"))
    check("cfn: GetAtt Endpoint.Address matches the cluster", out["Endpoint"] == cluster.get("Endpoint"), (out, cluster.get("Endpoint")))
    check("cfn: GetAtt ReadEndpoint.Address/Port/Arn/ResourceId",
          out["Reader"] == cluster.get("ReaderEndpoint") and out["Port"] == "5432"
          and out["Arn"] == cluster.get("DBClusterArn") and out["ResourceId"] == cluster.get("DbClusterResourceId"), out)
    url = ssm.get_parameter(Name=f"/tenants/{RUN}/db-url")["Parameter"]["Value"]
    check("cfn: Fn::Sub with ${Cluster.Endpoint.Address} into SSM",
          url == f"postgres://{out['Endpoint']}:5432/app?release=1.0.0", url)
    check("cfn: S3 bucket exists", any(b["Name"] == out["Bucket"] for b in s3.list_buckets()["Buckets"]))

    snap = f"selftest-{RUN}-pre-1-1-0"
    rds.create_db_cluster_snapshot(DBClusterIdentifier=cluster_id, DBClusterSnapshotIdentifier=snap)
    snaps = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snap)["DBClusterSnapshots"]
    check("rds: cluster snapshot created and described",
          len(snaps) == 1 and snaps[0]["Status"] == "available" and snaps[0]["DBClusterIdentifier"] == cluster_id, snaps)

    cfn.update_stack(StackName=stack, TemplateBody=TENANT_TEMPLATE,
                     Parameters=params(Tenant=RUN, Release="1.1.0", BackupRetention="7"))
    cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    url = ssm.get_parameter(Name=f"/tenants/{RUN}/db-url")["Parameter"]["Value"]
    check("cfn: update changes the cluster in place",
          stack_status(cfn, stack) == "UPDATE_COMPLETE" and cluster["BackupRetentionPeriod"] == 7
          and outputs(cfn, stack)["ClusterId"] == cluster_id and url.endswith("release=1.1.0"), (cluster["BackupRetentionPeriod"], url))
    try:
        cfn.update_stack(StackName=stack, TemplateBody=TENANT_TEMPLATE,
                         Parameters=params(Tenant=RUN, Release="1.1.0", BackupRetention="7"))
        check("cfn: unchanged update refused", False, "update accepted")
    except ClientError as err:
        check("cfn: unchanged update refused", "No updates are to be performed" in str(err), err)

    # Restore: SnapshotIdentifier replaces the cluster; the writer and the SSM
    # parameters follow the new cluster, the old one is removed.
    cfn.update_stack(StackName=stack, TemplateBody=TENANT_TEMPLATE,
                     Parameters=params(Tenant=RUN, Release="1.1.0", BackupRetention="7", RestoreSnapshot=snap))
    out2 = outputs(cfn, stack)
    clusters = {c["DBClusterIdentifier"]: c for c in rds.describe_db_clusters()["DBClusters"]}
    new = clusters.get(out2["ClusterId"], {})
    check("cfn: restore from snapshot replaces the cluster",
          stack_status(cfn, stack) == "UPDATE_COMPLETE" and out2["ClusterId"] != cluster_id
          and cluster_id not in clusters and new.get("DatabaseName") == "app", (out2, list(clusters)))
    check("cfn: writer moved to the restored cluster",
          [m["DBInstanceIdentifier"] for m in new.get("DBClusterMembers", [])] == [out2["Writer"]], new.get("DBClusterMembers"))
    endpoint = ssm.get_parameter(Name=f"/tenants/{RUN}/db-endpoint")["Parameter"]["Value"]
    check("cfn: SSM parameter follows the new endpoint", endpoint == new.get("Endpoint"), (endpoint, new.get("Endpoint")))

    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=snap)
    left = rds.describe_db_cluster_snapshots(DBClusterIdentifier=cluster_id, SnapshotType="manual")["DBClusterSnapshots"]
    check("rds: cluster snapshot deleted", not [s for s in left if s["DBClusterSnapshotIdentifier"] == snap], left)

    cfn.delete_stack(StackName=stack)
    remaining = [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]]
    final = [s for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
             if s["DBClusterIdentifier"] == out2["ClusterId"]]
    check("cfn: delete removes cluster and instance",
          out2["ClusterId"] not in remaining
          and not [d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"] == out2["Writer"]],
          remaining)
    check("cfn: DeletionPolicy Snapshot leaves a final snapshot", len(final) == 1, final)
    for s in final:
        rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=s["DBClusterSnapshotIdentifier"])
    summaries = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == stack]
    check("cfn: stack DELETE_COMPLETE", summaries and summaries[0]["StackStatus"] == "DELETE_COMPLETE", summaries)


def cloudformation_failures() -> None:
    cfn, rds = client("cloudformation"), client("rds")
    named = f"tenant-{RUN}-named"
    template = TENANT_TEMPLATE.replace(
        "      Engine: aurora-postgresql\n      EngineVersion", f"      DBClusterIdentifier: {named}\n      Engine: aurora-postgresql\n      EngineVersion", 1
    ).replace("    DeletionPolicy: Snapshot\n", "    DeletionPolicy: Delete\n", 1)
    stack = f"selftest-named-{RUN}"
    cfn.create_stack(StackName=stack, TemplateBody=template, Parameters=params(Tenant=f"{RUN}n", Release="1.0.0"))
    snap = f"{named}-snap"
    rds.create_db_cluster_snapshot(DBClusterIdentifier=named, DBClusterSnapshotIdentifier=snap)
    cfn.update_stack(StackName=stack, TemplateBody=template,
                     Parameters=params(Tenant=f"{RUN}n", Release="1.0.0", RestoreSnapshot=snap))
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    reasons = [e.get("ResourceStatusReason") or "" for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    check("cfn: replacing a custom-named cluster rolls the update back (as AWS)",
          stack_status(cfn, stack) == "UPDATE_ROLLBACK_COMPLETE" and any("custom-named" in r for r in reasons), (stack_status(cfn, stack), reasons))
    cfn.delete_stack(StackName=stack)
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=snap)

    bad = f"selftest-bad-{RUN}"
    cfn.create_stack(StackName=bad, TemplateBody=TENANT_TEMPLATE.replace("Engine: aurora-postgresql", "Engine: no-such-engine", 1),
                     Parameters=params(Tenant=f"{RUN}b", Release="1.0.0"))
    check("cfn: failed create ends ROLLBACK_COMPLETE", stack_status(cfn, bad) == "ROLLBACK_COMPLETE", stack_status(cfn, bad))
    cfn.delete_stack(StackName=bad)


def acm_route53_elbv2() -> None:
    acm, r53, ec2, elb = client("acm"), client("route53"), client("ec2"), client("elbv2")
    zone = r53.create_hosted_zone(Name=f"{RUN}.example.test", CallerReference=RUN)["HostedZone"]["Id"]
    arn = acm.request_certificate(DomainName=f"acme.{RUN}.example.test", ValidationMethod="DNS",
                                  IdempotencyToken=RUN)["CertificateArn"]
    again = acm.request_certificate(DomainName=f"acme.{RUN}.example.test", ValidationMethod="DNS",
                                    IdempotencyToken=RUN)["CertificateArn"]
    check("acm: IdempotencyToken returns the same certificate", arn == again, (arn, again))
    cert = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    check("acm: new certificate is PENDING_VALIDATION", cert["Status"] == "PENDING_VALIDATION", cert["Status"])
    record = cert["DomainValidationOptions"][0]["ResourceRecord"]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": record["Name"], "Type": record["Type"], "TTL": 300, "ResourceRecords": [{"Value": record["Value"]}]}}]})
    wait = int(os.environ.get("MOTO_ACM_VALIDATION_WAIT", "2"))
    deadline = time.time() + wait + 10
    status = cert["Status"]
    while status != "ISSUED" and time.time() < deadline:
        time.sleep(0.5)
        status = acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"]
    check(f"acm: ISSUED after MOTO_ACM_VALIDATION_WAIT={wait}s", status == "ISSUED", status)

    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
               for i, az in enumerate("ab")]
    lb = elb.create_load_balancer(Name=f"alb-{RUN}", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    tg = elb.create_target_group(Name=f"tg-{RUN}", Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]["TargetGroupArn"]
    default = acm.request_certificate(DomainName=f"*.{RUN}.example.test")["CertificateArn"]
    listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTPS", Port=443, Certificates=[{"CertificateArn": default}],
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])["Listeners"][0]["ListenerArn"]
    elb.add_listener_certificates(ListenerArn=listener, Certificates=[{"CertificateArn": arn}])
    elb.add_listener_certificates(ListenerArn=listener, Certificates=[{"CertificateArn": arn}])
    certs = elb.describe_listener_certificates(ListenerArn=listener)["Certificates"]
    check("elbv2: add-listener-certificates is idempotent",
          sorted(c["CertificateArn"] for c in certs) == sorted([default, arn]), certs)
    elb.remove_listener_certificates(ListenerArn=listener, Certificates=[{"CertificateArn": arn}])
    certs = elb.describe_listener_certificates(ListenerArn=listener)["Certificates"]
    check("elbv2: remove-listener-certificates", [c["CertificateArn"] for c in certs] == [default], certs)

    # DELETE as AWS does it: exactly the current values, of a record set that exists.
    described = elb.describe_load_balancers(LoadBalancerArns=[lb])["LoadBalancers"][0]
    alias = {"Name": f"www.{RUN}.example.test", "Type": "A", "AliasTarget": {
        "DNSName": described["DNSName"], "HostedZoneId": described["CanonicalHostedZoneId"], "EvaluateTargetHealth": False}}
    owner = {"Name": f"_tenantctl.www.{RUN}.example.test", "Type": "TXT", "TTL": 300,
             "ResourceRecords": [{"Value": '"tenant-orchestrator tenant=acme"'}]}

    def change(*changes: tuple[str, dict]) -> str:
        try:
            r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
                "Changes": [{"Action": action, "ResourceRecordSet": rrset} for action, rrset in changes]})
            return "ok"
        except r53.exceptions.ClientError as e:
            return f"{e.response['Error']['Code']}: {e.response['Error']['Message']}"

    def names() -> set[str]:
        return {r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]}

    check("route53: UPSERT of an alias A record and its TXT in one batch", change(("UPSERT", alias), ("UPSERT", owner)) == "ok")
    moved = {**alias, "AliasTarget": {**alias["AliasTarget"], "DNSName": "elsewhere.example.test"}}
    refused = change(("DELETE", moved), ("DELETE", owner))
    check("route53: DELETE with other values is refused, and the batch not applied",
          refused.startswith("InvalidChangeBatch") and "do not match" in refused and owner["Name"] + "." in names(), refused)
    check("route53: DELETE with the current values", change(("DELETE", alias), ("DELETE", owner)) == "ok")
    again = change(("DELETE", alias))
    check("route53: DELETE of a record set that is gone is refused (not found)",
          again.startswith("InvalidChangeBatch") and "not found" in again, again)
    elb.delete_load_balancer(LoadBalancerArn=lb)


def ecr_images() -> None:
    ecr = client("ecr")
    repo = f"tenant-app-{RUN}"
    ecr.create_repository(repositoryName=repo)
    manifest = '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {}, "layers": []}'
    ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="1.1.0")
    found = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "1.1.0"}])["imageDetails"]
    check("ecr: pushed tag is found", len(found) == 1, found)
    try:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "9.9.9"}])
        check("ecr: missing tag is ImageNotFoundException", False, "found")
    except ClientError as err:
        check("ecr: missing tag is ImageNotFoundException", err.response["Error"]["Code"] == "ImageNotFoundException", err)
    ecr.delete_repository(repositoryName=repo, force=True)


ALARM_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Prefix: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Cpu:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "${Prefix}/cpu"
      Namespace: AWS/SQS
      MetricName: ApproximateNumberOfMessagesVisible
      Dimensions:
        - {Name: QueueName, Value: !GetAtt Queue.QueueName}
      Statistic: Maximum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 10
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: missing
      Tags:
        - {Key: managed-by, Value: selftest}
"""


def cloudformation_change_sets() -> None:
    cfn = client("cloudformation")
    stack = f"selftest-changes-{RUN}"
    cfn.create_stack(StackName=stack, TemplateBody=TENANT_TEMPLATE, Parameters=params(Tenant=RUN, Release="1.0.0"))

    def preview(name: str, template: str, **values: str) -> dict[str, Any]:
        cfn.create_change_set(StackName=stack, ChangeSetName=name, ChangeSetType="UPDATE",
                              TemplateBody=template, Parameters=params(**values))
        described = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        return {"status": described["Status"], "reason": described.get("StatusReason", ""),
                "changes": {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in described["Changes"]}}

    same = preview("same", TENANT_TEMPLATE, Tenant=RUN, Release="1.0.0")
    check("cfn: a change set without changes is FAILED with AWS's reason",
          same["status"] == "FAILED" and "didn't contain changes" in same["reason"] and not same["changes"], same)
    param = preview("param", TENANT_TEMPLATE, Tenant=RUN, Release="1.1.0")
    url = param["changes"].get("DbUrl", {})
    check("cfn: a parameter-only change is a Modify of the resources reading it, without replacement",
          set(param["changes"]) == {"DbUrl"} and url.get("Action") == "Modify" and url.get("Replacement") == "False"
          and url.get("Details", [{}])[0].get("ChangeSource") == "ParameterReference", param)
    engine = preview("engine", TENANT_TEMPLATE.replace("Engine: aurora-postgresql\n      EngineVersion",
                                                       "Engine: aurora-mysql\n      EngineVersion"),
                     Tenant=RUN, Release="1.0.0")
    cluster = engine["changes"].get("Cluster", {})
    details = {d["Target"]["Name"]: d["Target"] for d in cluster.get("Details", [])}
    check("cfn: an Engine change replaces the cluster (Replacement True, RequiresRecreation Always)",
          cluster.get("Replacement") == "True" and cluster.get("Scope") == ["Properties"]
          and details.get("Engine", {}).get("RequiresRecreation") == "Always", cluster)
    check("cfn: the writer reading the replaced cluster is replaced conditionally",
          engine["changes"].get("Writer", {}).get("Replacement") == "Conditional", engine["changes"].get("Writer"))
    tags = preview("tags", TENANT_TEMPLATE.replace("Tags: [{Key: tenant, Value: !Ref Tenant}]",
                                                   "Tags: [{Key: tenant, Value: !Ref Tenant}, {Key: team, Value: a}]"),
                   Tenant=RUN, Release="1.0.0")
    cluster = tags["changes"].get("Cluster", {})
    check("cfn: a tag change modifies the cluster in place (Scope Tags)",
          set(tags["changes"]) == {"Cluster"} and cluster.get("Replacement") == "False" and cluster.get("Scope") == ["Tags"], tags)

    before = outputs(cfn, stack)["ClusterId"]
    cfn.execute_change_set(StackName=stack, ChangeSetName="param", ClientRequestToken=f"execute-{RUN}")
    value = client("ssm").get_parameter(Name=f"/tenants/{RUN}/db-url")["Parameter"]["Value"]
    events = {e.get("ClientRequestToken") for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]}
    check("cfn: ExecuteChangeSet updates the stack like UpdateStack, with its token on the events",
          stack_status(cfn, stack) == "UPDATE_COMPLETE" and value.endswith("release=1.1.0")
          and outputs(cfn, stack)["ClusterId"] == before and f"execute-{RUN}" in events, (value, events))
    try:
        cfn.create_change_set(StackName=stack, ChangeSetName="param", ChangeSetType="UPDATE",
                              TemplateBody=TENANT_TEMPLATE, Parameters=params(Tenant=RUN, Release="1.2.0"))
        check("cfn: a change set name is taken once per stack", False, "created twice")
    except ClientError as err:
        check("cfn: a change set name is taken once per stack", err.response["Error"]["Code"] == "AlreadyExistsException", err)
    try:
        cfn.delete_change_set(StackName=stack, ChangeSetName="never-made")
        check("cfn: deleting an unknown change set answers ChangeSetNotFound", False, "deleted")
    except ClientError as err:
        check("cfn: deleting an unknown change set answers ChangeSetNotFound",
              err.response["Error"]["Code"] == "ChangeSetNotFound", err)
    left = [s["ChangeSetName"] for s in cfn.list_change_sets(StackName=stack)["Summaries"]]
    check("cfn: executing a change set deletes the stack's others", left == ["param"], left)

    other = f"selftest-changes-other-{RUN}"
    cfn.create_stack(StackName=other, TemplateBody=TENANT_TEMPLATE, Parameters=params(Tenant=f"{RUN}-other", Release="1.0.0"))
    cfn.create_change_set(StackName=other, ChangeSetName="elsewhere", ChangeSetType="UPDATE",
                          TemplateBody=TENANT_TEMPLATE, Parameters=params(Tenant=f"{RUN}-other", Release="1.1.0"))
    listed = [s["ChangeSetName"] for s in cfn.list_change_sets(StackName=stack)["Summaries"]]
    check("cfn: ListChangeSets lists the named stack's change sets only", listed == ["param"], listed)
    for call in (cfn.describe_change_set, cfn.delete_change_set):
        try:
            call(StackName=stack, ChangeSetName="elsewhere")
            check(f"cfn: {call.__name__} finds a name among the named stack's change sets only", False, "found")
        except ClientError as err:
            check(f"cfn: {call.__name__} finds a name among the named stack's change sets only",
                  err.response["Error"]["Code"] == "ChangeSetNotFound", err)
    cfn.delete_change_set(StackName=other, ChangeSetName="elsewhere")
    left = cfn.list_change_sets(StackName=other)["Summaries"]
    check("cfn: DeleteChangeSet of the named stack's change set deletes it", left == [], left)
    cfn.delete_stack(StackName=other)
    cfn.delete_stack(StackName=stack)


def cloudformation_alarms() -> None:
    cfn, cw = client("cloudformation"), client("cloudwatch")
    stack, prefix = f"selftest-alarms-{RUN}", f"selftest-{RUN}"
    cfn.create_stack(StackName=stack, TemplateBody=ALARM_TEMPLATE, Parameters=params(Prefix=prefix))
    check("cfn: stack with an AWS::CloudWatch::Alarm created", stack_status(cfn, stack) == "CREATE_COMPLETE", stack_status(cfn, stack))
    alarms = cw.describe_alarms(AlarmNamePrefix=f"{prefix}/")["MetricAlarms"]
    check("cloudwatch: the stack's alarm is listed by its name prefix",
          [a["AlarmName"] for a in alarms] == [f"{prefix}/cpu"], alarms)
    check("cfn: the alarm's dimension is the resolved reference",
          alarms and alarms[0]["Dimensions"][0]["Value"].startswith(f"{stack}-Queue-"), alarms)
    cw.set_alarm_state(AlarmName=f"{prefix}/cpu", StateValue="ALARM", StateReason="selftest")
    state = cw.describe_alarms(AlarmNames=[f"{prefix}/cpu"])["MetricAlarms"][0]["StateValue"]
    check("cloudwatch: SetAlarmState drives the stack's alarm", state == "ALARM", state)
    cfn.delete_stack(StackName=stack)
    left = cw.describe_alarms(AlarmNamePrefix=f"{prefix}/")["MetricAlarms"]
    check("cfn: deleting the stack deletes its alarm", left == [], left)


def cloudformation_rollback_triggers() -> None:
    cfn, cw = client("cloudformation"), client("cloudwatch")
    stack, prefix = f"selftest-triggers-{RUN}", f"selftest-triggers-{RUN}"
    template = ALARM_TEMPLATE.replace("      Threshold: 10\n", "      Threshold: !Ref Threshold\n").replace(
        "  Prefix: {Type: String}\n", "  Prefix: {Type: String}\n  Threshold: {Type: Number, Default: 10}\n")
    cfn.create_stack(StackName=stack, TemplateBody=template, Parameters=params(Prefix=prefix))
    alarm = f"{prefix}/cpu"
    arn = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["AlarmArn"]

    def rollback(*arns: str, minutes: int = 5) -> dict[str, Any]:
        return {"RollbackTriggers": [{"Arn": a, "Type": "AWS::CloudWatch::Alarm"} for a in arns],
                "MonitoringTimeInMinutes": minutes}

    def update(name: str, threshold: str, config: dict[str, Any]) -> list[dict[str, Any]]:
        cfn.create_change_set(StackName=stack, ChangeSetName=name, ChangeSetType="UPDATE", TemplateBody=template,
                              Parameters=params(Prefix=prefix, Threshold=threshold), RollbackConfiguration=config)
        token = f"{name}-{RUN}"
        cfn.execute_change_set(StackName=stack, ChangeSetName=name, ClientRequestToken=token)
        return [e for e in cfn.describe_stack_events(StackName=stack)["StackEvents"] if e.get("ClientRequestToken") == token]

    def threshold() -> tuple[str, float, str]:
        given = {p["ParameterKey"]: p["ParameterValue"] for p in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]}
        live = cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
        return given["Threshold"], live["Threshold"], live["StateValue"]

    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="selftest")
    events = update("alarmed", "20", rollback(arn))
    reasons = [e.get("ResourceStatusReason", "") for e in events if e["ResourceStatus"] == "UPDATE_ROLLBACK_IN_PROGRESS"]
    check("cfn: a rollback trigger in ALARM rolls the change set's update back, naming the alarm",
          stack_status(cfn, stack) == "UPDATE_ROLLBACK_COMPLETE" and len(reasons) == 1 and arn in reasons[0]
          and not any(e["ResourceStatus"] == "UPDATE_COMPLETE" and e["LogicalResourceId"] == stack for e in events),
          (stack_status(cfn, stack), events))
    check("cfn: the rolled-back stack has its previous parameters, its alarm its previous threshold and state",
          threshold() == ("10", 10.0, "ALARM"), threshold())
    cfn.update_stack(StackName=stack, TemplateBody=template, Parameters=params(Prefix=prefix, Threshold="30"),
                     RollbackConfiguration=rollback(arn))
    check("cfn: UpdateStack honours its rollback triggers too",
          stack_status(cfn, stack) == "UPDATE_ROLLBACK_COMPLETE" and threshold()[0] == "10", threshold())
    events = update("missing", "20", rollback(f"{arn}-gone"))
    check("cfn: a rollback trigger that does not exist rolls the update back",
          stack_status(cfn, stack) == "UPDATE_ROLLBACK_COMPLETE"
          and any("does not exist" in e.get("ResourceStatusReason", "") for e in events), events)
    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="selftest")
    update("calm", "20", rollback(arn, minutes=0))
    check("cfn: with its triggers OK the update completes",
          stack_status(cfn, stack) == "UPDATE_COMPLETE" and threshold() == ("20", 20.0, "OK"), threshold())
    for config, what in ((rollback(*[arn] * 6), "six triggers"), (rollback(arn, minutes=181), "181 minutes")):
        try:
            cfn.create_change_set(StackName=stack, ChangeSetName=f"bad-{RUN}", ChangeSetType="UPDATE", TemplateBody=template,
                                  Parameters=params(Prefix=prefix, Threshold="40"), RollbackConfiguration=config)
            check(f"cfn: a rollback configuration with {what} is refused", False, "accepted")
        except ClientError as err:
            check(f"cfn: a rollback configuration with {what} is refused",
                  err.response["Error"]["Code"] == "ValidationError", err)
    cfn.delete_stack(StackName=stack)


def main() -> int:
    for func in (dynamodb_local, cloudformation_rds, cloudformation_failures, cloudformation_change_sets, cloudformation_alarms,
                 cloudformation_rollback_triggers, acm_route53_elbv2, ecr_images):
        section(func)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
