"""doit tasks built from the project's data.

``namespace(project_dir)`` returns what a dodo file holds: ``DOIT_CONFIG`` plus one
``task_*`` creator per Trek step. Project dodo files, the repository's root dodo file
and the ``trek`` CLI all use it, with the same dep file (``.trek/doit.db``), so
``trek`` and ``doit`` share up-to-date state.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from trek_tasks import __version__
from trek_tasks.checks import READS_DEPS, Check, SettingsCheck
from trek_tasks.errors import BadInput, TrekError
from trek_tasks.options import TaskOptions
from trek_tasks.project import PACKAGES, Project, Script, find_root
from trek_tasks.state import StateLayout

TaskDict = dict[str, Any]
STALE = "_stale"  # the pack subtask removing zips of gone scripts (no script id has a "_" first)
RUN_INPUTS = "inputs"  # execute's saved value: the run inputs it ran with (``run_inputs``)
F = TypeVar("F", bound=Callable[..., Any])


def after_install(creator: F) -> F:
    """Create these tasks after ``install`` ran: they read the scripts it installs."""
    from doit import create_after

    return create_after(executed="install")(creator)  # type: ignore[no-any-return]


def trek_failure(error: TrekError) -> Any:
    """A doit ``TaskFailed`` that keeps the user-facing error for the ``trek`` CLI."""
    from doit.exceptions import TaskFailed

    failed = TaskFailed(f"{error}\n{error.detail}" if error.detail else str(error))
    failed.trek_error = error
    return failed


def user_action(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """A doit python-action that reports ``TrekError`` as a one-line task failure."""

    @functools.wraps(func)
    def run() -> Any:
        try:
            result = func(*args, **kwargs)
        except TrekError as err:
            return trek_failure(err)
        return result if isinstance(result, dict) else None

    return (run,)


class ProjectTasks:
    """Task creators for one project; the project is read once, on first use."""

    def __init__(
        self, root: Path, project: Project | None = None, options: TaskOptions | None = None
    ) -> None:
        self.root = root
        self.options = options or TaskOptions()
        self._project = project.with_runtime(self.options.runtime) if project else None
        self._env: Any = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project.load(self.root).with_runtime(self.options.runtime)
        return self._project

    @after_install
    def task_validate(self) -> TaskDict:
        """Check graph.yml, paras, packages.json, inputs and config; all errors at once."""
        from trek_tasks.validate import validation_inputs, write_validated

        project = self.project
        target = self.project.state.validated
        targets = [self._dep(target)]
        return {
            "actions": [user_action(write_validated, project, target)],
            "file_dep": self._deps(validation_inputs(project)),
            "targets": targets,
            "uptodate": [_config_changed({"trek": __version__, "scripts": _script_ids(project)})],
            "clean": [self._remove(targets)],
            "verbosity": 2,
        }

    def task_install(self) -> TaskDict:
        """Install the scripts of packages.json into trek_packages/, as the lock pins them."""
        root = self.project.root
        packages = root / PACKAGES

        def in_sync() -> str | None:
            from trek_tasks.install import sync_problem

            return sync_problem(root)

        def install() -> None:
            from trek_tasks.install import sync_project

            sync_project(root)
            self._project = None  # tasks created after this one read the new scripts
            self._env = None

        return {
            "actions": [user_action(install)],
            # Not the lock: this task writes it, and in_sync compares it with trek_packages/.
            "file_dep": [self._dep(packages)] if packages.is_file() else [],
            "uptodate": [Check(in_sync)],
            "verbosity": 2,
        }

    def task_graph(self) -> TaskDict:
        """Draw the workflow: .trek/graph.gv plus PNG and SVG images."""
        from trek_tasks.graph import image_paths
        from trek_tasks.steps import graph_file, write_graph

        project = self.project
        gv = graph_file(project)
        targets = self._deps((gv, *image_paths(gv)))  # a deleted one is redrawn
        return {
            "actions": [user_action(write_graph, project)],
            "file_dep": [self._dep(project.entry)],
            "targets": targets,
            "uptodate": [_config_changed({"trek": __version__})],
            "clean": [self._remove(targets)],
            "verbosity": 2,
        }

    def task_pack(self) -> Iterator[TaskDict]:
        """Zip the workflow and each own script into bin/ (same input, same bytes)."""
        from trek_tasks.pack import BIN, script_zip_name, workflow_zip_name
        from trek_tasks.steps import pack_script_to, pack_workflow_to, remove_stale_zips

        project = self.project
        bin_dir = project.root / BIN
        workflow_zip = bin_dir / workflow_zip_name(project)
        auto_pos = self.options.auto_pos
        sources = [project.root / "manifest.json", project.entry, project.root / "packages.json"]
        yield {
            "name": "workflow",
            "doc": "zip manifest.json, the workflow and packages.json",
            "actions": [user_action(pack_workflow_to, project, workflow_zip, auto_pos)],
            "file_dep": self._deps(p for p in sources if p.is_file()),
            "task_dep": ["validate"],
            "targets": [self._dep(workflow_zip)],
            "uptodate": [_config_changed({"trek": __version__, "auto_pos": auto_pos})],
            "clean": [self._remove([self._dep(workflow_zip)])],
            "verbosity": 2,
        }
        for script in project.own.values():
            out = bin_dir / script_zip_name(script)
            yield {
                "name": script.id,
                "doc": f"zip the {script.id} script (para, openfaas.yml, handler/)",
                "actions": [user_action(pack_script_to, script, out)],
                "file_dep": self._deps(script.files()),
                "task_dep": ["validate"],
                "targets": [self._dep(out)],
                "uptodate": [_config_changed({"trek": __version__})],
                "clean": [self._remove([self._dep(out)])],
                "verbosity": 2,
            }

        def nothing_stale() -> str | None:
            from trek_tasks.files import display
            from trek_tasks.pack import stale_script_zips

            stale = [display(path, project.root) for path in stale_script_zips(project)]
            return f"{', '.join(stale)} left from gone scripts" if stale else None

        yield {
            "name": STALE,
            "doc": "remove the bin/ zips of own scripts that no longer exist",
            "actions": [user_action(remove_stale_zips, project)],
            "task_dep": ["validate"],
            "uptodate": [Check(nothing_stale)],
            "verbosity": 2,
        }

    def _dep(self, path: Path) -> str:
        """A path as the tasks name it to doit (``depstate``: relative to the root)."""
        from trek_tasks.depstate import dep_path

        return dep_path(self.root, path)

    def _deps(self, paths: Iterable[Path]) -> list[str]:
        return [self._dep(path) for path in paths]

    def _remove(self, targets: list[str]) -> tuple[Any, ...]:
        """The ``clean`` action removing ``targets`` (read from the root, not the cwd)."""
        from trek_tasks.depstate import remove_targets

        return (remove_targets, [self.root, targets])

    def _environment(self) -> Any:
        from trek_tasks.environment import Environment

        if self._env is None:
            self._env = Environment(self.project)
        return self._env

    @functools.cached_property
    def docker_client(self) -> Any:
        """The Docker daemon's client (``containers.client.connect``), made on first use."""
        from trek_tasks.containers.client import connect

        return connect()

    @after_install
    def task_build(self) -> Iterator[TaskDict]:
        """Build a Docker image of each blcks script the workflow runs (own and installed);
        up to date when the daemon has an image of the current content under its tag."""
        from trek_tasks.containers.images import image_scripts

        project = self.project

        def built(script: Script) -> str | None:
            import docker

            from trek_tasks.containers.images import is_built

            try:
                if is_built(self.docker_client, script, project.config, project.state):
                    return None
            except (TrekError, docker.errors.DockerException) as err:
                return f"the Docker daemon cannot say: {err}"  # the action says what is wrong
            return "no image of its current content"

        def build(script: Script) -> None:
            from trek_tasks.containers.images import build_script

            build_script(self.docker_client, script, project.config, project.state)

        for script in image_scripts(project):
            yield {
                "name": script.id,
                "doc": f"the Docker image of {script.id} (.trek/images/{script.id}.json)",
                "actions": [user_action(build, script)],
                "targets": [self._dep(project.state.image_record(script.id))],
                "uptodate": [Check(functools.partial(built, script))],
                "task_dep": ["validate"],
                "verbosity": 2,
            }

    @after_install
    def task_push(self) -> Iterator[TaskDict]:
        """Push each image ``build`` made to the registry its tag names; up to date when
        the registry holds that tag at that image (the registry is asked, nothing local)."""
        from trek_tasks.containers.images import image_scripts

        project = self.project

        def pushed(script: Script) -> str | None:
            import docker

            from trek_tasks.containers.registry import is_pushed

            try:
                if is_pushed(self.docker_client, script, project.config):
                    return None
            except (TrekError, docker.errors.DockerException) as err:
                return f"the registry cannot say: {err}"  # the action says what is wrong
            return "the registry lacks this image under its tag"

        def push(script: Script) -> None:
            from trek_tasks.containers.registry import push_script

            push_script(self.docker_client, script, project.config)

        for script in image_scripts(project):
            yield {
                "name": script.id,
                "doc": f"{script.id}'s image in its registry",
                "actions": [user_action(push, script)],
                "uptodate": [Check(functools.partial(pushed, script))],
                "meta": {READS_DEPS: [f"build:{script.id}"]},  # its check reads the image
                # The group: build:<id> may not be created yet (doit resolves a sub-task of
                # a delayed creator by its basename only), so every image is built first.
                "task_dep": ["build"],
                "verbosity": 2,
            }

    def task_deploy(self) -> Iterator[TaskDict]:
        """Upload each own script's zip, then the workflow's, to Marvin (`trek deploy -a`);
        up to date when Marvin holds the zip in bin/ under its id and version (Marvin is
        asked, nothing local)."""
        from trek_tasks.deploy import Artifact
        from trek_tasks.pack import BIN, script_zip_name, workflow_zip_name

        project = self.project
        options = self.options
        bin_dir = project.root / BIN

        def client() -> Any:
            from trek_tasks.localrun import marvin_for

            marvin = marvin_for(project.root, project.config)
            if not marvin.url:
                raise BadInput("no Marvin to deploy to; set marvin_url and marvin_JWT")
            return marvin.client

        def held(artifact: Artifact) -> str | None:
            from trek_tasks.deploy import is_deployed
            from trek_tasks.marvin import target

            try:
                marvin = target.resolve(project.config, self._environment())
            except TrekError as err:
                return str(err)  # no local Marvin running: the action starts it and asks
            if marvin.url and is_deployed(marvin.client, artifact):
                return None
            return f"Marvin lacks {artifact.id} {artifact.version} as bin/ holds it"

        def upload(artifact: Artifact) -> None:
            from trek_tasks.deploy import deploy_one

            deploy_one(client(), artifact, lambda _: options.overwrite, options.projects)

        before = ["push"] if options.autobuildpush else []
        scripts = list(project.own.values())
        for script in scripts:
            artifact = Artifact(
                "script", script.id, script.version, bin_dir / script_zip_name(script)
            )
            yield {
                "name": script.id,
                "doc": f"{script.id}'s zip on Marvin",
                "actions": [user_action(upload, artifact)],
                "uptodate": [Check(functools.partial(held, artifact))],
                "task_dep": [*before, f"pack:{script.id}"],
                "meta": {READS_DEPS: [f"pack:{script.id}"]},  # its check reads the zip
                "verbosity": 2,
            }
        workflow = Artifact(
            "template",
            project.workflow.template_id,
            project.workflow.version,
            bin_dir / workflow_zip_name(project),
        )
        yield {
            "name": "workflow",
            "doc": "the workflow's zip on Marvin, after every own script's",
            "actions": [user_action(upload, workflow)],
            "uptodate": [Check(functools.partial(held, workflow))],
            "meta": {READS_DEPS: ["pack:workflow"]},  # its check reads the zip
            "task_dep": [*before, "pack:workflow", *(f"deploy:{s.id}" for s in scripts)],
            "verbosity": 2,
        }

    @after_install
    def task_env(self) -> Iterator[TaskDict]:
        """Build each script's environment (shared by scripts with equal requirements)."""

        def ready(script: Script) -> str | None:
            return self._environment().runtime.env_problem(script)

        def install(script: Script) -> None:
            self._environment().install_env(script)

        for script in self.project.used_scripts():
            yield {
                "name": script.id,
                "doc": f"environment for {script.id}'s requirements",
                "actions": [user_action(install, script)],
                "uptodate": [Check(functools.partial(ready, script))],
                "verbosity": 2,
            }

    def task_test(self) -> Iterator[TaskDict]:
        """Run each own script's unit tests and replay tests/recorded/, again on a change."""
        from trek_tasks.script_tests import has_tests, test_files

        def run(script: Script) -> dict[str, str]:
            from trek_tasks.runtimes.base import sdk_hash
            from trek_tasks.script_tests import run_tests

            sdk = sdk_hash()
            env = self._environment()
            env.install_env(script)
            run_tests(script, env.runtime.env_dir(script))
            return {"sdk": sdk}

        def same_sdk(task: Any, values: dict[str, Any]) -> str | None:
            from trek_tasks.runtimes.base import sdk_hash

            return None if values.get("sdk") == sdk_hash() else "blcks SDK changed"

        for script in self.project.own.values():
            if has_tests(script):
                yield {
                    "name": script.id,
                    "doc": f"{script.id}'s tests/ against its handler",
                    "actions": [user_action(run, script)],
                    "file_dep": self._deps(test_files(script)),
                    "uptodate": [_config_changed({"trek": __version__}), Check(same_sdk)],
                    "verbosity": 2,
                }
        recorded = self._test_recorded(same_sdk)
        if recorded is not None:
            yield recorded

    def _test_recorded(self, same_sdk: Callable[..., str | None]) -> TaskDict | None:
        """``test:recorded``: replay tests/recorded/ (``trek replay``), again when a
        fixture, the code of a script it calls, the config envs or the SDK change."""
        from trek_tasks.recorded import Fixture, check, fixture_folders, replay

        project = self.project
        folders = fixture_folders(project)
        if not folders:
            return None

        def run() -> dict[str, str]:
            from trek_tasks.runtimes.base import sdk_hash

            sdk = sdk_hash()
            check(replay(project, folders), project.root)
            return {"sdk": sdk}

        task: TaskDict = {
            "name": "recorded",
            "doc": "the recorded runs of tests/recorded/ replayed against the current code",
            "actions": [user_action(run)],
            "uptodate": [
                _config_changed({"trek": __version__, "envs": project.config["envs"]}),
                Check(same_sdk),
            ],
            "verbosity": 2,
        }
        try:
            fixtures = [Fixture.load(folder, project.root) for folder in folders]
        except BadInput as err:
            return {**task, "actions": [functools.partial(trek_failure, err)], "uptodate": []}
        scripts = {n.script: project.scripts.get(n.script) for f in fixtures for n in f.nodes}
        code = [path for script in scripts.values() if script for path in script.files()]
        return {**task, "file_dep": self._deps([*(p for f in fixtures for p in f.files()), *code])}

    @after_install
    def task_up(self) -> Iterator[TaskDict]:
        """Run each script, serving its current code (restarts only what changed or died)."""

        def fresh(script: Script) -> str | None:
            return self._environment().stale_reason(script)

        def start(script: Script) -> None:
            from trek_tasks.localrun import up_script

            up_script(self._environment(), script)

        def marvin_fresh() -> str | None:
            from trek_tasks.marvin.target import is_remote

            config = self.project.config
            return None if is_remote(config) else self._environment().marvin_stale_reason()

        def start_marvin() -> None:
            from trek_tasks.localrun import up_marvin

            up_marvin(self._environment())

        def stop(script_id: str) -> None:
            self._environment().down(script_id)

        def stop_marvin() -> None:
            self._environment().marvin_down()

        for script in self.project.used_scripts():
            yield {
                "name": script.id,
                "doc": f"{script.id} running with its current code and config envs",
                "actions": [user_action(start, script)],
                "uptodate": [Check(functools.partial(fresh, script))],
                "task_dep": ["env"],  # the group: env:<id> may not be created yet
                "clean": [user_action(stop, script.id)],
                "verbosity": 2,
            }
        yield {
            "name": "marvin",
            "doc": "the local Marvin answering, seeded from the current inventory",
            "actions": [user_action(start_marvin)],
            "uptodate": [Check(marvin_fresh)],
            "clean": [user_action(stop_marvin)],
            "verbosity": 2,
        }

    @after_install
    def task_initenv(self) -> TaskDict:
        """Bring up every script the graph uses and the local Marvin; stop the scripts
        it no longer uses."""

        def nothing_unused() -> str | None:
            unused = self._environment().unused_ids()
            return f"{', '.join(unused)} running but no longer used" if unused else None

        def close_unused() -> None:
            from trek_tasks.localrun import close_unused

            close_unused(self._environment())

        missing = self.project.missing_scripts()
        task: TaskDict = {
            "actions": [user_action(close_unused)],
            "task_dep": ["up"],
            "uptodate": [Check(nothing_unused)],
        }
        if missing:
            error = BadInput(f"scripts not installed: {', '.join(missing)}; run `trek install`")
            task = {"actions": [lambda: trek_failure(error)]}
        return task

    @after_install
    def task_execute(self) -> TaskDict:
        """Run the workflow (`doit run`); again only when graph, inputs, config or code changed.

        doit reserves the name ``run`` for its command, so the task is ``execute`` and is
        the default task: ``doit`` and ``doit run`` run the workflow.
        """
        project = self.project
        options = self.options
        checked: list[dict[str, str]] = []  # what the up-to-date check read, for the run

        def execute() -> dict[str, Any]:
            from trek_tasks.localrun import run_inputs, run_workflow

            # Read before the run (an edit during it means run again): by the check, when
            # doit asked it, as doit digests a task's file_dep when it checks them.
            inputs = checked.pop() if checked else run_inputs(project)
            run_workflow(
                project,
                detail=options.detail,
                interval=options.interval,
                reuse=options.reuse,
                event=options.event,
            )
            return {RUN_INPUTS: inputs}

        def same_inputs(task: Any, values: dict[str, Any]) -> str | None:
            from trek_tasks.localrun import run_changes, run_inputs

            if options.always_run:
                return "`trek run` runs the workflow whatever changed"
            checked[:] = [run_inputs(project)]
            last = values.get(RUN_INPUTS)
            if not isinstance(last, dict):
                return "never run"
            return run_changes(last, checked[0])

        # No file_dep: doit compares bytes, run_inputs what the graph and inputs say.
        return {
            "actions": [user_action(execute)],
            "task_dep": ["validate", "initenv"],
            "uptodate": [Check(same_inputs)],
            "verbosity": 2,
        }


