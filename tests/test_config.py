"""Layered config: precedence, typed values, unknown keys, credentials (0600, masked)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from trek_tasks.cli import main
from trek_tasks.config import DEFAULTS, Config, global_config_path
from trek_tasks.errors import BadInput

MASK = "********"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small project with one script folder; the cwd is the project root."""
    root = tmp_path / "proj"
    write_json(root / "manifest.json", {"entry": "src/graph.yml"})
    write_json(root / ".trek" / "config.json", {"marvin_url": "", "router_port": 5000})
    script = root / "src" / "blcks" / "b1"
    script.mkdir(parents=True)
    (script / "b1.para").write_text("id: b1\nversion: 0.1.0\n")
    monkeypatch.chdir(root)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def seeded_global_config() -> dict[str, object] | None:
    """The global config as the test session left it: none, or ``fork_server`` false when
    the suite runs with fresh interpreters (``TREK_TEST_FORK_SERVER=0``)."""
    path = global_config_path()
    return json.loads(path.read_text()) if path.exists() else None


def listing(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


def test_defaults_are_the_spec_values(proj: Path) -> None:
    config = Config.load(proj)
    assert config["router_port"] == 5000
    assert config["action_timeout"] == 30
    assert config["input_data_path"] == "inputs/data.yml"
    assert config["input_event_path"] == "inputs/event.yml"
    assert config["envs"] == {}
    assert config.sources["router_port"] == proj / ".trek" / "config.json"
    assert config.sources["action_timeout"] is None


def test_layers_global_then_project_then_script(proj: Path) -> None:
    script = proj / "src" / "blcks" / "b1"
    write_json(
        global_config_path(), {"marvin_url": "http://global", "router_port": 1, "flow_home": "/g"}
    )
    write_json(proj / ".trek" / "config.json", {"marvin_url": "http://project", "router_port": 2})
    write_json(script / ".trek" / "config.json", {"router_port": 3})

    assert Config.load()["marvin_url"] == "http://global"
    project_level = Config.load(proj)
    assert (project_level["marvin_url"], project_level["router_port"]) == ("http://project", 2)
    script_level = Config.load(proj, script)
    assert (script_level["marvin_url"], script_level["router_port"]) == ("http://project", 3)
    assert script_level["flow_home"] == "/g"
    assert script_level.sources["router_port"] == script / ".trek" / "config.json"
    assert script_level.files == (
        global_config_path(),
        proj / ".trek" / "config.json",
        script / ".trek" / "config.json",
    )


def test_empty_string_means_unset(proj: Path) -> None:
    write_json(global_config_path(), {"marvin_url": "http://global"})
    write_json(proj / ".trek" / "config.json", {"marvin_url": "", "blcks_code_base": ""})
    config = Config.load(proj)
    assert config["marvin_url"] == "http://global"
    assert config["blcks_code_base"] == DEFAULTS["blcks_code_base"]


def test_set_and_get_a_project_value(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "config", "router_port", "6000") == (0, "", "")
    data = json.loads((proj / ".trek" / "config.json").read_text())
    assert data == {"marvin_url": "", "router_port": 6000}
    assert mode(proj / ".trek" / "config.json") == 0o644
    assert run(capsys, "config", "router_port") == (0, "6000\n", "")


def test_list_shows_every_key_merged(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_json(global_config_path(), {"flow_home": "/flows"})
    code, out, err = run(capsys, "config", "-l")
    assert (code, err) == (0, "")
    shown = listing(out)
    assert list(shown) == list(DEFAULTS)
    assert shown["flow_home"] == "/flows"
    assert shown["router_port"] == "5000"
    assert shown["envs"] == "{}"
    assert run(capsys, "config") == (0, out, "")


def test_list_inside_a_script_folder_uses_its_layer(
    proj: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = proj / "src" / "blcks" / "b1"
    write_json(script / ".trek" / "config.json", {"action_timeout": 99})
    assert listing(run(capsys, "config", "-l")[1])["action_timeout"] == "30"
    assert listing(run(capsys, "config", "-l", "-p", str(script))[1])["action_timeout"] == "99"
    monkeypatch.chdir(script)
    assert run(capsys, "config", "action_timeout") == (0, "99\n", "")


def test_global_value_outside_a_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = seeded_global_config()
    assert run(capsys, "config", "--global", "marvin_url", "http://m") == (0, "", "")
    expected = {**(before or {}), "marvin_url": "http://m"}
    assert json.loads(global_config_path().read_text()) == expected
    assert run(capsys, "config", "marvin_url") == (0, "http://m\n", "")


def test_setting_outside_a_project_needs_global(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = seeded_global_config()
    assert run(capsys, "config", "router_port", "1") == (
        2,
        "",
        "trek: error: config: not inside a Trek project; use --global to set a global value\n",
    )
    assert seeded_global_config() == before  # nothing written


def test_project_value_beats_global_from_the_cli(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "config", "--global", "action_timeout", "10")
    assert run(capsys, "config", "action_timeout") == (0, "10\n", "")
    run(capsys, "config", "action_timeout", "20")
    assert run(capsys, "config", "action_timeout") == (0, "20\n", "")
    assert run(capsys, "config", "--global", "action_timeout") == (0, "10\n", "")
    run(capsys, "config", "--unset", "action_timeout")
    assert run(capsys, "config", "action_timeout") == (0, "10\n", "")
    assert "action_timeout" not in json.loads((proj / ".trek" / "config.json").read_text())


def test_unknown_key_suggests_the_closest(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (proj / ".trek" / "config.json").read_bytes()
    assert run(capsys, "config", "marvin_ulr", "x") == (
        2,
        "",
        "trek: error: config: unknown config key 'marvin_ulr'; did you mean 'marvin_url'?\n",
    )
    assert run(capsys, "config", "router_prot")[2] == (
        "trek: error: config: unknown config key 'router_prot'; did you mean 'router_port'?\n"
    )
    assert (proj / ".trek" / "config.json").read_bytes() == before


def test_unknown_key_without_a_close_match_lists_the_keys(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "config", "zzzzzzzz", "x") == (
        2,
        "",
        "trek: error: config: unknown config key 'zzzzzzzz'; known keys: "
        + ", ".join(DEFAULTS)
        + "\n",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("router_port", "abc", "'router_port' takes a whole number, not 'abc'"),
        ("action_timeout", "1.5", "'action_timeout' takes a whole number, not '1.5'"),
        ("envs", "[1]", "'envs' takes a JSON object, e.g. '{\"A\": \"1\"}'"),
        ("envs", "{not json", "'envs' takes a JSON object, e.g. '{\"A\": \"1\"}'"),
    ],
)
def test_typed_values_reject_the_wrong_type(
    proj: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, message: str
) -> None:
    before = (proj / ".trek" / "config.json").read_bytes()
    assert run(capsys, "config", key, value) == (2, "", f"trek: error: config: {message}\n")
    assert (proj / ".trek" / "config.json").read_bytes() == before


def test_envs_is_stored_as_an_object(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "config", "envs", '{"BLCKS_DEBUG_LOG_MODE": "table"}')[0] == 0
    data = json.loads((proj / ".trek" / "config.json").read_text())
    assert data["envs"] == {"BLCKS_DEBUG_LOG_MODE": "table"}
    assert run(capsys, "config", "envs") == (0, '{"BLCKS_DEBUG_LOG_MODE": "table"}\n', "")


def test_credentials_make_the_file_private_and_are_masked(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = proj / ".trek" / "config.json"
    assert run(capsys, "config", "marvin_JWT", "eyJ.secret.token") == (0, "", "")
    assert mode(config_file) == 0o600
    assert json.loads(config_file.read_text())["marvin_JWT"] == "eyJ.secret.token"
    assert run(capsys, "config", "--global", "marvin_secret", "s3cr3t") == (0, "", "")
    assert mode(global_config_path()) == 0o600

    code, out, err = run(capsys, "config", "-l")
    assert (code, err) == (0, "")
    assert listing(out)["marvin_JWT"] == MASK
    assert listing(out)["marvin_secret"] == MASK
    assert "eyJ.secret.token" not in out and "s3cr3t" not in out
    assert run(capsys, "config", "marvin_JWT") == (0, MASK + "\n", "")


def test_unset_credential_makes_the_file_public_again(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = proj / ".trek" / "config.json"
    run(capsys, "config", "marvin_JWT", "tok")
    assert mode(config_file) == 0o600
    assert run(capsys, "config", "--unset", "marvin_JWT") == (0, "", "")
    assert "marvin_JWT" not in json.loads(config_file.read_text())
    assert mode(config_file) == 0o644
    assert listing(run(capsys, "config", "-l")[1])["marvin_JWT"] == ""


def test_unset_key_shows_the_default(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "config", "--unset", "router_port") == (0, "", "")
    assert run(capsys, "config", "router_port") == (0, "5000\n", "")


def test_malformed_config_file_names_file_and_line(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (proj / ".trek" / "config.json").write_text('{\n  "router_port": 5000,\n}\n')
    assert run(capsys, "config", "-l") == (
        2,
        "",
        "trek: error: .trek/config.json:3:1: invalid JSON: "
        "Expecting property name enclosed in double quotes\n",
    )


def test_config_file_must_hold_an_object(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_json(global_config_path(), [1, 2])
    assert run(capsys, "config", "-l") == (
        2,
        "",
        f"trek: error: {global_config_path()}: a config file must hold a JSON object\n",
    )


def test_path_that_is_not_a_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "config", "-p", "elsewhere", "router_port", "1") == (
        2,
        "",
        "trek: error: elsewhere: not a Trek project (no manifest.json here or above); "
        "run `trek createproject NAME` or `trek init`\n",
    )


def test_list_global_shows_only_the_global_layer(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_json(global_config_path(), {"router_port": 7000})
    write_json(proj / ".trek" / "config.json", {"router_port": 8000})
    assert listing(run(capsys, "config", "-l")[1])["router_port"] == "8000"
    assert listing(run(capsys, "config", "-l", "--global")[1])["router_port"] == "7000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{\n  "router_port": -1\n}\n',
            ".trek/config.json:2:18: 'router_port' must be a port number from 1 to 65535, "
            "or 0 for any free port",
        ),
        (
            '{\n  "router_port": 70000\n}\n',
            ".trek/config.json:2:18: 'router_port' must be a port number from 1 to 65535, "
            "or 0 for any free port",
        ),
        (
            '{\n  "router_port": "5000"\n}\n',
            ".trek/config.json:2:18: 'router_port' must be a port number from 1 to 65535, "
            "or 0 for any free port",
        ),
        (
            '{\n  "marvin_url": "not a url"\n}\n',
            ".trek/config.json:2:17: 'marvin_url' must be an http(s) URL such as "
            "'https://marvin.example.com'",
        ),
        (
            '{\n  "marvin_url": "http:///no-host"\n}\n',
            ".trek/config.json:2:17: 'marvin_url' must be an http(s) URL such as "
            "'https://marvin.example.com'",
        ),
    ],
)
def test_a_bad_value_is_bad_input_where_it_is_read(proj: Path, text: str, message: str) -> None:
    (proj / ".trek" / "config.json").write_text(text)
    config = Config.load(proj)  # loading is fine: `trek validate` reports every problem
    key = next(iter(json.loads(text)))
    with pytest.raises(BadInput) as raised:
        config.checked(key)
    assert (str(raised.value), raised.value.exit_code) == (message, 2)


def test_good_and_default_values_pass_the_check(proj: Path) -> None:
    write_json(proj / ".trek" / "config.json", {"router_port": 0, "marvin_url": "http://m:80/x"})
    config = Config.load(proj)
    assert (config.checked("router_port"), config.checked("marvin_url")) == (0, "http://m:80/x")
    assert Config.load().checked("router_port") == 5000


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "router_port",
            "-1",
            "'router_port' must be a port number from 1 to 65535, or 0 for any free port",
        ),
        (
            "router_port",
            "65536",
            "'router_port' must be a port number from 1 to 65535, or 0 for any free port",
        ),
        (
            "marvin_url",
            "not a url",
            "'marvin_url' must be an http(s) URL such as 'https://marvin.example.com'",
        ),
    ],
)
def test_setting_a_bad_value_is_refused(
    proj: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, message: str
) -> None:
    before = (proj / ".trek" / "config.json").read_bytes()
    assert run(capsys, "config", key, "--", value) == (2, "", f"trek: error: config: {message}\n")
    assert (proj / ".trek" / "config.json").read_bytes() == before


def test_an_empty_marvin_url_goes_back_to_the_local_marvin(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trek_tasks.marvin.target import is_remote

    assert run(capsys, "config", "marvin_url", "https://marvin.example") == (0, "", "")
    assert is_remote(Config.load(proj))
    assert run(capsys, "config", "marvin_url", "") == (0, "", "")
    assert not is_remote(Config.load(proj))
    assert run(capsys, "config", "marvin_url") == (0, "\n", "")


def test_the_hint_back_to_the_default_names_the_layer(proj: Path) -> None:
    from trek_tasks.configure import reset_hint

    assert reset_hint("marvin_url", proj / ".trek" / "config.json") == "`trek config marvin_url ''`"
    assert reset_hint("marvin_url", global_config_path()) == (
        "`trek config --global marvin_url ''`"
    )
    script_layer = proj / "src" / "blcks" / "b1" / ".trek" / "config.json"
    assert reset_hint("marvin_url", script_layer) == "emptying it there"


def test_a_loose_config_file_holding_a_token_is_warned_about_once(tmp_path: Path) -> None:
    from trek_tasks.events import attached
    from trek_tasks.files import display
    from trek_tasks.reporter import Terminal

    project = tmp_path / "loose"
    (project / ".trek").mkdir(parents=True)
    config = project / ".trek" / "config.json"
    config.write_text('{"marvin_JWT": "a.b.c"}')
    config.chmod(0o644)
    lines: list[str] = []
    with attached(Terminal(lines.append, lines.append)):
        Config.load(project)
        Config.load(project)
        (project / ".trek" / "config.json").chmod(0o600)
        Config.load(project)
    shown = display(config)  # as every message names a file
    assert lines == [
        f"trek: warning: {shown} holds credentials but is mode 0644; run chmod 600 {shown}"
    ]
