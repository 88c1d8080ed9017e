"""Runs moto's server with the tenant-orchestrator extensions (moto_ext).

Usage: venv/bin/python localstack/moto_server.py [--host 127.0.0.1] [--port 4566]

The extensions must be imported before moto handles its first request, so
this wraps moto's own entry point instead of calling `moto_server`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_ext  # noqa: E402  (registers models, applies fixes)
from moto import server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "4566")))
    args = parser.parse_args()

    # Unsupported resource types and our own notices show up in the server log.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(
        f"moto_ext: {len(moto_ext.supported_types())} CloudFormation types, "
        f"extended: {', '.join(sorted(moto_ext.EXTENDED_TYPES))}",
        file=sys.stderr,
        flush=True,
    )
    server.main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
