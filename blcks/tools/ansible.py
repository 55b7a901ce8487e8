"""Ansible scripts: ``<id>.yml`` (a playbook on ``hosts: hosts``) run by ``ansible-playbook``.

The para inputs are the playbook's extra vars, with the built-ins ``authorization`` (the
caller's token), ``baseUrlWebhook`` (the Marvin URL) and ``pn_task_id``; they reach it in
a JSON file, never on a command line. Hosts (the group ``hosts``):

- ``localhost: true``: 127.0.0.1 with a local connection and this environment's Python;
- ``resourceIds``: host ids, each resolved through Marvin (``HostsManager.getHost``);
  ``_local_`` stands for every host of the project's ``local_inventory_file``.

Outputs: ``stdout`` (the playbook's text, PLAY RECAP included), ``stderr``, ``vars`` (a
JSON string: the facts the play set with ``set_fact``, ``ansible_callbacks/``) and
``rc``. A playbook that ran is a result, failed hosts too (branch on ``rc`` or match
``stdout``); one that could not run (a YAML or syntax error, no hosts) is a ScriptError.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blcks.errors import InputError, ScriptError, ServiceError
from blcks.event import Event
from blcks.tools import event_inputs, run_group
from blcks.tools.places import project_root, shown

LOCAL = "_local_"  # the resourceIds entry standing for the local inventory's hosts
DEFAULT_INVENTORY = "inputs/inventory.yml"  # as trek's local_inventory_file default
HOST_INPUTS = ("resourceIds", "localhost")  # inputs that choose hosts, not extra vars
CALLBACK = "trek_vars"  # the callback plugin (ansible_callbacks/trek_vars.py) writing vars
VARS_FILE = "TREK_ANSIBLE_VARS"  # where the callback writes them (set per run)
_ORIGIN = re.compile(r"^Origin: (?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?\s*$", re.M)
_ERROR = re.compile(r"^\[?ERROR\]?:?\s*(?:!\s*)?(?P<msg>.+)$", re.M)


class AnsibleRunner:
    name = "ansible"

    def run(
        self, folder: str, script_id: str, event: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        where = Path(folder).resolve()
        playbook = where / f"{script_id}.yml"
        what = f"ansible script '{script_id}'"
        if not playbook.is_file():
            raise ScriptError(500, f"{what}: {script_id}.yml (its playbook) is missing")
        call = Event.load(event)
        inputs = event_inputs(event)
        with tempfile.TemporaryDirectory(prefix="trek-ansible-") as work:
            inventory = Path(work, "inventory.ini")
            inventory.write_text(inventory_text(where, inputs, call, what), encoding="utf-8")
            extra = Path(work, "extra_vars.json")
            extra.write_text(json.dumps(extra_vars(inputs, call)), encoding="utf-8")
            os.chmod(extra, 0o600)  # it holds the caller's token
            found = Path(work, "vars.json")
            args = [*playbook_command(), "-i", str(inventory), "-e", f"@{extra}", str(playbook)]
            done = run_group(args, folder, ansible_env(work, found), timeout, what)
            if done.rc != 0 and "PLAY RECAP" not in done.stdout:
                raise ScriptError(500, f"{what}: {failure(done.stdout + done.stderr, where)}")
            facts = found.read_text(encoding="utf-8") if found.is_file() else "{}"
        return {"stdout": done.stdout, "stderr": done.stderr, "vars": facts, "rc": done.rc}


def playbook_command() -> list[str]:
    """ansible-playbook run by this environment's Python (ansible-core is one of its
    requirements: its scripts' ``#!`` lines may name the folder the environment was built
    in), else the ``ansible-playbook`` on PATH (``run_group`` says when there is none)."""
    if importlib.util.find_spec("ansible") is not None:
        return [sys.executable, "-m", "ansible.cli.playbook"]
    return [shutil.which("ansible-playbook") or "ansible-playbook"]


def extra_vars(inputs: Mapping[str, Any], call: Event) -> dict[str, Any]:
    """The para inputs (less the host choice) and the built-in variables."""
    values = {name: value for name, value in inputs.items() if name not in HOST_INPUTS}
    values.update(authorization=call.token, baseUrlWebhook=call.marvin_url, pn_task_id=call.task_id)
    return values


def inventory_text(folder: Path, inputs: Mapping[str, Any], call: Event, what: str) -> str:
    """An INI inventory whose group ``hosts`` holds the hosts the inputs choose."""
    lines = []
    if _truthy(inputs.get("localhost")):
        interpreter = json.dumps(sys.executable)
        lines.append(f"127.0.0.1 ansible_connection=local ansible_python_interpreter={interpreter}")
    ids = inputs.get("resourceIds") or []
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list):
        raise InputError(f"{what}: resourceIds must be a list of host ids")
    for host_id in ids:
        if host_id == LOCAL:
            lines += local_hosts(folder, what)
        else:
            lines.append(marvin_host(str(host_id), call, what))
    if not lines:
        raise InputError(
            f"{what}: no hosts to run on; set resourceIds (host ids, or {LOCAL} for the "
            "local_inventory_file) or localhost: true"
        )
    return "[hosts]\n" + "\n".join(dict.fromkeys(lines)) + "\n"


def marvin_host(host_id: str, call: Event, what: str) -> str:
    from blcks.services import HostsManager

    try:
        answer = HostsManager(call.marvin_url or None, call.token or None).getHost(host_id)
    except ServiceError as err:
        raise ScriptError(502, f"{what}: host '{host_id}' from Marvin: {err}") from None
    host = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(host, dict) or not host.get("ip"):
        raise ScriptError(502, f"{what}: Marvin's host '{host_id}' has no ip")
    return f"{_name(host.get('name') or host_id)} ansible_host={host['ip']}"


def local_hosts(folder: Path, what: str) -> list[str]:
    """The hosts of ``local_inventory_file`` (the script's config, else the project's,
    else ``inputs/inventory.yml`` of the project holding ``folder``): the file trek seeds
    its local Marvin from (a ``hosts`` list of id/name/ip), so both see the same hosts.
    Connection settings (``ansible_user``...) go in the script's ``group_vars/hosts.yml``."""
    path = local_inventory(folder)
    if path is None or not path.is_file():
        shown = path or DEFAULT_INVENTORY
        raise InputError(f"{what}: resourceIds has {LOCAL} but {shown} does not exist")
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    hosts = data.get("hosts") if isinstance(data, dict) else None
    return [
        f"{_name(host.get('name') or host.get('id') or host['ip'])} ansible_host={host['ip']}"
        for host in hosts or []
        if isinstance(host, dict) and host.get("ip")
    ]


