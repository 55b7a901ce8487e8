"""The script repository client: index.json, version resolution, checked downloads.

A repository is a folder or an http(s) URL holding ``index.json`` and the archives at
``<id>/<version>/dist/script.zip``; the bundled one ships inside this package. Bytes from
a repository are used only after their size and sha256 match the index, and an archive
is used only after every member passed ``read_archive``. docs/repository.md has the format.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from trek_tasks import http
from trek_tasks.config import Config
from trek_tasks.errors import BadInput, StepFailed
from trek_tasks.files import parse_yaml, shown
from trek_tasks.names import SCRIPT_ID

INDEX = "index.json"
INDEX_FORMAT = 1
BUNDLED = "bundled"
MAX_INDEX_BYTES = 5 * 1024 * 1024
MAX_ARCHIVE_BYTES = 50 * 1024 * 1024
MAX_MEMBERS = 5000
MAX_NAME_BYTES = 1024  # a member's whole name
MAX_PART_BYTES = 255  # one file or folder name in it (what file systems take)
MAX_DEPTH = 64  # folders a member may sit in
TIMEOUT = (5.0, 30.0)
CHUNK = 64 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SPECIAL_FILES = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
}


class TooLarge(BadInput):
    """More bytes arrived than the limit allows."""


def bundled_path() -> Path:
    """The repository folder shipped inside the package."""
    return Path(__file__).resolve().parent / "repository"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "file://"))


def shown_url(url: str) -> str:
    """``url`` fit for messages: no user, password or query values (they may hold tokens)."""
    return http.shown_url(url, hide_query=True)


def file_url_path(url: str) -> Path:
    """The local path of a ``file://`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise BadInput("a file:// URL must name a local path (file:///...)", url)
    return Path(unquote(parts.path))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sizes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size} bytes"


@dataclass(frozen=True)
class Release:
    """One version of a script in a repository index."""

    id: str
    version: Version
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ScriptEntry:
    """A script in the index with its releases, newest first."""

    id: str
    title: str
    description: str
    releases: tuple[Release, ...]

    def versions(self) -> list[str]:
        return [str(release.version) for release in self.releases]


@dataclass(frozen=True)
class Index:
    """A parsed, checked ``index.json``; ``where`` is its URL or path, ``name`` the
    repository's name in messages."""

    where: str
    name: str
    scripts: dict[str, ScriptEntry]

    @classmethod
    def parse(cls, data: Any, where: str, name: str) -> Index:
        """Check the whole document; the first problem is a ``BadInput`` naming its key."""
        if not isinstance(data, dict) or not isinstance(data.get("scripts"), dict):
            raise BadInput("malformed index: expected an object with 'scripts'", where)
        if data.get("format", INDEX_FORMAT) != INDEX_FORMAT:
            raise BadInput(
                f"index format {data.get('format')!r} is not supported (this trek reads "
                f"format {INDEX_FORMAT}); upgrade trek-tasks",
                where,
            )
        scripts = {}
        for script_id, raw in data["scripts"].items():
            scripts[script_id] = _parse_entry(script_id, raw, where)
        return cls(where, name, scripts)

    def entry(self, script_id: str, where: str | None = None) -> ScriptEntry:
        """The script's entry; an unknown id suggests close matches."""
        if script_id in self.scripts:
            return self.scripts[script_id]
        close = difflib.get_close_matches(script_id, list(self.scripts), n=3)
        hint = (
            f"; did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else "; `trek listscripts` shows what it holds"
        )
        raise BadInput(
            f"unknown script {shown(script_id)} in {self.name}{hint}",
            where or shown(script_id, quoted=False),
        )

    def resolve(self, script_id: str, spec: SpecifierSet, where: str) -> Release:
        """The newest release of ``script_id`` that ``spec`` allows."""
        entry = self.entry(script_id, where)
        by_version = {release.version: release for release in entry.releases}
        allowed = list(spec.filter(by_version))
        if not allowed:
            raise BadInput(
                f"no version of {script_id} matches '{spec}'; "
                f"available: {', '.join(entry.versions()) or 'none'}",
                where,
            )
        return by_version[max(allowed)]


