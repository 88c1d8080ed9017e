"""A fault-injecting HTTP proxy in front of moto or DynamoDB Local (standard library only).

  fault_proxy.py --port PORT --upstream http://127.0.0.1:4566 [--seed N]

Every request is forwarded to the upstream unchanged, unless a rule injects a fault:

  throttle      answer a throttling error in the service's own protocol (not forwarded)
  unavailable   answer 503 in the service's own protocol (not forwarded)
  latency       wait `latency_ms` before forwarding (other rules still apply)
  drop_answer   forward, read the upstream's answer, then close the connection
                without answering: the request was executed, the client never knows
  reset         reset the connection without forwarding

Rules are set at run time on the control endpoint:

  POST /__faults  {"seed": 7, "rules": [{"fault": "throttle", "service": "ssm",
                   "operation": "PutParameter", "probability": 0.3, "count": 5}],
                   "outage": {"seconds": 10, "mode": "unavailable" | "reset"}}
  GET  /__faults  the rules, the outage, and counters: requests seen and faults
                  injected, per kind and per `service:operation`
  DELETE /__faults  no rules, no outage, counters reset

`service` is the SigV4 signing name (dynamodb, ssm, acm, ecr, cloudformation, rds,
elasticloadbalancing, route53) or "*"; `operation` the X-Amz-Target operation, the
form's `Action`, or for Route 53 the operation its path stands for, or "*".
`probability` defaults to 1, `count` (most times the rule fires) to unlimited; a
throttle rule may name its error `code` (DynamoDB: ThrottlingException instead of
ProvisionedThroughputExceededException). Rules
are tried in order; latency rules add up, the first other rule that fires decides.
Every POST that gives a `seed` restarts the random sequence, so a client that sends
its requests one at a time sees the same faults on every run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTROL_PATH = "/__faults"
FAULTS = ("throttle", "unavailable", "latency", "drop_answer", "reset")
OUTAGE_MODES = ("unavailable", "reset")

JSON_10 = {"dynamodb"}
JSON_11 = {"ssm", "acm", "ecr"}
QUERY = {"cloudformation", "rds", "elasticloadbalancing"}
REST_XML = {"route53"}

# Route 53 is REST: the operation is in the method and the path.
ROUTE53_OPERATIONS = [
    ("POST", re.compile(r"^/\d{4}-\d{2}-\d{2}/hostedzone/[^/]+/rrset/?$"), "ChangeResourceRecordSets"),
    ("GET", re.compile(r"^/\d{4}-\d{2}-\d{2}/hostedzone/[^/]+/rrset/?$"), "ListResourceRecordSets"),
    ("GET", re.compile(r"^/\d{4}-\d{2}-\d{2}/change/[^/]+$"), "GetChange"),
    ("GET", re.compile(r"^/\d{4}-\d{2}-\d{2}/hostedzone/[^/]+$"), "GetHostedZone"),
    ("POST", re.compile(r"^/\d{4}-\d{2}-\d{2}/hostedzone/?$"), "CreateHostedZone"),
    ("GET", re.compile(r"^/\d{4}-\d{2}-\d{2}/hostedzone/?$"), "ListHostedZones"),
]

CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


class RuleError(ValueError):
    """A rule set that cannot be applied; the message says what to change."""


def parse_rules(raw: object) -> list[dict]:
    if not isinstance(raw, list):
        raise RuleError('"rules" must be a list of objects')
    rules = []
    for i, rule in enumerate(raw):
        if not isinstance(rule, dict):
            raise RuleError(f"rule {i} must be an object, got {rule!r}")
        unknown = set(rule) - {"fault", "service", "operation", "probability", "count", "latency_ms", "code"}
        if unknown:
            raise RuleError(f"rule {i}: unknown fields {sorted(unknown)}")
        fault = rule.get("fault")
        if fault not in FAULTS:
            raise RuleError(f"rule {i}: fault {fault!r} is not one of {', '.join(FAULTS)}")
        probability = rule.get("probability", 1.0)
        if not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise RuleError(f"rule {i}: probability {probability!r} must be a number in 0..1")
        count = rule.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise RuleError(f"rule {i}: count {count!r} must be a whole number >= 0")
        latency = rule.get("latency_ms", 0)
        if fault == "latency" and (not isinstance(latency, int) or latency <= 0):
            raise RuleError(f"rule {i}: a latency rule needs latency_ms > 0, got {latency!r}")
        code = rule.get("code")
        if code is not None and (fault != "throttle" or not isinstance(code, str) or not code.isalnum()):
            raise RuleError(f"rule {i}: code {code!r} is only for throttle rules, as one word (ThrottlingException)")
        rules.append(
            {
                "fault": fault,
                "code": code,
                "service": str(rule.get("service", "*")),
                "operation": str(rule.get("operation", "*")),
                "probability": float(probability),
                "count": count,
                "latency_ms": latency,
                "fired": 0,
            }
        )
    return rules


class Faults:
    """The rule set, the outage and the counters, shared by the handler threads."""

    def __init__(self, seed: int) -> None:
        self.lock = threading.Lock()
        self.seed = seed
        self.random = random.Random(seed)
        self.rules: list[dict] = []
        self.outage_until = 0.0
        self.outage_mode = "unavailable"
        self.seen: dict[str, int] = defaultdict(int)
        self.injected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def configure(self, body: dict) -> None:
        if not isinstance(body, dict):
            raise RuleError("the body must be a JSON object with rules, seed and/or outage")
        unknown = set(body) - {"rules", "seed", "outage"}
        if unknown:
            raise RuleError(f"unknown fields {sorted(unknown)}; use rules, seed, outage")
        rules = parse_rules(body["rules"]) if "rules" in body else None
        outage = body.get("outage")
        if outage is not None:
            if not isinstance(outage, dict) or not isinstance(outage.get("seconds"), (int, float)):
                raise RuleError('outage must be {"seconds": N, "mode": "unavailable" | "reset"}')
            if outage.get("mode", "unavailable") not in OUTAGE_MODES:
                raise RuleError(f"outage mode {outage.get('mode')!r} is not one of {', '.join(OUTAGE_MODES)}")
        seed = body.get("seed")
        if seed is not None and not isinstance(seed, int):
            raise RuleError(f"seed {seed!r} must be a whole number")
        with self.lock:
            if rules is not None:
                self.rules = rules
            if seed is not None:
                self.seed = seed
                self.random = random.Random(seed)
            if outage is not None:
                self.outage_until = time.monotonic() + float(outage["seconds"])
                self.outage_mode = outage.get("mode", "unavailable")

    def clear(self) -> None:
        with self.lock:
            self.rules = []
            self.outage_until = 0.0
            self.seen.clear()
            self.injected.clear()

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "seed": self.seed,
                "rules": [dict(r) for r in self.rules],
                "outage_seconds_left": max(0.0, round(self.outage_until - time.monotonic(), 3)),
                "outage_mode": self.outage_mode,
                "seen": dict(self.seen),
                "injected": {kind: dict(ops) for kind, ops in self.injected.items()},
            }

    def decide(self, service: str, operation: str) -> tuple[int, dict | None]:
        """(latency in ms, the rule whose fault to inject, or None) for one request."""
        key = f"{service}:{operation}"
        with self.lock:
            self.seen[key] += 1
            if time.monotonic() < self.outage_until:
                kind = "outage_" + self.outage_mode
                self.injected[kind][key] += 1
                return 0, {"fault": self.outage_mode, "code": None}
            latency = 0
            for rule in self.rules:
                if rule["service"] not in ("*", service) or rule["operation"] not in ("*", operation):
                    continue
                if rule["count"] is not None and rule["fired"] >= rule["count"]:
                    continue
                if self.random.random() >= rule["probability"]:
                    continue
                rule["fired"] += 1
                self.injected[rule["fault"]][key] += 1
                if rule["fault"] == "latency":
                    latency += rule["latency_ms"]
                    continue
                return latency, rule
            return latency, None


def service_of(headers) -> str:
    match = CREDENTIAL_SCOPE.search(headers.get("Authorization", ""))
    if match:
        return match.group(1)
    target = headers.get("X-Amz-Target", "")
    if target.startswith("DynamoDB_"):
        return "dynamodb"
    return "unknown"


def operation_of(method: str, path: str, headers, body: bytes) -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    bare = urllib.parse.urlsplit(path).path
    for verb, pattern, name in ROUTE53_OPERATIONS:
        if verb == method and pattern.match(bare):
            return name
    return f"{method} {bare}"


def error_answer(service: str, fault: str, code: str | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a throttling error (`code`, or the service's
    usual one) or a 503, as the service sends it."""
    request_id = str(uuid.uuid4())
    if fault == "throttle":
        status, message = 400, "Rate exceeded"
        if code is None:
            code = "ProvisionedThroughputExceededException" if service == "dynamodb" else "ThrottlingException"
            if service in QUERY | REST_XML:
                code = "Throttling"
    else:
        status, code, message = 503, "ServiceUnavailable", "Service unavailable (injected)"
    if service in JSON_10:
        type_ = f"com.amazonaws.dynamodb.v20120810#{code}"
        return status, "application/x-amz-json-1.0", json.dumps({"__type": type_, "message": message}).encode()
    if service in JSON_11:
        return status, "application/x-amz-json-1.1", json.dumps({"__type": code, "message": message}).encode()
    namespace = ' xmlns="https://route53.amazonaws.com/doc/2013-04-01/"' if service in REST_XML else ""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse{namespace}><Error><Type>'
        f'{"Sender" if status < 500 else "Receiver"}</Type><Code>{code}</Code><Message>{message}</Message>'
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, "text/xml", body.encode()


