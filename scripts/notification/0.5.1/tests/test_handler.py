"""Unit tests of the notification handler: run with `pytest` in the script folder."""

from __future__ import annotations

import pytest
from conftest import Marvin
from handler.handler import FAAS_METHOD_NAME, main

from blcks import InputError
from blcks.testing import call


def send(marvin: Marvin, inputs: dict) -> dict:
    return call(
        main,
        inputs,
        action=FAAS_METHOD_NAME,
        marvin_url=marvin.url,
        token=marvin.token,
        task_id="task-7",
    )


def messages(marvin: Marvin) -> list[tuple[str, str]]:
    return [(m["channel_id"], m["message"]) for m in marvin.get("/api/v1/messages")]


def test_sends_the_message_to_the_channel(marvin: Marvin) -> None:
    outputs = send(marvin, {"bot_infos": ["C-general"], "str_message": "redis is down"})
    assert outputs == {"status": "success"}
    assert messages(marvin) == [("C-general", "redis is down")]


def test_title_and_macros_are_filled(marvin: Marvin) -> None:
    inputs = {
        "bot_infos": ["C-general"],
        "str_title": "[${env}] alert",
        "str_message": "task ${task_id}: ${what} (${unknown})",
        "macros": {"env": "prod", "what": "redis is down"},
    }
    assert send(marvin, inputs) == {"status": "success"}
    expected = "[prod] alert\ntask task-7: redis is down (${unknown})"
    assert messages(marvin) == [("C-general", expected)]


def test_macros_may_be_json_text(marvin: Marvin) -> None:
    inputs = {"bot_infos": "C-general", "str_message": "${a}", "macros": '{"a": 1}'}
    assert send(marvin, inputs) == {"status": "success"}
    assert messages(marvin) == [("C-general", "1")]


def test_an_empty_message_is_no_data(marvin: Marvin) -> None:
    assert send(marvin, {"bot_infos": ["C-general"], "str_message": ""}) == {"status": "no data"}
    assert messages(marvin) == []


def test_an_unknown_channel_is_a_failure(marvin: Marvin) -> None:
    assert send(marvin, {"bot_infos": ["C-nope"], "str_message": "hi"}) == {"status": "failure"}


def test_bad_macros_are_an_input_error(marvin: Marvin) -> None:
    with pytest.raises(InputError, match="macros"):
        send(marvin, {"bot_infos": ["C-general"], "str_message": "hi", "macros": "[1]"})
