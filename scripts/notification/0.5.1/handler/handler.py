"""notification: send a message to chat channels through Marvin's channel service.

Since 0.5.0: an optional title line, and ``${name}`` macros in the title and the message,
filled from the ``macros`` input and the built-ins ``${task_id}`` and ``${time}``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from blcks import ServiceName, blcks
from blcks.context import current

FAAS_METHOD_NAME = "notification"
MACRO = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@blcks
def main(event: Any, context: Any) -> None:
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


@blcks.script(FAAS_METHOD_NAME)
def process(
    str_message: Any, bot_infos: Any = None, str_title: Any = "", macros: Any = None
) -> dict[str, str]:
    values = macro_values(macros)
    message = fill(_text(str_message), values)
    if not message.strip():
        blcks.logger.info("nothing to send: the message is empty")
        return {"status": "no data"}
    title = fill(_text(str_title), values).strip()
    text = f"{title}\n{message}" if title else message
    channel_ids = channel_ids_of(bot_infos)
    try:
        blcks.createService(ServiceName.ChannelManager).sendMessage(channel_ids, text)
    except blcks.ServiceError as err:
        blcks.logger.error("sending failed", extra={"channels": channel_ids, "error": str(err)})
        return {"status": "failure"}
    blcks.logger.info("sent", extra={"channels": channel_ids})
    return {"status": "success"}


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def macro_values(macros: Any) -> dict[str, str]:
    """Built-in macros overridden by the given ones (an object, or its JSON text)."""
    if isinstance(macros, str):
        try:
            macros = json.loads(macros) if macros.strip() else {}
        except ValueError:
            raise blcks.InputError("macros must be a JSON object of name: value") from None
    if macros is None:
        macros = {}
    if not isinstance(macros, dict):
        raise blcks.InputError(f"macros must be an object of name: value, not {macros!r}")
    builtins = {
        "task_id": current().task_id,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return {**builtins, **{str(name): _text(value) for name, value in macros.items()}}


def fill(text: str, values: dict[str, str]) -> str:
    """Replace each ``${name}`` that has a value; unknown ones stay as written."""
    return MACRO.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def channel_ids_of(bot_infos: Any) -> list[str]:
    """The channel ids in bot_infos (pn_ids_chatpair: a list of ids; a single id is taken too)."""
    if bot_infos is None or isinstance(bot_infos, str):
        found = [bot_infos or ""]
    elif isinstance(bot_infos, list):
        found = [str(item) for item in bot_infos if item is not None]
    else:
        raise blcks.InputError(f"bot_infos must be a list of channel ids, not {bot_infos!r}")
    ids = [item.strip() for item in found if item.strip()]
    if not ids:
        raise blcks.InputError("bot_infos: give at least one chat channel id")
    return list(dict.fromkeys(ids))
