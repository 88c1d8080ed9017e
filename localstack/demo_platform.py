"""Creates, in the local AWS, the shared platform a real account already has before
tenant-orchestrator runs: per region an ECR repository with the application's release
images, a VPC with a DB subnet group and security group, an internet-facing ALB with
two HTTPS listeners, and one public hosted zone. Prints the steps configuration (JSON)
that points tenantctl at it.

    python localstack/demo_platform.py --regions us-east-1,eu-west-1 \
        --releases 1.0.0,1.1.0,1.2.0 --zone example.com > steps.json

Idempotent: re-running finds what exists. Needs the AWS_* exports of localstack/start.sh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import boto3


SCHEMA_ANNOTATION = "io.tenant-orchestrator.schema-version"


def image_manifest(release: str, schema: str | None = None) -> str:
    """A schema-2 manifest unique per release (moto derives the image digest from the
    layers, so each release gets a layer of its own). With `schema`, the manifest
    declares the database schema the release needs in the annotation tenantctl reads."""
    digest = hashlib.sha256(f"tenant-app {release}".encode()).hexdigest()
    layer = hashlib.sha256(f"tenant-app layer {release}".encode()).hexdigest()
    annotations = {"annotations": {SCHEMA_ANNOTATION: schema}} if schema else {}
    return json.dumps(
        {
            **annotations,
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1024,
                "digest": f"sha256:{digest}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 4096,
                    "digest": f"sha256:{layer}",
                }
            ],
        }
    )


def ensure_repository(ecr, name: str, releases: list[str]) -> None:
    """Pushes each release (`1.1.0`, or `1.1.0=42` for one declaring schema 42)."""
    try:
        ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    existing = {
        tag
        for image in ecr.describe_images(repositoryName=name).get("imageDetails", [])
        for tag in image.get("imageTags", [])
    }
    for entry in releases:
        release, _, schema = entry.partition("=")
        if release not in existing:
            ecr.put_image(
                repositoryName=name, imageManifest=image_manifest(release, schema or None), imageTag=release
            )


def ensure_network(ec2, rds, region: str) -> tuple[list[str], str, str]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["tenants"]}])["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": "tenants"}])
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    if len(subnets) < 2:
        for i, zone in enumerate([f"{region}a", f"{region}b"]):
            ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=zone)
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    subnet_ids = sorted(s["SubnetId"] for s in subnets)[:2]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["tenant-db"]}]
    )["SecurityGroups"]
    sg_id = groups[0]["GroupId"] if groups else ec2.create_security_group(
        GroupName="tenant-db", Description="tenant databases", VpcId=vpc_id
    )["GroupId"]
    try:
        rds.create_db_subnet_group(
            DBSubnetGroupName="tenant-db", DBSubnetGroupDescription="tenant databases", SubnetIds=subnet_ids
        )
    except rds.exceptions.DBSubnetGroupAlreadyExistsFault:
        pass
    return subnet_ids, sg_id, "tenant-db"


def ensure_listeners(elbv2, acm, subnet_ids: list[str], zone: str) -> list[str]:
    try:
        lb = elbv2.describe_load_balancers(Names=["tenants"])["LoadBalancers"][0]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        lb = elbv2.create_load_balancer(Name="tenants", Subnets=subnet_ids, Scheme="internet-facing", Type="application")[
            "LoadBalancers"
        ][0]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    if len(listeners) < 2:
        # The platform's own default certificate; tenant certificates are added by tenantctl.
        default_cert = acm.request_certificate(DomainName=f"platform.{zone}", ValidationMethod="DNS")["CertificateArn"]
        tg = elbv2.create_target_group(Name="default", Protocol="HTTP", Port=80, VpcId=lb["VpcId"], TargetType="ip")[
            "TargetGroups"
        ][0]
        for port in (443, 8443)[len(listeners):]:
            elbv2.create_listener(
                LoadBalancerArn=lb["LoadBalancerArn"],
                Protocol="HTTPS",
                Port=port,
                Certificates=[{"CertificateArn": default_cert}],
                DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
            )
        listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    return [l["ListenerArn"] for l in sorted(listeners, key=lambda l: l["Port"])]


def ensure_zone(route53, zone: str) -> str:
    for hz in route53.list_hosted_zones()["HostedZones"]:
        if hz["Name"].rstrip(".") == zone:
            return hz["Id"].split("/")[-1]
    created = route53.create_hosted_zone(Name=zone, CallerReference=f"tenants-{zone}")
    return created["HostedZone"]["Id"].split("/")[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="us-east-1,eu-west-1")
    # `1.1.0=42`: release 1.1.0's image declares database schema 42 (a migration).
    parser.add_argument("--releases", default="1.0.0,1.1.0,1.2.0")
    parser.add_argument("--repository", default="tenant-app")
    parser.add_argument("--zone", default="example.com")
    parser.add_argument("--helm-bin", default="localstack/helm-standin")
    parser.add_argument("--health-port", type=int, default=18089)
    args = parser.parse_args()
    releases = args.releases.split(",")
    zone_id = ensure_zone(boto3.client("route53"), args.zone)
    regions = {}
    for region in args.regions.split(","):
        session = boto3.session.Session(region_name=region)
        ensure_repository(session.client("ecr"), args.repository, releases)
        subnets, sg, subnet_group = ensure_network(session.client("ec2"), session.client("rds"), region)
        listeners = ensure_listeners(session.client("elbv2"), session.client("acm"), subnets, args.zone)
        regions[region] = {
            "db_subnet_group": subnet_group,
            "db_security_group_ids": [sg],
            "oidc_provider_arn": f"arn:aws:iam::123456789012:oidc-provider/oidc.eks.{region}.amazonaws.com/id/LOCAL",
            "oidc_provider_host": f"oidc.eks.{region}.amazonaws.com/id/LOCAL",
            "kube_context": f"tenants-{region}",
            "listener_arns": listeners,
            "hosted_zone_id": zone_id,
        }
    json.dump({"regions": regions}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
