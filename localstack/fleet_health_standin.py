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

With --moto-endpoint it also models the load balancer in front of the tenants:
before a tenant's health, it evaluates the listener rules of the ELBv2 listeners
(--listener ARN, repeatable; else every listener of every load balancer in each
--region, default $AWS_REGION or us-east-1), read afresh from moto with unsigned
Query API calls. The first rule by priority whose conditions all match the
request (host-header and http-header, `*` and `?` wildcards, case-insensitive)
decides: a fixed-response rule is answered as configured (a maintenance page);
any other action (forward) reaches the tenant's health. The default rule is not
modelled: the tenant's health stands for what the listener routes to.

Usage: fleet_health_standin.py --port 8089 --state "$HELM_STANDIN_STATE" [--host 127.0.0.1]
                               [--moto-endpoint URL [--listener ARN]... [--region R]...]
Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
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


class ListenerRules:
    """The listener rules of moto's load balancers, as the ALB evaluates them."""

    def __init__(self, endpoint: str, listeners: list[str], regions: list[str]) -> None:
        self.endpoint = endpoint.rstrip("/") + "/"
        self.listeners = listeners
        self.regions = regions

    def _call(self, region: str, params: dict[str, str]) -> ET.Element:
        body = urllib.parse.urlencode({**params, "Version": "2015-12-01"}).encode()
        request = urllib.request.Request(self.endpoint, data=body, method="POST")
        # moto reads the region from the credential scope; it checks no signature.
        request.add_header(
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential=test/20260101/{region}/elasticloadbalancing/aws4_request, "
            "SignedHeaders=host, Signature=0",
        )
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(request, timeout=10) as response:
            root = ET.fromstring(response.read())
        for element in root.iter():
            element.tag = element.tag.rsplit("}", 1)[-1]
        return root

    def _listeners(self) -> list[str]:
        if self.listeners:
            return self.listeners
        found = []
        for region in self.regions:
            balancers = self._call(region, {"Action": "DescribeLoadBalancers"})
            for arn in balancers.iterfind(".//LoadBalancers/member/LoadBalancerArn"):
                listeners = self._call(region, {"Action": "DescribeListeners", "LoadBalancerArn": arn.text or ""})
                found += [l.text or "" for l in listeners.iterfind(".//Listeners/member/ListenerArn")]
        return found

    def _rules(self, listener: str) -> list[ET.Element]:
        region = listener.split(":")[3]
        rules: list[ET.Element] = []
        marker = None
        while True:
            params = {"Action": "DescribeRules", "ListenerArn": listener}
            if marker:
                params["Marker"] = marker
            page = self._call(region, params)
            rules += page.findall(".//Rules/member")
            marker = page.findtext(".//NextMarker")
            if not marker:
                return rules

    def answer(self, host: str, headers: dict[str, str]) -> tuple[int, str, bytes] | None:
        """(status, content type, body) of the fixed response that answers, if any."""
        for listener in self._listeners():
            ordered = sorted(
                (r for r in self._rules(listener) if (r.findtext("Priority") or "default").isdigit()),
                key=lambda r: int(r.findtext("Priority") or "0"),
            )
            for rule in ordered:
                if not all(matches(c, host, headers) for c in rule.findall("Conditions/member")):
                    continue
                action = rule.find("Actions/member")
                if action is None or action.findtext("Type") != "fixed-response":
                    break  # forwarded: the tenant answers
                config = action.find("FixedResponseConfig")
                status = int(config.findtext("StatusCode") or "200") if config is not None else 200
                content_type = (config.findtext("ContentType") if config is not None else None) or "text/plain"
                body = (config.findtext("MessageBody") if config is not None else None) or ""
                return status, content_type, body.encode()
        return None


def matches(condition: ET.Element, host: str, headers: dict[str, str]) -> bool:
    def values(config: str) -> list[str]:
        found = [v.text or "" for v in condition.iterfind(f"{config}/Values/member")]
        return found or [v.text or "" for v in condition.iterfind("Values/member")]

    field = condition.findtext("Field")
    if field == "host-header":
        return any(fnmatch.fnmatchcase(host, v.lower()) for v in values("HostHeaderConfig"))
    if field == "http-header":
        name = (condition.findtext("HttpHeaderConfig/HttpHeaderName") or "").lower()
        sent = headers.get(name)
        return sent is not None and any(fnmatch.fnmatchcase(sent.lower(), v.lower()) for v in values("HttpHeaderConfig"))
    return False  # a condition this stand-in does not model never matches


def make_handler(state: Path, rules: ListenerRules | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-health-standin"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path != "/healthz":
                self._reply(404, {"status": "not-found", "path": path})
                return
            host = self.headers.get("Host", "")
            if rules is not None:
                hostname = host.rsplit(":", 1)[0].lower().rstrip(".")
                sent = {k.lower(): v for k, v in self.headers.items()}
                try:
                    fixed = rules.answer(hostname, sent)
                except OSError as e:
                    self._reply(502, {"status": "no-listener-rules", "error": str(e)})
                    return
                if fixed is not None:
                    self._send(fixed[0], fixed[1], fixed[2])
                    return
            self._reply(*health(state, host))

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, "application/json", json.dumps(body).encode())

        def _send(self, code: int, content_type: str, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
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
    parser.add_argument("--moto-endpoint", help="model the listener rules of this moto server's load balancers")
    parser.add_argument("--listener", action="append", default=[], help="only this listener ARN (repeatable)")
    parser.add_argument("--region", action="append", default=[], help="regions to find listeners in (repeatable)")
    args = parser.parse_args()
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    rules = None
    if args.moto_endpoint:
        regions = args.region or [os.environ.get("AWS_REGION") or "us-east-1"]
        rules = ListenerRules(args.moto_endpoint, args.listener, regions)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state, rules))
    print(f"fleet_health_standin on http://{args.host}:{args.port}/healthz, state {state}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
