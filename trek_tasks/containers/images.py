"""One Docker image per blcks script, content-addressed.

An image is tagged ``<docker_registry>/<id>:<version>`` and labelled ``trek.digest``: a
digest of what makes it (the script's para and handler files, its requirements, the blcks
SDK, the base image id, the rendered Dockerfile). An image with the current digest under
the tag is up to date, whoever built it; one with that digest under another tag is tagged,
not rebuilt. A build sends the Docker SDK a context made here (the files with fixed
owners, modes and times, so equal content is an equal layer) and runs with no network:
requirements come installed from the wheelhouse (``wheelhouse.py``) in layers before the
code, so a handler edit rebuilds only the last layer.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trek_tasks.config import DEFAULT_BASE_IMAGE, DEFAULT_REGISTRY, Config
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.events import emit
from trek_tasks.files import bytes_digest, display, dump_json, write_atomic
from trek_tasks.project import Project, Script
from trek_tasks.state import StateLayout

DIGEST_LABEL = "trek.digest"
SCRIPT_LABEL = "trek.script"
RECIPE = 1  # bump when images are made differently in a way the Dockerfile does not show
PORT = 8080
SCRIPT_DIR = "/trek/script"
SDK_DIR = "/trek/sdk"
WHEELHOUSE_DIR = "/trek/wheelhouse"
BUILT_KIND = "blcks"  # the script kind that has images (SPEC-2 section 7)
# Docker's reference grammar: a path component of a repository, and a tag.
COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
REGISTRY = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
OUTPUT_TAIL = 12  # lines of a failing step's output shown under the error
STEP_WIDTH = 88  # a step line is cut to this many characters
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUN_FAILED = re.compile(r"The command '.*' (returned .*)", re.DOTALL)
# Lines of the build stream that are the daemon's, not the step's output.
DAEMON_NOTES = (" ---> ", "Removing intermediate container ", "Successfully built ")
USING_CACHE = " ---> Using cache"


@dataclass(frozen=True)
class Image:
    """A script's image: its tag, its id (``sha256:...``) and its ``trek.digest`` label."""

    tag: str
    id: str
    digest: str


def image_scripts(project: Project) -> list[Script]:
    """The scripts ``build`` and ``push`` cover: the blcks scripts the workflow runs, own
    and installed, in node order."""
    return [script for script in project.used_scripts() if script.kind.name == BUILT_KIND]


def image_tag(script: Script, config: Config) -> str:
    """``<docker_registry>/<id>:<version>`` (the id lower-cased, as Docker wants)."""
    registry = str(config.get("docker_registry") or DEFAULT_REGISTRY).rstrip("/")
    if not REGISTRY.fullmatch(registry):
        source = config.sources.get("docker_registry")
        raise BadInput(
            f"'docker_registry' must be host[:port][/path] (no scheme, lower-case path), "
            f"not '{registry}'",
            display(source) if source else "config",
        )
    name = script.id.lower()
    where = display(script.para_path)
    if not COMPONENT.fullmatch(name):
        raise BadInput(
            f"the script id '{script.id}' cannot name a Docker image (letters, digits and "
            "single '.', '_' or '-' between them)",
            where,
        )
    if not TAG.fullmatch(script.version):
        shown = f"'{script.version}'" if script.version else "no version"
        raise BadInput(f"{shown} cannot tag a Docker image (letters, digits, '.', '-')", where)
    return f"{registry}/{name}:{script.version}"


def base_image(config: Config) -> str:
    return str(config.get("blcks_base_image") or DEFAULT_BASE_IMAGE)


def _base_id(client: Any, config: Config) -> str | None:
    import docker

    try:
        return str(client.images.get(base_image(config)).id)
    except docker.errors.ImageNotFound:
        return None


def _missing_base(config: Config) -> StepFailed:
    """Nothing is pulled: a pull may need the network, credentials and minutes, and the
    build promises neither. The user pulls (or builds) the base once."""
    base = base_image(config)
    return StepFailed(
        f"base image {base} is not in the Docker daemon; `docker pull {base}` (or build it), "
        "or set blcks_base_image to an image you have",
        "blcks_base_image",
    )


def image_files(script: Script) -> list[Path]:
    """The script's files that go into the image: para and handler/ (not openfaas.yml,
    which records the image and so cannot be part of it)."""
    from trek_tasks.containers.stack import STACK_FILE

    return [path for path in script.files() if path != script.path / STACK_FILE]


def _sdk_files() -> tuple[Path, list[Path]]:
    import blcks

    root = Path(blcks.__file__).parent
    return root, sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def dockerfile(config: Config, requirements: bool) -> str:
    """The rendered ``templates/docker/Dockerfile.j2``."""
    import jinja2

    from trek_tasks.resources import templates_dir

    source = templates_dir() / "docker" / "Dockerfile.j2"
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    return env.from_string(source.read_text(encoding="utf-8")).render(
        base_image=base_image(config),
        requirements=requirements,
        script_dir=SCRIPT_DIR,
        sdk_dir=SDK_DIR,
        wheelhouse_dir=WHEELHOUSE_DIR,
        port=PORT,
    )


