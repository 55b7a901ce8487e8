"""The docker runtime: one container per script, run from the script's image.

The image is the script's ``containers.images`` image for its current content, built when
no image with that content digest exists. A container is named
``trek-<project folder>-<8 hex of the project identity>-<script id>`` and labelled with the
exact project identity, its role (``script:<id>``) and a random token, which it also gets
in its environment (``process.TOKEN_VAR``) so that its ``/healthz`` answers with it:
"ours and healthy" means the labels name exactly this project and this token, the
container runs, and ``/healthz`` answers with that token and the pid it first answered
with. Nothing is matched by name or prefix. The port is published on 127.0.0.1 only; the
host is ``host.docker.internal`` inside (Docker's ``host-gateway``), where the local Marvin
also listens (``marvin_hosts``: the bridge gateway address).

Live update (``update``): the files that changed since the container's handle was saved
are copied into it (``put_archive``) and ``blcks.serve`` is sent SIGHUP: it re-executes
itself in place (same pid 1, same container) and imports the handler afresh. No image is
built, so an image always comes from the files (``build`` and ``push`` too), never from
what was copied into a container.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import tarfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from trek_tasks.containers.images import PORT, SCRIPT_DIR, base_image
from trek_tasks.errors import StepFailed
from trek_tasks.project import Script
from trek_tasks.runtimes import process
from trek_tasks.runtimes.base import (
    Gone,
    Handle,
    changed_files,
    file_digests,
    requirements_lines,
    script_config,
    sdk_hash,
)

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

ROLE = "script:"
LABEL_PROJECT = "trek.project"  # the exact project identity (``process.identity``)
LABEL_ROLE = "trek.role"
LABEL_TOKEN = "trek.token"
LABEL_ENV = "trek.env"  # the container's env_key: its image's requirements, SDK and base
LABEL_FOLDER = "trek.folder"  # the script folder it serves (absolute)
HOST_ALIAS = "host.docker.internal"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5  # seconds between SIGTERM and SIGKILL on a waited stop
LOG_TAIL = 15
REASONS = {3: "its handler failed to import", 4: "its port in the container is in use"}


def container_name(project: str, script_id: str) -> str:
    """``trek-<project folder>-<8 hex of the identity>-<script id>`` (Docker's charset)."""
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(project).name).strip("-._") or "project"
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"trek-{folder}-{digest}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', script_id)}"


def imaged(script: Script) -> None:
    """Refuse, in one line, a script of a kind that has no images (only blcks have)."""
    from trek_tasks.containers.images import BUILT_KIND

    if script.kind.name != BUILT_KIND:
        raise StepFailed(
            f"{script.kind.name} script '{script.id}' cannot run on the docker runtime: only "
            f"{BUILT_KIND} scripts have images; run it with `--runtime local`",
            script.id,
        )


