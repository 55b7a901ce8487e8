"""detectredis against a real redis-server and a real local Marvin (see conftest.py)."""

import pytest
from handler import handler
from handler.handler import FAAS_METHOD_NAME, main

from blcks import ServiceError
from blcks.testing import call


def detect(marvin, tag_name):
    url, token = marvin
    return call(main, {"tag_name": tag_name}, action=FAAS_METHOD_NAME, marvin_url=url, token=token)


def test_reports_the_tagged_hosts_whose_redis_does_not_answer(marvin):
    assert detect(marvin, "redis") == {
        "fail_hosts_count": 1,
        "fail_hosts": [{"id": "S-down", "ip": "127.0.0.1", "name": "redis-down"}],
    }


def test_reports_nothing_when_every_tagged_host_answers(marvin):
    assert detect(marvin, "cache") == {"fail_hosts_count": 0, "fail_hosts": []}


def test_reports_nothing_when_no_host_has_the_tag(marvin):
    assert detect(marvin, "nobody") == {"fail_hosts_count": 0, "fail_hosts": []}


def test_a_host_without_port_is_tried_on_the_default_port(marvin, redis_port, monkeypatch):
    monkeypatch.setattr(handler, "DEFAULT_PORT", redis_port)
    assert detect(marvin, "noport")["fail_hosts_count"] == 0
    monkeypatch.setattr(handler, "DEFAULT_PORT", 1)
    assert detect(marvin, "noport")["fail_hosts"] == [
        {"id": "S-noport", "ip": "127.0.0.1", "name": "no-port"}
    ]


def test_a_rejected_token_fails_instead_of_reporting_no_hosts(marvin):
    url, _ = marvin
    with pytest.raises(ServiceError, match="401"):
        call(main, {"tag_name": "redis"}, action=FAAS_METHOD_NAME, marvin_url=url, token="bad")
