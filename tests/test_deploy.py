"""trek deploy / deployblcks / deployed and doit deploy against a local Marvin served
in-process over real HTTP (the project points at it with marvin_url + marvin_JWT)."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import build_reference, free_port, require_tool, set_config

from trek_tasks.cli import main
from trek_tasks.deploy import Artifact, deploy, holdings, parse_projects
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.marvin.client import MarvinClient
from trek_tasks.marvin.inventory import Inventory
from trek_tasks.marvin.server import FAIL_ONCE_ENV, MarvinServer
from trek_tasks.marvin.tokens import issue_token

SECRET = "deploy-tests-secret-of-some-length"
WORKFLOW_ZIP = Path("bin") / "host.detect.redis-0.1.0.zip"
SCRIPT_ZIP = Path("bin") / "blcks.detectredis-0.1.0.zip"
HANDLER = Path("src") / "blcks" / "detectredis" / "handler" / "handler.py"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def marvin(tmp_path: Path) -> Iterator[MarvinServer]:
    server = MarvinServer(tmp_path / "marvin" / "m.db", Inventory(), SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(marvin: MarvinServer) -> MarvinClient:
    return MarvinClient(marvin.url, issue_token(SECRET, "trek"))


@pytest.fixture
def ref(
    tmp_path: Path,
    client: MarvinClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """The reference project, installed, deploying to the in-process Marvin."""
    root = build_reference(tmp_path / "host.detect.redis")
    set_config(root, marvin_url=client.url, marvin_JWT=client.token)
    monkeypatch.chdir(root)
    assert main(["install"]) == 0
    capsys.readouterr()
    return root


def trek(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (without validate's warnings about installed paras)."""
    code = main(list(args))
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines(True) if "trek: warning:" not in line]
    return code, captured.out, "".join(errors)


def listed(client: MarvinClient) -> dict[tuple[str, str], str]:
    return {(h.kind, h.id): h.digest for h in holdings(client)}