def archive(folder: Path, names: list[str]) -> bytes:
    """A tar of ``names`` (relative to ``folder``) as they are now, owned by root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            path = folder / name
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as data:
                tar.addfile(info, data)
    return buffer.getvalue()


class DockerRuntime:
    """Scripts as containers of the Docker daemon at ``DOCKER_HOST``."""

    name = "docker"

    def __init__(self) -> None:
        self._client: docker.DockerClient | None = None
        self._gateway: str | None = None

    def client(self) -> docker.DockerClient:
        """The daemon, asked once (one line naming the socket when unreachable)."""
        if self._client is None:
            from trek_tasks.containers.client import connect

            self._client = connect()
        return self._client

    # the environment: the image ---------------------------------------------

    def marvin_url_for_script(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.hostname not in LOCAL_HOSTS:
            return url
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit(parts._replace(netloc=f"{HOST_ALIAS}{port}"))

    def marvin_hosts(self) -> tuple[str, ...]:
        """The bridge network's gateway: where containers reach the host."""
        if self._gateway is None:
            self._gateway = bridge_gateway(self.client())
        return (self._gateway,)

    def env_key(self, script: Script) -> str:
        """Requirements, SDK and base image: what a live update cannot change."""
        digest = hashlib.sha256()
        digest.update("\n".join(requirements_lines(script)).encode())
        digest.update(sdk_hash().encode())
        digest.update(base_image(script_config(script)).encode())
        return f"{self.name}-{digest.hexdigest()[:16]}"

    def env_problem(self, script: Script) -> str | None:
        """None when an image with the script's current content exists, or a container of
        it runs with its current requirements (edits reach that one by live update)."""
        from trek_tasks.containers.images import find_image

        client = self.client()
        running = client.containers.list(
            filters={
                "label": [f"{LABEL_FOLDER}={script.path}", f"{LABEL_ENV}={self.env_key(script)}"]
            }
        )
        if running or find_image(client, script, script_config(script)) is not None:
            return None
        return f"no image of {script.id} with its current content"

    def install_env(self, script: Script) -> None:
        from trek_tasks.containers.images import ensure_image

        imaged(script)
        ensure_image(self.client(), script, script_config(script))

    # containers -------------------------------------------------------------

    def start(
        self, script: Script, port: int, env: dict[str, str], log_path: Path, project: str = ""
    ) -> Handle:
        from trek_tasks.containers.images import ensure_image

        imaged(script)
        files = file_digests(script)  # before the build: an edit meanwhile restarts again
        client = self.client()
        image = ensure_image(client, script, script_config(script))
        port = port or process.free_port()
        token = secrets.token_hex(16)
        role = ROLE + script.id
        name = container_name(project, script.id)
        self._free_name(name, project)
        labels = {
            LABEL_PROJECT: project,
            LABEL_ROLE: role,
            LABEL_TOKEN: token,
            LABEL_ENV: self.env_key(script),
            LABEL_FOLDER: str(script.path),
        }
        container = client.containers.run(
            image.id,
            detach=True,
            name=name,
            labels=labels,
            # The token only: with the project and role in its environment too, the
            # container's process (seen in the host's /proc) would pass for a local one.
            environment={**env, process.TOKEN_VAR: token},
            ports={f"{PORT}/tcp": ("127.0.0.1", port)},
            extra_hosts={HOST_ALIAS: "host-gateway"},
        )
        state = {"port": port, "token": token, "log_path": str(log_path), "image": image.id}
        handle = Handle(
            script_id=script.id,
            runtime=self.name,
            ref=container.id,
            url=f"http://127.0.0.1:{port}/",
            state=state,
            files=files,
            env_key=labels[LABEL_ENV],
            project=project,
        )
        health = self._wait(container, handle, "start", lambda health: True)
        return replace(handle, state={**state, "pid": health["pid"], "restarts": 0})

    def _free_name(self, name: str, project: str) -> None:
        """Make ``name`` free for a new container: a running one of this project (the
        one being replaced, serving until the new one answers) is renamed, a dead one
        removed; a container of anyone else is left alone and named in the error."""
        import docker

        try:
            found = self.client().containers.get(name)
        except docker.errors.NotFound:
            return
        if found.labels.get(LABEL_PROJECT) != project or LABEL_TOKEN not in found.labels:
            raise StepFailed(
                f"a container named {name} exists that is not this project's; "
                f"remove it (docker rm -f {name})",
                "docker",
            )
        if found.status == "running":
            found.rename(f"{name}-{found.id[:12]}")
        else:
            found.remove(force=True)

    def _wait(self, container: Container, handle: Handle, what: str, fresh: Any) -> dict:
        """Poll until ``/healthz`` answers with the handle's token and ``fresh(health)``;
        ``process.Exited`` with the container's last log lines when it exits first."""
        port, token = process.state_int(handle.state, "port"), str(handle.state["token"])
        deadline = time.monotonic() + READY_TIMEOUT
        looked = 0.0
        while time.monotonic() < deadline:
            health = process.get_json(port, "/healthz", timeout=0.5)
            if health is not None and health.get("token") == token and fresh(health):
                return health
            if time.monotonic() - looked > 0.1:
                looked = time.monotonic()
                container.reload()
                if container.status in ("exited", "dead"):
                    raise self._exited(container, handle, what)
            time.sleep(0.01)
        self._save_log(container, handle)
        container.remove(force=True)
        raise StepFailed(
            f"{handle.script_id} did not answer within {READY_TIMEOUT:.0f} s; "
            f"see {handle.state['log_path']}",
            handle.script_id,
        )

    def _exited(self, container: Container, handle: Handle, what: str) -> process.Exited:
        """The error for a container that exited: code, reason, its last log lines; the
        container is removed (its log kept in the handle's log file)."""
        code = int(container.attrs["State"].get("ExitCode", -1))
        lines = self._save_log(container, handle)
        container.remove(force=True)
        reason = REASONS.get(code, f"its container exited with code {code}")
        tail = "\n".join(lines[-LOG_TAIL:])
        message = f"{handle.script_id} did not {what}: {reason}"
        return process.Exited(message, handle.script_id, code, tail)

    def _save_log(self, container: Container, handle: Handle) -> list[str]:
        """Keep the container's log in the handle's log file (read after it is removed)."""
        lines = container.logs().decode(errors="replace").splitlines()
        log_path = Path(str(handle.state.get("log_path", "")))
        if log_path.name:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return lines

    def _ours(self, handle: Handle) -> Container | None:
        """The container ``handle`` names when its labels say exactly its project and token."""
        import docker

        token = str(handle.state.get("token", ""))
        if not token or not handle.ref:
            return None
        try:
            container = self.client().containers.get(handle.ref)
        except docker.errors.APIError:  # gone, or a ref that names nothing
            return None
        labels = container.labels
        if (labels.get(LABEL_PROJECT), labels.get(LABEL_TOKEN)) != (handle.project, token):
            return None
        return container

    def healthy(self, handle: Handle) -> bool:
        container = self._ours(handle)
        if container is None or container.status != "running":
            return False
        port, pid = process.state_int(handle.state, "port"), process.state_int(handle.state, "pid")
        return process.answers(port, pid, str(handle.state["token"]))

    def stop(self, handle: Handle, wait: bool = True) -> None:
        """Remove the container (its log kept); without ``wait`` it is killed at once."""
        import docker

        container = self._ours(handle)
        if container is None:
            return
        try:
            if wait and container.status == "running":
                container.stop(timeout=STOP_TIMEOUT)
            if handle.state.get("log_path"):
                self._save_log(container, handle)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # removed meanwhile

    def logs(self, handle: Handle, follow: bool, tail: int | None) -> Iterator[str]:
        container = self._ours(handle)
        if container is None:  # removed: what it logged was kept in the log file
            yield from process.tail_lines(Path(str(handle.state.get("log_path", ""))), tail)
            return
        count: int | str = "all" if tail is None else tail
        if not follow:
            yield from container.logs(tail=count).decode(errors="replace").splitlines()
            return
        pending = b""
        for chunk in container.logs(stream=True, follow=True, tail=count):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")

    def leftovers(self, project: str) -> list[Handle]:
        """Every container of exactly ``project`` (exited ones too: stopping removes them)."""
        found = self.client().containers.list(
            all=True, filters={"label": f"{LABEL_PROJECT}={project}"}
        )
        return [
            Handle(
                script_id=container.labels[LABEL_ROLE].removeprefix(ROLE),
                runtime=self.name,
                ref=container.id,
                url="",
                state={"token": container.labels.get(LABEL_TOKEN, "")},
                project=project,
            )
            for container in found
            if container.labels.get(LABEL_PROJECT) == project
            and container.labels.get(LABEL_ROLE, "").startswith(ROLE)
        ]

    # live update ------------------------------------------------------------

    def shutdown(self, project: str) -> None:
        """Nothing runs for a project but its scripts' containers."""

    def update(self, handle: Handle, script: Script) -> Handle:
        """Copy the files changed since ``handle`` was saved into its container and
        restart the server in it; ``Gone`` when the container no longer runs."""
        import docker

        container = self._ours(handle)
        if container is None:
            raise Gone(f"its container {handle.ref[:12]} is gone", script.id)
        if container.status != "running":
            code = container.attrs["State"].get("ExitCode")
            raise Gone(f"its container exited with code {code}", script.id)
        files = file_digests(script)
        changed = changed_files(handle.files, files)
        present = [name for name in changed if (script.path / name).is_file()]
        removed = [name for name in changed if name not in present]
        restarts = process.state_int(handle.state, "restarts")
        try:
            if present:
                container.put_archive(SCRIPT_DIR, archive(script.path, present))
            if removed:
                gone = (f"{SCRIPT_DIR}/{name}" for name in removed)
                container.exec_run(["rm", "-f", "--", *gone])
            container.kill(signal="SIGHUP")
        except docker.errors.APIError as err:  # stopped between the look and the copy
            why = f"its container did not take the files ({err.explanation})"
            raise Gone(why, script.id) from None
        updated = replace(handle, files=files)
        health = self._wait(
            container, updated, "restart", lambda health: health.get("restarts", 0) > restarts
        )
        return replace(updated, state={**handle.state, "restarts": health["restarts"]})


def bridge_gateway(client: Any) -> str:
    """The address of the host on Docker's default bridge network: its IPAM gateway, or,
    when the daemon created the bridge itself at its start and so names none there, the
    bridge interface's own address (what ``host-gateway`` resolves to)."""
    bridge = client.networks.get("bridge").attrs
    configs = (bridge.get("IPAM") or {}).get("Config") or []
    gateways = [str(c["Gateway"]) for c in configs if c.get("Gateway")]
    if gateways:
        return gateways[0]
    name = (bridge.get("Options") or {}).get("com.docker.network.bridge.name") or "docker0"
    address = interface_address(str(name))
    if address is None:
        raise StepFailed("Docker's bridge network has no gateway address", "docker")
    return address


def interface_address(name: str) -> str | None:
    """The IPv4 address of the network interface ``name`` on this host, or None."""
    import fcntl
    import socket
    import struct

    siocgifaddr = 0x8915  # linux/sockios.h
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(
                sock.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode())
            )
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])
