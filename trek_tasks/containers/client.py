"""The one way trek reaches the Docker daemon: ``connect()``."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from trek_tasks.errors import StepFailed

if TYPE_CHECKING:
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Seconds one answer from the daemon may take: a RUN step (pip install) says nothing while it
# works, and the SDK reads a build's stream under this timeout.
TIMEOUT = 600
LOCAL_HINT = "start Docker or use the local runtime: `trek config runtime local`"


def docker_host() -> str:
    """Where the daemon is asked: ``DOCKER_HOST``, else Docker's default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def unreachable(why: str) -> StepFailed:
    return StepFailed(f"no Docker daemon at {docker_host()} ({why}); {LOCAL_HINT}", "docker")


def connect(timeout: int = TIMEOUT) -> docker.DockerClient:
    """A client of the daemon at ``docker_host()`` that has answered once; StepFailed in
    one line naming the socket when the ``docker`` package or the daemon is missing."""
    try:
        import docker
    except ImportError:
        raise StepFailed(
            f"the docker package is not installed (pip install 'docker>=7'); {LOCAL_HINT}",
            "docker",
        ) from None
    where = docker_host()
    if where.startswith("unix://"):
        # Asked first: a failed try inside the SDK leaves its socket open (a ResourceWarning).
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(where.removeprefix("unix://"))
            except OSError as err:
                raise unreachable(err.strerror or type(err).__name__) from None
    try:
        return docker.from_env(timeout=timeout)  # asks the daemon its API version
    except docker.errors.DockerException as err:
        raise unreachable(_reason(err)) from None


def _reason(err: Exception) -> str:
    """The innermost cause of a connection failure, short (``Connection refused``)."""
    cause: BaseException = err
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return str(text).splitlines()[0][:120]
