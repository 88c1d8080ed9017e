#!/usr/bin/env python3
"""Checks the Azure Pipelines YAML under azure-pipelines/ against tenantctl itself.

For every .yml/.yaml file:
  - it is valid YAML with the shapes Azure expects (stages > jobs > steps, a
    deployment job has an environment and a strategy with steps, each step is one
    known kind);
  - every `template:` reference resolves to a file that exists (relative to the file
    that names it), is passed only parameters it declares and every one it requires;
  - every `${{ parameters.x }}` a template uses is declared in its `parameters`;
  - every `tenantctl ...` invocation in a script/bash step names a real subcommand
    and only flags that the built binary's `--help` for that subcommand lists.
Placeholders (`$(var)`, `${{ ... }}`, `$VAR`) stand for values; line continuations
are joined. Every rollout spec under azure-pipelines/specs/ must be a JSON object with
a release (the full rules are checked by tests/pipeline_specs.rs with the real parser).

Usage: check-pipelines.py [--tenantctl BIN] [--root DIR] [--self-test]
  BIN defaults to $TENANTCTL_BIN, else $CARGO_TARGET_DIR/debug/tenantctl, else
  target/debug/tenantctl. --self-test proves, on bad snippets in a temp dir, that
  unknown subcommands, flags, templates and parameters fail. Without --root, the
  self-test runs first, then the real check. Ends with "N passed, M failed".
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
STEP_KINDS = {
    "script", "bash", "pwsh", "powershell", "checkout", "download", "downloadBuild",
    "publish", "task", "template", "getPackage", "reviewApp",
}
TOP_KEYS = {
    "name", "trigger", "pr", "schedules", "resources", "parameters", "variables", "pool",
    "stages", "jobs", "steps", "extends", "lockBehavior", "appendCommitMessageToRunName",
}
PLACEHOLDER = re.compile(r"\$\{\{.*?\}\}|\$\[.*?\]|\$\([A-Za-z0-9_.]+\)")
PARAM_USE = re.compile(r"\bparameters(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']+)'\s*\])")
FLAG = re.compile(r"(?<![\w$-])(--[A-Za-z][A-Za-z0-9-]*|-[A-Za-z])(?=[\s=\"']|$)")
PREFIX_WORDS = {"if", "then", "do", "else", "elif", "while", "until", "!", "time", "exec", "command"}


class Problems:
    def __init__(self, root):
        self.root, self.items, self.passed = root, [], 0

    def add(self, path, line, message):
        self.items.append(f"{rel(path, self.root)}:{line}: {message}")


def rel(path, root):
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# --- tenantctl's own help -------------------------------------------------------------

class Cli:
    """The subcommands and flags of each command path, read from `--help`."""

    def __init__(self, binary):
        self.binary, self.cache = binary, {}

    def command(self, path):
        if path not in self.cache:
            out = subprocess.run([self.binary, *path, "--help"], capture_output=True, text=True,
                                 env={**os.environ, "NO_COLOR": "1"})
            if out.returncode != 0:
                raise RuntimeError(f"`tenantctl {' '.join(path)} --help` failed: {out.stderr.strip()}")
            self.cache[path] = parse_help(out.stdout)
        return self.cache[path]


def parse_help(text):
    """(subcommands, {flag: takes_value}) from clap's help text."""
    subcommands, flags, section = set(), {}, None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":").strip()
            continue
        if section == "Commands":
            m = re.match(r"\s+([a-z][a-z0-9-]*)\b", line)
            if m and m.group(1) != "help":
                subcommands.add(m.group(1))
        elif section == "Options":
            m = re.match(r"\s+(?:(-[A-Za-z]), )?(--[A-Za-z0-9-]+)(\s+<[^>]+>|\s+\[<[^>]+>\])?", line)
            if m:
                takes = bool(m.group(3)) and "[<" not in m.group(3)
                flags[m.group(2)] = takes
                if m.group(1):
                    flags[m.group(1)] = takes
    return subcommands, flags


