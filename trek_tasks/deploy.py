"""Deploying packs to a Marvin: the scripts' zips first, then the workflow's.

Marvin's digest decides: an artifact whose id and version Marvin holds with the sha256
of the zip in ``bin/`` is not uploaded again; the same id and version with another
digest is replaced only when the caller agrees (``trek deploy -y``, the prompt,
``doit deploy overwrite=1``). A failure stops the deploy and says what is on Marvin and
what is not, so running it again uploads only the rest. The API is the one
docs/marvin-api.md describes (``PUT``/``GET /api/v1/templates|scripts/<id>/<version>``).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput, StepFailed, TrekError
from trek_tasks.events import emit
from trek_tasks.files import display
from trek_tasks.marvin.client import MarvinClient
from trek_tasks.pack import (
    BIN,
    script_zip,
    script_zip_name,
    sha256,
    workflow_members,
    workflow_zip_name,
)
from trek_tasks.project import Project, Script

_PROJECT_NAME = r"[A-Za-z0-9][A-Za-z0-9._+-]*"  # what the local Marvin takes as a project


@dataclass(frozen=True)
class Artifact:
    """One zip to deploy: a template (the workflow) or a script, by id and version."""

    kind: str  # "template" or "script"
    id: str
    version: str
    zip: Path

    @property
    def label(self) -> str:
        """``workflow host.detect.redis 0.1.0`` or ``script detectredis 0.1.0``."""
        what = "workflow" if self.kind == "template" else "script"
        return f"{what} {self.id} {self.version}"

    @property
    def path(self) -> str:
        """Its place in Marvin's API."""
        return f"/api/v1/{self.kind}s/{self.id}/{self.version}"


@dataclass(frozen=True)
class DeployReport:
    """What a deploy did: zips uploaded, and zips Marvin held already with their digest."""

    uploaded: tuple[Artifact, ...]
    unchanged: tuple[Artifact, ...]


Overwrite = Callable[[Artifact], bool]  # asked when Marvin holds the id+version with another digest


def parse_projects(text: str) -> tuple[str, ...]:
    """``--projects a,b``: the Marvin project names, each once; BadInput for a bad one."""
    import re

    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if not re.fullmatch(_PROJECT_NAME, name):
            raise BadInput(
                f"'{name}' is not a Marvin project name (letters, digits and . _ + -, "
                "separated by commas)",
                "--projects",
            )
    return names


def project_artifacts(project: Project, all_scripts: bool) -> list[Artifact]:
    """What ``trek deploy`` ships, in order: (with ``all_scripts``) each own script, then
    the workflow; BadInput when a zip in ``bin/`` is missing or not what packing the
    current sources makes."""
    hint = "run `trek pack -a` or use --autopack" if all_scripts else ""
    artifacts = []
    if all_scripts:
        for script in project.own.values():
            artifacts.append(script_artifact(script, project.root / BIN, hint))
    template_id = project.workflow.template_id
    if not template_id:
        raise BadInput("the workflow has no template id to deploy it under", project.entry)
    workflow_zip = project.root / BIN / workflow_zip_name(project)
    _check_pack(
        workflow_zip, _workflow_current(project), hint or "run `trek pack` or use --autopack"
    )
    artifacts.append(Artifact("template", template_id, project.workflow.version, workflow_zip))
    return artifacts


def script_artifact(script: Script, bin_dir: Path, hint: str = "") -> Artifact:
    """The script's zip in ``bin_dir``, checked as :func:`project_artifacts` does (``hint``:
    what to run when it is missing or old; default `trek pack<kind>`)."""
    hint = hint or f"run `trek pack{script.kind.name}` or use --autopack"
    dest = bin_dir / script_zip_name(script)
    expected = script_zip(script)
    _check_pack(dest, lambda data: data == expected, hint)
    return Artifact("script", script.id, script.version, dest)


def _check_pack(dest: Path, current: Callable[[bytes], bool], hint: str) -> None:
    try:
        data = dest.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"not packed yet; {hint}", display(dest)) from None
    except OSError as err:
        raise BadInput(
            f"cannot read the pack: {err.strerror or err}; {hint}", display(dest)
        ) from None
    if not current(data):
        raise BadInput(f"the pack is older than its sources; {hint}", display(dest))


def _workflow_current(project: Project) -> Callable[[bytes], bool]:
    """Whether a workflow zip holds what packing now gives, with or without the node
    positions ``pack --auto-pos`` lays out (laying them out again would need graphviz)."""
    expected = dict(workflow_members(project))
    entry = project.entry.relative_to(project.root).as_posix()

    def current(data: bytes) -> bool:
        import yaml

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                found = {name: archive.read(name) for name in archive.namelist()}
        except (zipfile.BadZipFile, OSError, ValueError):
            return False
        if found.keys() != expected.keys():
            return False
        if any(found[name] != expected[name] for name in expected if name != entry):
            return False
        if found[entry] == expected[entry]:
            return True
        try:
            packed = yaml.safe_load(found[entry])
        except yaml.YAMLError:
            return False
        return _without_positions(packed) == _without_positions(project.workflow.raw)

    return current


