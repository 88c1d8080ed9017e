"""Checks of templates/cloudformation/orchestrator.yaml, the orchestrator's own stack.

Run by scripts/check_templates.py (and on their own: `python3 scripts/orchestrator_template.py`).

- cfn-lint passes;
- the state table is the one of state/table.json (keys, attributes, indexes, TTL,
  billing), with point-in-time recovery, deletion protection and a Retain policy;
- least privilege: every AWS operation the code calls is derived from src/ (an SDK
  operation method of a service the file uses, in a statement that `.send()`s it, or
  a credentials provider of the SDK the code builds, such as `AssumeRoleProvider`) and
  mapped to its IAM action; the task role's `orchestrator-calls` policy must grant
  each, and grant nothing else;
- a statement on every resource ("*") holds only actions that take no narrower one;
- the `tenant-stack-resources` policy only works through CloudFormation and covers only
  services of the tenant template's resource types.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable

from cfn_support import CheckFailed, cfn_lint, expect, load_cfn

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "templates" / "cloudformation" / "orchestrator.yaml"
TENANT_TEMPLATE = ROOT / "templates" / "cloudformation" / "tenant.yaml"
TARGET_TEMPLATE = ROOT / "templates" / "cloudformation" / "target-account.yaml"
TABLE = ROOT / "state" / "table.json"
SRC = ROOT / "src"

# SDK crate (aws-sdk-<name>) -> IAM service prefix.
SERVICES = {
    "acm": "acm",
    "cloudformation": "cloudformation",
    "cloudwatch": "cloudwatch",
    "dynamodb": "dynamodb",
    "ecr": "ecr",
    "elasticloadbalancingv2": "elasticloadbalancing",
    "eventbridge": "events",
    "rds": "rds",
    "route53": "route53",
    "s3": "s3",
    "ssm": "ssm",
    "sts": "sts",
}

# Operations whose IAM action is not the operation's name.
ACTIONS = {
    ("s3", "list_objects_v2"): {"ListBucket"},
    ("s3", "head_bucket"): {"ListBucket"},
    ("s3", "head_object"): {"GetObject"},
    ("s3", "put_public_access_block"): {"PutBucketPublicAccessBlock"},
    # A transaction is authorized item by item, by the action of each item's kind.
    ("dynamodb", "transact_write_items"): {"PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"},
    ("dynamodb", "transact_get_items"): {"GetItem"},
}

# Actions IAM authorizes on "*" only (no resource-level permission).
UNSCOPED = {
    "acm:requestcertificate",
    "cloudwatch:describealarms",
    "elasticloadbalancing:describelisteners",
    "elasticloadbalancing:describeloadbalancers",
    "elasticloadbalancing:describerules",
    "elasticloadbalancing:describetags",
}

# SDK credential providers the code builds, by type name, and the operations they call
# (the code never calls them itself).
PROVIDERS = {
    "AssumeRoleProvider": {"sts:assumerole"},
}

CALLS_POLICY = "orchestrator-calls"
STACK_POLICY = "tenant-stack-resources"


def check_cfn_lint() -> str:
    return cfn_lint(TEMPLATE)


def _by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {item[key]: item for item in items}


def check_table() -> str:
    want = json.loads(TABLE.read_text())
    resources = load_cfn(TEMPLATE)["Resources"]
    tables = [r for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    expect(len(tables) == 1, f"{len(tables)} tables in the template")
    table = tables[0]
    got = table["Properties"]
    expect(table.get("DeletionPolicy") == "Retain", "the table is not kept when the stack is deleted")
    expect(table.get("UpdateReplacePolicy") == "Retain", "the table is not kept when replaced")
    expect(got.get("DeletionProtectionEnabled") is True, "deletion protection is off")
    expect(
        got.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True,
        "point-in-time recovery is off",
    )
    expect(got.get("BillingMode") == want["BillingMode"], f"billing {got.get('BillingMode')}, want {want['BillingMode']}")
    expect(
        _by_name(got["AttributeDefinitions"], "AttributeName") == _by_name(want["AttributeDefinitions"], "AttributeName"),
        f"attributes {got['AttributeDefinitions']}, want {want['AttributeDefinitions']}",
    )
    expect(got["KeySchema"] == want["KeySchema"], f"key schema {got['KeySchema']}, want {want['KeySchema']}")
    got_indexes = _by_name(got.get("GlobalSecondaryIndexes", []), "IndexName")
    want_indexes = _by_name(want.get("GlobalSecondaryIndexes", []), "IndexName")
    expect(got_indexes.keys() == want_indexes.keys(), f"indexes {sorted(got_indexes)}, want {sorted(want_indexes)}")
    for name, index in want_indexes.items():
        expect(got_indexes[name] == index, f"index {name}: {got_indexes[name]}, want {index}")
    ttl = got.get("TimeToLiveSpecification", {})
    expect(
        ttl == {"AttributeName": want["TimeToLiveAttribute"], "Enabled": True},
        f"TTL {ttl}, want {want['TimeToLiveAttribute']}",
    )
    return f"{len(want_indexes)} indexes, TTL on {want['TimeToLiveAttribute']}"


def _sdk_operations() -> dict[str, set[str]]:
    """Service prefix -> the operation names (snake_case) of the SDK the crate uses."""
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    used = {name.removeprefix("aws-sdk-") for name in manifest["dependencies"] if name.startswith("aws-sdk-")}
    versions = {p["name"].removeprefix("aws-sdk-"): p["version"] for p in lock["package"] if p["name"].startswith("aws-sdk-")}
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    operations: dict[str, set[str]] = {}
    for crate in sorted(used):
        expect(crate in SERVICES, f"aws-sdk-{crate}: add its IAM service prefix to SERVICES")
        found = list(cargo_home.glob(f"registry/src/*/aws-sdk-{crate}-{versions[crate]}/src/operation"))
        expect(found, f"aws-sdk-{crate} {versions[crate]} is not in {cargo_home}/registry; run `cargo fetch`")
        operations[SERVICES[crate]] = {p.name for p in found[0].iterdir() if p.is_dir()}
    return operations


def _non_test_code(text: str) -> str:
    """The file without its `#[cfg(test)]` items (by brace matching)."""
    out, i = [], 0
    for match in re.finditer(r"#\[cfg\(test\)\]", text):
        if match.start() < i:
            continue
        out.append(text[i : match.start()])
        brace = text.find("{", match.end())
        semi = text.find(";", match.end())
        if brace < 0 or (0 <= semi < brace):
            i = semi + 1
            continue
        depth, j = 0, brace
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        i = j
    out.append(text[i:])
    return "".join(out)


def _sent(code: str, start: int, end: int) -> bool:
    """Whether the request built at code[start:end] is sent: `.send()` in the same
    statement, or the statement binds it (`let [mut] request = ...`) and a later
    `request.send()` sends it."""
    stop = code.find(";", end)
    if ".send()" in code[end : stop if stop >= 0 else None]:
        return True
    begin = max(code.rfind(c, 0, start) for c in ";{}") + 1
    bound = re.match(r"\s*let\s+(?:mut\s+)?([a-z_][a-z0-9_]*)\s*=", code[begin:start])
    return bool(bound) and re.search(rf"\b{bound.group(1)}\s*\.send\(\)", code[end:]) is not None


def calls_in_source() -> dict[str, set[str]]:
    """IAM action (lower case) -> the files that call it."""
    operations = _sdk_operations()
    crates = {prefix: crate for crate, prefix in SERVICES.items()}
    actions: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        code = _non_test_code(path.read_text())
        rel = str(path.relative_to(ROOT))
        for match in re.finditer(r"\.([a-z][a-z0-9_]*)\(\)", code):
            op = match.group(1)
            services = {s for s, ops in operations.items() if op in ops}
            if not services:
                continue
            if not _sent(code, match.start(), match.end()):
                continue
            if len(services) > 1:
                services = {s for s in services if f"aws_sdk_{crates[s]}" in code}
            expect(
                len(services) == 1,
                f"{rel}: .{op}() could be an operation of {sorted(services) or 'several services'}; "
                f"name the SDK crate (use aws_sdk_...) in the file",
            )
            service = services.pop()
            names = ACTIONS.get((service, op), {op.replace("_", "")})
            for name in names:
                actions.setdefault(f"{service}:{name.lower()}", set()).add(rel)
        for provider, provider_actions in PROVIDERS.items():
            if re.search(rf"\b{provider}::builder\(", code):
                for action in provider_actions:
                    actions.setdefault(action, set()).add(rel)
    return actions


def _statements(policy_name: str) -> list[dict[str, Any]]:
    role = load_cfn(TEMPLATE)["Resources"]["TaskRole"]["Properties"]
    policies = {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in role["Policies"]}
    expect(policy_name in policies, f"the task role has no {policy_name} policy")
    # A statement under a condition (`!If [Cond, statement, !Ref AWS::NoValue]`) is
    # checked as the statement it grants.
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in policies[policy_name]]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_least_privilege() -> str:
    called = calls_in_source()
    granted: dict[str, str] = {}
    for statement in _statements(CALLS_POLICY):
        expect(statement["Effect"] == "Allow", f"{statement.get('Sid')}: not an Allow")
        for action in _listed(statement["Action"]):
            expect("*" not in action, f"{statement.get('Sid')}: wildcard action {action}")
            granted[action.lower()] = action
    missing = sorted(set(called) - set(granted))
    unused = sorted(granted[a] for a in set(granted) - set(called))
    expect(
        not missing,
        "the code calls operations the task role lacks: "
        + "; ".join(f"{a} ({', '.join(sorted(called[a]))})" for a in missing),
    )
    expect(not unused, f"the task role grants operations nothing calls: {unused}")
    return f"{len(called)} actions"


def check_resource_scoping() -> str:
    scoped = 0
    for statement in _statements(CALLS_POLICY):
        resources = _listed(statement["Resource"])
        if "*" in resources:
            wide = sorted(a for a in _listed(statement["Action"]) if a.lower() not in UNSCOPED)
            expect(not wide, f"{statement.get('Sid')}: {wide} granted on every resource; scope them")
        else:
            scoped += 1
    return f"{scoped} statements scoped"


def check_stack_policy() -> str:
    tenant = load_cfn(TENANT_TEMPLATE)["Resources"]
    services = {r["Type"].split("::")[1].lower() for r in tenant.values()}
    for statement in _statements(STACK_POLICY):
        condition = statement.get("Condition", {}).get("ForAnyValue:StringEquals", {})
        expect(
            condition.get("aws:CalledVia") == "cloudformation.amazonaws.com",
            f"{statement.get('Sid')}: usable outside CloudFormation",
        )
        for action in _listed(statement["Action"]):
            expect(action.split(":")[0] in services, f"{action}: no resource of {TENANT_TEMPLATE.name} needs it")
    return f"services {sorted(services)}"


# Task role statements on what is the orchestrator's own, never a target account's.
ORCHESTRATOR_ONLY = {"StateTable", "ReleaseImages", "TenantEvents", "PlatformArtifacts", "TargetAccountRoles"}


def check_target_account_role() -> str:
    """templates/cloudformation/target-account.yaml: cfn-lint, trusted by the
    orchestrator's role only with the external id, and granting the task role's tenant
    actions (every statement but the orchestrator's own), nothing more or less."""
    cfn_lint(TARGET_TEMPLATE)
    role = load_cfn(TARGET_TEMPLATE)["Resources"]["TargetRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    expect(trust["Principal"] == {"AWS": {"Ref": "OrchestratorRoleArn"}}, f"trusted principal {trust['Principal']}")
    expect(
        trust.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId") == {"Ref": "ExternalId"},
        "the trust policy does not require the external id (sts:ExternalId)",
    )
    policies = {p["PolicyName"]: p["PolicyDocument"]["Statement"] for p in role["Policies"]}

    def actions(statements: list[dict[str, Any]]) -> set[str]:
        return {a.lower() for s in statements if s.get("Sid") not in ORCHESTRATOR_ONLY for a in _listed(s["Action"])}

    for name in (CALLS_POLICY, STACK_POLICY):
        want, got = actions(_statements(name)), actions(policies.get(name, []))
        expect(not want - got, f"{name}: the target role lacks {sorted(want - got)}")
        expect(not got - want, f"{name}: the target role grants {sorted(got - want)} the task role does not use")
    return f"{len(actions(policies[CALLS_POLICY]))} tenant actions"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("cfn-lint", check_cfn_lint),
    ("state table as state/table.json, protected", check_table),
    ("task role grants exactly the operations the code calls", check_least_privilege),
    ("task role resources scoped", check_resource_scoping),
    ("tenant stack resources only through CloudFormation", check_stack_policy),
    ("target-account role: trust with external id, the task role's tenant actions", check_target_account_role),
]


def main() -> int:
    passed = failed = 0
    for name, check in CHECKS:
        try:
            detail = check()
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL {name}: {exc}")
        else:
            passed += 1
            print(f"PASS {name} ({detail})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
