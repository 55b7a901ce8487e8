"""callservice: call one method of a Marvin API service of the blcks SDK."""

from __future__ import annotations

import json
from typing import Any

from blcks import ServiceName, blcks

FAAS_METHOD_NAME = "callservice"
SUCCESS = 200


@blcks
def main(event: Any, context: Any) -> None:
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


@blcks.script(FAAS_METHOD_NAME)
def process(service_name: Any, method_name: Any, params: Any = "{}") -> dict[str, Any]:
    kwargs = parse_params(params)
    try:
        service = ServiceName[str(service_name)]
    except KeyError:
        names = ", ".join(member.name for member in ServiceName)
        return failed(404, f"no service named {service_name!r} (services: {names})")
    try:
        result = blcks.createService(service).call(str(method_name), **kwargs)
    except blcks.ServiceError as err:
        return failed(err.code or 500, str(err))
    blcks.logger.info("called", extra={"service": service.name, "method": method_name})
    return {"code": SUCCESS, "msg": "success", "result": result}


def failed(code: int, msg: str) -> dict[str, Any]:
    blcks.logger.error("call failed", extra={"code": code, "reason": msg})
    return {"code": code, "msg": msg, "result": {}}


def parse_params(params: Any) -> dict[str, Any]:
    """The keyword arguments: a JSON object (text), or an object as is."""
    if params is None or (isinstance(params, str) and not params.strip()):
        return {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError as err:
            raise blcks.InputError(f"params is not valid JSON: {err}") from None
    if not isinstance(params, dict):
        raise blcks.InputError(f"params must be a JSON object, not {type(params).__name__}")
    return params