def script_commands(text):
    """(line offset, arguments) of each tenantctl invocation, continuations joined.
    tenantctl counts where a command starts: at the start of a line, after ; && || |
    ( or $( and after if/then/do/else/!/time/exec or VAR=value, as a bare name or a
    path ending in /tenantctl."""
    lines, logical, start, buf = text.split("\n"), [], 0, ""
    for i, line in enumerate(lines):
        if not buf:
            start = i
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        logical.append((start, buf + line))
        buf = ""
    if buf:
        logical.append((start, buf))
    found, heredoc = [], None
    for offset, line in logical:
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if line.lstrip().startswith("#"):
            continue
        code = PLACEHOLDER.sub("VALUE", line)
        # Quoted text with spaces is a message, never a command; a heredoc is input.
        code = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'',
                      lambda q: "TEXT" if re.search(r"\s", q.group()) else q.group(), code)
        marker = re.search(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?", code)
        if marker:
            heredoc = marker.group(1)
        for command in re.split(r"&&|\|\||[;|()`]|\$\(", code):
            words = re.findall(r"\"[^\"]*\"|'[^']*'|\S+", command)
            while words and (words[0] in PREFIX_WORDS or re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0])):
                words.pop(0)
            if words and re.fullmatch(r"(?:.*/)?tenantctl", words[0].strip("\"'")):
                found.append((offset, " ".join(words[1:])))
    return found


def name_of(path):
    return " ".join(("tenantctl", *path))


def check_invocation(cli, text, where):
    # Words in order (quotes dropped); a flag's value is skipped when help says it takes one.
    words = re.findall(r"\"[^\"]*\"|'[^']*'|\S+", text)
    path, leaf, i = (), True, 0
    subs, flags = cli.command(path)
    used = []  # flags in the order written
    while i < len(words):
        w = words[i].strip("\"'")
        m = FLAG.match(w) if w.startswith("-") else None
        if m:
            name = w.split("=", 1)[0]
            used.append(name)
            if "=" not in w and flags.get(name):
                i += 1
        elif leaf and subs:
            if w not in subs:
                where(f"{name_of(path)}: unknown subcommand {w!r}; "
                      f"`{name_of(path)} --help` lists: {', '.join(sorted(subs))}")
                return False
            path += (w,)
            subs, flags = cli.command(path)
        else:
            leaf = False  # a positional value: the command path is complete
        i += 1
    if subs and not {"--help", "-h", "--version", "-V"} & set(used):
        where(f"{name_of(path)}: a subcommand is missing; choose one of {', '.join(sorted(subs))}")
        return False
    # Flags hidden in shell expansions like ${RELEASE:+--release "$RELEASE"} count too.
    used += [f for f in FLAG.findall(text) if f.startswith("--")]
    bad = sorted({f for f in used if f not in flags})
    for f in bad:
        where(f"{name_of(path)}: unknown flag {f} (not in `{name_of(path)} --help`)")
    return not bad


# --- YAML -----------------------------------------------------------------------------

def line_of(node):
    return node.start_mark.line + 1


def mapping(node):
    return {k.value: (k, v) for k, v in node.value} if isinstance(node, yaml.MappingNode) else None


def conditional(key):
    return key.startswith("${{")


def items(node):
    """Entries of a list, looking through `${{ if }}:` / `${{ each }}:` insertions."""
    if not isinstance(node, yaml.SequenceNode):
        return
    for item in node.value:
        m = mapping(item)
        if m and len(m) == 1 and conditional(next(iter(m))):
            yield from items(next(iter(m.values()))[1])
        else:
            yield item


def declared_parameters(top, path, problems):
    """{name: has_default} of a file's `parameters:` (list form, or the old map form)."""
    if "parameters" not in top:
        return {}
    node = top["parameters"][1]
    if isinstance(node, yaml.MappingNode):
        return {k.value: True for k, _ in node.value}
    out = {}
    for p in items(node):
        m = mapping(p)
        if not m or "name" not in m:
            problems.add(path, line_of(p), "a parameter needs a name (- name: x, type: string)")
            continue
        out[m["name"][1].value] = "default" in m
    return out


