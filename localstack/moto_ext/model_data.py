"""A fix of moto's `/moto-api/data.json` (its state, model by model).

moto's handler serializes every public attribute of every tracked model instance
and skips those that raise TypeError, AttributeError or ValueError; an RDS cluster's
`master_user_password` raises NotImplementedError, so once a database cluster exists
the whole endpoint answers 500. The replacement skips an attribute that raises
anything. Tests read the STS AssumeRole calls moto answered (role, session name,
external id) from it, since moto records the external id but does not check it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from moto.moto_api._internal.responses import MotoAPIResponse


def _model_data(self: MotoAPIResponse, request: Any, full_url: str, headers: Any) -> Any:
    from moto.core.model_instances import model_data

    results: dict[str, dict[str, list[Any]]] = {}
    for service in sorted(model_data):
        models = model_data[service]
        results[service] = {}
        for name in sorted(models):
            results[service][name] = []
            for instance in models[name].instances_tracked:  # type: ignore[attr-defined]
                fields = {}
                for attr in dir(instance):
                    if attr.startswith("_"):
                        continue
                    try:
                        value = getattr(instance, attr)
                        json.dumps(value)
                    except Exception:  # noqa: BLE001 (any attribute that cannot be read or serialized)
                        continue
                    fields[attr] = value
                results[service][name].append(fields)
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


def apply() -> None:
    MotoAPIResponse.model_data = _model_data  # type: ignore[method-assign]
    urls = sys.modules.get("moto.moto_api._internal.urls")
    if urls is not None:
        urls.url_paths["{0}/moto-api/data.json"] = urls.response_instance.model_data
