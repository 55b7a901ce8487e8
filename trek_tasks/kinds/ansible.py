"""ansible scripts: the playbook ``<id>.yml`` served by ``python -m blcks.serve --kind
ansible``, which runs it per call with ``ansible-playbook`` through ``blcks.tools.ansible``
(extra vars, hosts, outputs and faults: see there)."""

from __future__ import annotations

from pathlib import Path

from trek_tasks.errors import BadInput
from trek_tasks.files import display, load_marked
from trek_tasks.kinds.base import Flaw, ToolKind, member_files

# Folders a playbook may read besides itself (Ansible's own layout), packed with it.
TREES = ("roles", "files", "templates", "group_vars", "host_vars")


class AnsibleKind(ToolKind):
    """``<id>.para`` and the playbook ``<id>.yml`` (its main file, plays on ``hosts:
    hosts``), with what it reads from ``TREES``; tests in ``tests/`` run with pytest (they
    may call ``blcks.tools.ansible.AnsibleRunner``)."""

    name = "ansible"
    code_base_key = "ansible_code_base"
    zip_prefix = "ansible."
    templates = "ansible"
    # The sample para, playbook, test and runansible inputs describe one script.
    sample: tuple[str, ...] = (
        "{name}.para",
        "{name}.yml",
        "tests/test_playbook.py",
        "inputs/event.yml",
    )
    script_type = "ansible"
    main_suffix = ".yml"
    # ansible-playbook comes from PyPI into the script's environment like any requirement.
    implicit_requirements: tuple[str, ...] = ("ansible-core>=2.16",)
    localhost = True  # `runansible --localhost` runs the playbook on 127.0.0.1

    def files(self, folder: Path, script_id: str) -> list[Path]:
        return member_files(folder, script_id, (f"{script_id}.yml", "ansible.cfg"), TREES)

    def problems(self, folder: Path, script_id: str) -> list[Flaw]:
        """The playbook must parse as YAML and be a list of plays, each naming ``hosts``."""
        path = self.main_file(folder, script_id)
        if not path.is_file():
            return []  # said by the project's main-file check
        try:
            doc = load_marked(path)
        except BadInput as err:
            return [Flaw(err.where or display(path), err.message)]
        if not isinstance(doc.data, list) or not doc.data:
            return [Flaw(doc.where(), f"{path.name} must be a list of plays (`- hosts: hosts`)")]
        return [
            Flaw(
                doc.where((index,)),
                f"play {index + 1} of {path.name} has no 'hosts'; use hosts: hosts",
            )
            for index, play in enumerate(doc.data)
            if not (isinstance(play, dict) and ("hosts" in play or "import_playbook" in play))
        ]