def local_inventory(folder: Path) -> Path | None:
    """Where ``local_inventory_file`` points for the script in ``folder``; None outside a
    project."""
    root = project_root(folder)
    if root is None:
        return None
    for config in (folder / ".trek" / "config.json", root / ".trek" / "config.json"):
        try:
            value = json.loads(config.read_text(encoding="utf-8")).get("local_inventory_file")
        except (OSError, ValueError, AttributeError):
            continue
        if value:
            return root / str(value)
    return root / DEFAULT_INVENTORY


def ansible_env(work: str, vars_file: Path) -> dict[str, str]:
    """This process's environment plus what makes a run quiet, plain text and self-contained
    (temp files in ``work``); the script folder's own ansible.cfg still applies."""
    here = str(Path(__file__).parent / "ansible_callbacks")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_DEPRECATION_WARNINGS="False",
        ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"),
        ANSIBLE_CALLBACK_PLUGINS=os.pathsep.join(
            p for p in (here, env.get("ANSIBLE_CALLBACK_PLUGINS", "")) if p
        ),
        ANSIBLE_CALLBACKS_ENABLED=CALLBACK,
    )
    env[VARS_FILE] = str(vars_file)
    return env


def failure(output: str, folder: Path) -> str:
    """One line for a playbook that could not run: ``file:line: what`` when ansible names
    where, else its first error line."""
    error = _ERROR.search(output)
    message = error.group("msg").strip() if error else _last_line(output)
    origin = _ORIGIN.search(output)
    if origin is None:
        return message
    file = shown(Path(origin.group("file")), folder)
    col = f":{origin.group('col')}" if origin.group("col") else ""
    return f"{file}:{origin.group('line')}{col}: {message}"


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "ansible-playbook failed without a message"


def _name(value: object) -> str:
    """An inventory host name: no spaces (ansible splits a host line at them)."""
    return re.sub(r"\s+", "-", str(value).strip())


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)
