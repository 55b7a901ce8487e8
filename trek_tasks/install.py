"""Installing scripts into ``trek_packages/``: packages.json, the lock, safe extraction.

An install is one transaction: every archive is fetched, checked, extracted into a
staging folder inside ``trek_packages/`` and its para validated first; only then are the
script folders swapped in and packages.json and packages.lock.json rewritten. Any failure
leaves all three as they were.

Each installed folder holds ``.trek-install.json`` (version, sha256, source and a digest
of the extracted files), so "trek_packages/ matches the lock" is a cheap check.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from trek_tasks.config import Config
from trek_tasks.errors import BadInput, StepFailed, TrekError
from trek_tasks.files import (
    DISPLAY_MAX,
    Document,
    display,
    dump_json,
    file_problem,
    load_json,
    load_marked,
    shown,
    tree_files,
    write_atomic,
)
from trek_tasks.hub import (
    MAX_ARCHIVE_BYTES,
    Archive,
    Index,
    Release,
    Repository,
    file_url_path,
    http_get,
    is_url,
    read_archive,
    read_file,
    shown_url,
    verify,
)
from trek_tasks.names import SCRIPT_ID_PATTERN, reserved_problem
from trek_tasks.project import INSTALLED_DIR, LOCK, PACKAGES, scan_scripts

if TYPE_CHECKING:
    from trek_tasks.progress import InstallReport

RECORD = ".trek-install.json"
LOCK_FORMAT = 1
_NAME_AND_SPEC = re.compile(rf"\s*({SCRIPT_ID_PATTERN})\s*((?:[<>=!~].*)?)\s*")
_ANY = ("", "*")


@dataclass(frozen=True)
class Requirement:
    """What packages.json or the command line asks for one script.

    Either a repository script (``name`` + ``spec``) or a ``location``: an http(s) or
    file:// URL, or a zip path (relative paths are relative to the project root).
    """

    text: str
    where: str
    name: str | None
    spec: SpecifierSet | None = None
    location: str | None = None

    def recorded(self, version: str) -> str:
        """The packages.json value: a bare name pins the version it resolved to (as Trek)."""
        if self.location is not None:
            return self.location
        assert self.spec is not None
        return str(self.spec) or f"=={version}"


def _specifier(text: str, where: str) -> SpecifierSet:
    try:
        return SpecifierSet("" if text.strip() in _ANY else text)
    except InvalidSpecifier:
        raise BadInput(
            f"'{text}' is not a version specifier (e.g. ==0.5.0, >=0.4,<0.6, ~=0.5.0), "
            "a URL or a zip path",
            where,
        ) from None


def _looks_like_path(text: str) -> bool:
    return text.endswith(".zip") or "/" in text or os.sep in text


def requirement_from_entry(name: str, value: str, where: str) -> Requirement:
    """One packages.json entry ``name: value`` (of a packages.json that validated)."""
    if is_url(value) or _looks_like_path(value):
        return Requirement(value, where, name, location=value)
    return Requirement(value, where, name, spec=_specifier(value, where))


def requirement_from_argument(text: str, root: Path) -> Requirement:
    """A command-line package: ``name``, ``name<spec>``, a URL or a zip path (from the cwd)."""
    # the argument as a message shows it: cut when it would not fit on a line
    where = text if text.isprintable() and len(text) <= DISPLAY_MAX else shown(text)
    if is_url(text):
        return Requirement(text, where, None, location=text)
    if _looks_like_path(text) or file_problem(Path(text)) is None:  # no OSError: too long
        path = Path(text).resolve()
        problem = file_problem(path)
        if problem is not None:
            raise BadInput("no such zip file" if problem == "file not found" else problem, where)
        try:
            recorded = path.relative_to(root.resolve()).as_posix()
        except ValueError:
            recorded = str(path)
        return Requirement(text, where, None, location=recorded)
    match = _NAME_AND_SPEC.fullmatch(text)
    if not match:
        raise BadInput(
            "not a script name, a name with a version specifier (notification==0.5.0), "
            "a URL or a zip path",
            where,
        )
    reserved = reserved_problem(match.group(1))
    if reserved:
        raise BadInput(reserved, where)
    return Requirement(text, where, match.group(1), spec=_specifier(match.group(2), where))


@dataclass(frozen=True)
class Packages:
    """packages.json: the requirements by script id, plus the rest of the document."""

    requirements: dict[str, Requirement]
    document: dict[str, Any]

    def written(self, requirements: dict[str, str]) -> str:
        """The file's new text: other keys kept, packages sorted."""
        return dump_json({**self.document, "packages": dict(sorted(requirements.items()))})

    def values(self) -> dict[str, str]:
        return {name: req.text for name, req in self.requirements.items()}


