"""Schemathesis hooks for scripts/fuzz-api.sh.

A real client sends a fresh Idempotency-Key with each new request and the same key
only to repeat one. Generated keys are short and repeat across unrelated requests
("0" again and again), which the server rightly answers with 422
idempotency_key_reused, so schema-valid requests would rarely reach the operation.
Valid (positive) requests therefore get a fresh key each; negative ones keep the
generated value, so malformed keys are still sent and must be refused. The keys are
numbered, not random, so a seeded run stays reproducible.
"""

import itertools

import schemathesis

_keys = itertools.count(1)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    if "Idempotency-Key" not in headers or case.meta is None:
        return
    if case.meta.generation.mode.is_positive:
        headers["Idempotency-Key"] = f"fuzz-{next(_keys)}"