def _without_positions(graph: Any) -> Any:
    """The graph document without ``metadata.position`` on its nodes."""
    import copy

    if not isinstance(graph, dict) or not isinstance(graph.get("graph"), dict):
        return graph
    stripped = copy.deepcopy(graph)
    for node in stripped["graph"].get("nodes") or []:
        metadata = node.get("metadata") if isinstance(node, dict) else None
        if isinstance(metadata, dict):
            metadata.pop("position", None)
            if not metadata:
                node.pop("metadata")
    return stripped


def remote_digest(client: MarvinClient, artifact: Artifact) -> str | None:
    """The sha256 Marvin holds for the artifact's id and version; None when it has none."""
    from trek_tasks.http import HttpError

    try:
        data = client.get(artifact.path)
    except HttpError as err:
        if err.status == 404:
            return None
        raise
    digest = data.get("digest") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def is_deployed(client: MarvinClient, artifact: Artifact) -> bool:
    """Whether Marvin holds the artifact's zip as it is in ``bin/`` (doit's up-to-date
    check; False when either cannot be read)."""
    try:
        return remote_digest(client, artifact) == sha256(artifact.zip.read_bytes())
    except (TrekError, OSError):
        return False


def deploy(
    client: MarvinClient,
    artifacts: Sequence[Artifact],
    overwrite: Overwrite,
    projects: Sequence[str] = (),
) -> DeployReport:
    """Deploy ``artifacts`` in order; ``projects``: assign the templates to them too.

    StepFailed (or the failure's own class) at the first one that fails, naming what is
    on Marvin and what is not."""
    uploaded: list[Artifact] = []
    unchanged: list[Artifact] = []
    for index, artifact in enumerate(artifacts):
        try:
            if deploy_one(client, artifact, overwrite, projects):
                uploaded.append(artifact)
            else:
                unchanged.append(artifact)
        except TrekError as err:
            done = [a.label for a in artifacts[:index]]
            left = [a.label for a in artifacts[index:]]
            failure = StepFailed(
                f"{err.message if err.where else err}; "
                f"deployed: {', '.join(done) or 'nothing'}; not deployed: {', '.join(left)}",
                err.where or display(artifact.zip),
            )
            failure.exit_code = err.exit_code
            raise failure from None
    return DeployReport(tuple(uploaded), tuple(unchanged))


def deploy_one(
    client: MarvinClient, artifact: Artifact, overwrite: Overwrite, projects: Sequence[str] = ()
) -> bool:
    """Deploy one zip; False when Marvin held it already (nothing uploaded)."""
    from trek_tasks.progress import (
        DeployDuplicated,
        Deploying,
        DeployStored,
        DeployUnchanged,
        ProjectsAssigned,
    )

    data = artifact.zip.read_bytes()
    digest = sha256(data)
    held = remote_digest(client, artifact)
    query = ""
    if held == digest:
        emit(DeployUnchanged(artifact.zip, artifact.label, digest))
    else:
        if held is not None:
            emit(DeployDuplicated(artifact.kind, artifact.id))
            if not overwrite(artifact):
                raise StepFailed(
                    f"{artifact.label} is on Marvin with another sha256 and was not "
                    "overwritten; answer y, pass -y (doit deploy: overwrite=1) or give it "
                    "a new version"
                )
            query = "?overwrite=true"
        emit(Deploying(artifact.zip))
        answer = client.upload(artifact.path + query, data)
        stored = answer.get("data", {}).get("digest") if isinstance(answer, dict) else None
        if stored != digest:
            raise StepFailed(f"Marvin stored sha256 {stored} for {artifact.label}, not {digest}")
        emit(DeployStored(artifact.label, digest, overwritten=held is not None))
    if projects and artifact.kind == "template":
        assigned = client.put(artifact.path + "/projects", {"projects": list(projects)})
        names = assigned.get("projects") if isinstance(assigned, dict) else None
        emit(ProjectsAssigned(artifact.label, tuple(names or projects)))
    return held != digest


@dataclass(frozen=True)
class Holding:
    """An item a Marvin holds, as ``trek deployed`` lists it."""

    kind: str
    id: str
    version: str
    digest: str
    size: int
    created_at: str
    projects: tuple[str, ...] = ()


def holdings(client: MarvinClient) -> list[Holding]:
    """The templates and scripts the token's user deployed to this Marvin."""
    found = []
    for kind in ("template", "script"):
        listed = client.get(f"/api/v1/{kind}s")
        try:
            for item in listed:
                found.append(
                    Holding(
                        kind,
                        str(item["id"]),
                        str(item["version"]),
                        str(item["digest"]),
                        int(item.get("size") or 0),
                        str(item.get("created_at") or ""),
                        tuple(str(p) for p in item.get("projects") or ()),
                    )
                )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise StepFailed(
                f"GET /api/v1/{kind}s: Marvin's answer is not a list of {kind}s"
            ) from None
    return found