def _entries(root: Path, name: str, schema: str, check: bool) -> tuple[Document, dict] | None:
    """packages.json or the lock (``name``), and its ``packages`` mapping; None when the file
    is missing. A file ``trek validate`` refuses is ``ManyErrors`` naming each problem's line,
    before anything is installed or removed. ``check=False`` is for doit's up-to-date test,
    which needs no schema (doit runs the task whenever the file changed, and the task checks
    it): a file of another shape is then one BadInput."""
    path = root / name
    if not os.path.lexists(path):
        return None
    doc = load_marked(path, root)
    if check:
        from trek_tasks.validate import check_file

        check_file(doc, schema)
    entries = doc.data.get("packages") if isinstance(doc.data, dict) else None
    if entries is None and schema == "packages":
        entries = {}  # "packages": null, or none yet

    def usable(value: Any) -> bool:
        if schema == "lock":
            return isinstance(value, dict) and all(
                isinstance(value.get(key), str) for key in ("version", "sha256", "source")
            )
        return isinstance(value, str)

    if not isinstance(entries, dict) or not all(usable(v) for v in entries.values()):
        raise BadInput(f"{name} is not what `trek install` writes", doc.where())
    return doc, entries


def read_packages(root: Path, check: bool = True) -> Packages:
    """Parse packages.json (missing = empty), checked as ``_entries`` says."""
    found = _entries(root, PACKAGES, "packages", check)
    if found is None:
        return Packages({}, {})
    doc, entries = found
    requirements = {
        name: requirement_from_entry(name, value, doc.where(("packages", name)))
        for name, value in entries.items()
    }
    return Packages(requirements, doc.data)


@dataclass(frozen=True)
class Locked:
    """One lock entry: the exact archive a script was installed from."""

    version: str
    sha256: str
    source: str

    def as_json(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256, "source": self.source}


def read_lock(root: Path, check: bool = True) -> dict[str, Locked]:
    """Parse packages.lock.json (missing = empty), checked as ``_entries`` says."""
    found = _entries(root, LOCK, "lock", check)
    return {
        str(name): Locked(entry["version"], entry["sha256"], entry["source"])
        for name, entry in (found[1] if found else {}).items()
    }


def lock_text(locked: dict[str, Locked]) -> str:
    """The lock file's text: same content, same bytes."""
    packages = {name: locked[name].as_json() for name in sorted(locked)}
    return dump_json({"version": LOCK_FORMAT, "packages": packages})


def files_digest(folder: Path) -> str:
    """A digest of the script files in ``folder`` (hidden files and caches left out)."""
    digest = hashlib.sha256()
    for path in tree_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def installed_matches(folder: Path, locked: Locked) -> bool:
    """True when ``folder`` holds exactly the files of the locked archive."""
    record_path = folder / RECORD
    if not record_path.is_file():
        return False
    try:
        record = load_json(record_path)
    except TrekError:
        return False
    return (
        isinstance(record, dict)
        and record.get("version") == locked.version
        and record.get("sha256") == locked.sha256
        and record.get("files") == files_digest(folder)
    )


def lock_applies(requirement: Requirement, locked: Locked) -> bool:
    """Does the locked archive still satisfy what packages.json asks?"""
    if requirement.location is not None:
        return locked.source == requirement.location
    assert requirement.spec is not None
    return requirement.spec.contains(locked.version, prereleases=True)


@dataclass(frozen=True)
class Step:
    """One script of an install: what the lock will say, and the archive to extract
    (None when the installed folder already holds it)."""

    id: str
    locked: Locked
    recorded: str
    archive: Archive | None