def make_handler(faults: Faults, upstream: urllib.parse.SplitResult):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fault-proxy"

        def log_message(self, fmt: str, *args) -> None:  # one line per fault only
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, content_type: str, body: bytes, headers=()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _drop(self) -> None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True

        def _control(self, body: bytes) -> None:
            if self.command == "POST":
                try:
                    faults.configure(json.loads(body or b"{}"))
                except (RuleError, json.JSONDecodeError) as err:
                    answer = json.dumps({"error": str(err)}).encode()
                    return self._answer(400, "application/json", answer)
            elif self.command == "DELETE":
                faults.clear()
            elif self.command != "GET":
                return self._answer(405, "application/json", b'{"error": "use GET, POST or DELETE"}')
            self._answer(200, "application/json", json.dumps(faults.snapshot()).encode())

        def _handle(self) -> None:
            body = self._read_body()
            if urllib.parse.urlsplit(self.path).path == CONTROL_PATH:
                return self._control(body)
            service = service_of(self.headers)
            operation = operation_of(self.command, self.path, self.headers, body)
            latency, rule = faults.decide(service, operation)
            fault = rule["fault"] if rule else None
            if fault is not None:
                print(f"fault-proxy: {fault} {service}:{operation}", file=sys.stderr, flush=True)
            if latency:
                time.sleep(latency / 1000)
            if fault == "reset":
                return self._reset()
            if fault in ("throttle", "unavailable"):
                status, content_type, answer = error_answer(service, fault, rule["code"])
                return self._answer(status, content_type, answer)
            try:
                status, reason, headers, answer = self._forward(body)
            except OSError as err:
                message = f"fault-proxy: upstream {upstream.netloc} unreachable: {err}".encode()
                return self._answer(502, "text/plain", message)
            if fault == "drop_answer":
                return self._drop()
            self.send_response(status, reason)
            for name, value in headers:
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def _forward(self, body: bytes):
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port or 80, timeout=120)
            try:
                # The body was read whole (chunks joined): its length replaces the client's
                # framing headers, whatever their case.
                framing = ("transfer-encoding", "connection", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in framing}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.reason, response.getheaders(), response.read()
            finally:
                conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of moto or DynamoDB Local")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        print(f"fault-proxy: --upstream must be http://HOST:PORT, got {args.upstream!r}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(Faults(args.seed), upstream))
    server.daemon_threads = True
    print(f"fault-proxy: 127.0.0.1:{args.port} -> {args.upstream}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
