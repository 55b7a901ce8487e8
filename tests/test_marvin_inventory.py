"""Loading and checking the local Marvin's inventory file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.marvin.inventory import (
    DEFAULT_USER,
    Asset,
    Channel,
    Host,
    Inventory,
    User,
    inventory_path,
    load_inventory,
)

FULL = """\
hosts:
  - id: S-redis-ok
    name: redis-ok
    ip: 127.0.0.1
    port: 6379
    tags: [redis, redis, cache]
  - {id: S-v6, name: v6, ip: "::1"}
domains:
  - {id: D-1, name: example.com, tags: [web]}
cdns:
  - {id: CDN-1, name: edge}
channels:
  - id: C-ops
    name: ops
    webhook: http://127.0.0.1:9/hook
  - {id: C-dev, name: dev}
users:
  - {username: alice, password: wonderland, name: Alice, email: alice@example.com}
  - {username: bob, password: builder}
"""


Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """Write inventory.yml in a temp dir that is also the cwd (so messages show its name)."""
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> Path:
        path = tmp_path / "inventory.yml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_full_inventory_loads_into_value_objects(write: Write) -> None:
    inventory = load_inventory(write(FULL))
    assert inventory == Inventory(
        hosts=(
            Host("S-redis-ok", "redis-ok", "127.0.0.1", 6379, ("redis", "cache")),
            Host("S-v6", "v6", "::1"),
        ),
        domains=(Asset("D-1", "example.com", ("web",)),),
        cdns=(Asset("CDN-1", "edge"),),
        channels=(Channel("C-ops", "ops", "http://127.0.0.1:9/hook"), Channel("C-dev", "dev")),
        users=(
            User("alice", "wonderland", "Alice", "alice@example.com"),
            User("bob", "builder", "bob", "bob@localhost"),
        ),
    )


def test_missing_file_is_an_empty_inventory_with_the_default_user(tmp_path: Path) -> None:
    inventory = load_inventory(tmp_path / "nope.yml")
    assert inventory == Inventory()
    assert inventory.users == (User("trek", "trek", "Trek Developer", "trek@localhost"),)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "hosts: []\nusers:\n"])
def test_empty_inventory_keeps_the_default_user(write: Write, text: str) -> None:
    assert load_inventory(write(text)).users == (DEFAULT_USER,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- a\n- b\n",
            "inventory.yml:1:1: the inventory must be a mapping with keys "
            "hosts, domains, cdns, channels, users",
        ),
        (
            "hosts: []\nhost: []\n",
            "inventory.yml:2:1: unknown top-level key 'host'; did you mean 'hosts'?",
        ),
        (
            "zzz: 1\n",
            "inventory.yml:1:1: unknown top-level key 'zzz'; "
            "known keys: hosts, domains, cdns, channels, users",
        ),
        ("hosts:\n  - {name: a, ip: 127.0.0.1}\n", "inventory.yml:2:5: host has no 'id'; add it"),
        ("hosts:\n  - {id: S-1, ip: 127.0.0.1}\n", "inventory.yml:2:5: host has no 'name'; add it"),
        ("hosts:\n  - {id: S-1, name: a}\n", "inventory.yml:2:5: host has no 'ip'; add it"),
        (
            "hosts:\n  - id: S-1\n    name: a\n    ip: 127.0.0.1\n    tag: [x]\n",
            "inventory.yml:5:5: unknown host key 'tag'; did you mean 'tags'?",
        ),
        (
            "hosts:\n  - {id: 7, name: a, ip: 127.0.0.1}\n",
            "inventory.yml:2:10: 'id' must be a string, not a number; quote it",
        ),
        (
            "hosts:\n  - {id: S-1, name: '', ip: 127.0.0.1}\n",
            "inventory.yml:2:21: 'name' must not be empty",
        ),
        (
            "hosts:\n  - {id: S-1, name: [a], ip: 127.0.0.1}\n",
            "inventory.yml:2:21: 'name' must be a string, not a list",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: localhost}\n",
            "inventory.yml:2:28: 'ip' must be an IP address like 127.0.0.1, not 'localhost'",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, port: 70000}\n",
            "inventory.yml:2:45: 'port' must be a whole number from 1 to 65535, not 70000",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, port: '6379'}\n",
            "inventory.yml:2:45: 'port' must be a whole number from 1 to 65535, not '6379'",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, port: true}\n",
            "inventory.yml:2:45: 'port' must be a whole number from 1 to 65535, not true",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, tags: redis}\n",
            "inventory.yml:2:45: 'tags' must be a list of tag names, not a string",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, tags: [ok, 'two words']}\n",
            "inventory.yml:2:50: tag name 'two words' contains a space; "
            "search terms are split at spaces",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, tags: ['']}\n",
            "inventory.yml:2:46: a tag name must be a non-empty string, not an empty string",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1, tags: [1]}\n",
            "inventory.yml:2:46: a tag name must be a non-empty string, not a number",
        ),
        (
            "hosts:\n  - {id: S-1, name: a, ip: 127.0.0.1}\n"
            "  - {id: S-1, name: b, ip: 127.0.0.2}\n",
            "inventory.yml:3:10: duplicate id 'S-1' (first at inventory.yml:2:10)",
        ),
        (
            "hosts:\n  - {id: X-1, name: a, ip: 127.0.0.1}\ncdns:\n  - {id: X-1, name: b}\n",
            "inventory.yml:4:10: duplicate id 'X-1' (first at inventory.yml:2:10)",
        ),
        (
            "channels:\n  - {id: C-1, name: a}\n  - {id: C-1, name: b}\n",
            "inventory.yml:3:10: duplicate id 'C-1' (first at inventory.yml:2:10)",
        ),
        (
            "users:\n  - {username: a, password: x}\n  - {username: a, password: y}\n",
            "inventory.yml:3:16: duplicate username 'a' (first at inventory.yml:2:16)",
        ),
        ("users:\n  - {username: a}\n", "inventory.yml:2:5: user has no 'password'; add it"),
        (
            "channels:\n  - {id: C-1, name: a, webhook: 'ftp://x/y'}\n",
            "inventory.yml:2:33: 'webhook' must be an http:// or https:// URL, not 'ftp://x/y'",
        ),
        (
            "channels:\n  - {id: C-1, name: a, webhook: 'http://:80/'}\n",
            "inventory.yml:2:33: 'webhook' must be an http:// or https:// URL, not 'http://:80/'",
        ),
        (
            "channels:\n  - {id: C-1, name: a, webhook: 'http://h:99999/'}\n",
            "inventory.yml:2:33: 'webhook' must be an http:// or https:// URL, "
            "not 'http://h:99999/'",
        ),
        (
            "channels:\n  - {id: C-1, name: a, users: [trek, carol]}\n",
            "inventory.yml:2:38: channel user 'carol' is not in 'users' (known: trek)",
        ),
        (
            "channels:\n  - {id: C-1, name: a, users: alice}\n",
            "inventory.yml:2:31: 'users' must be a list of usernames, not a string",
        ),
        ("domains: {id: D-1}\n", "inventory.yml:1:10: 'domains' must be a list of domain mappings"),
        ("cdns:\n  - CDN-1\n", "inventory.yml:2:5: each of 'cdns' must be a mapping with id, name"),
        (
            "hosts: [\n",
            "inventory.yml:2:1: invalid YAML: did not find expected node content",
        ),
    ],
)
def test_bad_inventory_names_file_line_and_column(write: Write, text: str, message: str) -> None:
    path = write(text)
    with pytest.raises(BadInput) as info:
        load_inventory(path)
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_every_mistake_is_reported_at_once(write: Write) -> None:
    path = write(
        "hosts:\n"
        "  - {id: S-1, name: a, ip: 300.0.0.1}\n"
        "  - {id: S-2, name: b, ip: 127.0.0.1, port: 0}\n"
        "channel: []\n"
    )
    with pytest.raises(ManyErrors) as info:
        load_inventory(path)
    assert str(info.value).splitlines() == [
        "inventory.yml:2:28: 'ip' must be an IP address like 127.0.0.1, not '300.0.0.1'",
        "inventory.yml:3:45: 'port' must be a whole number from 1 to 65535, not 0",
        "inventory.yml:4:1: unknown top-level key 'channel'; did you mean 'channels'?",
    ]


def test_inventory_path_follows_the_config(tmp_path: Path) -> None:
    assert inventory_path(tmp_path, {}) == tmp_path / "inputs" / "inventory.yml"
    assert inventory_path(tmp_path, {"local_inventory_file": ""}) == (
        tmp_path / "inputs" / "inventory.yml"
    )
    assert inventory_path(tmp_path, {"local_inventory_file": "assets.yml"}) == (
        tmp_path / "assets.yml"
    )
    elsewhere = tmp_path.parent / "shared.yml"
    assert inventory_path(tmp_path, {"local_inventory_file": str(elsewhere)}) == elsewhere
