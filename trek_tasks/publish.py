"""Publishing scripts into a repository folder, and regenerating its index.json.

A repository is plain files, so any static HTTP server can host it. ``index.json`` is
generated from the archives found at ``<id>/<version>/dist/script.zip`` (sorted, fixed
formatting), so the same archives always give the same index. A published version is
never replaced by different bytes: bump the version in the para instead.

``python -m trek_tasks.publish --rebuild-bundled`` rebuilds the bundled repository
(``trek_tasks/repository``) from the sources in ``scripts/<id>/<version>/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from packaging.version import Version

from trek_tasks.errors import BadInput, TrekError
from trek_tasks.events import emit
from trek_tasks.files import display, dump_json, write_atomic
from trek_tasks.hub import (
    INDEX,
    INDEX_FORMAT,
    MAX_ARCHIVE_BYTES,
    Archive,
    bundled_path,
    read_archive,
    read_file,
)
from trek_tasks.install import check_para, extract
from trek_tasks.pack import script_zip
from trek_tasks.progress import IndexWritten, Published, PublishReport
from trek_tasks.project import Script

ARCHIVE_PATH = "{id}/{version}/dist/script.zip"
SOURCES = Path(__file__).resolve().parents[1] / "scripts"


def folder_script(folder: Path) -> Script:
    """The script in ``folder``: its ``<folder>.para``, else its only ``*.para``."""
    para = folder / f"{folder.name}.para"
    if not para.is_file():
        paras = sorted(folder.glob("*.para"))
        if len(paras) != 1:
            found = ", ".join(p.name for p in paras) or "none"
            raise BadInput(f"a script folder holds one <id>.para; found {found}", display(folder))
        para = paras[0]
    script = Script.load(folder, installed=False, script_id=para.stem)
    assert script is not None  # the para is there
    return script


def archive_of(source: Path) -> Archive:
    """A packed script zip, or a script folder packed exactly as ``pack:<id>`` packs it."""
    shown = display(source)
    if source.is_dir():
        data = script_zip(folder_script(source))
    elif source.is_file():
        data = read_file(source, MAX_ARCHIVE_BYTES)
    else:
        raise BadInput("no such file or folder", shown)
    archive = read_archive(data, shown)
    with tempfile.TemporaryDirectory(prefix="trek-publish-") as tmp:
        folder = Path(tmp) / archive.id
        folder.mkdir()
        extract(archive, folder)
        check_para(folder, archive)
    return archive


def publish(source: Path, repository: Path) -> PublishReport:
    """Add ``source`` to the repository folder and rewrite its index.

    Publishing the same bytes again is a no-op; different bytes for a published
    id+version are refused.
    """
    published = _add(archive_of(source), repository)
    return PublishReport((published,), write_index(repository))


def _add(archive: Archive, repository: Path) -> Published:
    dest = repository / ARCHIVE_PATH.format(id=archive.id, version=archive.version)
    if dest.is_file():
        if dest.read_bytes() != archive.data:
            raise BadInput(
                f"{archive.id} {archive.version} is already published with other content; "
                f"bump the version in {archive.id}.para",
                display(dest),
            )
        return Published(archive.id, archive.version, dest, already=True)
    write_atomic(dest, archive.data)
    return Published(archive.id, archive.version, dest, already=False)


def build_index(repository: Path) -> dict[str, Any]:
    """The index of every archive at ``<id>/<version>/dist/script.zip`` in the folder.

    Each archive must hold the id and version its path names; title and description
    come from the newest version's para.
    """
    found: dict[str, dict[Version, tuple[str, Archive]]] = {}
    for path in sorted(repository.glob("*/*/dist/script.zip")):
        relative = path.relative_to(repository).as_posix()
        script_id, version = relative.split("/")[:2]
        archive = read_archive(read_file(path, MAX_ARCHIVE_BYTES), display(path))
        if archive.id != script_id or archive.version != version:
            raise BadInput(
                f"the archive holds {archive.id} {archive.version}; "
                f"move it to {ARCHIVE_PATH.format(id=archive.id, version=archive.version)}",
                display(path),
            )
        found.setdefault(script_id, {})[Version(version)] = (relative, archive)
    scripts = {}
    for script_id in sorted(found):
        releases = found[script_id]
        newest = releases[max(releases)][1]
        para = _para(newest)
        scripts[script_id] = {
            "title": str(para.get("title") or para.get("name") or script_id),
            "description": str(para.get("description") or ""),
            "versions": {
                str(version): {
                    "path": releases[version][0],
                    "sha256": releases[version][1].sha256,
                    "size": len(releases[version][1].data),
                }
                for version in sorted(releases, reverse=True)
            },
        }
    return {"format": INDEX_FORMAT, "scripts": scripts}


def _para(archive: Archive) -> dict[str, Any]:
    import yaml

    with archive.open() as zipped:
        data = yaml.safe_load(zipped.read(f"{archive.id}.para"))
    return data if isinstance(data, dict) else {}


def write_index(repository: Path) -> Path:
    """Regenerate ``index.json`` (same archives, same bytes)."""
    path = repository / INDEX
    write_atomic(path, dump_json(build_index(repository)))
    return path


def bundled_sources(sources: Path = SOURCES) -> list[Path]:
    """The script folders ``scripts/<id>/<version>/`` the bundled repository is built from."""
    return sorted(p for p in sources.glob("*/*") if p.is_dir() and any(p.glob("*.para")))


def rebuild_bundled(sources: Path = SOURCES, repository: Path | None = None) -> Path:
    """Rebuild the bundled repository from ``scripts/``; each folder must be at
    ``<id>/<version>/`` matching its para. Reports each archive as it is added."""
    target = repository or bundled_path()
    folders = bundled_sources(sources)
    if not folders:
        raise BadInput("no script folders at <id>/<version>/", display(sources))
    for folder in folders:
        script = folder_script(folder)
        if (script.id, script.version) != (folder.parent.name, folder.name):
            raise BadInput(
                f"holds {script.id} {script.version}; move it to {script.id}/{script.version}/",
                display(folder),
            )
    archives = [archive_of(folder) for folder in folders]
    if target.is_dir():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for archive in archives:
        emit(_add(archive, target))
    emit(IndexWritten(write_index(target)))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trek_tasks.publish", description=__doc__)
    parser.add_argument(
        "--rebuild-bundled",
        action="store_true",
        required=True,
        help="rebuild trek_tasks/repository from scripts/<id>/<version>/",
    )
    parser.add_argument("--sources", type=Path, default=SOURCES, help="the scripts/ folder")
    args = parser.parse_args(argv)
    from trek_tasks import reporter

    reporter.attach()
    try:
        rebuild_bundled(args.sources)
    except TrekError as err:
        reporter.TERMINAL.err(f"error: {err}")
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
