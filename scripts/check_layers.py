#!/usr/bin/env python3
"""Checks the layering of src/: which top-level module may use which.

docs/ARCHITECTURE.md ("Layers") explains the rules. A module's non-test code may
name another module of the crate (`crate::x`, `tenant_orchestrator::x`, or a path
through `super::` that leaves the module) only when the rule below allows it.

Two more rules keep decisions off message text:
- no `.contains(` / `.starts_with(` / `.ends_with(` on an error's text outside tests,
  except in the functions listed in MESSAGE_CLASSIFIERS: the adapters that turn an
  external system's words (CloudFormation and Helm have no codes for these answers;
  the AWS SDK hands its interceptors errors whose code only their description
  carries) into typed outcomes, each in one place.

Exit status 1 lists every breach with its file and line.
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"

# What each layer may use, besides itself. The binary (`cli`, `main.rs`) is the
# composition root: it builds workers, controllers and steps, but reaches the store
# only through the application layer (`app`), like the API.
ALLOWED = {
    "domain": set(),
    "machine": {"domain"},
    "record": {"domain", "machine"},
    "ports": {"domain", "machine", "record"},
    "store": {"domain", "machine", "record", "ports"},
    "platform": {"domain", "record", "ports"},
    "step": {"domain", "machine", "record"},
    "steps": {"domain", "machine", "record", "ports", "step"},
    "worker": {"domain", "machine", "record", "ports", "step"},
    "rollout": {"domain", "machine", "record", "ports"},
    "outbox": {"domain", "record", "ports"},
    "app": {"domain", "machine", "record", "ports", "rollout", "store"},
    "api": {"domain", "machine", "record", "ports", "app"},
    "cli": {"domain", "machine", "record", "ports", "app", "api", "platform", "rollout", "step", "steps", "worker", "outbox"},
}

# Uses the rules above do not allow yet, each with what removes it. The check fails
# when one of these is no longer needed, so the list only shrinks.
PENDING: dict = {}

# (file, function) pairs allowed to look at an external system's message text.
MESSAGE_CLASSIFIERS = {
    ("steps/infra/cfn.rs", "is_missing"),
    ("steps/infra/cfn.rs", "update_refusal"),
    ("steps/infra/cfn.rs", "change_set_outcome"),
    ("steps/helm/cli.rs", "is_operation_in_progress"),
    ("steps/helm/cli.rs", "is_release_not_found"),
    ("steps/helm/cli.rs", "is_transient"),
    ("ports/aws_calls.rs", "error_code"),
}

MODULE_PATH = re.compile(r"\b(?:crate|tenant_orchestrator)::([a-z_]+)")
MESSAGE_TEST = re.compile(
    r"\b(?:message|msg|detail|reason|err|error|text|stderr|e)\b(?:\.to_string\(\))?\s*\.\s*(?:contains|starts_with|ends_with)\("
)
FN = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?(?:async\s+)?fn\s+([a-z_0-9]+)")


def layer_of(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC)
    head = rel.parts[0]
    if head.endswith(".rs"):
        head = head[: -len(".rs")]
    return "cli" if head in ("main", "cli", "lib") else head


def non_test_lines(path: pathlib.Path):
    """The file's lines up to its `#[cfg(test)]` module (tests come last here)."""
    if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
        return []
    lines = path.read_text().splitlines()
    out = []
    for number, line in enumerate(lines, 1):
        if line.strip() == "#[cfg(test)]" and number < len(lines) and re.match(r"\s*mod \w+", lines[number]):
            # `#[cfg(test)] mod x;` declares a test file; a block holds tests inline.
            if lines[number].rstrip().endswith(";"):
                continue
            break
        out.append((number, line))
    return out


def breaches_in(src: pathlib.Path, pending: dict):
    global SRC
    SRC = src
    breaches = []
    pending_seen = set()
    for path in sorted(SRC.rglob("*.rs")):
        layer = layer_of(path)
        rel = str(path.relative_to(SRC))
        current_fn = None
        for number, line in non_test_lines(path):
            code = line.split("//", 1)[0]
            m = FN.match(code)
            if m:
                current_fn = m.group(1)
            for used in MODULE_PATH.findall(code):
                if used == layer or used in ALLOWED.get(layer, set()):
                    continue
                if (layer, used) in pending:
                    pending_seen.add((layer, used))
                    continue
                breaches.append(f"src/{rel}:{number}: `{layer}` may not use `{used}` ({line.strip()})")
            if MESSAGE_TEST.search(code) and (rel, current_fn) not in MESSAGE_CLASSIFIERS:
                breaches.append(
                    f"src/{rel}:{number}: a decision on message text outside the listed classifiers "
                    f"(in fn {current_fn}): match a typed error instead ({line.strip()})"
                )
    for layer, used in sorted(set(pending) - pending_seen):
        breaches.append(
            f"`{layer}` no longer uses `{used}`: remove the entry from PENDING in {pathlib.Path(__file__).name}"
        )
    return breaches


def self_test() -> None:
    """The check finds a breach of each kind in a tree made to have them."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "src"
        (src / "store").mkdir(parents=True)
        (src / "steps" / "infra").mkdir(parents=True)
        (src / "store" / "mod.rs").write_text(
            "use crate::rollout::Plan;\nfn f(e: E) -> bool { e.to_string().contains(\"lease\") }\n"
            "#[cfg(test)]\nmod tests {\n    use crate::api::x;\n}\n"
        )
        (src / "steps" / "infra" / "cfn.rs").write_text(
            "fn is_missing(message: &str) -> bool { message.contains(\"does not exist\") }\n"
            "use crate::store::DynamoStore;\n"
        )
        (src / "rollout.rs").write_text("use crate::steps::x;\n")
        found = breaches_in(src, {("rollout", "steps"): "", ("worker", "api"): ""})
    SRC_REAL = pathlib.Path(__file__).resolve().parent.parent / "src"
    expected = [
        "src/store/mod.rs:1: `store` may not use `rollout`",
        "src/store/mod.rs:2: a decision on message text",
    ]
    for e in expected:
        assert any(b.startswith(e) for b in found), f"self-test: no breach like {e!r} in {found}"
    assert not any("use `api`" in b for b in found), f"self-test: test code was checked: {found}"
    assert any(b.startswith("src/steps/infra/cfn.rs:2: `steps` may not use `store`") for b in found), found
    assert not any("cfn.rs:1" in b or "rollout.rs" in b for b in found), f"self-test: a listed classifier or pending use was refused: {found}"
    assert any("`worker` no longer uses `api`" in b for b in found), f"self-test: a stale pending entry was kept: {found}"
    globals()["SRC"] = SRC_REAL


def main() -> int:
    self_test()
    breaches = breaches_in(pathlib.Path(__file__).resolve().parent.parent / "src", PENDING)
    for breach in breaches:
        print(breach, file=sys.stderr)
    if breaches:
        print(f"check_layers: {len(breaches)} breach(es); see docs/ARCHITECTURE.md, Layers", file=sys.stderr)
        return 1
    print("check_layers: layering and message rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
