"""blckssettags: add or remove a tag on assets (servers, domains, CDNs) through Marvin."""

from __future__ import annotations

from typing import Any

from blcks import ServiceName, blcks

FAAS_METHOD_NAME = "blckssettags"
ASSET_TYPES = ("SERVER", "DOMAIN", "CDN")
_TRUE = {"true", "1", "yes", "add"}
_FALSE = {"false", "0", "no", "remove"}


@blcks
def main(event: Any, context: Any) -> None:
    """Entry called by the runtime; blcks dispatches to the script named by event['action']."""


@blcks.script(FAAS_METHOD_NAME)
def process(name: Any, tagged: Any, asset_type: Any, ids: Any) -> dict[str, str]:
    tag = str(name or "").strip()
    if not tag:
        raise blcks.InputError("name: give the tag to add or remove")
    add = as_flag(tagged)
    kind = asset_kind(asset_type)
    asset_ids = id_list(ids)
    verb = "added" if add else "removed"
    if not asset_ids:
        blcks.logger.info("no assets given; nothing to tag", extra={"tag": tag})
        return {"result": f"tag {tag} {verb} on 0 assets"}
    change = {"name": tag, "tagged": add, "assets": [{"id": i, "type": kind} for i in asset_ids]}
    try:
        blcks.createService(ServiceName.TagManager).updateTags([change])
    except blcks.ServiceError as err:
        raise blcks.ScriptError(502, f"updating tag {tag} failed: {err}") from None
    blcks.logger.info("tags updated", extra={"tag": tag, "tagged": add, "assets": asset_ids})
    return {"result": f"tag {tag} {verb} on {len(asset_ids)} assets: {', '.join(asset_ids)}"}


def as_flag(tagged: Any) -> bool:
    """The para says boolean with enum [1, 0]: take true/false, 1/0 and their strings."""
    if isinstance(tagged, bool):
        return tagged
    if isinstance(tagged, int) and tagged in (0, 1):
        return bool(tagged)
    text = str(tagged).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise blcks.InputError(f"tagged must be true (add) or false (remove), not {tagged!r}")


def asset_kind(asset_type: Any) -> str:
    """SERVER, DOMAIN or CDN, in any letter case (workflows often write 'server')."""
    kind = str(asset_type or "").strip().upper()
    if kind not in ASSET_TYPES:
        raise blcks.InputError(
            f"asset_type must be one of {', '.join(ASSET_TYPES)}, not {asset_type!r}"
        )
    return kind


def id_list(ids: Any) -> list[str]:
    """Asset ids from a list, or from text with one id per line (pn_sp_textarea_array)."""
    if ids is None:
        items: list[Any] = []
    elif isinstance(ids, str):
        items = ids.splitlines()
    elif isinstance(ids, list):
        items = ids
    else:
        raise blcks.InputError(f"ids must be a list of asset ids, not {ids!r}")
    cleaned = [str(item).strip() for item in items if item is not None]
    return list(dict.fromkeys(item for item in cleaned if item))