class Installer:
    """Resolves requirements to checked archives for one project."""

    def __init__(self, root: Path, repository: Repository) -> None:
        self.root = root
        self.repository = repository
        self._index: Index | None = None

    @classmethod
    def for_project(cls, root: Path, config: Config) -> Installer:
        return cls(root, Repository.configured(config, root))

    def index(self) -> Index:
        if self._index is None:
            self._index = self.repository.index()
        return self._index

    def folder(self, script_id: str) -> Path:
        return self.root / INSTALLED_DIR / script_id

    def resolve(self, requirement: Requirement) -> Step:
        """The newest archive the requirement allows (the lock is not consulted)."""
        if requirement.location is not None:
            archive = self._archive_at(requirement.location, requirement.where)
            if requirement.name is not None and archive.id != requirement.name:
                raise BadInput(
                    f"the archive holds script '{archive.id}', not '{requirement.name}'",
                    requirement.where,
                )
            locked = Locked(archive.version, archive.sha256, requirement.location)
            return self._step(archive.id, locked, requirement.location, archive)
        assert requirement.name is not None and requirement.spec is not None
        release = self.index().resolve(requirement.name, requirement.spec, requirement.where)
        locked = Locked(str(release.version), release.sha256, self.repository.source(release))
        return self._from_release(release, locked, requirement.recorded(locked.version))

    def follow(self, script_id: str, requirement: Requirement, locked: Locked) -> Step:
        """The archive the lock pins, refused when its bytes are not the locked ones."""
        if installed_matches(self.folder(script_id), locked):
            return Step(script_id, locked, requirement.text, None)
        if requirement.location is not None:
            archive = self._archive_at(requirement.location, requirement.where, locked.sha256)
            return self._step(script_id, locked, requirement.text, archive)
        entry = self.index().entry(script_id, requirement.where)
        wanted = Version(locked.version)
        release = next((r for r in entry.releases if r.version == wanted), None)
        relock = f"run `trek install {script_id}` to choose again"
        if release is None:
            raise BadInput(
                f"{LOCK} pins {script_id} {locked.version}, which {self.repository.shown} "
                f"does not have (it has {', '.join(entry.versions())}); {relock}",
                requirement.where,
            )
        if release.sha256 != locked.sha256:
            raise BadInput(
                f"{self.repository.shown} holds a different archive for {script_id} "
                f"{locked.version} than {LOCK} pins (sha256 {release.sha256}, locked "
                f"{locked.sha256}); {relock}",
                self.repository.where(release.path),
            )
        return self._from_release(release, locked, requirement.text)

    def _from_release(self, release: Release, locked: Locked, recorded: str) -> Step:
        if installed_matches(self.folder(release.id), locked):
            return Step(release.id, locked, recorded, None)
        where = self.repository.where(release.path)
        archive = read_archive(self.repository.fetch(release), where)
        if archive.id != release.id or Version(archive.version) != release.version:
            raise BadInput(
                f"the archive holds {archive.id} {archive.version}, but the index lists it "
                f"as {release.id} {release.version}; refusing it",
                where,
            )
        return Step(release.id, locked, recorded, archive)

    def _step(self, script_id: str, locked: Locked, recorded: str, archive: Archive) -> Step:
        keep = installed_matches(self.folder(script_id), locked)
        return Step(script_id, locked, recorded, None if keep else archive)

    def _archive_at(self, location: str, where: str, sha256: str | None = None) -> Archive:
        if location.startswith(("http://", "https://")):
            shown = shown_url(location)
            data = http_get(location, MAX_ARCHIVE_BYTES, f"downloading {shown}")
        elif location.startswith("file://"):
            shown = location
            data = read_file(file_url_path(location), MAX_ARCHIVE_BYTES)
        else:
            path = Path(location) if Path(location).is_absolute() else self.root / location
            shown = display(path, self.root)
            try:
                data = read_file(path, MAX_ARCHIVE_BYTES)
            except BadInput as err:  # said where the path was given (packages.json:3:21)
                raise BadInput(f"{shown}: {err.message}", where) from None
        if sha256 is not None:
            verify(data, sha256, None, shown, "locked")
        return read_archive(data, shown)


def extract(archive: Archive, dest: Path) -> None:
    """Write the archive's members below ``dest`` (members were checked by read_archive)."""
    base = dest.resolve()
    with archive.open() as zipped:
        for info in zipped.infolist():
            target = (base / info.filename).resolve()
            if target != base and base not in target.parents:
                raise BadInput(
                    f"archive member '{info.filename}' escapes the target", archive.where
                )
            try:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, target.open("xb") as out:
                    shutil.copyfileobj(source, out)
                if (info.external_attr >> 16) & 0o111:  # packed executable: a shell script
                    target.chmod(0o755)
            except OSError as err:  # a full disk, a read-only trek_packages/
                raise StepFailed(
                    f"cannot extract archive member {shown(info.filename)}: {err.strerror or err}",
                    archive.where,
                ) from None