def _malformed(where: str, key: str, problem: str) -> BadInput:
    return BadInput(f"malformed index: {key} {problem}", where)


def _parse_entry(script_id: Any, raw: Any, where: str) -> ScriptEntry:
    key = f"scripts.{script_id}"
    if not isinstance(script_id, str) or not SCRIPT_ID.fullmatch(script_id):
        raise _malformed(where, key, "is not a valid script id")
    if not isinstance(raw, dict) or not isinstance(raw.get("versions"), dict):
        raise _malformed(where, key, "must be an object with 'versions'")
    releases = [
        _parse_release(script_id, version, item, where, f"{key}.versions.{version}")
        for version, item in raw["versions"].items()
    ]
    releases.sort(key=lambda release: release.version, reverse=True)
    return ScriptEntry(
        script_id,
        str(raw.get("title") or ""),
        str(raw.get("description") or ""),
        tuple(releases),
    )


def _parse_release(script_id: str, version: str, item: Any, where: str, key: str) -> Release:
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise _malformed(where, key, "is not a PEP 440 version") from None
    if not isinstance(item, dict):
        raise _malformed(where, key, "must be an object with path, sha256 and size")
    path, digest, size = item.get("path"), item.get("sha256"), item.get("size")
    if not isinstance(path, str) or not _inside(path):
        raise _malformed(where, f"{key}.path", "must be a relative path inside the repository")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise _malformed(where, f"{key}.sha256", "must be 64 lowercase hex digits")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_ARCHIVE_BYTES:
        raise _malformed(where, f"{key}.size", f"must be a byte count up to {MAX_ARCHIVE_BYTES}")
    return Release(script_id, parsed, path, digest, size)


def _inside(path: str) -> bool:
    """True for a relative path that stays inside its base (no scheme, no ``..``)."""
    pure = PurePosixPath(path)
    return (
        bool(path)
        and "\\" not in path
        and ":" not in path
        and not pure.is_absolute()
        and ".." not in pure.parts
    )


class Repository:
    """A script repository: ``""`` (bundled), a folder, a ``file://`` or an http(s) URL."""

    def __init__(self, location: str = "", base: Path | None = None) -> None:
        self.location = location
        self.http = location.startswith(("http://", "https://"))
        self.folder: Path | None = None
        if not location:
            self.folder = bundled_path()
        elif location.startswith("file://"):
            self.folder = file_url_path(location)
        elif not self.http:
            folder = Path(location).expanduser()
            self.folder = folder if folder.is_absolute() else (base or Path.cwd()) / folder

    @classmethod
    def configured(cls, config: Config, base: Path) -> Repository:
        """The ``script_repository`` of ``config``; a relative folder is taken from the
        folder holding the config file that set it (else ``base``)."""
        location = str(config.get("script_repository") or "")
        source = config.sources.get("script_repository")
        return cls(location, source.parent.parent if source is not None else base)

    @property
    def shown(self) -> str:
        """How messages name the repository."""
        if not self.location:
            return "the bundled repository"
        return shown_url(self.location) if self.http else str(self.folder)

    def where(self, relative: str) -> str:
        """The URL or path of a file in the repository, for messages."""
        if self.http:
            return shown_url(self._url(relative))
        assert self.folder is not None
        return str(self.folder / relative)

    def source(self, release: Release) -> str:
        """Where an archive came from, as the lock file records it."""
        if not self.location:
            return f"{BUNDLED}:{release.path}"
        if self.http:
            return shown_url(self._url(release.path))
        assert self.folder is not None
        return (self.folder / release.path).resolve().as_uri()

    def _url(self, relative: str) -> str:
        """The URL of a repository file; a query on the location (a token) is kept."""
        parts = urlsplit(self.location)
        path = parts.path.rstrip("/") + "/" + relative
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    def index(self) -> Index:
        """Fetch and check ``index.json``."""
        where = self.where(INDEX)
        if self.http:
            data = http_get(self._url(INDEX), MAX_INDEX_BYTES)
        else:
            assert self.folder is not None
            if not (self.folder / INDEX).is_file():
                hint = "" if not self.location else "; check script_repository (`trek config`)"
                raise BadInput(f"no {INDEX} in {self.shown}{hint}", where)
            data = read_file(self.folder / INDEX, MAX_INDEX_BYTES)
        try:
            parsed = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadInput(f"malformed index: not JSON ({err})", where) from None
        return Index.parse(parsed, where, self.shown)

    def fetch(self, release: Release) -> bytes:
        """The release's archive, checked against the index's size and sha256."""
        where = self.where(release.path)
        label = f"downloading {release.id} {release.version}"
        try:
            if self.http:
                data = http_get(self._url(release.path), release.size, label, release.size)
            else:
                assert self.folder is not None
                data = read_file(self.folder / release.path, release.size)
        except TooLarge:
            raise BadInput(
                f"size mismatch: expected {release.size} bytes, got more; "
                "the archive changed after it was indexed, refusing it",
                where,
            ) from None
        verify(data, release.sha256, release.size, where)
        return data


