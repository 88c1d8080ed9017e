"""ELBv2 listener certificates: AddListenerCertificates is idempotent in AWS.

moto appends the same certificate ARN again on every call, so a retried
"attach certificate" step would show duplicates (and count them towards the
25-certificate limit). Here an ARN already on the listener is not added twice.
"""

from __future__ import annotations

from typing import Any

from moto.elbv2.exceptions import TooManyCertificatesError
from moto.elbv2.models import ELBv2Backend


def _add_listener_certificates(
    self: ELBv2Backend, arn: str, certificates: list[dict[str, Any]]
) -> list[str]:
    listener = self.describe_listeners(load_balancer_arn=None, listener_arns=[arn])[0]
    new = []
    for cert in certificates:
        cert_arn = cert["CertificateArn"]
        if cert_arn not in listener.certificates and cert_arn not in new:
            new.append(cert_arn)
    if len(new) + len(listener.certificates) > 25:
        raise TooManyCertificatesError()
    listener.certificates.extend(new)
    return listener.certificates


def apply() -> None:
    ELBv2Backend.add_listener_certificates = _add_listener_certificates  # type: ignore[method-assign]
