"""Unit tests of the blckssettags handler: run with `pytest` in the script folder."""

from __future__ import annotations

import pytest
from conftest import Marvin
from handler.handler import FAAS_METHOD_NAME, main

from blcks import InputError, ScriptError
from blcks.testing import call


def run(marvin: Marvin, **inputs: object) -> dict:
    return call(main, inputs, action=FAAS_METHOD_NAME, marvin_url=marvin.url, token=marvin.token)


def tagged_hosts(marvin: Marvin, tag: str) -> list[str]:
    return [host["id"] for host in marvin.get(f"/api/v1/hosts?search=tag:{tag}")]


def test_adds_then_removes_a_tag_on_servers(marvin: Marvin) -> None:
    outputs = run(marvin, name="redis:unreachable", tagged=True, asset_type="server", ids=["S-db1"])
    assert outputs == {"result": "tag redis:unreachable added on 1 assets: S-db1"}
    assert tagged_hosts(marvin, "redis:unreachable") == ["S-db1"]
    outputs = run(marvin, name="redis:unreachable", tagged=0, asset_type="SERVER", ids="S-db1\n")
    assert outputs == {"result": "tag redis:unreachable removed on 1 assets: S-db1"}
    assert tagged_hosts(marvin, "redis:unreachable") == []


def test_no_ids_changes_nothing(marvin: Marvin) -> None:
    outputs = run(marvin, name="x", tagged=True, asset_type="DOMAIN", ids=[])
    assert outputs == {"result": "tag x added on 0 assets"}


def test_a_bad_asset_type_is_an_input_error(marvin: Marvin) -> None:
    with pytest.raises(InputError, match="asset_type must be one of SERVER, DOMAIN, CDN"):
        run(marvin, name="x", tagged=True, asset_type="disk", ids=["S-db1"])


def test_an_unknown_asset_fails_the_script(marvin: Marvin) -> None:
    with pytest.raises(ScriptError, match="updating tag x failed"):
        run(marvin, name="x", tagged=True, asset_type="SERVER", ids=["S-nope"])