def _digest_of(script: Script, config: Config, base_id: str) -> str:
    from trek_tasks.runtimes.base import requirements_lines, sdk_hash

    requirements = requirements_lines(script)
    files = {
        path.relative_to(script.path).as_posix(): bytes_digest(path) for path in image_files(script)
    }
    data = {
        "recipe": RECIPE,
        "base": base_id,
        "sdk": sdk_hash(),
        "requirements": requirements,
        "dockerfile": dockerfile(config, bool(requirements)),
        "files": files,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def image_digest(client: Any, script: Script, config: Config) -> str:
    """The ``trek.digest`` the script's image must carry now (asks the daemon for the base
    image id); StepFailed when the base image is missing."""
    base_id = _base_id(client, config)
    if base_id is None:
        raise _missing_base(config)
    return _digest_of(script, config, base_id)


def find_image(client: Any, script: Script, config: Config) -> Image | None:
    """The image under ``image_tag`` labelled with the current digest, else None (also
    when the base image is missing). Builds nothing, tags nothing."""
    import docker

    tag = image_tag(script, config)
    base_id = _base_id(client, config)
    if base_id is None:
        return None
    try:
        found = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    digest = _digest_of(script, config, base_id)
    if found.labels.get(DIGEST_LABEL) != digest:
        return None
    return Image(tag, str(found.id), digest)


def ensure_image(client: Any, script: Script, config: Config) -> Image:
    """The script's current image: found, else an image with the same digest tagged
    (another registry or project built it), else built."""
    from trek_tasks.progress import ImageBuilding, ImageBuilt

    found = find_image(client, script, config)
    if found is not None:
        return found
    tag = image_tag(script, config)
    digest = image_digest(client, script, config)
    emit(ImageBuilding(script.id, script.path / "handler"))
    same = client.images.list(filters={"label": f"{DIGEST_LABEL}={digest}"})
    if same:
        repository, _, version = tag.rpartition(":")
        same[0].tag(repository, version)
        emit(ImageBuilt(script.id, tag, reused=True))
        return Image(tag, str(same[0].id), digest)
    image = _build(client, script, config, tag, digest)
    emit(ImageBuilt(script.id, tag, reused=False))
    return image


def _build(client: Any, script: Script, config: Config, tag: str, digest: str) -> Image:
    import docker
    import requests

    from trek_tasks.containers.client import docker_host
    from trek_tasks.containers.wheelhouse import (
        ensure_wheelhouse,
        image_target,
        wheelhouse_files,
    )
    from trek_tasks.progress import WheelhouseReady
    from trek_tasks.runtimes.base import requirements_lines

    requirements = requirements_lines(script)
    wheels: list[Path] = []
    if requirements:
        started = time.monotonic()
        base_id = _base_id(client, config)
        assert base_id is not None  # image_digest found it
        target = image_target(client, base_image(config), base_id)
        folder = ensure_wheelhouse(requirements, target, script.id)
        wheels = wheelhouse_files(folder)
        emit(WheelhouseReady(script.id, str(target), len(wheels) - 1, time.monotonic() - started))
    context = build_context(script, dockerfile(config, bool(requirements)), wheels)
    labels = {DIGEST_LABEL: digest, SCRIPT_LABEL: script.id}
    try:
        chunks = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels=labels,
            network_mode="none",
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        image_id = _follow(chunks, script, tag)
    except docker.errors.APIError as err:
        raise StepFailed(f"building {tag}: {err.explanation or err}", script.id) from None
    except requests.RequestException as err:
        raise StepFailed(
            f"building {tag}: the Docker daemon at {docker_host()} stopped answering "
            f"({type(err).__name__})",
            script.id,
        ) from None
    return Image(tag, image_id, digest)


def _follow(chunks: Iterator[dict[str, Any]], script: Script, tag: str) -> str:
    """Read the build's stream: a progress event per step; the image id at the end, or
    StepFailed naming the failing step with the last lines of its output."""
    from trek_tasks.progress import ImageStep

    step = ""
    unsaid = ""  # a step is said with the line after it, which tells if it came from cache
    output: deque[str] = deque(maxlen=OUTPUT_TAIL)
    image_id = ""
    failure: StepFailed | None = None
    for chunk in chunks:  # read to the end even after an error: that closes the connection
        if failure is not None:
            continue
        if "stream" in chunk:
            for line in ANSI.sub("", str(chunk["stream"])).splitlines():
                line = line.rstrip()
                if unsaid and line:
                    emit(ImageStep(script.id, _short(unsaid), line == USING_CACHE))
                    unsaid = ""
                if line.startswith("Step "):
                    step = unsaid = line
                    output.clear()
                elif line and not line.startswith(DAEMON_NOTES):
                    output.append(line)
        elif "error" in chunk:
            failure = StepFailed(
                f"image {tag}: {_failed(step, str(chunk['error']))}",
                script.id,
                detail="\n".join(output),
            )
        elif "aux" in chunk and "ID" in chunk["aux"]:
            image_id = str(chunk["aux"]["ID"])
    if unsaid:
        emit(ImageStep(script.id, _short(unsaid), False))
    if failure is not None:
        raise failure
    if not image_id:
        raise StepFailed(f"image {tag}: the daemon ended the build without an image", script.id)
    return image_id


def _failed(step: str, error: str) -> str:
    """``Step 7/11 : RUN pip ... returned a non-zero code: 1``: the step, then what the
    daemon says without repeating the step's command."""
    lines = ANSI.sub("", error).strip().splitlines()
    last = lines[-1] if lines else "failed"
    said = RUN_FAILED.fullmatch(last)
    if not step:
        return f"the build failed: {last}"
    return f"{_short(step)} {said.group(1)}" if said else f"{_short(step)} failed: {last}"


def _short(line: str) -> str:
    return line if len(line) <= STEP_WIDTH else line[: STEP_WIDTH - 3] + "..."


def build_context(script: Script, dockerfile_text: str, wheels: list[Path]) -> io.BytesIO:
    """The build context as an uncompressed tar: ``Dockerfile``, ``wheelhouse/``,
    ``sdk/blcks/``, ``script/``. Owners, times and modes are fixed, so the layers of
    equal content are equal whoever builds them."""
    sdk_root, sdk = _sdk_files()
    members: list[tuple[str, Path | bytes]] = [("Dockerfile", dockerfile_text.encode())]
    members += [(f"wheelhouse/{path.name}", path) for path in wheels]
    members += [(f"sdk/blcks/{p.relative_to(sdk_root).as_posix()}", p) for p in sdk]
    members += [(f"script/{p.relative_to(script.path).as_posix()}", p) for p in image_files(script)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders: set[str] = set()
        for name, source in members:
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    tar.addfile(_info(folder, tarfile.DIRTYPE, 0o755))
            data = source if isinstance(source, bytes) else source.read_bytes()
            executable = not isinstance(source, bytes) and source.stat().st_mode & 0o100
            info = _info(name, tarfile.REGTYPE, 0o755 if executable else 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# The record of the last build and the script's openfaas.yml ---------------------------


def recorded(state: StateLayout, script_id: str) -> Image | None:
    """``.trek/images/<id>.json`` as the last build wrote it, or None."""
    try:
        return Image(**json.loads(state.image_record(script_id).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def build_script(client: Any, script: Script, config: Config, state: StateLayout) -> Image:
    """``build:<id>``: the current image, recorded in ``.trek/images/<id>.json`` and, for
    an own script, in its ``openfaas.yml`` (an installed script's folder stays the exact
    files of its archive, as the lock pins them)."""
    from trek_tasks.containers.stack import record_image

    image = ensure_image(client, script, config)
    if recorded(state, script.id) != image:
        write_atomic(state.image_record(script.id), dump_json(asdict(image)))
    if not script.installed:
        record_image(script.path, script.id, image.tag)
    return image


def is_built(client: Any, script: Script, config: Config, state: StateLayout) -> bool:
    """``build:<id>`` is up to date: the daemon has the current image under its tag, the
    record names it and (own scripts) openfaas.yml does."""
    from trek_tasks.containers.stack import stack_image

    image = find_image(client, script, config)
    if image is None or recorded(state, script.id) != image:
        return False
    return script.installed or stack_image(script.path, script.id) == image.tag


def build_folder(folder: Path) -> tuple[Script, Image]:
    """``trek buildblcks``: build the blcks script in ``folder`` with the config it sees
    (its project's, then its own), recorded in its project's ``.trek/`` (else its own)."""
    from dataclasses import replace

    from trek_tasks.containers.client import connect
    from trek_tasks.project import INSTALLED_DIR, find_root_or_none, script_at

    folder = folder.resolve()
    script = script_at(folder, BUILT_KIND)
    root = find_root_or_none(folder)
    if root is not None and folder.is_relative_to(root / INSTALLED_DIR):
        script = replace(script, installed=True)
    from trek_tasks.progress import ImageCurrent

    config = Config.load(root, folder)
    client = connect()
    try:
        found = find_image(client, script, config)
        if found is not None:
            emit(ImageCurrent(script.id, found.tag))
        return script, build_script(client, script, config, StateLayout.for_project(root or folder))
    finally:
        client.close()
