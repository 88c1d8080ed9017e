"""Checks of fault_proxy.py in front of the running moto and DynamoDB Local (run by
selftest.sh with the venv's Python). Prints `ok - ...` / `not ok - ...` lines.

  selftest_fault_proxy.py MOTO_PROXY_PORT DYNAMODB_PROXY_PORT MOTO_PORT
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.config
from botocore.exceptions import ClientError

moto_proxy, dynamodb_proxy, moto_port = (int(a) for a in sys.argv[1:4])
failures = 0


def check(name: str, condition: bool, detail: object = "") -> None:
    global failures
    print(("ok - " if condition else "not ok - ") + "fault proxy: " + name)
    if not condition:
        failures += 1
        print(f"    {detail}")


def control(port: int, body: dict | None = None, method: str | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/__faults", data=data, method=method or ("POST" if data else "GET")
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


# One attempt per call: the checks look at what the proxy answered, not at retries.
config = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=10)
credentials = dict(region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")


def client(service: str, port: int):
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", config=config, **credentials)


def error_of(call) -> tuple[str, int] | str:
    try:
        call()
        return "no error"
    except ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    except Exception as err:  # connection errors
        return type(err).__name__


calls = {
    "ssm": lambda c: c.describe_parameters(),
    "acm": lambda c: c.list_certificates(),
    "ecr": lambda c: c.describe_repositories(),
    "cloudformation": lambda c: c.list_stacks(),
    "rds": lambda c: c.describe_db_clusters(),
    "elbv2": lambda c: c.describe_load_balancers(),
    "route53": lambda c: c.list_hosted_zones(),
}
expected_throttle = {"cloudformation": "Throttling", "rds": "Throttling", "elbv2": "Throttling", "route53": "Throttling"}
for service, call in calls.items():
    c = client(service, moto_proxy)
    control(moto_proxy, {"rules": [{"fault": "throttle"}]})
    code = expected_throttle.get(service, "ThrottlingException")
    got = error_of(lambda: call(c))
    check(f"{service} throttling in its protocol", got == (code, 400), got)
    control(moto_proxy, {"rules": [{"fault": "unavailable"}]})
    got = error_of(lambda: call(c))
    check(f"{service} 503 in its protocol", got == ("ServiceUnavailable", 503), got)
    control(moto_proxy, method="DELETE")
    got = error_of(lambda: call(c))
    check(f"{service} passes through without rules", got == "no error", got)

dynamodb = client("dynamodb", dynamodb_proxy)
control(dynamodb_proxy, {"rules": [{"fault": "throttle", "service": "dynamodb", "operation": "ListTables"}]})
got = error_of(dynamodb.list_tables)
check("dynamodb throttling (JSON 1.0)", got == ("ProvisionedThroughputExceededException", 400), got)
control(dynamodb_proxy, {"rules": [{"fault": "throttle", "operation": "ListTables", "code": "ThrottlingException"}]})
got = error_of(dynamodb.list_tables)
check("dynamodb throttling with a chosen code", got == ("ThrottlingException", 400), got)
control(dynamodb_proxy, {"rules": [{"fault": "throttle", "operation": "DescribeTable"}]})
got = error_of(dynamodb.list_tables)
check("a rule for another operation does not fire", got == "no error", got)
control(dynamodb_proxy, method="DELETE")

# Headers as hyper (the Rust SDK) sends them, in lower case.
conn = http.client.HTTPConnection("127.0.0.1", dynamodb_proxy, timeout=10)
conn.putrequest("POST", "/", skip_accept_encoding=True)
for header, value in [
    ("content-type", "application/x-amz-json-1.0"),
    ("x-amz-target", "DynamoDB_20120810.ListTables"),
    ("authorization", "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, "
     "SignedHeaders=host;x-amz-date, Signature=0"),
    ("x-amz-date", "20240101T000000Z"),
    ("content-length", "2"),
]:
    conn.putheader(header, value)
conn.endheaders(b"{}")
status = conn.getresponse().status
check("lower-case request headers are forwarded once", status == 200, status)
conn.close()

ssm = client("ssm", moto_proxy)
name = f"/fault-proxy-selftest/{uuid.uuid4().hex[:8]}"
control(moto_proxy, {"rules": [{"fault": "drop_answer", "service": "ssm", "operation": "PutParameter", "count": 1}]})
got = error_of(lambda: ssm.put_parameter(Name=name, Value="written", Type="String"))
direct = client("ssm", moto_port)
stored = error_of(lambda: direct.get_parameter(Name=name))
check("drop_answer: the client gets no answer", got not in ("no error",) and not isinstance(got, tuple), got)
check("drop_answer: the upstream executed the request", stored == "no error", stored)
_, state = control(moto_proxy)
check(
    "counters show the dropped answer",
    state["injected"].get("drop_answer") == {"ssm:PutParameter": 1} and state["rules"][0]["fired"] == 1,
    state,
)
got = error_of(lambda: ssm.put_parameter(Name=name, Value="written", Type="String"))
check("count: the rule fires only once", got == ("ParameterAlreadyExists", 400), got)

control(moto_proxy, {"rules": [{"fault": "latency", "service": "ssm", "latency_ms": 400}]})
start = time.monotonic()
got = error_of(lambda: ssm.describe_parameters())
elapsed = time.monotonic() - start
check("latency delays the answer", got == "no error" and elapsed >= 0.4, (got, elapsed))

control(moto_proxy, {"rules": [], "outage": {"seconds": 1.0}})
got = error_of(lambda: ssm.describe_parameters())
check("outage answers 503", got == ("ServiceUnavailable", 503), got)
time.sleep(1.1)
got = error_of(lambda: ssm.describe_parameters())
check("the outage ends", got == "no error", got)
control(moto_proxy, {"outage": {"seconds": 1.0, "mode": "reset"}})
got = error_of(lambda: ssm.describe_parameters())
check("outage in reset mode resets the connection", got not in ("no error",) and not isinstance(got, tuple), got)
time.sleep(1.1)


def pattern() -> str:
    control(moto_proxy, {"seed": 42, "rules": [{"fault": "throttle", "service": "ssm", "probability": 0.5}]})
    return "".join("x" if error_of(lambda: ssm.describe_parameters()) != "no error" else "." for _ in range(24))


first, second = pattern(), pattern()
check("a seed makes the faults reproducible", first == second and "x" in first and "." in first, (first, second))

status, answer = control(moto_proxy, {"rules": [{"fault": "explode"}]})
check("a bad rule is refused with the reason", status == 400 and "explode" in answer.get("error", ""), answer)
control(moto_proxy, method="DELETE")
control(dynamodb_proxy, method="DELETE")
sys.exit(1 if failures else 0)
