"""Scaffolds: new projects and script folders, rendered from ``templates/``.

A template set is a folder tree. Every part of a file's path is rendered with jinja2
(``{{ name }}.para.j2`` is named after the script); a part starting with ``dot-`` gets a
leading dot instead (``dot-gitignore`` -> ``.gitignore``: a real ``.gitignore`` inside
the repository would act on the repository itself); files ending in ``.j2`` are rendered
and lose the suffix; other files are copied byte for byte. ``.trek/config.json`` is
written through ``config.write_file``, so it is 0600 whenever it holds a credential.

Everything is rendered into a temp folder beside the destination (inside it for the
``init`` commands) and then moved into place: a failure leaves no half-made folder.
"""

from __future__ import annotations

import json
import keyword
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from trek_tasks.config import CONFIG_NAME, DEFAULT_REGISTRY, Config, write_file
from trek_tasks.errors import BadInput
from trek_tasks.files import display, ignored, load_yaml
from trek_tasks.kinds import ScriptKind, all_kinds
from trek_tasks.kinds.base import para_file
from trek_tasks.names import check_name, check_script_name
from trek_tasks.paratypes import field_type
from trek_tasks.project import MANIFEST, find_root_or_none
from trek_tasks.resources import templates_dir, trek_requirement

if TYPE_CHECKING:
    import jinja2

MARVIN_KEYS = ("marvin_url", "marvin_JWT", "marvin_secret")
# What a handler made to fit a para returns for each output until the user writes the work.
PLACEHOLDERS: dict[str | None, Any] = {
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "array": [],
    "object": {},
}


class Placed(NamedTuple):
    """What a scaffold did in a folder (paths relative to it), for the command to list."""

    added: tuple[Path, ...] = ()
    replaced: tuple[Path, ...] = ()  # -f: files of the folder the template overwrote
    kept: tuple[Path, ...] = ()  # files the template makes that the folder had already
    left_out: tuple[Path, ...] = ()  # samples not added: they would not fit what is there


# Rendering ---------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["py"] = python_literal
    return env


def python_literal(value: Any) -> str:
    """A Python literal of a YAML value, quoted as ruff format quotes (a date as its text)."""
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{python_literal(str(k))}: {python_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _render(env: jinja2.Environment, text: str, variables: Mapping[str, Any], where: str) -> str:
    import jinja2

    try:
        return env.from_string(text).render(variables)
    except jinja2.TemplateSyntaxError as err:
        raise BadInput(f"template error: {err.message}", f"{where}:{err.lineno}") from None
    except jinja2.TemplateError as err:
        raise BadInput(f"template error: {err}", where) from None


def _output_path(
    env: jinja2.Environment, rel: Path, variables: Mapping[str, Any], where: str
) -> Path:
    parts = []
    for part in rel.parts:
        text = _render(env, part, variables, where)
        if text.startswith("dot-"):
            text = "." + text[len("dot-") :]
        if text in ("", ".", "..") or "/" in text or "\\" in text:
            raise BadInput(f"template file name renders to '{text}', not a file name", where)
        parts.append(text)
    out = Path(*parts)
    return out.with_suffix("") if out.suffix == ".j2" else out


def _read_template(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput("a .j2 template must be UTF-8 text", where) from None


def _config_data(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInput(f"config template renders to invalid JSON: {err.msg}", where) from None
    if not isinstance(data, dict):
        raise BadInput("config template must render to a JSON object", where)
    return data


def _write(
    file: Path, out: Path, name: Path, env: jinja2.Environment, variables: Mapping[str, Any]
) -> None:
    """Write one template file to ``out / name``: rendered (``.j2``), parsed (the config
    file, written 0600 when it holds a credential) or copied; executable when the
    template file is (a shell script)."""
    where = display(file)
    dest = out / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if file.suffix != ".j2" and name != CONFIG_NAME:
        shutil.copyfile(file, dest)
    else:
        _write_text(file, dest, name, env, variables, where)
    if file.stat().st_mode & 0o111 and name != CONFIG_NAME:
        os.chmod(dest, 0o777 & ~_umask())


def _write_text(
    file: Path,
    dest: Path,
    name: Path,
    env: jinja2.Environment,
    variables: Mapping[str, Any],
    where: str,
) -> None:
    text = _read_template(file, where)
    if file.suffix == ".j2":
        text = _render(env, text, variables, where)
    if name == CONFIG_NAME:
        write_file(dest, _config_data(text, where))
        return
    if text and not text.endswith("\n"):
        text += "\n"
    dest.write_text(text, encoding="utf-8")


def render_tree(source: Path, out: Path, variables: Mapping[str, Any]) -> list[Path]:
    """Render the template set ``source`` into the folder ``out``; the relative paths made."""
    if not source.is_dir():
        raise BadInput("template set not found; reinstall trek-tasks", display(source))
    env = _environment()
    made = []
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = file.relative_to(source)
        if ignored(rel):
            continue
        name = _output_path(env, rel, variables, display(file))
        _write(file, out, name, env, variables)
        made.append(name)
    return made


def _render_sets(sets: Sequence[Path], out: Path, variables: Mapping[str, Any]) -> list[Path]:
    """Render several sets into one folder; a later set's file replaces an earlier one's."""
    made: dict[Path, None] = {}
    for source in sets:
        made.update(dict.fromkeys(render_tree(source, out, variables)))
    return list(made)


# Placing -----------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _stage(folder: Path, name: str) -> Path:
    """A temp folder in ``folder`` with the permissions a plain ``mkdir`` would give."""
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=folder))
    os.chmod(stage, 0o777 & ~_umask())
    return stage


def _make_parents(folder: Path) -> Path | None:
    """Create ``folder``; return the topmost folder this created (to undo), if any."""
    created = None
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            if not candidate.is_dir():
                raise BadInput("is a file, but a folder is needed here", display(candidate))
            break
        created = candidate
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _check_room(target: Path, files: Iterable[Path]) -> None:
    """Nothing in ``target`` may stand where a template file or its folder goes."""
    for rel in files:
        for parent in reversed(rel.parents[:-1]):
            spot = target / parent
            if os.path.lexists(spot) and not spot.is_dir():
                raise BadInput(
                    "is a file, but the template puts a folder here; move it", display(spot)
                )
        spot = target / rel
        if spot.is_dir() and not spot.is_symlink():
            raise BadInput("is a folder, but the template puts a file here; move it", display(spot))


def _move(stage: Path, target: Path, files: Iterable[Path]) -> None:
    for rel in files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, target / rel)


