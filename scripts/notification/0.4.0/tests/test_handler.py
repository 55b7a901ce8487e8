"""Unit tests of the notification handler: run with `pytest` in the script folder."""

from __future__ import annotations

import pytest
from conftest import Marvin
from handler.handler import FAAS_METHOD_NAME, main

from blcks import InputError
from blcks.testing import call


def send(marvin: Marvin, inputs: dict) -> dict:
    return call(main, inputs, action=FAAS_METHOD_NAME, marvin_url=marvin.url, token=marvin.token)


def test_sends_the_message_to_the_channel(marvin: Marvin) -> None:
    outputs = send(marvin, {"bot_infos": ["C-general"], "str_message": "redis is down"})
    assert outputs == {"status": "success"}
    sent = marvin.get("/api/v1/messages")
    assert [(m["channel_id"], m["message"]) for m in sent] == [("C-general", "redis is down")]


def test_an_empty_message_is_no_data(marvin: Marvin) -> None:
    assert send(marvin, {"bot_infos": ["C-general"], "str_message": "  "}) == {"status": "no data"}
    assert marvin.get("/api/v1/messages") == []


def test_an_unknown_channel_is_a_failure(marvin: Marvin) -> None:
    assert send(marvin, {"bot_infos": ["C-nope"], "str_message": "hi"}) == {"status": "failure"}


def test_no_channel_is_an_input_error(marvin: Marvin) -> None:
    with pytest.raises(InputError, match="bot_infos"):
        send(marvin, {"str_message": "hi"})
