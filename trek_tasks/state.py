"""Where trek keeps its state: every path under a project's ``.trek/`` and the store.

``.trek/`` holds ``config.json`` (written by people), ``doit.db`` (doit's dep file),
``validated.json``, ``workflow.json`` (the workflow file parsed), ``graph.gv`` and its
images, ``env/`` (per script a handle
``<id>.json`` and a log ``<id>.log``; the local Marvin's ``marvin.json``, ``.log``,
``.secret``), ``marvin.sqlite``, ``runs/`` (one record per run, ``last.json``, and each run's
``<id>.events.jsonl``), ``portal/`` (the output of the portal's last action),
``run.lock``, ``up.lock``, ``forkservers/`` (per script environment the local runtime's
fork server: state and log) and ``images/`` (per script the image its last build made).
Built environments live in the store (``store_dir()``), shared by projects, beside a
record of which ones each project uses (``store.py``: ``envs/``, ``projects/``); so do
the wheelhouses images install from (``containers/wheelhouse.py``: ``wheels/``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".trek"


def store_dir() -> Path:
    """``$TREK_HOME``, else ``$XDG_CACHE_HOME/trek-tasks``, else ``~/.cache/trek-tasks``."""
    if os.environ.get("TREK_HOME"):
        return Path(os.environ["TREK_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "trek-tasks"


@dataclass(frozen=True)
class StateLayout:
    """The state paths of the project (or lone script folder) at ``root``."""

    root: Path

    @classmethod
    def for_project(cls, root: Path) -> StateLayout:
        return cls(root)

    @classmethod
    def of_identity(cls, identity: str) -> StateLayout:
        """The layout of the project whose processes ``identity`` tags."""
        return cls(Path(identity))

    @property
    def identity(self) -> str:
        """What tags the processes this project starts (exactly this root, no prefix)."""
        return str(self.root)

    @property
    def dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def config(self) -> Path:
        return self.dir / "config.json"

    @property
    def dep_file(self) -> Path:
        return self.dir / "doit.db"

    @property
    def validated(self) -> Path:
        return self.dir / "validated.json"

    @property
    def parsed_workflow(self) -> Path:
        """The workflow file's data with a digest of its text (``files.load_yaml``'s
        ``keep``): read instead of the YAML while the text is unchanged."""
        return self.dir / "workflow.json"

    @property
    def graph(self) -> Path:
        """The DOT file; its images are written next to it."""
        return self.dir / "graph.gv"

    @property
    def status_graph(self) -> Path:
        """``trek graph --status``'s DOT file (nodes coloured by a run); images beside it."""
        return self.dir / "graph-status.gv"

    @property
    def env_dir(self) -> Path:
        return self.dir / "env"

    def handle(self, script_id: str) -> Path:
        return self.env_dir / f"{script_id}.json"

    def log(self, script_id: str) -> Path:
        return self.env_dir / f"{script_id}.log"

    @property
    def runblcks_log(self) -> Path:
        """The log of ``trek runblcks`` in a script folder."""
        return self.dir / "runblcks.log"

    @property
    def marvin_state(self) -> Path:
        return self.env_dir / "marvin.json"

    @property
    def marvin_log(self) -> Path:
        return self.env_dir / "marvin.log"

    @property
    def marvin_secret(self) -> Path:
        """The generated secret (0600), used when config sets no ``marvin_secret``."""
        return self.env_dir / "marvin.secret"

    @property
    def marvin_secret_run(self) -> Path:
        """The secret the running local Marvin reads (so it never shows in ``ps``)."""
        return self.env_dir / "marvin.secret.run"

    @property
    def marvin_db(self) -> Path:
        return self.dir / "marvin.sqlite"

    @property
    def runs(self) -> Path:
        return self.dir / "runs"

    def run_record(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def run_events(self, run_id: str) -> Path:
        """The run's events as JSON lines, appended while it runs (``runlog.py``)."""
        return self.runs / f"{run_id}.events.jsonl"

    @property
    def portal_log(self) -> Path:
        """What the last action the portal started (a run, a shutdown) printed."""
        return self.dir / "portal" / "action.log"

    @property
    def replays(self) -> Path:
        """A folder per ``trek replay`` in progress: its throwaway Marvin's database,
        secret and log (``recorded.py``), removed when the replay ends."""
        return self.dir / "replays"

    @property
    def last_run(self) -> Path:
        return self.runs / "last.json"

    @property
    def run_lock(self) -> Path:
        return self.dir / "run.lock"

    @property
    def up_lock(self) -> Path:
        """Held while a process of the project is brought up (two runs start one each)."""
        return self.dir / "up.lock"

    @property
    def fork_servers(self) -> Path:
        """Per script environment ``<env key>.json`` and ``.log``: the fork server the
        local runtime starts the scripts of that environment from."""
        return self.dir / "forkservers"

    @property
    def images_dir(self) -> Path:
        """Per script ``<id>.json``: the image its last build made (tag, id, digest)."""
        return self.dir / "images"

    def image_record(self, script_id: str) -> Path:
        return self.images_dir / f"{script_id}.json"

    @property
    def store(self) -> Path:
        """The environment store (``store_dir()``: read when asked, so TREK_HOME applies)."""
        return store_dir()
