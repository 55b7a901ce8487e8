"""The user's template store: their own template sets, installed with
``trek installtemplate -p PATH -c CATEGORY -n NAME`` and used with ``--template NAME``.

A template is a folder of files like a set under ``templates/`` (jinja2 names and
``.j2`` files, ``dot-`` parts; see ``scaffold``), kept as
``<TREK_HOME>/templates/<category>/<name>/`` with what installing found out in
``.template.json`` beside its files (hidden, so never rendered). Categories:

- ``script``: a whole script folder; installing renders it as the script ``example``
  and requires a kind's files (``<name>.para`` and the kind's main file, with no fault
  its kind reports), and records that kind: ``create<kind> --template NAME`` takes only
  a template of its own kind.
- ``project``: a whole project folder; it must render ``manifest.json``.
  ``createproject --template NAME`` renders it instead of the shipped project set.

Installing again under the same name replaces the template; a failing install leaves
the store as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from trek_tasks.errors import BadInput
from trek_tasks.files import display, ignored
from trek_tasks.kinds import all_kinds
from trek_tasks.names import check_name
from trek_tasks.project import MANIFEST
from trek_tasks.state import store_dir

CATEGORIES = ("script", "project")
META = ".template.json"
SAMPLE = "example"  # the name a template is rendered with when installed


class Template(NamedTuple):
    category: str
    name: str
    path: Path
    kind: str  # the script kind it makes ("" for a project template)


def store_root() -> Path:
    """``<TREK_HOME>/templates``: read when asked, so TREK_HOME applies."""
    return store_dir() / "templates"


def _category(category: str) -> str:
    if category not in CATEGORIES:
        raise BadInput(
            f"unknown template category '{category}'; use one of: {', '.join(CATEGORIES)}", "-c"
        )
    return category


def installed(category: str) -> list[str]:
    folder = store_root() / _category(category)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / META).is_file())


def find_template(category: str, name: str) -> Template:
    """The installed template ``name`` of ``category``; BadInput naming what is there."""
    check_name(name, "--template")
    path = store_root() / _category(category) / name
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        names = installed(category)
        listed = f"installed: {', '.join(names)}" if names else "none is installed"
        raise BadInput(
            f"no {category} template '{name}' ({listed}); add one with "
            f"`trek installtemplate -p PATH -c {category} -n {name}`",
            "--template",
        ) from None
    return Template(
        category, name, path, str(meta.get("kind", "")) if isinstance(meta, dict) else ""
    )


def script_template(name: str, kind_name: str) -> Path:
    """The set of the script template ``name`` for ``create<kind_name>``."""
    template = find_template("script", name)
    if template.kind != kind_name:
        raise BadInput(
            f"template '{name}' makes {template.kind} scripts, not {kind_name} ones; "
            f"use `trek create{template.kind} --template {name}`",
            "--template",
        )
    return template.path


def project_template(name: str) -> Path:
    return find_template("project", name).path


def _made_kind(folder: Path, source: Path) -> str:
    """The kind of the script a template rendered into ``folder`` (as ``SAMPLE``)."""
    for kind in all_kinds():
        if kind.detect(folder, SAMPLE):
            flaws = kind.problems(folder, SAMPLE)
            if flaws:
                raise BadInput(
                    f"the template renders a broken {kind.name} script: {flaws[0].message}",
                    display(source),
                )
            return kind.name
    wanted = "; ".join(
        f"{kind.name}: {kind.main_file(folder, SAMPLE).relative_to(folder).as_posix()}"
        for kind in all_kinds()
    )
    raise BadInput(
        "the template renders no script: it needs '{{ name }}.para' and the main file of "
        f"a kind (for the name {SAMPLE}: {wanted})",
        display(source),
    )


def install_template(path: Path, category: str, name: str) -> Template:
    """Check the template folder ``path`` (it renders, and makes what its category needs)
    and copy it into the store as ``name``, replacing one of that name."""
    from trek_tasks.scaffold import project_variables, render_tree, script_variables

    _category(category)
    check_name(name, "-n")
    source = path.resolve()
    if not source.is_dir():
        raise BadInput("no such template folder", display(path))
    base = store_root() / category
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=base) as tmp:
        rendered = Path(tmp) / SAMPLE
        rendered.mkdir()
        if category == "script":
            render_tree(source, rendered, script_variables(SAMPLE, None))
            kind = _made_kind(rendered, source)
        else:
            render_tree(source, rendered, project_variables(SAMPLE, None))
            if not (rendered / MANIFEST).is_file():
                raise BadInput(f"the template renders no {MANIFEST}", display(source))
            kind = ""
        staged = Path(tmp) / "template"
        shutil.copytree(source, staged, ignore=_ignored_names, symlinks=False)
        (staged / META).write_text(
            json.dumps({"kind": kind, "source": str(source)}, indent=2) + "\n", encoding="utf-8"
        )
        final = base / name
        old = Path(tmp) / "old"
        if final.exists():
            final.rename(old)
        staged.rename(final)
    return Template(category, name, final, kind)


def uninstall_template(category: str, name: str) -> Template:
    template = find_template(category, name)
    shutil.rmtree(template.path)
    return template


def _ignored_names(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if ignored(Path(name))}
