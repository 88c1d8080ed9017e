"""Schemathesis hooks for scripts/fuzz-api.sh.

Generated values repeat ("0", "a00" again and again), where a real client picks a new
one for each new request:

- an Idempotency-Key: the server rightly answers a key reused for another request
  with 422 idempotency_key_reused;
- a rollout id: the server rightly answers an id reused with another spec with 409.

So valid (positive) requests get a fresh key and a fresh rollout id each and reach
the operation; negative ones keep what was generated, so malformed values are still
sent and must be refused. The values are numbered, not random, so a seeded run stays
reproducible.

Valid deliveries to the Stripe intake are signed with the endpoint secret fuzz-api.sh
gives the server, as Stripe signs them, so they reach the mapping rather than stop at
the signature check.

Valid requests to the commands on one tenant or rollout are sent to the records
fuzz-api.sh creates (the document's example ids): a generated id names no record, and
an operation that only ever answers 404 is never reached at all. On the records they
meet the state checks (409 refused_by_state, held_by_rollout, ...) or act.
"""

import hashlib
import hmac
import itertools
import json
import os
import re
import time

import schemathesis

_fresh = itertools.count(1)

# The records fuzz-api.sh creates before the run.
FIXTURE_TENANT = "acme-corp"
FIXTURE_ROLLOUT = "r-2026-11-21-1-4-2"
_TENANT_COMMAND = re.compile(r"^/v1/tenants/\{id\}/(upgrade|reconcile|retry|rollback|restore|deprovision|drift)$")
_ROLLOUT_COMMAND = re.compile(r"^/v1/rollouts/\{id\}/(pause|resume|abort|approve|retry)$")


def _sign_as_stripe(case, headers):
    """Valid deliveries to the Stripe intake carry a signature made with the secret
    fuzz-api.sh configured, over the bytes requests sends for a JSON body (json.dumps
    with its default separators); invalid ones keep what was generated."""
    secret = os.environ.get("FUZZ_STRIPE_SECRET")
    if not secret:
        return
    timestamp = int(time.time())
    body = json.dumps(case.body, allow_nan=False)
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    headers["Stripe-Signature"] = f"t={timestamp},v1={digest}"
    case.headers = headers


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    headers = case.headers or {}
    if case.path == "/v1/intake/stripe" and case.body is not None:
        _sign_as_stripe(case, headers)
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"fuzz-{next(_fresh)}"
    if case.method.upper() == "POST" and case.path == "/v1/rollouts" and isinstance(case.body, dict):
        case.body["id"] = f"fuzz-{next(_fresh)}"
    if case.path_parameters is not None and "id" in case.path_parameters:
        if _TENANT_COMMAND.match(case.path):
            case.path_parameters["id"] = FIXTURE_TENANT
        elif _ROLLOUT_COMMAND.match(case.path):
            case.path_parameters["id"] = FIXTURE_ROLLOUT
