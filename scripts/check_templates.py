"""Checks the tenant CloudFormation template and the tenant Helm chart.

Run through scripts/check-templates.sh. Every check prints PASS or FAIL; the last line
is the summary "N passed, M failed"; the exit status is non-zero when anything failed.

- the template passes cfn-lint and keeps the contract tenantctl relies on (parameters,
  outputs, tier rows, tags);
- the chart passes `helm lint --strict` and renders with Helm's own engine for every
  tier from charts/tenant/ci/<tier>-values.yaml; the output holds every expected kind,
  each manifest validates against the Kubernetes schemas of KUBERNETES_VERSION, and
  the content keeps its promises (image by digest, probes, IRSA, one rule per host...);
- values that break the schema are rejected by the render;
- the orchestrator's own template (scripts/orchestrator_template.py): cfn-lint, the
  state table as state/table.json, and a task role that grants exactly the AWS
  operations the code calls.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import yaml
from cfn_support import CheckFailed, cfn_lint, expect, load_cfn

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "cloudformation" / "tenant.yaml"
CHART = ROOT / "charts" / "tenant"
CI_VALUES = CHART / "ci"

TIERS = ("small", "medium", "large")
KUBERNETES_VERSION = "1.30"
# Regions tenants are placed in: resource types and instance classes must exist there.

TEMPLATE_PARAMETERS = {
    "TenantId",
    "Environment",
    "Tier",
    "DBSubnetGroupName",
    "DBSecurityGroupIds",
    "OidcProviderArn",
    "OidcProviderHost",
    "KubernetesNamespace",
    "RestoreSnapshotIdentifier",
}
TEMPLATE_OUTPUTS = {
    "DatabaseEndpoint",
    "DatabasePort",
    "DatabaseReaderEndpoint",
    "DatabaseClusterIdentifier",
    "BucketName",
    "WorkloadRoleArn",
}
REQUIRED_TAGS = ("tenant", "environment", "managed-by")
# Resource types of the template that take no tags.
UNTAGGABLE = {"AWS::S3::BucketPolicy"}

EXPECTED_KINDS = {
    "Deployment",
    "Service",
    "ServiceAccount",
    "ConfigMap",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Ingress",
}
HEALTH_PATH = "/healthz"


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def run(self, name: str, check: Callable[[], str | None]) -> None:
        try:
            detail = check()
        except CheckFailed as exc:
            self.failed += 1
            print(f"FAIL {name}: {exc}")
        except Exception as exc:
            self.failed += 1
            if type(exc).__module__.split(".")[0] == "helm_python":
                # Helm refused the chart or the values: its message says why.
                print(f"FAIL {name}: {type(exc).__name__}: {exc}")
            else:  # a crash of a check is a failure, with its trace
                print(f"FAIL {name}: unexpected error")
                traceback.print_exc(file=sys.stdout)
        else:
            self.passed += 1
            print(f"PASS {name}" + (f" ({detail})" if detail else ""))
        sys.stdout.flush()


# --- CloudFormation -------------------------------------------------------------------


def load_template() -> dict[str, Any]:
    return load_cfn(TEMPLATE)


def check_cfn_lint() -> str:
    return cfn_lint(TEMPLATE)


def check_template_contract() -> str:
    template = load_template()
    parameters = template.get("Parameters", {})
    missing = TEMPLATE_PARAMETERS - parameters.keys()
    expect(not missing, f"parameters missing: {sorted(missing)}")
    outputs = set(template.get("Outputs", {}))
    expect(outputs == TEMPLATE_OUTPUTS, f"outputs are {sorted(outputs)}, want {sorted(TEMPLATE_OUTPUTS)}")
    tiers = parameters["Tier"].get("AllowedValues", [])
    rows = template.get("Mappings", {}).get("TierSizing", {})
    expect(set(tiers) == set(rows), f"Tier AllowedValues {tiers} differ from TierSizing rows {sorted(rows)}")
    expect(set(TIERS) <= set(rows), f"TierSizing lacks one of {TIERS}")
    for parameter in ("KubernetesNamespace", "RestoreSnapshotIdentifier"):
        expect(parameters[parameter].get("Default") == "", f"{parameter} must default to empty")
    return f"{len(parameters)} parameters, {len(outputs)} outputs, tiers {', '.join(sorted(rows))}"


def _tag_keys(tags: Any) -> set[str]:
    if isinstance(tags, dict):  # AWS::SSM::Parameter takes a map
        return set(tags)
    return {tag.get("Key") for tag in tags or [] if isinstance(tag, dict)}


def check_template_tags() -> str:
    resources = load_template()["Resources"]
    tagged = 0
    for logical_id, resource in resources.items():
        if resource["Type"] in UNTAGGABLE:
            continue
        keys = _tag_keys(resource.get("Properties", {}).get("Tags"))
        missing = [key for key in REQUIRED_TAGS if key not in keys]
        expect(not missing, f"{logical_id} ({resource['Type']}) lacks tags {missing}")
        tagged += 1
    return f"{tagged} resources tagged"


# --- Helm chart -----------------------------------------------------------------------


def load_values(tier: str) -> dict[str, Any]:
    with (CI_VALUES / f"{tier}-values.yaml").open() as handle:
        values = yaml.safe_load(handle)
    # tenantctl hands its values to Helm as JSON: keep exactly what JSON can carry.
    return json.loads(json.dumps(values))


def release_name(values: dict[str, Any]) -> str:
    return f"tenant-{values['tenant']['id']}"


def render(helm: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    name = release_name(values)
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=name, namespace=name, is_install=True)
    documents = []
    for path in sorted(manifests):
        for document in yaml.safe_load_all(manifests[path]):
            if document:
                documents.append(document)
    return documents


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [document for document in documents if document.get("kind") == kind]
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


def check_lint(helm: Any, tier: str) -> str | None:
    report = helm.lint(
        str(CHART), load_values(tier), strict=True, kube_version=f"v{KUBERNETES_VERSION}.0"
    )
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    lines = [f"{m.get('path')}: {m.get('error')}" for m in problems] or report.get("errors") or []
    expect(not lines, "\n".join(lines))
    return None


def check_kinds(helm: Any, tier: str) -> str:
    kinds = [document.get("kind") for document in render(helm, load_values(tier))]
    missing = EXPECTED_KINDS - set(kinds)
    expect(not missing, f"rendered kinds {sorted(kinds)} lack {sorted(missing)}")
    return ", ".join(sorted(kinds))


def validate_documents(kubernetes_validate: Any, documents: list[dict[str, Any]]) -> str:
    for document in documents:
        label = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(item) for item in exc.path)
            raise CheckFailed(f"{label}: {path}: {exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise CheckFailed(f"{label}: no schema: {exc}") from None
    return f"{len(documents)} manifests, Kubernetes {KUBERNETES_VERSION}, strict"


def check_schemas(helm: Any, kubernetes_validate: Any, tier: str) -> str:
    return validate_documents(kubernetes_validate, render(helm, load_values(tier)))


def check_content(helm: Any, tier: str) -> str:
    values = load_values(tier)
    documents = render(helm, values)
    name = release_name(values)
    with helm.Chart.load(str(CHART)) as chart:
        sizing = chart.merge_values(values)["tiers"][tier]

    for document in documents:
        labels = document["metadata"].get("labels", {})
        expect(document["metadata"].get("namespace") == name, f"{document['kind']} not in namespace {name}")
        expect(labels.get("tenant") == values["tenant"]["id"], f"{document['kind']} lacks the tenant label")

    deployment = by_kind(documents, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    image = container["image"]
    expected_image = f"{values['image']['repository']}@{values['image']['digest']}"
    expect(image == expected_image, f"image {image!r}, want {expected_image!r}")
    expect(":" not in image.split("@")[0].rsplit("/", 1)[-1], f"image {image!r} carries a tag")
    annotations = pod["metadata"].get("annotations", {})
    expect(len(annotations.get("checksum/config", "")) == 64, "pod template lacks checksum/config")
    expect(spec.get("serviceAccountName") == values["serviceAccount"]["name"], "pod not on the service account")
    expect(spec["securityContext"].get("runAsNonRoot") is True, "pod may run as root")
    security = container["securityContext"]
    expect(security.get("readOnlyRootFilesystem") is True, "root filesystem writable")
    expect(security.get("allowPrivilegeEscalation") is False, "privilege escalation allowed")
    for probe in ("livenessProbe", "readinessProbe"):
        expect(container[probe]["httpGet"]["path"] == HEALTH_PATH, f"{probe} not on {HEALTH_PATH}")
    expect(container["resources"] == sizing["resources"], "container resources differ from the tier's")
    zones = [c for c in spec.get("topologySpreadConstraints", []) if c["topologyKey"] == "topology.kubernetes.io/zone"]
    expect(bool(zones), "pods not spread across zones")

    config_map = by_kind(documents, "ConfigMap")
    data = config_map["data"]
    expected_data = {
        "TENANT_ID": values["tenant"]["id"],
        "TENANT_ENVIRONMENT": values["tenant"]["environment"],
        "AWS_REGION": values["tenant"]["region"],
        "RELEASE": values["release"],
        "SSM_PREFIX": values["config"]["ssmPrefix"],
        "DATABASE_ENDPOINT": values["config"]["databaseEndpoint"],
        "DATABASE_PORT": str(values["config"]["databasePort"]),
        "BUCKET_NAME": values["config"]["bucketName"],
    }
    for key, value in expected_data.items():
        expect(data.get(key) == value, f"ConfigMap {key}={data.get(key)!r}, want {value!r}")
    env_from = [source["configMapRef"]["name"] for source in container.get("envFrom", [])]
    expect(config_map["metadata"]["name"] in env_from, "container does not load the ConfigMap")

    account = by_kind(documents, "ServiceAccount")
    expect(account["metadata"]["name"] == values["serviceAccount"]["name"], "service account name")
    role = account["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
    expect(role == values["serviceAccount"]["roleArn"], f"role-arn annotation {role!r}")

    ingress = by_kind(documents, "Ingress")
    expect(ingress["spec"].get("ingressClassName") == "alb", "ingressClassName is not alb")
    notes = ingress["metadata"].get("annotations", {})
    wanted = {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/group.name": values["ingress"]["groupName"],
        "alb.ingress.kubernetes.io/ssl-redirect": "443",
        "alb.ingress.kubernetes.io/healthcheck-path": HEALTH_PATH,
    }
    for key, value in wanted.items():
        expect(notes.get(key) == value, f"Ingress annotation {key}={notes.get(key)!r}, want {value!r}")
    expect({"HTTPS": 443} in json.loads(notes["alb.ingress.kubernetes.io/listen-ports"]), "no HTTPS 443 listener")
    expect("alb.ingress.kubernetes.io/certificate-arn" not in notes, "certificate-arn must not be set")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    expect(hosts == values["hostnames"], f"Ingress rules for {hosts}, want {values['hostnames']}")
    tls_hosts = [host for entry in ingress["spec"].get("tls", []) for host in entry.get("hosts", [])]
    expect(sorted(tls_hosts) == sorted(values["hostnames"]), f"TLS hosts {tls_hosts}")
    service = by_kind(documents, "Service")
    for rule in ingress["spec"]["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]["name"]
        expect(backend == service["metadata"]["name"], f"rule {rule['host']} points at {backend}")

    hpa = by_kind(documents, "HorizontalPodAutoscaler")
    expect(hpa["spec"]["minReplicas"] == sizing["hpa"]["minReplicas"], "HPA minReplicas differ from the tier's")
    expect(hpa["spec"]["maxReplicas"] == sizing["hpa"]["maxReplicas"], "HPA maxReplicas differ from the tier's")
    expect(hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"], "HPA targets another object")
    expect("replicas" not in deployment["spec"], "Deployment sets replicas although the HPA owns them")
    pdb = by_kind(documents, "PodDisruptionBudget")
    expect(
        pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget selects other pods",
    )
    return f"{len(values['hostnames'])} host(s), {sizing['hpa']['minReplicas']}-{sizing['hpa']['maxReplicas']} replicas"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted key; maps on the way are created (Helm merges them with the defaults)."""

    def mutate(values: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(values: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = values
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(values: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(values)

    return mutate


# Values the schema must reject: the render fails with a values (schema) error.
REJECTED = [
    ("bad digest", _set("image.digest", "sha256:not-a-digest")),
    ("digest in upper case", _set("image.digest", "sha256:" + "A" * 64)),
    ("tag instead of digest", _both(_delete("image.digest"), _set("image.tag", "1.4.2"))),
    (
        "tag in the repository",
        _set("image.repository", "123456789012.dkr.ecr.us-east-1.amazonaws.com/tenant-app:1.4.2"),
    ),
    ("unknown tier", _set("tenant.tier", "xlarge")),
    ("no hostnames", _set("hostnames", [])),
    ("hostnames missing", _delete("hostnames")),
    ("invalid hostname", _set("hostnames", ["acme_example.com"])),
    ("wildcard hostname", _set("hostnames", ["*.example.com"])),
    ("duplicate hostnames", _set("hostnames", ["acme.example.com", "acme.example.com"])),
    ("tenant id not a DNS label", _set("tenant.id", "Acme_Corp")),
    ("release not semver", _set("release", "v1.4")),
    ("role ARN missing", _delete("serviceAccount.roleArn")),
    ("database port as a string", _set("config.databasePort", "5432")),
    ("unknown top-level key", _set("replicaCount", 3)),
    ("unknown tier setting", _set("tiers.small.replicaCount", 3)),
    ("schema version not dotted digits", _set("migration.schemaVersion", "v42")),
    ("migration without a command", _set("migration.command", [])),
]

# Values the schema must accept, each rendered and validated like the CI sets.
ACCEPTED = [
    ("release with pre-release and build metadata", _set("release", "2.0.0-rc.1+build.7")),
    ("autoscaling off", _set("tiers.small.hpa.enabled", False)),
    ("disruption budget in percent", _set("tiers.small.pdb.maxUnavailable", "50%")),
    ("a schema migration hook Job", _set("migration.schemaVersion", "2026.11.3")),
    ("another group and a reader endpoint", _both(
        _set("tenant.group", "canary"),
        _set("config.databaseReaderEndpoint", "tenant-prod-acme.cluster-ro-c9akciq32.us-east-1.rds.amazonaws.com"),
    )),
]


def check_rejected(helm: Any, mutate: Callable[[dict[str, Any]], None]) -> str:
    values = load_values("small")
    mutate(values)
    try:
        render(helm, values)
    except helm.HelmValuesError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip().startswith("- at")]
        return lines[0] if lines else str(exc).splitlines()[0]
    except helm.HelmError as exc:
        raise CheckFailed(f"rejected by a template, not by the schema: {exc}") from None
    raise CheckFailed("Helm accepted the values")


def check_accepted(helm: Any, kubernetes_validate: Any, mutate: Callable[[dict[str, Any]], None]) -> str:
    values = load_values("small")
    mutate(values)
    documents = render(helm, values)
    with helm.Chart.load(str(CHART)) as chart:
        sizing = chart.merge_values(values)["tiers"]["small"]
    kinds = {document["kind"] for document in documents}
    expected = set(EXPECTED_KINDS)
    if not sizing["hpa"]["enabled"]:
        expected.discard("HorizontalPodAutoscaler")
        expect("HorizontalPodAutoscaler" not in kinds, "HPA rendered although disabled")
        replicas = by_kind(documents, "Deployment")["spec"].get("replicas")
        expect(replicas == sizing["replicas"], f"Deployment replicas {replicas}, want {sizing['replicas']}")
    expect(expected <= kinds, f"rendered kinds lack {sorted(expected - kinds)}")
    migrating = values.get("migration", {}).get("schemaVersion")
    jobs = [document for document in documents if document["kind"] == "Job"]
    expect(len(jobs) == (1 if migrating else 0), f"{len(jobs)} migration Jobs rendered")
    for job in jobs:
        hook = job["metadata"]["annotations"]
        expect(hook.get("helm.sh/hook") == "pre-install,pre-upgrade", f"hook annotations {hook}")
        expect(hook.get("helm.sh/hook-delete-policy") == "before-hook-creation", f"hook annotations {hook}")
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {item["name"]: item["value"] for item in container["env"]}
        expect(env.get("SCHEMA_VERSION") == migrating, f"SCHEMA_VERSION {env.get('SCHEMA_VERSION')}")
        expect("DATABASE_ENDPOINT" in env, "the migration Job lacks the tenant's configuration")
        expect("@sha256:" in container["image"], f"migration image {container['image']} not by digest")
    return validate_documents(kubernetes_validate, documents)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()

    import helm_python as helm
    import kubernetes_validate

    print(f"tools: helm-python-sdk (Helm {helm.helm_sdk_version()}), "
          f"kubernetes-validate, cfn-lint; Kubernetes {KUBERNETES_VERSION}")
    checks = Checks()
    rel = TEMPLATE.relative_to(ROOT)
    checks.run(f"cfn-lint {rel}", check_cfn_lint)
    checks.run(f"{rel}: parameters, outputs and tier rows", check_template_contract)
    checks.run(f"{rel}: tags on every resource", check_template_tags)

    import orchestrator_template

    orchestrator = orchestrator_template.TEMPLATE.relative_to(ROOT)
    for name, check in orchestrator_template.CHECKS:
        checks.run(f"{orchestrator}: {name}", check)

    for tier in TIERS:
        checks.run(f"helm lint --strict ({tier})", lambda tier=tier: check_lint(helm, tier))
        checks.run(f"render {tier}: expected kinds", lambda tier=tier: check_kinds(helm, tier))
        checks.run(
            f"render {tier}: Kubernetes schemas",
            lambda tier=tier: check_schemas(helm, kubernetes_validate, tier),
        )
        checks.run(f"render {tier}: content", lambda tier=tier: check_content(helm, tier))

    for label, mutate in ACCEPTED:
        checks.run(f"accepted: {label}", lambda m=mutate: check_accepted(helm, kubernetes_validate, m))
    for label, mutate in REJECTED:
        checks.run(f"rejected: {label}", lambda m=mutate: check_rejected(helm, m))

    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