def _script_ids(project: Project) -> dict[str, str]:
    from trek_tasks.depstate import dep_path

    return {s.id: dep_path(project.root, s.path) for s in project.scripts.values()}


def _config_changed(value: dict[str, Any]) -> Check:
    """doit's ``config_changed``, naming the settings that changed."""
    return SettingsCheck(value)


def doit_config(root: Path) -> dict[str, Any]:
    from trek_tasks.depstate import project_checker

    return {
        "dep_file": str(StateLayout.for_project(root).dep_file),
        "backend": "sqlite3",
        "check_file_uptodate": project_checker(root),  # task paths are relative to root
        "default_tasks": ["execute"],
        "verbosity": 2,
    }


def namespace(
    project_dir: str | Path,
    project: Project | None = None,
    options: TaskOptions | None = None,
) -> dict[str, Any]:
    """``DOIT_CONFIG`` and the ``task_*`` creators for the project at ``project_dir``.

    In a dodo file, the doit variable ``project=<path>`` overrides ``project_dir``,
    ``auto_pos=1`` asks ``pack:workflow`` for laid-out node positions, and ``deploy`` takes
    ``overwrite=1``, ``autobuildpush=1`` and ``projects=P,...``.
    """
    from doit import get_var
    from doit.exceptions import InvalidDodoFile

    from trek_tasks import reporter

    reporter.attach()  # steps report through events; under plain `doit` too
    chosen = get_var("project") or project_dir
    try:
        root = project.root if project else find_root(Path(chosen))
    except TrekError as err:
        raise InvalidDodoFile(str(err)) from None
    chosen_options = options or TaskOptions()
    chosen_options = replace(
        chosen_options,
        auto_pos=chosen_options.auto_pos or _flag("auto_pos"),
        overwrite=chosen_options.overwrite or _flag("overwrite"),
        autobuildpush=chosen_options.autobuildpush or _flag("autobuildpush"),
    )
    if get_var("projects"):
        from trek_tasks.deploy import parse_projects

        try:
            chosen_options = replace(chosen_options, projects=parse_projects(get_var("projects")))
        except TrekError as err:
            raise InvalidDodoFile(str(err)) from None
    from trek_tasks.files import display

    state = StateLayout.for_project(root).dir
    try:  # doit opens its dep file there before any task runs (a fresh clone has none)
        state.mkdir(exist_ok=True)
    except OSError as err:
        raise InvalidDodoFile(f"{display(state)}: cannot make it: {err.strerror}") from None
    tasks = ProjectTasks(root, project, chosen_options)
    ns: dict[str, Any] = {"DOIT_CONFIG": doit_config(root)}
    for name in vars(ProjectTasks):
        if name.startswith("task_"):
            ns[name] = _guarded(getattr(tasks, name))
    return ns


