"""A script's ``openfaas.yml``: the OpenFaaS stack file naming the image it was built as.

After a build the function's ``image:`` is the image's tag, and the file stays a stack
``faas-cli deploy -f`` takes: ``provider`` (``name``, ``gateway``) and ``functions`` with
``lang``, ``handler`` and ``image``. The file is the user's: when only the image differs
the value is replaced in place (comments, order and quoting elsewhere stay); when a
required part is missing too, the file is written anew from its data with the missing
parts filled in (comments are then lost).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trek_tasks.errors import BadInput
from trek_tasks.files import display, write_atomic

STACK_FILE = "openfaas.yml"
PROVIDER = {"name": "faas", "gateway": "http://127.0.0.1:8080"}
LANG = "python3_blcks_flask"  # the template Trek's blcks functions are built from
HANDLER = "./handler"


def stack_path(folder: Path) -> Path:
    return folder / STACK_FILE


def function_name(data: Any, script_id: str) -> str:
    """The function of the stack that is this script: the one named after it, else the
    only one (a renamed script folder), else the script id (added)."""
    functions = data.get("functions") if isinstance(data, dict) else None
    if isinstance(functions, dict):
        if script_id in functions or len(functions) != 1:
            return script_id
        return str(next(iter(functions)))
    return script_id


def stack_image(folder: Path, script_id: str) -> str | None:
    """The image the stack file names for the script, or None."""
    import yaml

    try:
        data = yaml.safe_load(stack_path(folder).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    function = _mapping(_mapping(data).get("functions")).get(function_name(data, script_id))
    image = _mapping(function).get("image")
    return image if isinstance(image, str) else None


def record_image(folder: Path, script_id: str, tag: str) -> bool:
    """Make the stack file name ``tag`` as the script's image; False when it did already."""
    import yaml

    path = stack_path(folder)
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        data = yaml.safe_load(text) if text.strip() else {}
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        why = f"not a readable YAML stack file ({type(err).__name__})"
        raise BadInput(why, display(path)) from None
    if not isinstance(data, dict):
        data = {}
    name = function_name(data, script_id)
    wanted = _complete(data, name, tag)
    if wanted == data:
        return False
    current = _mapping(_mapping(data.get("functions")).get(name)).get("image")
    whole = isinstance(current, str) and _complete(data, name, current) == data
    edited = _replace_image(text, name, tag) if whole else None
    if edited is None or yaml.safe_load(edited) != wanted:
        edited = yaml.safe_dump(wanted, sort_keys=False, allow_unicode=True)
    write_atomic(path, edited)
    return True


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _complete(data: dict[str, Any], name: str, tag: str) -> dict[str, Any]:
    """``data`` with what a stack needs filled in and the function's image set to ``tag``."""
    result = dict(data)
    result["provider"] = {**PROVIDER, **_mapping(data.get("provider"))}
    functions = dict(_mapping(data.get("functions")))
    function = {"lang": LANG, "handler": HANDLER, **_mapping(functions.get(name))}
    function["image"] = tag
    functions[name] = function
    result["functions"] = functions
    return result


def _replace_image(text: str, name: str, tag: str) -> str | None:
    """``text`` with the value of ``functions.<name>.image`` replaced by ``tag``, found by
    the YAML parser's marks; None when that value is not a plain block scalar."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node = _child(_child(_child(root, "functions"), name), "image")
    if not isinstance(node, yaml.ScalarNode) or node.start_mark.line != node.end_mark.line:
        return None
    value = tag if yaml.safe_load(f"image: {tag}") == {"image": tag} else json.dumps(tag)
    return text[: node.start_mark.index] + value + text[node.end_mark.index :]


def _child(node: Any, key: str) -> Any:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None
