"""Requirements resolved on the host into a wheelhouse the image installs offline.

``docker build`` runs with no network, so a script's requirements are resolved here, for
the image's interpreter, not the host's: pip evaluates environment markers with the
interpreter it runs on even when given ``--python-version`` (``redis`` needs
``async-timeout`` only below Python 3.11.3), so ``uv pip compile`` pins the requirements
for the image's full Python version and platform, then ``pip download --no-deps`` fetches
exactly those wheels. The image's Python is asked once per base image id (one container
with no network) and remembered in the store; a wheelhouse is kept in the store by
requirements and target (``<store>/wheels/<key>``), built in a temp folder and renamed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.files import dump_json, write_atomic
from trek_tasks.state import store_dir
from trek_tasks.store import built, ensure

WHEELS = "wheels"  # <store>/wheels/<key>: one wheelhouse; <store>/wheels/targets/: pythons
PINS = "requirements.txt"
# What the image's interpreter says about itself: version, machine, libc.
PROBE = (
    "import json, platform; "
    "print(json.dumps([platform.python_version(), platform.machine(), *platform.libc_ver()]))"
)
# The manylinux glibc versions uv resolves for (its --python-platform values).
UV_GLIBC = range(17, 41)


@dataclass(frozen=True)
class Target:
    """The interpreter of a base image: ``3.11.2`` on ``x86_64`` with glibc ``2.36``."""

    python: str
    machine: str
    glibc: str

    @property
    def minor(self) -> int:
        return int(self.glibc.split(".")[1])

    @property
    def pip_platform(self) -> str:
        """pip's platform tag; pip also accepts every older manylinux tag for it."""
        return f"manylinux_2_{self.minor}_{self.machine}"

    @property
    def uv_platform(self) -> str:
        return f"{self.machine}-manylinux_2_{min(max(self.minor, UV_GLIBC[0]), UV_GLIBC[-1])}"

    @property
    def abi(self) -> str:
        major, minor = self.python.split(".")[:2]
        return f"cp{major}{minor}"

    def __str__(self) -> str:
        return f"Python {self.python} ({self.pip_platform})"


def targets_dir() -> Path:
    return store_dir() / WHEELS / "targets"


def image_target(client: Any, base: str, base_id: str) -> Target:
    """The interpreter of the base image ``base`` (id ``base_id``), asked once per id."""
    record = targets_dir() / f"{base_id.removeprefix('sha256:')}.json"
    try:
        return Target(**json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        pass
    target = _probe(client, base, base_id)
    write_atomic(record, dump_json(asdict(target)))
    return target


def _probe(client: Any, base: str, base_id: str) -> Target:
    import docker

    try:
        out = client.containers.run(
            base_id,
            ["python", "-c", PROBE],
            network_mode="none",
            remove=True,
            labels={"trek.probe": "python"},
        )
        version, machine, libc, libc_version = json.loads(out.decode().strip().splitlines()[-1])
    except docker.errors.ContainerError as err:
        last = (err.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise StepFailed(
            f"`python` fails in base image {base}: {''.join(last)}", "docker"
        ) from None
    except docker.errors.APIError as err:
        raise StepFailed(
            f"base image {base} cannot run `python` ({err.explanation or err}); "
            "blcks_base_image must name an image with Python 3 on PATH",
            "docker",
        ) from None
    except (ValueError, IndexError):
        raise StepFailed(
            f"`python` in base image {base} did not say its version", "docker"
        ) from None
    if libc != "glibc":
        raise BadInput(
            f"base image {base} has no glibc ({machine}, {libc or 'libc unknown'}); "
            "trek resolves manylinux wheels: use a Debian-based image such as python:3.11-slim",
            "blcks_base_image",
        )
    return Target(version, machine, libc_version)


def wheelhouse_key(requirements: list[str], target: Target) -> str:
    data = {"requirements": requirements, "python": target.python, "platform": target.pip_platform}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def ensure_wheelhouse(requirements: list[str], target: Target, script_id: str) -> Path:
    """The wheelhouse (pins in ``requirements.txt`` plus their wheels) for ``requirements``
    on ``target``, resolved and downloaded unless the store has it."""
    return ensure(
        WHEELS,
        wheelhouse_key(requirements, target),
        lambda tmp: _fill(tmp, requirements, target, script_id),
        {"requirements": requirements, **asdict(target)},
        problem=built,
    )


def wheelhouse_files(folder: Path) -> list[Path]:
    """What goes into the image: the pins and the wheels (sorted, so the layer is stable)."""
    return [folder / PINS, *sorted(folder.glob("*.whl"))]


def _fill(folder: Path, requirements: list[str], target: Target, script_id: str) -> None:
    from trek_tasks.runtimes.local import uv_binary

    uv = uv_binary()
    if uv is None:
        raise StepFailed("uv is needed to resolve requirements for an image; pip install uv")
    wanted = folder / "requirements.in"
    wanted.write_text("\n".join(requirements) + "\n")
    pins = folder / PINS
    resolve = [
        uv,
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--only-binary",
        ":all:",
        "--python-version",
        target.python,
        "--python-platform",
        target.uv_platform,
        str(wanted),
        "-o",
        str(pins),
    ]
    done = subprocess.run(resolve, capture_output=True, text=True)
    if done.returncode != 0:
        raise StepFailed(
            f"requirements of {script_id} do not resolve for {target}: {_cause(done.stderr)}",
            detail=done.stderr.strip(),
        )
    wanted.unlink()
    download = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        target.python.rsplit(".", 1)[0],
        "--implementation",
        "cp",
        "--abi",
        target.abi,
        "--platform",
        target.pip_platform,
        "-d",
        str(folder),
        "-r",
        str(pins),
    ]
    done = subprocess.run(download, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
        first = errors[0].removeprefix("ERROR: ") if errors else "pip download failed"
        raise StepFailed(
            f"wheels for {script_id}'s requirements on {target}: {first}",
            detail=done.stderr.strip(),
        )


def _cause(stderr: str) -> str:
    """uv's reason in one line (``nosuch was not found in the package registry and you
    require nosuch==1``), else its first line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "Because " in line:
            text = line.split("Because ", 1)[1]
            return text.split(", we can conclude")[0]
    return lines[0].removeprefix("error: ") if lines else "uv pip compile failed"
