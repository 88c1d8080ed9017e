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
"""

import itertools

import schemathesis

_fresh = itertools.count(1)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    headers = case.headers or {}
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"fuzz-{next(_fresh)}"
    if case.method.upper() == "POST" and case.path == "/v1/rollouts" and isinstance(case.body, dict):
        case.body["id"] = f"fuzz-{next(_fresh)}"
