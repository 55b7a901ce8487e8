"""Deterministic zips of the workflow and of scripts.

The same input gives byte-identical output: entries sorted, timestamps fixed, modes
normalised (0644, or 0755 for a program: an executable file starting with ``#!``, so a
shell script keeps its exec bit through pack and install), compression fixed. A script
zip holds what its kind lists as the script's files (so hidden files, caches and
compiled files are never packed, see ``files.ignored``), and nothing else (``.trek/``,
``inputs/``, ``bin/``).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Collection, Iterable
from pathlib import Path

import yaml

from trek_tasks.files import write_atomic
from trek_tasks.project import MANIFEST, PACKAGES, Project, Script

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MODES = (0o100644, 0o100755)  # a member's mode: plain or executable
BIN = "bin"  # where a project's zips go


def zip_bytes(members: Iterable[tuple[str, bytes]], executable: Collection[str] = ()) -> bytes:
    """A zip of (name, data) members, byte-identical for identical members; the names in
    ``executable`` get mode 0755, the others 0644."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = MODES[name in executable] << 16
            info.create_system = 3
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def script_members(script: Script) -> list[tuple[str, bytes]]:
    """What a script zip holds: the script's files (blcks: para, openfaas.yml, handler/)."""
    return [
        (path.relative_to(script.path).as_posix(), path.read_bytes()) for path in script.files()
    ]


def script_zip(script: Script) -> bytes:
    """What packing the script writes: its members, those that are programs (executable
    and starting with ``#!``, a shell script) marked executable; any other mode a local
    checkout gives a file (a handler.py made 0755) does not change the zip."""
    members = script_members(script)
    executable = {
        name
        for (name, data), path in zip(members, script.files(), strict=True)
        if data.startswith(b"#!") and path.stat().st_mode & 0o111
    }
    return zip_bytes(members, executable)


def script_zip_name(script: Script) -> str:
    """``<kind prefix><id>-<version>.zip``, e.g. ``blcks.detectredis-0.1.0.zip``."""
    return f"{script.kind.zip_prefix}{script.id}-{script.version}.zip"


def workflow_zip_name(project: Project) -> str:
    return f"{project.workflow.template_id}-{project.workflow.version}.zip"


def made_by_us(path: Path) -> bool:
    """Whether ``path`` is a zip ``zip_bytes`` wrote: every entry at ``ZIP_EPOCH`` with
    our mode (so a zip a user made, even named like ours, is never taken for one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile):
        return False
    return bool(infos) and all(
        info.date_time == ZIP_EPOCH and info.external_attr >> 16 in MODES for info in infos
    )


def stale_script_zips(project: Project) -> list[Path]:
    """Script zips in ``bin/`` that packing the current own scripts would not write (the
    script was deleted or renamed, or its version changed): named by a kind's zip rule
    (``blcks.<id>-<version>.zip``) and written by us; a user's other files never."""
    from trek_tasks.kinds import all_kinds
    from trek_tasks.names import SCRIPT_ID_PATTERN

    bin_dir = project.root / BIN
    if not bin_dir.is_dir():
        return []
    prefixes = [re.escape(kind.zip_prefix) for kind in all_kinds() if kind.zip_prefix]
    if not prefixes:
        return []
    names = re.compile(f"(?:{'|'.join(prefixes)}){SCRIPT_ID_PATTERN}-[^/]+\\.zip")
    current = {script_zip_name(script) for script in project.own.values()}
    return [
        path
        for path in sorted(bin_dir.iterdir())
        if path.name not in current
        and names.fullmatch(path.name)
        and path.is_file()
        and made_by_us(path)
    ]


def with_positions(raw: dict, positions: dict[str, dict[str, float]]) -> dict:
    """A copy of the graph document with ``metadata.position`` on every laid-out node."""
    import copy

    graph = copy.deepcopy(raw)
    for node in graph["graph"]["nodes"]:
        position = positions.get(str(node.get("id")))
        if position is not None:
            node.setdefault("metadata", {})["position"] = position
    return graph


def workflow_members(project: Project, auto_pos: bool = False) -> list[tuple[str, bytes]]:
    """``manifest.json``, the workflow file and ``packages.json`` (when present)."""
    root = project.root
    entry = project.entry.relative_to(root).as_posix()
    graph_bytes = project.entry.read_bytes()
    if auto_pos:
        from trek_tasks.graph import layout_positions

        positions = layout_positions(project.workflow, project.name)
        graph_doc = with_positions(project.workflow.raw, positions)
        graph_bytes = yaml.safe_dump(graph_doc, sort_keys=False, allow_unicode=True).encode()
    members = [(MANIFEST, (root / MANIFEST).read_bytes()), (entry, graph_bytes)]
    if (root / PACKAGES).is_file():
        members.append((PACKAGES, (root / PACKAGES).read_bytes()))
    return members


def write_zip(dest: Path, members: Iterable[tuple[str, bytes]]) -> str:
    """Write the zip atomically; returns its sha256."""
    data = zip_bytes(members)
    write_atomic(dest, data)
    return sha256(data)
