#!/usr/bin/env python3
"""Checks the Dockerfile statically (no Docker engine needed), run by scripts/test.sh.

The image's promises, each a PASS or FAIL line, then "N passed, M failed":
- multi-stage: a build stage and a runtime stage, every base image pinned to a version
  tag or a digest (never `latest`, never untagged);
- the build stage's Rust is at least the crate's `rust-version`;
- Helm pinned to an exact version, its archive checked with `sha256sum -c` against a
  SHA-256 written in the file, before it is unpacked;
- the runtime runs as a non-root user, has a HEALTHCHECK in exec form, and enters
  `tenantctl serve`;
- every local COPY source exists, and .dockerignore keeps target/ out of the context.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    expect(not pending, "the file ends inside a continued line")
    return result


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions of each stage, each starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for instruction in parsed:
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def image_of(from_args: str) -> str:
    words = [w for w in from_args.split() if not w.startswith("--")]
    return words[0]


def check_base_images(parsed: list[tuple[str, str]]) -> str:
    images = [image_of(args) for keyword, args in parsed if keyword == "FROM"]
    expect(len(images) >= 2, f"{len(images)} stage(s): want a build stage and a runtime stage")
    for image in images:
        if "@sha256:" in image:
            expect(re.search(r"@sha256:[0-9a-f]{64}$", image) is not None, f"{image}: malformed digest")
            continue
        name, _, tag = image.rpartition(":")
        expect(name and "/" not in tag, f"{image}: no tag; pin a version tag or a digest")
        expect(tag != "latest", f"{image}: `latest` is not a pin")
    return ", ".join(images)


def check_rust_version(parsed: list[tuple[str, str]]) -> str:
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    minimum = tuple(int(p) for p in manifest["package"]["rust-version"].split("."))
    rust = [image_of(args) for keyword, args in parsed if keyword == "FROM" and "rust:" in args]
    expect(len(rust) == 1, f"want one Rust build stage, found {rust}")
    match = re.search(r"rust:(\d+)\.(\d+)(?:\.(\d+))?", rust[0])
    expect(match is not None, f"{rust[0]}: the Rust version is not pinned")
    version = tuple(int(p) for p in match.groups() if p is not None)
    expect(version >= minimum, f"{rust[0]} is older than the crate's rust-version {minimum}")
    return rust[0]


def check_helm(parsed: list[tuple[str, str]]) -> str:
    args = {}
    for keyword, rest in parsed:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    version = args.get("HELM_VERSION", "")
    expect(re.fullmatch(r"v3\.\d+\.\d+", version) is not None, f"HELM_VERSION {version!r}: pin an exact v3 release")
    digest = args.get("HELM_SHA256", "")
    expect(re.fullmatch(r"[0-9a-f]{64}", digest) is not None, f"HELM_SHA256 {digest!r}: want 64 hex digits")
    runs = [rest for keyword, rest in parsed if keyword == "RUN" and "get.helm.sh" in rest]
    expect(len(runs) == 1, f"want one RUN that downloads Helm, found {len(runs)}")
    run = runs[0]
    expect("${HELM_VERSION}" in run, "the download does not use HELM_VERSION")
    check = run.find("sha256sum -c")
    expect(check >= 0 and "${HELM_SHA256}" in run, "the archive is not checked against HELM_SHA256")
    expect(check < run.find("tar "), "the archive is unpacked before its checksum is checked")
    return f"Helm {version}"


def check_runtime(parsed: list[tuple[str, str]]) -> str:
    runtime = stages(parsed)[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    expect(users, "the runtime stage sets no USER (it would run as root)")
    user = users[-1].split(":")[0]
    expect(user not in ("root", "0"), f"the runtime runs as {users[-1]}")
    health = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    expect(len(health) == 1, "the runtime stage has no HEALTHCHECK")
    expect(re.search(r"\bCMD \[", health[0]) is not None, f"HEALTHCHECK {health[0]}: use the exec form (no shell in the image)")
    entry = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    expect(entry and entry[-1].startswith("[") and '"serve"' in entry[-1] and "tenantctl" in entry[-1], f"ENTRYPOINT {entry}: want tenantctl serve in exec form")
    installs = [rest for keyword, rest in runtime if keyword == "RUN"]
    expect(not installs, f"the runtime stage runs commands ({installs}); build in an earlier stage")
    return f"user {users[-1]}"


def check_context(parsed: list[tuple[str, str]]) -> str:
    sources = []
    for keyword, rest in parsed:
        if keyword != "COPY" or "--from=" in rest:
            continue
        words = rest.split()
        sources.extend(words[:-1])
    missing = [s for s in sources if not (ROOT / s).exists()]
    expect(not missing, f"COPY sources missing from the repository: {missing}")
    ignore = ROOT / ".dockerignore"
    expect(ignore.exists(), ".dockerignore is missing: target/ would be sent as build context")
    lines = {line.strip().rstrip("/") for line in ignore.read_text().splitlines()}
    expect({"target", "/target"} & lines != set(), ".dockerignore does not exclude target")
    return f"{len(sources)} sources"


def main() -> int:
    text = DOCKERFILE.read_text()
    passed = failed = 0
    parsed: list[tuple[str, str]] = []
    checks: list[tuple[str, Callable[[list[tuple[str, str]]], str]]] = [
        ("base images pinned", check_base_images),
        ("Rust toolchain", check_rust_version),
        ("Helm pinned and verified", check_helm),
        ("runtime stage", check_runtime),
        ("build context", check_context),
    ]
    try:
        parsed = instructions(text)
    except CheckFailed as exc:
        print(f"FAIL parse: {exc}")
        print("0 passed, 1 failed")
        return 1
    for name, check in checks:
        try:
            detail = check(parsed)
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