def check_para(folder: Path, archive: Archive) -> None:
    """Validate the para extracted into ``folder`` (named after the script id).

    Errors name the archive, not the staging folder; warnings (quirks that installed
    paras may have) are left for ``trek validate``.
    """
    from trek_tasks.validate import validate_para

    errors, _ = validate_para(folder / f"{archive.id}.para")
    if errors:
        first = errors[0]
        position = re.search(r"(:\d+:\d+)$", first.where or "")
        line = position.group(1) if position else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BadInput(
            f"{archive.id}.para{line} is not valid: {first.message}{more}",
            archive.where,
        )


@contextlib.contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A hidden folder inside trek_packages/ (same file system, so swaps are renames)."""
    packages_dir = root / INSTALLED_DIR
    created = not packages_dir.exists()
    packages_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=packages_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and packages_dir.is_dir() and not any(packages_dir.iterdir()):
            packages_dir.rmdir()


def _stage(staging: Path, step: Step) -> Path:
    assert step.archive is not None
    folder = staging / step.id
    folder.mkdir()
    extract(step.archive, folder)
    check_para(folder, step.archive)
    record = {**step.locked.as_json(), "files": files_digest(folder)}
    write_atomic(folder / RECORD, dump_json(record))
    return folder


def _commit(
    root: Path, staging: Path, new: dict[str, Path], removed: list[str], writes: dict[Path, str]
) -> None:
    """Swap script folders in and write the files; on any failure put everything back."""
    packages_dir = root / INSTALLED_DIR
    swapped: list[tuple[str, Path | None]] = []
    originals = {path: path.read_bytes() if path.is_file() else None for path in writes}
    try:
        for script_id in sorted({*new, *removed}):
            target = packages_dir / script_id
            previous = None
            if target.exists() or target.is_symlink():
                previous = staging / f".previous-{script_id}"
                os.replace(target, previous)
            swapped.append((script_id, previous))
            if script_id in new:
                os.replace(new[script_id], target)
        for path, text in writes.items():
            write_atomic(path, text)
    except BaseException:
        for script_id, previous in reversed(swapped):
            target = packages_dir / script_id
            if script_id in new and target.exists():
                shutil.rmtree(target)
            if previous is not None:
                os.replace(previous, target)
        for path, content in originals.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, content)
        raise


def _apply(
    root: Path,
    steps: list[Step],
    removed: list[str],
    packages: str | None,
    lock: str | None,
) -> None:
    writes = {}
    if packages is not None:
        writes[root / PACKAGES] = packages
    if lock is not None:
        writes[root / LOCK] = lock
    with _staging(root) as staging:
        new = {step.id: _stage(staging, step) for step in steps if step.archive is not None}
        _commit(root, staging, new, removed, writes)


def _report(steps: list[Step], removed: list[str]) -> InstallReport:
    from trek_tasks.progress import InstalledScript, InstallReport

    installed = tuple(
        InstalledScript(step.id, step.locked.version, step.archive is not None) for step in steps
    )
    return InstallReport(installed, tuple(removed))


def install(root: Path, arguments: list[str], installer: Installer) -> InstallReport:
    """``trek install PACKAGE...``: resolve each afresh, install, update packages.json + lock."""
    packages = read_packages(root)
    locked = read_lock(root)
    steps: dict[str, Step] = {}
    for text in arguments:
        step = installer.resolve(requirement_from_argument(text, root))
        if step.id in steps:
            raise BadInput(f"{step.id} is asked for twice", text)
        steps[step.id] = step
    values = packages.values()
    for step in steps.values():
        values[step.id] = step.recorded
        locked[step.id] = step.locked
    _apply(root, list(steps.values()), [], packages.written(values), lock_text(locked))
    return _report(list(steps.values()), [])


def stale_folders(root: Path, wanted: set[str]) -> list[str]:
    """Installed folders (with our record) that packages.json no longer lists."""
    packages_dir = root / INSTALLED_DIR
    if not packages_dir.is_dir():
        return []
    return sorted(
        child.name
        for child in packages_dir.iterdir()
        if child.name not in wanted and (child / RECORD).is_file()
    )


def sync(root: Path, installer: Installer) -> InstallReport:
    """``trek install`` / ``doit install``: make trek_packages/ match packages.json,
    following the lock where it still satisfies packages.json."""
    packages = read_packages(root)
    locked = read_lock(root)
    steps = []
    for script_id, requirement in sorted(packages.requirements.items()):
        pinned = locked.get(script_id)
        if pinned is not None and lock_applies(requirement, pinned):
            steps.append(installer.follow(script_id, requirement, pinned))
        else:
            step = installer.resolve(requirement)
            if step.id != script_id:
                raise BadInput(
                    f"the archive holds script '{step.id}', not '{script_id}'", requirement.where
                )
            steps.append(step)
    removed = stale_folders(root, set(packages.requirements))
    new_lock = {step.id: step.locked for step in steps}
    text = lock_text(new_lock)
    lock_path = root / LOCK
    unchanged_lock = lock_path.is_file() and lock_path.read_text(encoding="utf-8") == text
    changed = [step for step in steps if step.archive is not None]
    if not changed and not removed and unchanged_lock:
        from trek_tasks.progress import InstallReport

        return InstallReport(in_sync=True)
    _apply(root, changed, removed, None, None if unchanged_lock else text)
    return _report(changed, removed)


def uninstall(root: Path, names: list[str]) -> InstallReport:
    """Remove each script's folder, packages.json entry and lock entry."""
    packages = read_packages(root)
    locked = read_lock(root)
    packages_dir = root / INSTALLED_DIR
    known = {*packages.requirements, *locked}
    if packages_dir.is_dir():
        known |= {
            p.name for p in packages_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        }
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise BadInput(f"'{name}' is not installed{hint}", name)
    values = {k: v for k, v in packages.values().items() if k not in names}
    remaining = {k: v for k, v in locked.items() if k not in names}
    removed = [name for name in names if (packages_dir / name).exists()]
    packages_text = packages.written(values) if (root / PACKAGES).is_file() else None
    lock_changed = (root / LOCK).is_file() and remaining != locked
    _apply(root, [], removed, packages_text, lock_text(remaining) if lock_changed else None)
    from trek_tasks.progress import InstallReport

    return InstallReport(removed=tuple(names))