def _flag(name: str) -> bool:
    """A doit variable given as a switch (``overwrite=1``; ``0`` or nothing is off)."""
    from doit import get_var

    return (get_var(name) or "") not in ("", "0")


def _guarded(creator: Callable[[], Any]) -> Callable[[], Any]:
    """Turn a project error during task creation into doit's one-line dodo error, from a
    generator creator too (doit runs it after the call returned)."""

    def create() -> Any:
        with _as_dodo_error():
            created = creator()
        return _guarded_items(created) if inspect.isgenerator(created) else created

    # The creator's doc and doit's marks on it (``create_after``'s), but no ``__wrapped__``
    # (as ``functools.wraps`` would set): doit orders creators by ``inspect.getsourcelines``,
    # which follows it and would tokenize each creator's whole body at every load (5 ms).
    # All on this one line, the creators come in the order doit lists a module's names.
    create.__doc__ = creator.__doc__
    vars(create).update(getattr(creator, "__dict__", {}))
    return create


def _guarded_items(created: Iterator[Any]) -> Iterator[Any]:
    with _as_dodo_error():
        yield from created


@contextlib.contextmanager
def _as_dodo_error() -> Iterator[None]:
    from doit.exceptions import InvalidDodoFile

    try:
        yield
    except TrekError as err:
        raise InvalidDodoFile(str(err)) from None
