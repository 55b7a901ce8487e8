"""Project validation: JSON Schemas for every user file, then cross-checks.

Each file is checked against its schema (``trek_tasks/schemas/*.json``) and every
schema error is mapped back to the YAML mark of the offending value. Cross-checks
(ids, reachability, scripts, bindings, filters, required inputs) run on the parts that
passed their schema. All errors are reported at once; the strictness rules (what is a
warning, how loose data is matched) are in docs/validation.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trek_tasks import __version__
from trek_tasks.config import CONFIG_NAME
from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.events import emit
from trek_tasks.files import (
    Document,
    PathKey,
    display,
    dump_json,
    file_problem,
    load_marked,
    shown,
    write_atomic,
)
from trek_tasks.names import reserved_problem
from trek_tasks.paratypes import builtin_types
from trek_tasks.project import LOCK, MANIFEST, PACKAGES, Project, Script
from trek_tasks.resources import SCHEMA_NAMES
from trek_tasks.validate.para import Para, check_para, validate_para
from trek_tasks.validate.schema import (
    Finding,
    Problem,
    Report,
    Subject,
    get_at,
    load_schema,
    no_subject,
    schema_problems,
)
from trek_tasks.validate.workflow import GraphChecks, graph_subject

__all__ = [
    "SCHEMA_NAMES",
    "builtin_types",
    "check_file",
    "load_schema",
    "validate_para",
    "validate_project",
    "validation_inputs",
    "write_validated",
]

_URL_OR_FILE = re.compile(r"^[a-z][a-z0-9+.-]*://|\.zip$", re.IGNORECASE)


def _keyed_subject(noun: str) -> Subject:
    def subject(data: Any, path: PathKey) -> tuple[str, int]:
        if len(path) >= 2 and path[0] == "packages":
            return f"{noun} {shown(path[1])}", 2
        return "", 0

    return subject


def _data_subject(data: Any, path: PathKey) -> tuple[str, int]:
    if len(path) >= 2:
        return f"edge {shown(path[0], quoted=False)} property {shown(path[1])}", 2
    if len(path) == 1:
        return f"edge {shown(path[0], quoted=False)}", 1
    return "", 0


def _check_schema(report: Report, doc: Document, name: str, subject: Subject) -> list[Problem]:
    problems = schema_problems(doc, name, subject)
    for problem in problems:
        report.error(problem.where, problem.message)
    return problems


_SUBJECTS: dict[str, Subject] = {
    "graph": graph_subject,
    "event": no_subject,
    "packages": _keyed_subject("package"),
    "lock": _keyed_subject("package"),
    "config": no_subject,
}
_RELOCK = f"; delete {LOCK} and run `trek install` to re-create it"


def _check_file(report: Report, doc: Document, schema: str) -> None:
    """The rule for one file of kind ``schema``: its schema, and for packages.json the
    specifiers; a problem in the lock ends with the fix."""
    for problem in schema_problems(doc, schema, _SUBJECTS[schema]):
        report.error(problem.where, problem.message + (_RELOCK if schema == "lock" else ""))
    if schema == "packages":
        _check_specifiers(report, doc)


def check_file(doc: Document, schema: str) -> None:
    """Raise ManyErrors with every problem ``trek validate`` finds in ``doc`` (a file of
    kind ``schema``). Installing reads packages.json and the lock through this, so it acts
    only on files that validate."""
    report = Report(files=[doc.shown])
    _check_file(report, doc, schema)
    report.raise_errors()


def _check_specifiers(report: Report, doc: Document) -> None:
    """packages.json names no reserved id, and values that are neither URLs nor zips
    are PEP 440 specifiers."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    listed = doc.data.get("packages") if isinstance(doc.data, dict) else None
    for script_id, spec in (listed if isinstance(listed, dict) else {}).items():
        reserved = reserved_problem(script_id) if isinstance(script_id, str) else None
        if reserved:
            report.error(doc.where(("packages", script_id), key=True), reserved)
        if not isinstance(spec, str) or _URL_OR_FILE.search(spec.strip()):
            continue
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            report.error(
                doc.where(("packages", script_id)),
                f"package {shown(script_id)}: {shown(spec)} is not a version specifier; write e.g. "
                "'==0.5.0', '>=0.5,<1', '' (the newest), a URL or a zip path",
            )


def validation_inputs(project: Project) -> list[Path]:
    """The existing files ``validate_project`` reads (the doit task's file_dep)."""
    root = project.root
    scripts: dict[str, Script] = {s.id: s for s in project.used_scripts()}
    scripts.update(project.own)
    candidates = [
        project.entry,
        root / MANIFEST,
        root / PACKAGES,
        root / LOCK,
        *(s.para_path for s in scripts.values()),
        project.path("input_data_path"),
        project.path("input_event_path"),
        project.path("local_inventory_file"),
        root / CONFIG_NAME,
    ]
    return [p for p in dict.fromkeys(candidates) if p.is_file()]


