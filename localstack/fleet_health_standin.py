#!/usr/bin/env python3
"""fleet_health_standin: a TEST DOUBLE for the tenants' health endpoints.

No tenant workload runs locally, so this server answers for all of them from
the releases that the Helm stand-in (localstack/helm-standin) keeps on disk:

  GET /healthz  with  Host: <tenant hostname>
    200 {"status":"ok","release":<values.release>}       deployed release whose
                                                         values.hostnames has it
    503 {"status":"unhealthy","release":...}            $STATE/unhealthy/<hostname>
                                                         exists, or values.release
                                                         is listed in
                                                         $STATE/broken-releases or
                                                         $STATE/broken-for/<hostname>
    404 {"status":"unknown","host":...}                  no tenant has the hostname

Every request reads the state afresh, so tests flip health by writing files.
Usage: fleet_health_standin.py --port 8089 --state "$HELM_STANDIN_STATE" [--host 127.0.0.1]
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def deployed_values(state: Path) -> list[dict[str, Any]]:
    """Values of the deployed revision of every release, in every context."""
    found = []
    for path in sorted((state / "releases").glob("*/*/*.json")):
        try:
            release = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # being replaced right now; the next probe sees it
        if release.get("uninstalled"):
            continue
        deployed = [r for r in release.get("revisions", []) if r.get("status") == "deployed"]
        if deployed:
            found.append(deployed[-1].get("config") or {})
    return found


def broken_releases(state: Path, hostname: str) -> set[str]:
    return release_list(state / "broken-releases") | release_list(state / "broken-for" / hostname)


def release_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def health(state: Path, host: str) -> tuple[int, dict[str, Any]]:
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    hostname = hostname.lower().rstrip(".")
    for values in deployed_values(state):
        names = [str(h).lower().rstrip(".") for h in values.get("hostnames") or []]
        if hostname not in names:
            continue
        release = values.get("release")
        if (state / "unhealthy" / hostname).exists() or (
            release is not None and str(release) in broken_releases(state, hostname)
        ):
            return 503, {"status": "unhealthy", "release": release}
        return 200, {"status": "ok", "release": release}
    return 404, {"status": "unknown", "host": hostname}


def make_handler(state: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-health-standin"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path != "/healthz":
                self._reply(404, {"status": "not-found", "path": path})
                return
            self._reply(*health(state, self.headers.get("Host", "")))

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write("%s %s\n" % (self.headers.get("Host", "-") if self.headers else "-", fmt % args))

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Test double for tenant health endpoints.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True, help="the Helm stand-in's HELM_STANDIN_STATE")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    print(f"fleet_health_standin on http://{args.host}:{args.port}/healthz, state {state}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
