"""MarvinClient against a real local Marvin: data back, failures without the token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trek_tasks.errors import StepFailed
from trek_tasks.marvin.client import MarvinClient, StateProbe
from trek_tasks.marvin.inventory import Channel, Host, Inventory
from trek_tasks.marvin.server import local_marvin

INVENTORY = Inventory(
    hosts=(Host("S-1", "one", "127.0.0.1", tags=("redis",)),),
    channels=(Channel("C-ops", "ops"),),
)


def test_get_returns_the_data(tmp_path: Path) -> None:
    with local_marvin(INVENTORY, tmp_path) as marvin:
        url, token = marvin
        assert [h["id"] for h in marvin.get("/api/v1/hosts?search=tag:redis")] == ["S-1"]
        assert MarvinClient(url, token).get("/api/v1/channels") == [{"id": "C-ops", "name": "ops"}]


def test_failures_name_url_and_status_but_not_the_token(tmp_path: Path) -> None:
    with local_marvin(INVENTORY, tmp_path) as marvin:
        wrong = MarvinClient(marvin.url, "not-a-real-token-123")
        with pytest.raises(StepFailed) as info:
            wrong.get("/api/v1/hosts")
    assert str(info.value) == (
        f"GET {marvin.url}/api/v1/hosts: HTTP 401: missing or invalid token; "
        "run `trek login` to get one"
    )
    assert "not-a-real-token-123" not in str(info.value)


def test_an_unreachable_marvin_is_a_failed_step(tmp_path: Path) -> None:
    with local_marvin(INVENTORY, tmp_path) as marvin:
        url = marvin.url
    with pytest.raises(StepFailed) as info:
        MarvinClient(url, "t").get("/api/v1/hosts")
    assert str(info.value) == f"GET {url}/api/v1/hosts: cannot connect: Connection refused"


def test_the_state_probe_asks_again_only_after_the_database_changed(tmp_path: Path) -> None:
    db = tmp_path / "marvin.db"
    with local_marvin(INVENTORY, tmp_path) as marvin:
        probe = StateProbe(marvin.url, marvin.token, db)
        blind = StateProbe(marvin.url, marvin.token)  # no database: asks every time
        first = probe()
        assert first and probe() == first == blind()
        tag = [{"name": "down", "tagged": True, "assets": [{"id": "S-1", "type": "server"}]}]
        marvin.post("/api/v1/tags/update", tag)
        tagged = probe()
        assert tagged not in ("", first) and tagged == blind()
    # The Marvin is gone: an unchanged database still has the digest last answered...
    assert probe() == tagged
    assert blind() == ""
    # ...and any commit to it means asking again (nobody answers now).
    with sqlite3.connect(db) as other:
        other.execute("DELETE FROM asset_tags")
    assert probe() == ""
    probe.close()
    blind.close()