def _os_error(err: OSError, target: Path) -> BadInput:
    # err.filename would name the temp folder, which is gone by now: name the target.
    return BadInput(f"cannot write: {err.strerror or err}", display(target))


def _create(target: Path, sets: Sequence[Path], variables: Mapping[str, Any]) -> Placed:
    """Make ``target`` from the sets: a new folder appears whole (one rename); in an
    existing one, the template's files replace theirs and all other files stay."""
    created = None
    replaced: list[Path] = []
    try:
        created = _make_parents(target.parent)
        stage = _stage(target.parent, target.name)
        try:
            made = _render_sets(sets, stage, variables)
            if target.is_dir():
                _check_room(target, made)
                replaced = [p for p in made if os.path.lexists(target / p)]
                _move(stage, target, made)
            else:
                os.rename(stage, target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException as err:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(err, OSError):
            raise _os_error(err, target) from None
        raise
    return Placed(added=tuple(p for p in made if p not in replaced), replaced=tuple(replaced))


def _add_missing(
    target: Path, sets: Sequence[Path], variables: Mapping[str, Any], together: Sequence[Path] = ()
) -> Placed:
    """Add the sets' files that ``target`` lacks; never touch an existing file.

    ``together`` are files that only make sense as a group: none is added when one exists.
    """
    try:
        stage = _stage(target, "trek-init")
        try:
            made = _render_sets(sets, stage, variables)
            kept = [p for p in made if os.path.lexists(target / p)]
            started = any(p in kept for p in together)
            left_out = [p for p in together if started and p not in kept]
            wanted = [p for p in made if p not in kept and p not in left_out]
            _check_room(target, wanted)
            _move(stage, target, wanted)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except OSError as err:
        raise _os_error(err, target) from None
    return Placed(added=tuple(wanted), kept=tuple(kept), left_out=tuple(left_out))


def check_free(target: Path, force: bool) -> None:
    if not os.path.lexists(target):
        return
    if not target.is_dir():
        raise BadInput("exists and is not a folder; choose another name", display(target))
    if not force:
        raise BadInput(
            "folder exists; add -f/--force to replace the files the template makes",
            display(target),
        )


def _sets(templates: Path | None, *names: str) -> list[Path]:
    root = templates or templates_dir()
    return [root / name for name in names]


# Projects ----------------------------------------------------------------------------


def project_variables(name: str, answers: Mapping[str, str] | None) -> dict[str, Any]:
    """The project's name, its Marvin settings and the trek-tasks version the CI
    pipelines install."""
    from trek_tasks import __version__

    given = answers or {}
    marvin = {key: str(given.get(key) or "") for key in MARVIN_KEYS}
    return {"name": name, "trek_version": __version__, **marvin}


def create_project(
    dest: Path,
    name: str,
    answers: Mapping[str, str] | None = None,
    force: bool = False,
    example: bool = False,
    templates: Path | None = None,
    template: Path | None = None,
) -> Path:
    """Make the project ``dest/name``; ``answers`` hold the Marvin settings for its config.

    With ``example`` the sample workflow (callservice + notification) replaces the
    minimal one. ``templates`` is another folder of template sets (default: the shipped);
    ``template`` one set (a user's, ``templatestore``) to render instead of the project set.
    """
    check_name(name, "NAME")
    target = dest / name
    check_free(target, force)
    sets = [template] if template else _sets(templates, "project")
    sets += _sets(templates, "example") if example else []
    _create(target, sets, project_variables(name, answers))
    return target


def existing_folder(path: Path) -> Path:
    if not path.is_dir():
        problem = "is not a folder" if os.path.lexists(path) else "no such folder"
        raise BadInput(problem, display(path))
    return path.resolve()


def init_project(
    path: Path, answers: Mapping[str, str] | None = None, templates: Path | None = None
) -> Placed:
    """Turn the folder ``path`` into a project: add the files it lacks, keep the others,
    and make each script kind's code-base folder (``src/blcks/``, ``src/shell/``...)."""
    folder = existing_folder(path)
    name = check_name(folder.name, "folder name")
    placed = _add_missing(folder, _sets(templates, "project"), project_variables(name, answers))
    bases = [Path(str(Config.load(folder)[kind.code_base_key])) for kind in all_kinds()]
    made = [base for base in bases if not os.path.lexists(folder / base)]
    try:
        for base in made:
            (folder / base).mkdir(parents=True)
    except OSError as err:
        raise _os_error(err, folder) from None
    return placed._replace(added=(*placed.added, *made))


# Scripts -----------------------------------------------------------------------------


def script_variables(
    name: str, root: Path | None, para: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The variables of a script's templates; ``para`` (see ``fit_para``) makes the
    handler, its test and its inputs fit an existing para instead of the sample's."""
    registry = str(Config.load(root)["docker_registry"] or DEFAULT_REGISTRY)
    return {
        "name": name,
        "registry": registry.rstrip("/"),
        "para": para,
        "trek_requirement": trek_requirement(),
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _example(spec: Mapping[str, Any]) -> Any:
    examples = spec.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    if "default" in spec:
        return spec["default"]
    return PLACEHOLDERS.get(field_type(spec))


def fit_para(path: Path) -> dict[str, Any]:
    """What the templates need to make a handler, its test and its inputs fit the para
    at ``path``: the inputs (name, whether required, an example value), the outputs
    (name, a placeholder of its type) and the handler's parameters."""
    data = _mapping(load_yaml(path))
    fields = _mapping(data.get("inputs"))
    outputs = _mapping(data.get("outputs"))
    listed = data.get("required")
    required = listed if isinstance(listed, list) else []
    inputs = [
        {"name": str(n), "required": n in required, "example": _example(_mapping(spec))}
        for n, spec in fields.items()
    ]
    names = [i["name"] for i in inputs]
    if all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
        ordered = sorted(inputs, key=lambda i: not i["required"])
        params = ", ".join(i["name"] + ("" if i["required"] else "=None") for i in ordered)
    else:  # names Python cannot take as parameters arrive as keywords all the same
        params = "**inputs"
    return {
        "inputs": inputs,
        "outputs": [
            {"name": str(n), "placeholder": PLACEHOLDERS.get(field_type(spec))}
            for n, spec in outputs.items()
        ],
        "params": params,
    }


def script_target(dest: Path, name: str, kind: ScriptKind) -> Path:
    """Where creating the script ``name`` in ``dest`` puts it: under the project's code
    base for the kind (config) inside a project, else ``dest/NAME``."""
    root = find_root_or_none(dest)
    if root is None:
        return dest / name
    return root / str(Config.load(root)[kind.code_base_key]) / name


def create_script(
    dest: Path,
    name: str,
    kind: ScriptKind,
    force: bool = False,
    templates: Path | None = None,
    template: Path | None = None,
) -> Placed:
    """Make the script ``name`` of ``kind`` (see ``script_target``) from the kind's set,
    or the set ``template`` (a user's, ``templatestore``); what it added and (``force``,
    in an existing folder) replaced."""
    check_script_name(name, "NAME")
    target = script_target(dest, name, kind)
    check_free(target, force)
    variables = script_variables(name, find_root_or_none(dest))
    return _create(target, [template] if template else _sets(templates, kind.templates), variables)


def init_script(path: Path, kind: ScriptKind, templates: Path | None = None) -> Placed:
    """Turn the folder ``path`` into a script folder of ``kind`` named after it: add
    the files it lacks, keep the others. With a para there, the missing samples
    (handler, test, inputs) are made to fit it; without one, the samples go in only
    together (none exists yet): the sample para would not describe another handler."""
    folder = existing_folder(path)
    name = check_script_name(folder.name, "folder name")
    if (folder / MANIFEST).is_file():
        raise BadInput(
            f"this is a project folder; run `trek create{kind.name} NAME` in it to add a script",
            display(folder),
        )
    para = para_file(folder, name)
    fitted = fit_para(para) if para.is_file() else None
    together = [] if fitted else [Path(p.format(name=name)) for p in kind.sample]
    variables = script_variables(name, find_root_or_none(folder), fitted)
    return _add_missing(folder, _sets(templates, kind.templates), variables, together)
