"""Health probes for start.sh (standard library only).

  probe.py dynamodb URL   -> DynamoDB Local answers ListTables
  probe.py moto URL       -> moto answers its /moto-api/ page
  probe.py http URL       -> any HTTP status below 500 (a server is there)
Exit 0 when healthy, 1 otherwise.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return 0


def main() -> int:
    kind, url = sys.argv[1], sys.argv[2].rstrip("/")
    if kind == "dynamodb":
        # DynamoDB Local checks that a SigV4 header is present, not that it is valid.
        request = urllib.request.Request(
            url + "/",
            data=b"{}",
            method="POST",
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, "
                "SignedHeaders=host;x-amz-date, Signature=0",
                "X-Amz-Date": "20240101T000000Z",
            },
        )
        return 0 if _status(request) == 200 else 1
    if kind == "moto":
        return 0 if _status(urllib.request.Request(url + "/moto-api/")) == 200 else 1
    if kind == "http":
        return 0 if 0 < _status(urllib.request.Request(url)) < 500 else 1
    print(f"unknown probe {kind}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