def test_deploy_all_uploads_scripts_then_workflow_and_skips_what_marvin_holds(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = trek(capsys, "deploy", "-a", "--autopack", "-y")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Deploy workflow with all packages..."
    deploying = [line for line in lines if line.startswith("Deploying: ")]
    assert deploying == [f"Deploying: {SCRIPT_ZIP}", f"Deploying: {WORKFLOW_ZIP}"]
    assert lines[-1] == "Done"
    assert listed(client) == {
        ("template", "host.detect.redis"): sha(ref / WORKFLOW_ZIP),
        ("script", "detectredis"): sha(ref / SCRIPT_ZIP),
    }

    code, out, err = trek(capsys, "deploy", "-a", "-y")
    assert (code, err) == (0, "")
    assert "Deploying:" not in out
    assert f"Unchanged: {SCRIPT_ZIP} (Marvin holds script detectredis 0.1.0 with sha256 " in out
    assert f"Unchanged: {WORKFLOW_ZIP} (Marvin holds workflow host.detect.redis 0.1.0" in out

    (ref / HANDLER).write_text((ref / HANDLER).read_text() + "# edited\n")
    code, out, err = trek(capsys, "deploy", "-a", "--autopack", "-y")
    assert (code, err) == (0, "")
    assert [line for line in out.splitlines() if line.startswith("Deploying: ")] == [
        f"Deploying: {SCRIPT_ZIP}"
    ]
    assert "Script duplicated: detectredis" in out
    assert listed(client)[("script", "detectredis")] == sha(ref / SCRIPT_ZIP)


def test_deploy_without_all_ships_only_the_workflow(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = trek(capsys, "deploy", "--autopack")
    assert code == 0
    assert out.splitlines()[0] == "Deploy workflow..."
    assert list(listed(client)) == [("template", "host.detect.redis")]


def test_a_missing_or_stale_pack_is_one_line_naming_the_fix(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = trek(capsys, "deploy", "-a", "-y")
    assert code == 2
    assert err == (
        f"trek: error: {SCRIPT_ZIP}: not packed yet; run `trek pack -a` or use --autopack\n"
    )
    assert trek(capsys, "pack", "-a")[0] == 0
    (ref / HANDLER).write_text((ref / HANDLER).read_text() + "# edited\n")
    code, _, err = trek(capsys, "deploy", "-a", "-y")
    assert code == 2
    assert err == (
        f"trek: error: {SCRIPT_ZIP}: the pack is older than its sources; "
        "run `trek pack -a` or use --autopack\n"
    )
    assert listed(client) == {}


def test_an_auto_pos_pack_is_current(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("dot")
    assert trek(capsys, "pack", "--auto-pos")[0] == 0
    assert b"position" in zipfile.ZipFile(ref / WORKFLOW_ZIP).read("src/graph.yml")
    code, _, err = trek(capsys, "deploy")
    assert (code, err) == (0, "")


def test_an_existing_version_without_terminal_or_yes_stops_with_one_line(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trek(capsys, "deploy", "-a", "--autopack")[0] == 0
    before = listed(client)
    (ref / HANDLER).write_text((ref / HANDLER).read_text() + "# edited\n")
    code, out, err = trek(capsys, "deploy", "-a", "--autopack")  # pytest's stdin: no tty
    assert code == 1
    assert "Script duplicated: detectredis" in out
    assert err == (
        f"trek: error: {SCRIPT_ZIP}: script detectredis 0.1.0 is on Marvin with another "
        "sha256 and there is no terminal to ask whether to overwrite it; pass -y to "
        "overwrite, or give it a new version; deployed: nothing; not deployed: script "
        "detectredis 0.1.0, workflow host.detect.redis 0.1.0\n"
    )
    assert listed(client) == before


def test_answering_no_keeps_what_marvin_holds(tmp_path: Path, client: MarvinClient) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    first.write_bytes(_zip(b"one"))
    second.write_bytes(_zip(b"two"))
    deploy(client, [Artifact("script", "s", "1.0.0", first)], lambda _: False)
    with pytest.raises(StepFailed, match="was not overwritten; answer y, pass -y"):
        deploy(client, [Artifact("script", "s", "1.0.0", second)], lambda _: False)
    assert listed(client) == {("script", "s"): sha(first)}


def test_projects_assign_the_template_and_show_in_the_listing(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = trek(capsys, "deploy", "--autopack", "--projects", "ops, dev,ops")
    assert code == 0
    assert "  workflow host.detect.redis 0.1.0 assigned to projects: dev, ops" in out
    code, out, _ = trek(capsys, "deploy", "--projects", "qa")  # unchanged, assigned anyway
    assert code == 0
    assert "assigned to projects: dev, ops, qa" in out
    code, out, _ = trek(capsys, "deployed")
    assert code == 0
    digest = sha(ref / WORKFLOW_ZIP)
    assert f"workflow  host.detect.redis  0.1.0  {digest}  projects: dev, ops, qa" in out


def test_a_bad_project_name_is_bad_input_before_anything_runs(
    ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = trek(capsys, "deploy", "--autopack", "--projects", "ops,a b")
    assert code == 2
    assert out == ""
    assert err.startswith("trek: error: --projects: 'a b' is not a Marvin project name")
    assert not (ref / "bin").exists()
    with pytest.raises(BadInput):
        parse_projects("-x")


def test_deployed_lists_ids_versions_and_digests(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = trek(capsys, "deployed")
    assert code == 0
    assert "Marvin holds nothing you deployed" in out
    assert trek(capsys, "deploy", "-a", "--autopack")[0] == 0
    code, out, _ = trek(capsys, "deployed")
    rows = [line.split() for line in out.splitlines() if not line.startswith("Marvin:")]
    assert rows == [
        ["workflow", "host.detect.redis", "0.1.0", sha(ref / WORKFLOW_ZIP)],
        ["script", "detectredis", "0.1.0", sha(ref / SCRIPT_ZIP)],
    ]


def test_another_users_items_are_not_listed(
    ref: Path, marvin: MarvinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trek(capsys, "deploy", "-a", "--autopack")[0] == 0
    other = MarvinClient(marvin.url, issue_token(SECRET, "mallory"))
    assert holdings(other) == []


def test_a_500_in_the_middle_says_what_was_deployed_and_a_rerun_deploys_the_rest(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(FAIL_ONCE_ENV, "template:host.detect.redis")
    with MarvinServer(tmp_path / "faulty.db", Inventory(), SECRET) as server:
        client = MarvinClient(server.url, issue_token(SECRET, "trek"))
        root = build_reference(tmp_path / "host.detect.redis")
        set_config(root, marvin_url=server.url, marvin_JWT=client.token)
        monkeypatch.chdir(root)
        assert main(["install"]) == 0
        code, out, err = trek(capsys, "deploy", "-a", "--autopack", "-y")
        assert code == 1
        assert err.count("\n") == 1
        assert err.startswith(f"trek: error: {WORKFLOW_ZIP}: PUT {server.url}/api/v1/templates/")
        assert "HTTP 500: injected fault" in err
        assert err.endswith(
            "; deployed: script detectredis 0.1.0; not deployed: workflow host.detect.redis 0.1.0\n"
        )
        assert list(listed(client)) == [("script", "detectredis")]

        code, out, err = trek(capsys, "deploy", "-a", "-y")
        assert (code, err) == (0, "")
        assert [line for line in out.splitlines() if line.startswith("Deploying: ")] == [
            f"Deploying: {WORKFLOW_ZIP}"
        ]
        assert f"Unchanged: {SCRIPT_ZIP}" in out
        assert len(listed(client)) == 2


def test_an_unreachable_marvin_is_one_line(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    set_config(ref, marvin_url=url)
    code, _, err = trek(capsys, "deploy", "-a", "--autopack", "-y")
    assert code == 1
    assert err == (
        f"trek: error: .trek/config.json: the Marvin at marvin_url {url} does not answer "
        "(cannot connect: Connection refused); correct marvin_url, or "
        "`trek config marvin_url ''` uses the local one\n"
    )


def test_an_archive_the_server_rejects_stops_the_deploy(
    tmp_path: Path, client: MarvinClient
) -> None:
    good, bad, rest = tmp_path / "good.zip", tmp_path / "bad.zip", tmp_path / "rest.zip"
    good.write_bytes(_zip(b"fine"))
    bad.write_bytes(b"not a zip at all")
    rest.write_bytes(_zip(b"later"))
    artifacts = [
        Artifact("script", "good", "1.0.0", good),
        Artifact("script", "bad", "1.0.0", bad),
        Artifact("template", "wf", "1.0.0", rest),
    ]
    with pytest.raises(StepFailed) as caught:
        deploy(client, artifacts, lambda _: True)
    message = str(caught.value)
    assert "HTTP 400: the script upload is not a zip file" in message
    assert message.endswith(
        "; deployed: script good 1.0.0; not deployed: script bad 1.0.0, workflow wf 1.0.0"
    )
    assert list(listed(client)) == [("script", "good")]
    assert client.token not in message


def test_deployblcks_ships_one_script_folder(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = ref / "src" / "blcks" / "detectredis"
    code, _, err = trek(capsys, "deployblcks", "-p", str(folder))
    assert code == 2
    assert "not packed yet; run `trek packblcks` or use --autopack" in err
    code, out, err = trek(capsys, "deployblcks", "-p", str(folder), "--autopack", "-y")
    assert (code, err) == (0, "")
    zip_path = folder / "bin" / "blcks.detectredis-0.1.0.zip"
    assert out.splitlines()[0] == "Deploy blcks: detectredis..."
    assert listed(client) == {("script", "detectredis"): sha(zip_path)}
    code, out, _ = trek(capsys, "deployblcks", "-p", str(folder))
    assert code == 0 and "Unchanged: " in out and "Deploying:" not in out


def test_deployshell_ships_one_shell_script(
    ref: Path, client: MarvinClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trek(capsys, "createshell", "s1", "-y")[0] == 0
    folder = ref / "src" / "shell" / "s1"
    code, _, err = trek(capsys, "deployshell", "-p", str(folder))
    assert code == 2
    assert err == (
        "trek: error: src/shell/s1/bin/shell.s1-0.1.0.zip: not packed yet; "
        "run `trek packshell` or use --autopack\n"
    )
    args = ("-p", str(folder), "--autopack", "--projects", "ops", "-y")
    assert main(["deployshell", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        "trek: warning: --projects: Marvin assigns workflows to projects, not scripts; ignored\n"
    )
    lines = captured.out.splitlines()
    assert (lines[0], lines[1], lines[-1]) == (
        "Deploy shell: s1...",
        "Packing shell: src/shell/s1",
        "Done",
    )
    zip_path = folder / "bin" / "shell.s1-0.1.0.zip"
    assert listed(client) == {("script", "s1"): sha(zip_path)}


def test_list_and_assign_routes(marvin: MarvinServer, client: MarvinClient) -> None:
    client.upload("/api/v1/templates/wf/1.0.0", _zip(b"x"))
    assert client.put("/api/v1/templates/wf/1.0.0/projects", {"projects": ["b", "a"]}) == {
        "id": "wf",
        "version": "1.0.0",
        "projects": ["a", "b"],
    }
    [item] = client.get("/api/v1/templates")
    assert item["projects"] == ["a", "b"]
    assert item["digest"] == hashlib.sha256(_zip(b"x")).hexdigest()
    assert client.get("/api/v1/scripts") == []
    request = urllib.request.Request(
        marvin.url + "/api/v1/templates/nope/1.0.0/projects",
        data=json.dumps({"projects": ["a"]}).encode(),
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
        method="PUT",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 404
    caught.value.close()


def _zip(content: bytes) -> bytes:
    from trek_tasks.pack import zip_bytes

    return zip_bytes([("graph.yml", content)])


def test_doit_deploy_tasks_pack_first_and_ship_scripts_before_the_workflow(tmp_path: Path) -> None:
    from doit.doit_cmd import DoitMain
    from doit.loader import load_tasks

    from trek_tasks.options import TaskOptions
    from trek_tasks.tasks import namespace

    root = build_reference(tmp_path / "host.detect.redis")
    for options, first in ((TaskOptions(), []), (TaskOptions(autobuildpush=True), ["push"])):
        tasks = {
            t.name: t
            for t in load_tasks(namespace(root, options=options), list(DoitMain().get_cmds()))
        }
        assert tasks["deploy:detectredis"].task_dep == [*first, "pack:detectredis"]
        assert tasks["deploy:workflow"].task_dep == [
            *first,
            "pack:workflow",
            "deploy:detectredis",
        ]