def installed_lines(root: Path) -> list[str]:
    """``trek install -l``: each installed script, its version and what packages.json asks."""
    installed = scan_scripts(root / INSTALLED_DIR, installed=True)
    packages = read_packages(root)
    if not installed:
        return [f"No scripts installed in {INSTALLED_DIR}/"]
    width = max(len(script_id) for script_id in installed)
    lines = []
    for script_id, script in sorted(installed.items()):
        requirement = packages.requirements.get(script_id)
        asked = requirement.text if requirement else "(not in packages.json)"
        lines.append(f"{script_id:<{width}}  {script.version or '?'}  {asked}")
    return lines


def in_sync(root: Path) -> bool:
    """packages.json, the lock and trek_packages/ all agree."""
    return sync_problem(root) is None


def sync_problem(root: Path) -> str | None:
    """The install task's check: why packages.json, the lock and trek_packages/ do not
    agree (what ``trek install`` would change), or None when they do."""
    try:
        packages = read_packages(root, check=False)
        locked = read_lock(root, check=False)
    except TrekError as err:
        return str(err)
    asked, pinned_ids = set(packages.requirements), set(locked)
    if asked != pinned_ids:
        added = sorted(asked - pinned_ids)
        dropped = sorted(pinned_ids - asked)
        said = [*(f"{i} not locked" for i in added), *(f"{i} no longer asked" for i in dropped)]
        return f"{PACKAGES}: {', '.join(said)}"
    for script_id, requirement in packages.requirements.items():
        pinned = locked[script_id]
        if not lock_applies(requirement, pinned):
            return f"{PACKAGES}: {script_id} asks for other than the lock pins"
        if not installed_matches(root / INSTALLED_DIR / script_id, pinned):
            return f"{INSTALLED_DIR}/{script_id} is not what the lock pins"
    stale = stale_folders(root, set(packages.requirements))
    return f"{', '.join(f'{INSTALLED_DIR}/{i}' for i in stale)} no longer asked" if stale else None


def sync_project(root: Path) -> None:
    """The install task's action: sync, and report what changed while the task runs."""
    from trek_tasks.events import emit

    emit(sync(root, Installer.for_project(root, Config.load(root))))


def install_packages(root: Path, arguments: list[str]) -> InstallReport:
    """``trek install [PACKAGE...]``: the named packages, else what packages.json asks.

    Only the project's root and config are read: a broken graph does not stop installs.
    """
    installer = Installer.for_project(root, Config.load(root))
    return install(root, arguments, installer) if arguments else sync(root, installer)


def uninstall_packages(root: Path, names: list[str]) -> InstallReport:
    """``trek uninstall NAME...``."""
    return uninstall(root, names)
