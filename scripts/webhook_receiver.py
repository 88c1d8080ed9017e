#!/usr/bin/env python3
"""A local receiver of tenantctl's event webhooks, for the demo.

Each POST is checked as Standard Webhooks says (and as README.md shows): the
`webhook-signature` must be the HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>`
under the shared secret, and the timestamp within five minutes of now. A verified
event is appended, as one JSON line, to the output file (once per `webhook-id`:
deliveries are at least once) and answered 204; a bad signature or a stale timestamp
is answered 401 and kept nowhere.

    WEBHOOK_SECRET=... webhook_receiver.py --port 38090 --secret-env WEBHOOK_SECRET --out events.jsonl
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60


def key_of(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def verify(key: bytes, headers, body: bytes, now: float) -> str | None:
    """Why the delivery is refused, or None when it is genuine."""
    event_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (event_id and timestamp and signatures):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"webhook-timestamp {timestamp!r} is not Unix seconds"
    if abs(now - sent) > TOLERANCE_SECONDS:
        return f"webhook-timestamp {sent} is more than {TOLERANCE_SECONDS} s from now"
    signed = f"{event_id}.{timestamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if not any(hmac.compare_digest(expected, s) for s in signatures.split(" ")):
        return "no signature matches the shared secret"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-env", required=True, help="environment variable holding the secret")
    parser.add_argument("--out", required=True, help="file the verified events are appended to")
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env)
    if not secret:
        print(f"webhook_receiver: set {args.secret_env} to the webhook secret", file=sys.stderr)
        return 2
    key = key_of(secret)
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            problem = verify(key, self.headers, body, time.time())
            if problem:
                print(f"webhook_receiver: refused: {problem}", file=sys.stderr)
                self.send_response(401)
                self.end_headers()
                return
            event_id = self.headers["webhook-id"]
            with lock:
                if event_id not in seen:
                    seen.add(event_id)
                    with open(args.out, "a", encoding="utf-8") as out:
                        out.write(json.dumps(json.loads(body)) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"webhook_receiver: listening on 127.0.0.1:{args.port}", file=sys.stderr)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
