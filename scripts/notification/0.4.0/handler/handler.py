"""notification: send a message to chat channels through Marvin's channel service."""

from __future__ import annotations

import json
from typing import Any

from blcks import ServiceName, blcks

FAAS_METHOD_NAME = "notification"


@blcks
def main(event: Any, context: Any) -> None:
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


@blcks.script(FAAS_METHOD_NAME)
def process(str_message: Any, bot_infos: Any = None) -> dict[str, str]:
    message = _text(str_message)
    if not message.strip():
        blcks.logger.info("nothing to send: the message is empty")
        return {"status": "no data"}
    channel_ids = channel_ids_of(bot_infos)
    try:
        blcks.createService(ServiceName.ChannelManager).sendMessage(channel_ids, message)
    except blcks.ServiceError as err:
        blcks.logger.error("sending failed", extra={"channels": channel_ids, "error": str(err)})
        return {"status": "failure"}
    blcks.logger.info("sent", extra={"channels": channel_ids})
    return {"status": "success"}


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


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