class FileCheck:
    def __init__(self, path, cli, problems):
        self.path, self.cli, self.problems = path, cli, problems
        self.ok = True

    def fail(self, node_or_line, message):
        line = node_or_line if isinstance(node_or_line, int) else line_of(node_or_line)
        self.problems.add(self.path, line, message)
        self.ok = False

    def run(self):
        try:
            root = yaml.compose(self.path.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            self.fail(mark.line + 1 if mark else 1, f"not valid YAML: {e}")
            return False
        top = mapping(root)
        if top is None:
            self.fail(1, "the file must be a mapping (stages:, jobs: or steps: at the top)")
            return False
        for key, (k, _) in top.items():
            if key not in TOP_KEYS:
                self.fail(k, f"unknown top-level key {key!r}; Azure Pipelines knows {', '.join(sorted(TOP_KEYS))}")
        self.params = declared_parameters(top, self.path, self.problems)
        self.check_parameter_uses(root)
        if not any(k in top for k in ("stages", "jobs", "steps", "extends")):
            self.fail(1, "the file has no stages:, jobs: or steps:")
        if "stages" in top:
            self.stages(top["stages"][1])
        if "jobs" in top:
            self.jobs(top["jobs"][1])
        if "steps" in top:
            self.steps(top["steps"][1])
        return self.ok

    def check_parameter_uses(self, node):
        if isinstance(node, yaml.ScalarNode):
            for expr in re.findall(r"\$\{\{(.*?)\}\}", node.value or ""):
                for a, b in PARAM_USE.findall(expr):
                    name = a or b
                    if name not in self.params:
                        self.fail(node, f"parameters.{name} is used but not declared in this file's parameters:")
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                self.check_parameter_uses(k)
                self.check_parameter_uses(v)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                self.check_parameter_uses(v)

    def listing(self, node, what):
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what}: must be a list")
            return []
        return list(items(node))

    def stages(self, node):
        for stage in self.listing(node, "stages"):
            m = mapping(stage)
            if m is None or not ({"stage", "template"} & m.keys()):
                self.fail(stage, "each stage needs `stage: Name` (with jobs:) or `template: file.yml`")
            elif "template" in m:
                self.template(m)
            else:
                name = m["stage"][1].value or ""
                if not PLACEHOLDER.search(name) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    self.fail(m["stage"][1], f"stage name {name!r} may hold only letters, digits and _")
                if "jobs" not in m:
                    self.fail(stage, f"stage {name} has no jobs:")
                else:
                    self.jobs(m["jobs"][1])

    def jobs(self, node):
        for job in self.listing(node, "jobs"):
            m = mapping(job)
            if m is None or not ({"job", "deployment", "template"} & m.keys()):
                self.fail(job, "each job needs `job: Name`, `deployment: Name` or `template: file.yml`")
            elif "template" in m:
                self.template(m)
            elif "deployment" in m:
                if "environment" not in m:
                    self.fail(job, "a deployment job needs environment: (its approvals and checks live there)")
                strategy = mapping(m["strategy"][1]) if "strategy" in m else None
                if not strategy:
                    self.fail(job, "a deployment job needs strategy: (e.g. runOnce: deploy: steps:)")
                    continue
                for kind, (_, body) in strategy.items():
                    hooks = mapping(body) or {}
                    for hook, (_, hook_body) in hooks.items():
                        steps = (mapping(hook_body) or {}).get("steps")
                        if steps:
                            self.steps(steps[1])
                    if "deploy" not in hooks:
                        self.fail(body, f"strategy {kind}: needs deploy: steps:")
            elif "steps" not in m:
                self.fail(job, f"job {m['job'][1].value} has no steps:")
            else:
                self.steps(m["steps"][1])

    def steps(self, node):
        for step in self.listing(node, "steps"):
            m = mapping(step)
            kinds = (m.keys() & STEP_KINDS) if m else set()
            if len(kinds) != 1:
                self.fail(step, f"a step needs exactly one of {', '.join(sorted(STEP_KINDS))}")
                continue
            kind = kinds.pop()
            if kind == "template":
                self.template(m)
            elif kind in ("script", "bash"):
                body = m[kind][1]
                offset = 1 if body.style in ("|", ">") else 0
                for line, args in script_commands(body.value or ""):
                    at = line_of(body) + offset + line
                    where = lambda msg, at=at: self.fail(at, msg)  # noqa: E731
                    if check_invocation(self.cli, args, where):
                        self.problems.passed += 1

    def template(self, m):
        key, ref = m["template"]
        target = ref.value or ""
        if "@" in target:
            return  # in another repository resource: not checkable here
        if PLACEHOLDER.search(target):
            self.fail(ref, f"template path {target!r} is computed; name the file")
            return
        file = (self.path.parent / target).resolve()
        if not file.is_file():
            self.fail(ref, f"template {target} not found (looked for {rel(file, self.problems.root)})")
            return
        try:
            top = mapping(yaml.compose(file.read_text())) or {}
        except yaml.YAMLError:
            return  # reported when that file is checked
        declared = declared_parameters(top, file, Problems(self.problems.root))
        given = mapping(m["parameters"][1]) if "parameters" in m else {}
        for name, (k, _) in (given or {}).items():
            if name not in declared:
                self.fail(k, f"template {target} has no parameter {name!r}; it declares {', '.join(declared) or 'none'}")
        for name, has_default in declared.items():
            if not has_default and name not in (given or {}):
                self.fail(ref, f"template {target} needs parameter {name!r} (it has no default)")


