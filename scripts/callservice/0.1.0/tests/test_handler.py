"""Unit tests of the callservice handler: run with `pytest` in the script folder."""

from __future__ import annotations

import pytest
from conftest import Marvin
from handler.handler import FAAS_METHOD_NAME, main

from blcks import InputError
from blcks.testing import call


def run(marvin: Marvin, **inputs: object) -> dict:
    return call(main, inputs, action=FAAS_METHOD_NAME, marvin_url=marvin.url, token=marvin.token)


def test_calls_the_service_method(marvin: Marvin) -> None:
    outputs = run(
        marvin, service_name="HostsManager", method_name="getHosts", params='{"search": "tag:web"}'
    )
    assert outputs["code"] == 200 and outputs["msg"] == "success"
    assert [host["name"] for host in outputs["result"]["data"]] == ["web-1"]


def test_params_default_to_none(marvin: Marvin) -> None:
    outputs = run(marvin, service_name="RBACManager", method_name="get_users_me")
    assert outputs["code"] == 200
    assert outputs["result"]["data"]["username"] == "trek"


def test_an_unknown_method_is_code_404(marvin: Marvin) -> None:
    outputs = run(marvin, service_name="HostsManager", method_name="dropHosts", params="{}")
    assert outputs["code"] == 404
    assert "HostsManager has no method 'dropHosts'" in outputs["msg"]
    assert outputs["result"] == {}


def test_an_unknown_service_is_code_404(marvin: Marvin) -> None:
    outputs = run(marvin, service_name="DiskManager", method_name="x")
    assert outputs["code"] == 404
    assert outputs["msg"].startswith("no service named 'DiskManager'")


def test_params_must_be_a_json_object(marvin: Marvin) -> None:
    with pytest.raises(InputError, match="params is not valid JSON"):
        run(marvin, service_name="HostsManager", method_name="getHosts", params="{search")
    with pytest.raises(InputError, match="params must be a JSON object"):
        run(marvin, service_name="HostsManager", method_name="getHosts", params="[1]")
