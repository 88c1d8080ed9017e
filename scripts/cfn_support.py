"""What the CloudFormation checks share: reading a template with its short-form tags,
running cfn-lint on it, and how a check fails.

Used by scripts/check_templates.py (the tenant template) and
scripts/orchestrator_template.py (the orchestrator's own stack).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# The regions cfn-lint checks every template against.
LINT_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsic tags."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_cfn(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def cfn_lint(path: Path) -> str:
    """Runs cfn-lint on `path` in every region of LINT_REGIONS; any finding fails."""
    command = [
        sys.executable,
        "-c",
        "import sys; from cfnlint.runner import main; sys.exit(main())",
        "--regions",
        *LINT_REGIONS,
        "--",
        str(path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).strip()
    # cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8 informational.
    expect(result.returncode == 0, f"cfn-lint exited {result.returncode}\n{output}")
    return f"{len(LINT_REGIONS)} regions"
