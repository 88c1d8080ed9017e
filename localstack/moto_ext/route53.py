"""Route 53 DELETE changes: AWS deletes a record set only when the change names it
exactly as it is.

moto deletes whatever record set has the name and type, and accepts a DELETE of one
that does not exist. AWS refuses both with InvalidChangeBatch ("... but it was not
found", "... but the values provided do not match the current values"), and applies
no change of the batch. A DELETE repeated after a lost answer, or racing a change, must
meet that refusal here too. Record sets with a SetIdentifier keep moto's behaviour.
"""

from __future__ import annotations

from typing import Any

from moto.route53.exceptions import Route53ClientError
from moto.route53.models import RecordSet, Route53Backend

_original_change = Route53Backend.change_resource_record_sets


class InvalidChangeBatch(Route53ClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidChangeBatch", message)


def _name(name: str) -> str:
    return name.rstrip(".").lower()


def _values(record: dict[str, Any] | RecordSet) -> tuple:
    """What a DELETE must match: TTL and values, or the alias target."""
    if isinstance(record, RecordSet):
        alias, ttl, values = record.alias_target, record.ttl, list(record.records or [])
    else:
        alias = record.get("AliasTarget")
        ttl = record.get("TTL")
        values = [r["Value"] if isinstance(r, dict) else r for r in record.get("ResourceRecords") or []]
    if alias:
        return ("alias", _name(str(alias.get("DNSName", ""))), str(alias.get("HostedZoneId", "")))
    return ("values", str(ttl), sorted(str(v) for v in values))


def _change_resource_record_sets(self: Route53Backend, zoneid: str, change_list: list[dict[str, Any]]) -> None:
    zone = self.get_hosted_zone(zoneid)
    for change in change_list:
        record = change["ResourceRecordSet"]
        if change["Action"] != "DELETE" or record.get("SetIdentifier"):
            continue
        described = f"[name='{_name(record['Name'])}.', type='{record.get('Type')}']"
        current = [
            r for r in zone.rrsets if _name(r.name) == _name(record["Name"]) and r.type == record.get("Type")
        ]
        if not current:
            raise InvalidChangeBatch(f"Tried to delete resource record set {described} but it was not found")
        if _values(current[0]) != _values(record):
            raise InvalidChangeBatch(
                f"Tried to delete resource record set {described} but the values provided do not match "
                "the current values"
            )
    _original_change(self, zoneid, change_list)


def apply() -> None:
    Route53Backend.change_resource_record_sets = _change_resource_record_sets  # type: ignore[method-assign]