def validate_project(project: Project) -> list[str]:
    """Check every file of the project; return warnings, raise ManyErrors with all errors."""
    report = Report()
    graph_doc = report.load(project.entry)
    paras: dict[str, Para | None] = {}
    installed = [s for s in project.used_scripts() if s.installed]
    for script in [*project.own.values(), *installed]:
        problem = None if script.installed else script.main_problem()
        if problem:  # installed scripts were checked by the installer
            report.files.append(display(script.path))
            report.error(display(script.path), problem)
        for flaw in [] if script.installed else script.kind.problems(script.path, script.id):
            report.files.append(flaw.where.split(":", 1)[0])
            report.error(flaw.where, flaw.message)
        errors, warnings, para = check_para(script.para_path, own=not script.installed)
        report.files.append(display(script.para_path))
        report.errors.extend(errors)
        report.warnings.extend(warnings)
        paras[script.id] = para
    data_path = _user_file(report, project, project.path("input_data_path"), "input_data_path")
    data_doc = report.load(data_path) if data_path else None
    data_problems = _check_schema(report, data_doc, "data", _data_subject) if data_doc else []
    for path, key, schema in (
        (project.path("input_event_path"), "input_event_path", "event"),
        (project.root / PACKAGES, None, "packages"),
        (project.root / LOCK, None, "lock"),
        (project.root / CONFIG_NAME, None, "config"),
    ):
        found = _user_file(report, project, path, key)
        doc = report.load(found) if found else None
        if doc is not None:
            _check_file(report, doc, schema)
    _check_inventory(report, project)
    if graph_doc is not None:
        _check_graph(report, project, graph_doc, paras, data_doc, data_problems)
    report.raise_errors()
    return report.warning_lines()


def _user_file(report: Report, project: Project, path: Path, key: str | None) -> Path | None:
    """``path`` when there is a file to read there, None when nothing is there. Anything
    else (a folder, a device) is an error at the config setting ``key`` naming the path
    when a config file sets it, else at the path."""
    if not os.path.lexists(path):
        return None
    problem = file_problem(path)
    if problem is None:
        return path
    source = project.config.sources.get(key) if key else None
    if key and source:
        try:
            where = load_marked(source).where((key,))
        except BadInput:
            where = display(source)
        report.files.append(display(source))
        report.error(where, f"'{key}' names {shown(project.config[key])}: {problem}")
    else:
        report.files.append(display(path))
        report.error(display(path), problem)
    return None


def _check_inventory(report: Report, project: Project) -> None:
    """inputs/inventory.yml, checked as the local Marvin reads it."""
    from trek_tasks.marvin.inventory import load_inventory

    key = "local_inventory_file"
    path = _user_file(report, project, project.path(key), key)
    if path is None:
        return
    report.files.append(display(path))
    try:
        load_inventory(path)
    except ManyErrors as err:
        report.errors.extend(Finding(e.where or display(path), e.message) for e in err.errors)
    except BadInput as err:
        report.error(err.where or display(path), err.message)


def _check_graph(
    report: Report,
    project: Project,
    doc: Document,
    paras: Mapping[str, Para | None],
    data_doc: Document | None,
    data_problems: list[Problem],
) -> None:
    from packaging.version import InvalidVersion, Version

    problems = _check_schema(report, doc, "graph", graph_subject)
    version = get_at(doc.data, ("graph", "metadata", "version"))
    if isinstance(version, str) and version:
        try:
            Version(version)
        except InvalidVersion:
            report.error(
                doc.where(("graph", "metadata", "version")),
                f"version {shown(version)} is not a valid version (PEP 440), e.g. '0.1.0'",
            )
    if any(_blocks_graph_checks(p.path) for p in problems):
        return
    graph = GraphChecks(report, project, doc, paras)
    bad_edges = {p.path[2] for p in problems if p.path[:2] == ("graph", "edges")}
    bad_data = {p.path[0] for p in data_problems if p.path}
    if data_doc is None or any(not p.path for p in data_problems):
        graph.run({}, bad_edges)
        return
    graph.run({k: v for k, v in (data_doc.data or {}).items() if k not in bad_data}, bad_edges)
    graph.check_data(data_doc, bad_data)


def _blocks_graph_checks(path: PathKey) -> bool:
    """Whether a schema problem leaves node ids, node types or edge ends unknown."""
    if path[:2] == ("graph", "metadata"):
        return False
    if len(path) <= 3:
        return True
    if path[1] == "nodes":
        return path[3] == "id" or path[3:] == ("metadata",) or path[3:5] == ("metadata", "type")
    return path[3] in ("source", "target")


def write_validated(project: Project, target: Path) -> None:
    """The doit action: validate, report warnings, record the result in ``target``."""
    from trek_tasks.progress import Warned

    warnings = validate_project(project)
    for warning in warnings:
        emit(Warned(warning))
    write_atomic(target, dump_json({"trek": __version__, "warnings": warnings}))