def check_spec(path, problems):
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        problems.add(path, e.lineno, f"not valid JSON: {e.msg}")
        return
    if not isinstance(spec, dict) or not isinstance(spec.get("release"), str):
        problems.add(path, 1, "a rollout spec is a JSON object with a \"release\" (see src/domain/rollout.rs)")
        return
    unknown = spec.keys() - {"release", "selector", "strategy"}
    if unknown:
        problems.add(path, 1, f"unknown field(s) {', '.join(sorted(unknown))}; a spec has release, selector, strategy")
        return
    problems.passed += 1


def check_tree(root, binary):
    problems = Problems(root)
    cli = Cli(binary)
    files = sorted(p for ext in ("*.yml", "*.yaml") for p in root.rglob(ext))
    if not files:
        problems.add(root, 0, "no YAML files found")
    for path in files:
        if FileCheck(path, cli, problems).run():
            problems.passed += 1
    for path in sorted((root / "specs").glob("*.json")):
        check_spec(path, problems)
    return problems


def self_test(binary):
    """A bad tree must fail with each problem named; a good one must pass."""
    bad = {
        "pipeline.yml": """\
stages:
  - template: templates/missing.yml
  - template: templates/stage.yml
    parameters:
      table: t
      colour: red
""",
        "templates/stage.yml": """\
parameters:
  - name: table
    type: string
stages:
  - stage: S
    jobs:
      - job: J
        steps:
          - bash: |
              tenantctl tenant get acme --table ${{ parameters.table }}
              tenantctl tenant wait acme \\
                --timeout 5m --no-such-flag
              tenantctl tenant frobnicate acme
              echo ${{ parameters.undeclared }}
""",
    }
    expected = [
        "pipeline.yml:2: template templates/missing.yml not found",
        "pipeline.yml:6: template templates/stage.yml has no parameter 'colour'",
        "templates/stage.yml:11: tenantctl tenant wait: unknown flag --no-such-flag",
        "templates/stage.yml:13: tenantctl tenant: unknown subcommand 'frobnicate'",
        "templates/stage.yml:9: parameters.undeclared is used but not declared",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in bad.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        problems = check_tree(root, binary)
        missing = [e for e in expected if not any(p.startswith(e) for p in problems.items)]
        good_tree = Path(tmp) / "good"
        good_tree.mkdir()
        (good_tree / "ok.yml").write_text(
            "steps:\n  - bash: tenantctl tenant wait acme --state Active --timeout 5m --table $(table)\n")
        good = check_tree(good_tree, binary)
    failures = [f"self-test: expected a problem starting {e!r}" for e in missing]
    failures += [f"self-test: a good snippet was refused: {p}" for p in good.items]
    if good.passed != 2:
        failures.append("self-test: the good snippet was not checked (its file and its one command)")
    if failures:
        failures += [f"self-test: got {p}" for p in problems.items]
    return failures


def default_binary():
    if os.environ.get("TENANTCTL_BIN"):
        return os.environ["TENANTCTL_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    return str(Path(target) / "debug" / "tenantctl")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenantctl", default=default_binary())
    parser.add_argument("--root", type=Path)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if not os.access(args.tenantctl, os.X_OK):
        print(f"check-pipelines: no tenantctl at {args.tenantctl}; run `cargo build --bin tenantctl` "
              "or pass --tenantctl BIN", file=sys.stderr)
        print("0 passed, 1 failed")
        return 2
    failures, passed = self_test(args.tenantctl), 0
    if failures:
        print("\n".join(failures), file=sys.stderr)
    elif args.self_test:
        print("self-test: unknown subcommands, flags, templates and parameters are caught")
    passed += not failures
    if not args.self_test:
        root = (args.root or REPO / "azure-pipelines").resolve()
        problems = check_tree(root, args.tenantctl)
        for p in problems.items:
            print(f"{rel(root, REPO)}/{p}" if args.root is None else p, file=sys.stderr)
        failures += problems.items
        passed += problems.passed
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