def verify(data: bytes, digest: str, size: int | None, where: str, when: str = "indexed") -> None:
    """Refuse bytes whose size or sha256 differs from what the index (or lock) promised."""
    if size is not None and len(data) != size:
        raise BadInput(
            f"size mismatch: expected {size} bytes, got {len(data)}; "
            f"the archive changed after it was {when}, refusing it",
            where,
        )
    actual = sha256_hex(data)
    if actual != digest:
        raise BadInput(
            f"sha256 mismatch: expected {digest}, got {actual}; "
            f"the archive changed after it was {when}, refusing it",
            where,
        )


def read_file(path: Path, limit: int) -> bytes:
    """A local file of at most ``limit`` bytes (one more byte would be a size mismatch)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise BadInput("file not found", path) from None
    except OSError as err:
        raise BadInput(f"cannot read: {err.strerror}", path) from None
    if len(data) > limit:
        raise TooLarge(f"larger than {_sizes(limit)}; refusing it", path)
    return data


def http_get(url: str, limit: int, label: str = "", size: int | None = None) -> bytes:
    """GET ``url`` (timeouts on connect and read, retried when the server is busy), at most
    ``limit`` bytes.

    With a ``label`` a progress bar goes to stderr. Network failures are ``StepFailed``
    (exit 1), 4xx answers ``BadInput``; messages name the URL without credentials.
    """
    where = shown_url(url)
    chunks: list[bytes] = []
    total = 0
    try:
        with http.stream("GET", url, timeout=TIMEOUT) as response:
            if response.status != 200:
                status = f"HTTP {response.status} {response.phrase}".rstrip()
                raise StepFailed(f"{status} from the repository; try again later", where)
            length = size or _content_length(response.headers.get("Content-Length"))
            with _progress(label, length) as advance:
                for chunk in response.chunks(CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise TooLarge(f"larger than {_sizes(limit)}; refusing it", where)
                    chunks.append(chunk)
                    advance(len(chunk))
    except http.HttpError as err:
        if not err.status:
            raise StepFailed(f"cannot download: {err.why}", where) from None
        status = f"HTTP {err.status} {err.phrase}".rstrip()
        if 400 <= err.status < 500:
            raise BadInput(f"{status}; check script_repository", where) from None
        raise StepFailed(f"{status} from the repository; try again later", where) from None
    return b"".join(chunks)


def _content_length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@contextmanager
def _progress(label: str, length: int | None) -> Iterator[Any]:
    """Report a download's progress as events (only with a label and a size); the
    terminal reporter shows them as a progress bar on stderr."""
    if not label or not length:
        yield lambda n: None
        return
    from trek_tasks.events import emit
    from trek_tasks.progress import DownloadAdvanced, DownloadFinished, DownloadStarted

    emit(DownloadStarted(label, length))
    try:
        yield lambda n: emit(DownloadAdvanced(n))
    finally:
        emit(DownloadFinished(label))


@dataclass(frozen=True)
class Archive:
    """A script archive whose members all passed the safety checks."""

    data: bytes
    id: str
    version: str
    sha256: str
    where: str

    def open(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(self.data))


def read_archive(data: bytes, where: str) -> Archive:
    """Check an archive before anything is extracted from it.

    Refused: not a zip, members with absolute paths or ``..``, links, device files,
    encrypted members, two members for one path (``a//b``, ``./a/b``, ``a/b``), a file that
    is also a folder, a member naming the top folder itself (``.``), names too long or too
    deep, compression other than stored/deflated, damaged data (a bad CRC, a size other
    than declared, a corrupt deflate stream), more than 50 MB unpacked, no single
    top-level ``<id>.para`` naming that id and a version. Every member's data is read
    (and thrown away) here, so extraction meets no surprise.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise BadInput(f"archive has more than {MAX_MEMBERS} members; refusing it", where)
            members = _member_paths(infos, where)
            for info in infos:
                if not info.is_dir():
                    _check_data(archive, info, where)
            para_name = _top_para(set(members), where)
            para_text = archive.read(members[para_name])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise BadInput(f"not a readable zip archive ({err})", where) from None
    script_id, version = _para_identity(para_name, para_text, where)
    return Archive(data, script_id, version, sha256_hex(data), where)


def _member_paths(infos: list[zipfile.ZipInfo], where: str) -> dict[str, str]:
    """The files' normalised paths (``a//./b`` is ``a/b``) -> their member names, after
    checking each member and that no two of them land on one path."""
    seen: dict[str, str] = {}
    files: dict[str, str] = {}
    folders: set[str] = set()
    total = 0
    for info in infos:
        _check_member(info, where)
        parts = [part for part in info.filename.split("/") if part not in ("", ".")]
        path = "/".join(parts)
        if not path:
            raise BadInput(
                f"archive member {shown(info.filename)} names the top folder itself; refusing it",
                where,
            )
        other = seen.get(path)
        if other == info.filename:
            raise BadInput(f"archive member {shown(info.filename)} appears twice", where)
        if other is not None:
            raise BadInput(
                f"archive members {shown(other)} and {shown(info.filename)} are the same path; "
                "refusing it",
                where,
            )
        seen[path] = info.filename
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        if info.is_dir():
            folders.add(path)
        else:
            files[path] = info.filename
        total += info.file_size
        if total > MAX_ARCHIVE_BYTES:
            raise BadInput(
                f"archive unpacks to more than {_sizes(MAX_ARCHIVE_BYTES)}; refusing it", where
            )
    both = sorted(folders & set(files))
    if both:
        raise BadInput(
            f"archive member {shown(files[both[0]])} is a file and also a folder; refusing it",
            where,
        )
    return files


def _check_data(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> None:
    """Read the member through (CRC checked at its end); refuse it when that fails."""
    name = shown(info.filename)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BadInput(
            f"archive member {name} uses compression method {info.compress_type} "
            "(only stored and deflated are read); refusing it",
            where,
        )
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                size += len(chunk)
    except zipfile.BadZipFile as err:
        why = "its CRC-32 does not match its data" if "CRC" in str(err) else str(err)
        raise BadInput(f"archive member {name} is damaged ({why}); refusing it", where) from None
    except zlib.error:
        raise BadInput(
            f"archive member {name} is damaged (its compressed data is corrupt); refusing it",
            where,
        ) from None
    except EOFError:
        raise BadInput(
            f"archive member {name} is damaged (its data ends early); refusing it", where
        ) from None
    if size != info.file_size:
        raise BadInput(
            f"archive member {name} is damaged ({size} bytes of data, {info.file_size} "
            "declared); refusing it",
            where,
        )


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
    name = info.filename
    if not name or "\x00" in name:
        raise BadInput("archive has a member without a usable name", where)
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise BadInput(f"archive member {shown(name)} has an absolute path; refusing it", where)
    if ".." in re.split(r"[\\/]", name):
        raise BadInput(
            f"archive member {shown(name)} escapes the target folder; refusing it", where
        )
    parts = [part for part in name.split("/") if part]
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadInput(
            f"archive member {shown(name)} has a name longer than {MAX_NAME_BYTES} bytes; "
            "refusing it",
            where,
        )
    if any(len(part.encode("utf-8")) > MAX_PART_BYTES for part in parts):
        raise BadInput(
            f"archive member {shown(name)} has a file or folder name longer than "
            f"{MAX_PART_BYTES} bytes; refusing it",
            where,
        )
    if len(parts) > MAX_DEPTH:
        raise BadInput(
            f"archive member {shown(name)} is more than {MAX_DEPTH} folders deep; refusing it",
            where,
        )
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind in _SPECIAL_FILES:
        raise BadInput(
            f"archive member {shown(name)} is {_SPECIAL_FILES[kind]}; refusing it", where
        )
    if info.flag_bits & 0x1:
        raise BadInput(f"archive member {shown(name)} is encrypted; refusing it", where)


def _top_para(names: set[str], where: str) -> str:
    paras = sorted(n for n in names if "/" not in n and n.endswith(".para"))
    if len(paras) != 1:
        found = f"found {', '.join(paras)}" if paras else "found none"
        raise BadInput(f"a script archive holds one <id>.para at its top level; {found}", where)
    return paras[0]


def _para_identity(name: str, text: bytes, where: str) -> tuple[str, str]:
    """(id, version) from the archive's para, which must agree with its file name."""
    try:  # the loader of every user file: bounded depth and aliases
        para = parse_yaml(text.decode("utf-8"), name)
    except UnicodeDecodeError:
        raise BadInput(f"{name} in the archive is not UTF-8 text", where) from None
    except BadInput as err:
        raise BadInput(f"{err} (in the archive)", where) from None
    stem = name[: -len(".para")]
    if not isinstance(para, dict) or str(para.get("id", "")) != stem:
        raise BadInput(f"{name} in the archive must have 'id: {stem}'", where)
    version = str(para.get("version", ""))
    try:
        Version(version)
    except InvalidVersion:
        raise BadInput(f"{name} in the archive has no valid version ('{version}')", where) from None
    if not SCRIPT_ID.fullmatch(stem):
        raise BadInput(f"'{stem}' is not a valid script id", where)
    return stem, version


def listing(repository: Repository, script_id: str | None = None) -> list[str]:
    """Lines for ``trek listscripts``: every id with its versions, or one id's versions."""
    index = repository.index()
    if script_id:
        return index.entry(script_id).versions()
    if not index.scripts:
        return [f"{repository.shown} holds no scripts"]
    rows = [
        (script, ", ".join(entry.versions()), entry.title)
        for script, entry in sorted(index.scripts.items())
    ]
    id_width = max(len(row[0]) for row in rows)
    versions_width = max(len(row[1]) for row in rows)
    return [
        f"{script:<{id_width}}  {versions:<{versions_width}}  {title}".rstrip()
        for script, versions, title in rows
    ]


def repository_around(start: Path) -> Repository:
    """The repository of the project around ``start`` (if any), else of the global config."""
    from trek_tasks.project import find_root_or_none

    root = find_root_or_none(start)
    return Repository.configured(Config.load(root), root or start)
