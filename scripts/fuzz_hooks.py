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

A valid freeze must end after it begins and last at most 366 days, which JSON Schema
cannot state: valid requests to add one end an hour after their generated start. A
freeze id exists only once a freeze is added: outside the stateful phase (where the
document's link gives the id of one just added) valid removals name the freeze
fuzz-api.sh added. A scheduled start must be ahead and within 90 days: valid rollout
starts that ask for one ask for a minute from now, and those that advance the version
policy on completion name the environment it needs.

Valid requests to read, approve or cancel a promotion rule go to the rule fuzz-api.sh
sets; valid removals go to a second one, so the first stays. A soak is at most 30 days,
which a duration's pattern cannot state: valid rules soak two hours. Their template's
strategy has the rules between fields a rollout spec has (fuzzed through rollout
starts, with the same parser): valid rules take the default strategy, and leave the
selector's environment to the rule's `to`, which it must equal.

Valid requests to the commands on one tenant or rollout are sent to the records
fuzz-api.sh creates (the document's example ids): a generated id names no record, and
an operation that only ever answers 404 is never reached at all. On the records they
meet the state checks (409 refused_by_state, held_by_rollout, ...) or act.
"""

import datetime
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
FIXTURE_PROMOTION = "staging-to-prod"
REMOVABLE_PROMOTION = "fuzz-removable"
_PROMOTION = re.compile(r"^/v1/promotions/\{name\}(/approve|/cancel)?$")
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


def _freeze_an_hour(case):
    """A valid freeze request ends an hour after its generated start."""
    try:
        start = datetime.datetime.fromisoformat(str(case.body["from"]).replace("Z", "+00:00"))
        case.body["until"] = (start + datetime.timedelta(hours=1)).isoformat()
    except (KeyError, TypeError, ValueError, OverflowError):
        pass


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if (
        case.method.upper() == "DELETE"
        and case.path == "/v1/promotions/{name}"
        and (case.path_parameters or {}).get("name") == FIXTURE_PROMOTION
    ):
        # Even a request invalid elsewhere may reach the handler: keep the fixture.
        case.path_parameters["name"] = REMOVABLE_PROMOTION
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    headers = case.headers or {}
    if case.path == "/v1/intake/stripe" and case.body is not None:
        _sign_as_stripe(case, headers)
    if case.method.upper() == "POST" and case.path == "/v1/freezes" and isinstance(case.body, dict):
        _freeze_an_hour(case)
    if case.method.upper() == "PUT" and case.path == "/v1/promotions/{name}" and isinstance(case.body, dict):
        case.body["soak"] = "2h"
        template = case.body.get("template")
        if isinstance(template, dict) and "strategy" in template:
            template["strategy"] = {}
        if isinstance(template, dict) and isinstance(template.get("selector"), dict):
            template["selector"].pop("environment", None)
    if (
        case.path == "/v1/freezes/{id}"
        and case.meta.phase.name != "stateful"
        and os.environ.get("FUZZ_FREEZE_ID")
        and case.path_parameters is not None
    ):
        case.path_parameters["id"] = os.environ["FUZZ_FREEZE_ID"]
    if (
        case.method.upper() == "POST"
        and case.path == "/v1/rollouts"
        and isinstance(case.body, dict)
        and case.body.get("start_at") is not None
    ):
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
        case.body["start_at"] = soon.isoformat()
    if case.method.upper() == "POST" and case.path == "/v1/rollouts" and isinstance(case.body, dict):
        spec = case.body.get("spec")
        if isinstance(spec, dict) and (spec.get("on_complete") or {}).get("advance_policy"):
            selector = spec.setdefault("selector", {})
            if isinstance(selector, dict) and not selector.get("environment"):
                selector["environment"] = "prod"
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"fuzz-{next(_fresh)}"
    if case.method.upper() == "POST" and case.path == "/v1/rollouts" and isinstance(case.body, dict):
        case.body["id"] = f"fuzz-{next(_fresh)}"
    if (
        case.path_parameters is not None
        and "name" in case.path_parameters
        and _PROMOTION.match(case.path)
        and case.method.upper() in ("GET", "POST", "DELETE")
    ):
        removal = case.method.upper() == "DELETE"
        case.path_parameters["name"] = REMOVABLE_PROMOTION if removal else FIXTURE_PROMOTION
    if case.path_parameters is not None and "id" in case.path_parameters:
        if _TENANT_COMMAND.match(case.path):
            case.path_parameters["id"] = FIXTURE_TENANT
        elif _ROLLOUT_COMMAND.match(case.path):
            case.path_parameters["id"] = FIXTURE_ROLLOUT
