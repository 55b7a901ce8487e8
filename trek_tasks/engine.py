"""The workflow engine (Trek's router): runs a graph over script invocations.

Start at the trigger (outputs = the event payload). When a node finishes, each
outgoing edge is decided: false filters mean "not taken". A node runs once all its
incoming edges are decided and at least one is taken; a node whose incoming edges
are all not taken is skipped and its own edges are not taken (dead-path
elimination). A node's inputs are the bindings of its taken incoming edges, then
``inputs/data.yml`` overrides, checked against the script's para. Independent
branches run concurrently. A failing action stops the run: nodes already running
finish, no new node starts. Ctrl-C stops it at once: the scheduler stops waiting for the
nodes in flight (their calls are abandoned, see ``Workers``), records them and the run
as ``interrupted`` and raises ``Interrupted``.

The engine never prints: it emits typed events (``RunStarted`` ... ``RunFinished``) to
its subscribers, such as the terminal reporter and the run record.
"""

from __future__ import annotations

import functools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from trek_tasks.errors import BadInput, Interrupted, TrekError
from trek_tasks.expr import coerce, decide_filter, render, set_path
from trek_tasks.graph import Edge, Node, Workflow
from trek_tasks.kinds import default_kind
from trek_tasks.paratypes import type_problem

MAX_PARALLEL = 8
WITH_OUTPUTS = ("done", "reused", "skipped")  # the statuses templates read outputs of


class Invoker(Protocol):
    def __call__(
        self, script_id: str, event: dict[str, Any], timeout: float
    ) -> dict[str, Any]: ...  # POST the event to the script; its outputs, or StepFailed


@dataclass(frozen=True)
class NodeRun:
    """What happened at one node (saved in the run record)."""

    id: str
    type: str
    script_id: str = ""
    status: str = "pending"  # done | skipped | failed | reused | not run | interrupted
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    duration: float = 0.0
    error: str = ""
    reason: str = ""  # why it was skipped (the false filters, with values) or reused by cutoff
    code: str = ""  # digest of the script's files, config envs, environment and SDK
    state: str = ""  # digest of the Marvin state scripts read, at the node's start ("": unknown)
    # reused by early cutoff: the upstream nodes that re-ran (or the trigger, for a new event)
    # and left this node's inputs as they were
    cutoff: list[str] = field(default_factory=list)


def script_warning(run: NodeRun) -> str | None:
    """What a script that answered reported as not done, by the bundled scripts'
    convention (outputs ``status: failure``, with a ``message`` when it gives one);
    None when it reported nothing of the kind. The node stays done: its edges follow."""
    if run.status != "done" or run.outputs.get("status") != "failure":
        return None
    message = run.outputs.get("message")
    return str(message) if message else "status: failure"


@dataclass(frozen=True)
class RunResult:
    workflow: str
    run_id: str
    status: str  # done | failed | interrupted
    nodes: dict[str, NodeRun]  # in execution order (``Engine.run``)
    started: float
    duration: float
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes.values()]
        return data


@dataclass(frozen=True)
class RunStarted:
    workflow: str
    run_id: str


@dataclass(frozen=True)
class NodeStarted:
    node: Node
    script_type: str
    interval: float  # seconds waited before it (--next-interval)


@dataclass(frozen=True)
class NodeFinished:
    node: Node
    script_type: str
    run: NodeRun


@dataclass(frozen=True)
class NodeReused:
    node: Node
    script_type: str
    run: NodeRun  # outputs taken from the last run's record


@dataclass(frozen=True)
class NodeFailed:
    node: Node
    script_type: str
    run: NodeRun  # run.error says why


@dataclass(frozen=True)
class NodeSkipped:
    node: Node
    script_type: str
    reason: str


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


EngineEvent = (
    RunStarted | NodeStarted | NodeFinished | NodeReused | NodeFailed | NodeSkipped | RunFinished
)
Subscriber = Callable[[EngineEvent], None]


@dataclass
class RunSettings:
    name: str
    run_id: str
    event: dict[str, Any]
    paras: Mapping[str, Mapping[str, Any]]
    overrides: Mapping[str, Mapping[str, Any]]
    timeout: float
    token: str = ""
    marvin_url: str = ""
    interval: float = 0.0
    reuse: Mapping[str, NodeRun] = field(default_factory=dict)
    code_digests: Mapping[str, str] = field(default_factory=dict)
    script_types: Mapping[str, str] = field(default_factory=dict)  # by script id, from its kind
    # The digest of what scripts can read from the Marvin now ("" or None: unknown, so
    # nothing is reused); asked at each action node's start.
    state_probe: Callable[[], str] | None = None


def script_event(
    script_id: str, inputs: Mapping[str, Any], settings: RunSettings
) -> dict[str, Any]:
    """The event a script receives (SPEC 7)."""
    return {
        "action": script_id,
        "taskId": settings.run_id,
        "token": settings.token,
        "headers": {"Authorization": f"Bearer {settings.token}"} if settings.token else {},
        "body": json.dumps(inputs, ensure_ascii=False),
        "context": {
            "marvin_url": settings.marvin_url,
            "workflow": settings.name,
            "timeout": settings.timeout,  # action_timeout: a tool runner stops its run by it
        },
    }


def apply_defaults(inputs: dict[str, Any], para: Mapping[str, Any]) -> None:
    """Unbound inputs take the ``default`` their para declares (as Marvin does)."""
    fields = para.get("inputs")
    if not isinstance(fields, dict):
        return
    for name, spec in fields.items():
        if isinstance(spec, dict) and "default" in spec and inputs.get(name) is None:
            inputs[name] = spec["default"]


def check_inputs(inputs: Mapping[str, Any], para: Mapping[str, Any]) -> None:
    """Required inputs present and declared types (``$ref`` too) respected, by the rules
    ``validate`` uses (``paratypes``), else one clear error."""
    fields = para.get("inputs") or {}
    for name in para.get("required") or []:
        if inputs.get(name) is None:
            raise BadInput(
                f"required input '{name}' has no value; "
                "bind it on an incoming edge or in inputs/data.yml"
            )
    for name, value in inputs.items():
        spec = fields.get(name) if isinstance(fields, dict) else None
        problem = type_problem(name, value, spec)
        if problem:
            raise BadInput(problem)


SIDE_EFFECTS = "sideEffects"  # the para key of a script that acts on the world when called


def side_effecting(para: Mapping[str, Any]) -> bool:
    """The script says in its para that calling it does something (sends, tags, writes)."""
    return para.get(SIDE_EFFECTS) is True


def must_run(last: NodeRun | None, run: NodeRun, para: Mapping[str, Any]) -> str | None:
    """Why an action node must execute under ``--reuse``; None when it may take ``last``'s
    outputs (``last``: the node in the run reused from, None when it has no such node).

    ``run`` is the node as prepared now: its inputs, its code digest and the digest of the
    Marvin state at its start. Exact inputs, not "nothing upstream re-ran", decide (early
    cutoff): a re-run node that gave its last outputs again leaves the inputs downstream as
    they were. A side-effecting script always runs when reached."""
    if side_effecting(para):
        return f"side-effecting ({SIDE_EFFECTS}: true in its para)"
    if last is None:
        return "not in the last run"
    if last.status not in ("done", "reused"):
        return f"{last.status} in the last run"
    if not run.code or last.code != run.code:
        return "its code changed (files, envs, environment or SDK)"
    if last.inputs != run.inputs:
        names = {*last.inputs, *run.inputs}
        changed = sorted(n for n in names if last.inputs.get(n) != run.inputs.get(n))
        return f"inputs changed: {', '.join(changed)}"
    if not run.state:
        return "the Marvin state is unknown"
    if last.state != run.state:
        return "the Marvin state it reads changed"
    return None


@dataclass(frozen=True)
class Job:
    """All a worker needs to finish one node, prepared by the scheduler.

    ``event`` is what to POST to the script; without one the outcome is known already
    (trigger, selector, reused or refused inputs) and the worker only hands it back.
    """

    run: NodeRun  # inputs, status, outputs and error as far as the scheduler knows
    clock: float  # perf_counter() when preparing began
    event: dict[str, Any] | None = None


def finish(invoke: Invoker, timeout: float, job: Job) -> NodeRun:
    """A worker's part: call the script when the job says so; the node's final record.

    Touches no engine state: the result goes back to the scheduler through the future.
    """
    run = job.run
    if job.event is not None:
        try:
            run = replace(run, status="done", outputs=invoke(run.script_id, job.event, timeout))
        except TrekError as err:
            run = replace(run, status="failed", error=str(err))
    return replace(run, duration=time.perf_counter() - job.clock)


class Workers:
    """At most ``size`` daemon threads finishing jobs, each kept for the next job (so its
    kept-alive connections serve the next node).

    Daemon threads, not a ``ThreadPoolExecutor``'s: a blocking HTTP read cannot be
    interrupted, so on Ctrl-C the scheduler stops waiting for the futures and nobody joins
    a thread still in a call (an executor's are joined on leaving and at exit)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: queue.SimpleQueue[tuple[Future[NodeRun], Callable[[], NodeRun]] | None]
        self.jobs = queue.SimpleQueue()
        self.threads = 0
        self.busy = 0
        self.lock = threading.Lock()

    def submit(self, work: Callable[[], NodeRun]) -> Future[NodeRun]:
        future: Future[NodeRun] = Future()
        with self.lock:
            self.busy += 1
            start = self.busy > self.threads and self.threads < self.size
            self.threads += start
        if start:
            threading.Thread(target=self._work, name="trek-node", daemon=True).start()
        self.jobs.put((future, work))
        return future

    def _work(self) -> None:
        while (item := self.jobs.get()) is not None:
            future, work = item
            try:
                future.set_result(work())
            except BaseException as err:  # handed to the scheduler, which re-raises it
                future.set_exception(err)
            with self.lock:
                self.busy -= 1

    def close(self) -> None:
        """Let every thread end once its job is done (a call in flight is abandoned)."""
        for _ in range(self.threads):
            self.jobs.put(None)


class _Outputs(Mapping[str, Any]):
    """Node id -> outputs of each node done, reused or skipped (``extra`` first): a view
    of the runs, so a template's lookup costs one dict access instead of a copy of every
    node's outputs per node (quadratic in nodes)."""

    def __init__(self, runs: Mapping[str, NodeRun], extra: Mapping[str, Any]) -> None:
        self.runs = runs
        self.extra = extra

    def __getitem__(self, node_id: str) -> Any:
        if node_id in self.extra:
            return self.extra[node_id]
        run = self.runs[node_id]
        if run.status not in WITH_OUTPUTS:
            raise KeyError(node_id)
        return run.outputs

    def __iter__(self) -> Iterator[str]:
        done = (nid for nid, run in self.runs.items() if run.status in WITH_OUTPUTS)
        return iter({**dict.fromkeys(self.extra), **dict.fromkeys(done)})

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Engine:
    """Executes one run of a workflow and tells its subscribers what happens.

    Only the scheduler thread (the one calling ``run``) reads or writes ``runs``,
    ``taken`` and ``fresh``, and only it calls subscribers; workers get a frozen
    :class:`Job` and return a frozen :class:`NodeRun`.
    """

    def __init__(
        self,
        workflow: Workflow,
        settings: RunSettings,
        invoke: Invoker,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        self.workflow = workflow
        self.settings = settings
        self.invoke = invoke
        self.subscribers = tuple(subscribers)
        self.runs = {
            n.id: NodeRun(
                n.id, n.type, n.script_id, code=settings.code_digests.get(n.script_id, "")
            )
            for n in workflow.nodes
        }
        self.taken: dict[int, bool] = {}
        self.not_taken: dict[int, str] = {}  # why an edge was not taken, by edge index
        self.order: list[str] = []  # node ids in the order they started
        self.fresh: set[str] = set()  # re-ran this run (the trigger: with a new event)

    def _emit(self, event: EngineEvent) -> None:
        for subscriber in self.subscribers:
            subscriber(event)

    def _script_type(self, node: Node) -> str:
        if node.type != "action":
            return "not_script"
        return self.settings.script_types.get(node.script_id) or default_kind().script_type

    def _context(self, extra: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        return _Outputs(self.runs, extra or {})

    def _inputs(self, node: Node) -> dict[str, Any]:
        """Bindings of the taken incoming edges, then the data.yml overrides."""
        inputs: dict[str, Any] = {}
        context = self._context()
        for edge in self.workflow.incoming(node.id):
            if not self.taken.get(edge.index):
                continue
            for item in edge.binding:
                prop = str(item.get("property", ""))
                try:
                    value = coerce(render(item.get("value"), context), item.get("type"))
                except TrekError as err:
                    raise BadInput(f"edge {edge.key} binding '{prop}': {err.message}") from None
                set_path(inputs, prop, value)
            for prop, override in (self.settings.overrides.get(edge.key) or {}).items():
                if isinstance(override, dict):
                    value = coerce(override.get("value"), override.get("type"))
                    set_path(inputs, str(prop), value)
        return inputs

    def _prepare(self, node: Node) -> Job:
        """Inputs, reuse and freshness of a node whose incoming edges are all decided."""
        run = replace(self.runs[node.id], started=time.time())
        clock = time.perf_counter()
        try:
            if node.type == "trigger":
                run = replace(run, status="done", outputs=dict(self.settings.event))
                last = self.settings.reuse.get(node.id)
                if last is None or last.outputs != run.outputs:
                    self.fresh.add(node.id)
            elif node.type == "selector":
                inputs = self._inputs(node)
                flowed: dict[str, Any] = {}
                for edge in self.workflow.incoming(node.id):
                    if self.taken.get(edge.index):
                        flowed.update(self.runs[edge.source].outputs)
                run = replace(run, status="done", inputs=inputs, outputs={**flowed, **inputs})
            elif node.type == "action":
                inputs = self._inputs(node)
                para = self.settings.paras.get(node.script_id, {})
                apply_defaults(inputs, para)
                probe = self.settings.state_probe
                run = replace(run, inputs=inputs, state=probe() if probe else "")
                last = self.settings.reuse.get(node.id)
                if last is not None and must_run(last, run, para) is None:
                    cutoff = self._cutoff(node)
                    reused = replace(run, status="reused", outputs=last.outputs, cutoff=cutoff)
                    return Job(replace(reused, reason=self._cutoff_reason(cutoff)), clock)
                self.fresh.add(node.id)
                check_inputs(run.inputs, para)
                return Job(run, clock, script_event(node.script_id, run.inputs, self.settings))
            else:
                run = replace(run, status="done")
        except TrekError as err:
            run = replace(run, status="failed", error=str(err))
        return Job(run, clock)

    def _cutoff(self, node: Node) -> list[str]:
        """The nearest nodes up the taken edges that re-ran (in the order they started):
        those whose unchanged outputs let ``node`` be reused; [] when none re-ran."""
        found: set[str] = set()
        seen: set[str] = set()
        stack = [node.id]
        while stack:
            for edge in self.workflow.incoming(stack.pop()):
                if not self.taken.get(edge.index) or edge.source in seen:
                    continue
                seen.add(edge.source)
                if edge.source in self.fresh:
                    found.add(edge.source)
                else:
                    stack.append(edge.source)
        return [node_id for node_id in self.order if node_id in found]

    def _cutoff_reason(self, cutoff: list[str]) -> str:
        """``same inputs after node 2 (s1) re-ran``: what the summary says of a node reused
        by early cutoff ("" for a node nothing upstream of re-ran)."""
        if not cutoff:
            return ""
        parts = []
        for node_id in cutoff:
            run = self.runs[node_id]
            if run.type == "trigger":
                parts.append("the event changed")
            else:
                parts.append(f"node {node_id} ({run.script_id}) re-ran")
        return f"same inputs after {' and '.join(parts)}"

    def _decide(self, node: Node) -> None:
        """Decide the outgoing edges of a finished or skipped node."""
        run = self.runs[node.id]
        for edge in self.workflow.outgoing(node.id):
            if run.status == "skipped":
                self.taken[edge.index] = False
                self.not_taken[edge.index] = f"node {node.id} was skipped"
            elif edge.filters:
                context = self._context({node.id: run.outputs})
                try:
                    decision = decide_filter(edge.filters, context)
                except TrekError as err:
                    raise BadInput(f"edge {edge.key} filters: {err.message}") from None
                self.taken[edge.index] = decision.holds
                if not decision.holds:
                    self.not_taken[edge.index] = f"edge {edge.key}: {decision.why}"
            else:
                self.taken[edge.index] = True

    def _skip_reason(self, node: Node) -> str:
        """Why no incoming edge of ``node`` was taken: each edge's false filter with the
        values it compared, or the skipped node it comes from."""
        edges = self.workflow.incoming(node.id)
        whys = list(dict.fromkeys(self.not_taken[e.index] for e in edges))
        if all(self.runs[e.source].status == "skipped" for e in edges):
            return f"no incoming edge taken: {'; '.join(whys)}"
        return "; ".join(whys)

    def _ready(self, node: Node) -> bool | None:
        """True to run, False to skip, None while an incoming edge is undecided."""
        incoming: list[Edge] = self.workflow.incoming(node.id)
        if any(e.index not in self.taken for e in incoming):
            return None
        return any(self.taken[e.index] for e in incoming)

    def _finished(self, node: Node, run: NodeRun) -> None:
        """Take a worker's result in (scheduler thread) and tell the subscribers."""
        self.runs[node.id] = run
        kind = self._script_type(node)
        if run.status == "failed":
            self._emit(NodeFailed(node, kind, run))
        elif run.status == "reused":
            self._emit(NodeReused(node, kind, run))
        else:
            self._emit(NodeFinished(node, kind, run))

    def run(self) -> RunResult:
        started = time.time()
        clock = time.perf_counter()
        self._emit(RunStarted(self.settings.name, self.settings.run_id))
        pending = {n.id: n for n in self.workflow.nodes}
        trigger = next(n for n in self.workflow.nodes if n.type == "trigger")
        error = ""
        interrupted, where = False, ""
        futures: dict[Future[NodeRun], tuple[Node, Job]] = {}
        workers = Workers(MAX_PARALLEL)

        def submit(node: Node) -> None:
            del pending[node.id]
            self.order.append(node.id)
            if self.settings.interval:
                time.sleep(self.settings.interval)
            self._emit(NodeStarted(node, self._script_type(node), self.settings.interval))
            job = self._prepare(node)
            work = functools.partial(finish, self.invoke, self.settings.timeout, job)
            futures[workers.submit(work)] = (node, job)

        try:
            submit(trigger)
            while futures:
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for future in done:
                    node, _job = futures.pop(future)
                    run = future.result()
                    self._finished(node, run)
                    if run.status == "failed":
                        error = (
                            error or f"node {node.id} ({node.script_id or node.type}): {run.error}"
                        )
                        continue
                    if error:
                        continue
                    try:
                        self._settle(node, pending, submit)
                    except TrekError as err:
                        error = str(err)
        except KeyboardInterrupt:
            interrupted = True
            where = self._interrupt([job for _, job in futures.values()])
            error = f"interrupted {where}"
        finally:
            workers.close()
        for node_id, node_run in self.runs.items():
            if node_run.status == "pending":  # never started, or Ctrl-C while preparing it
                self.runs[node_id] = replace(node_run, status="not run")
        # Execution order: the nodes that started, as they started, then the others in
        # graph order; the summary and the run record list them so.
        begun = set(self.order)
        ordered = [*self.order, *(n for n in self.runs if n not in begun)]
        result = RunResult(
            self.settings.name,
            self.settings.run_id,
            "interrupted" if interrupted else "failed" if error else "done",
            {node_id: self.runs[node_id] for node_id in ordered},
            started,
            time.perf_counter() - clock,
            error,
        )
        self._emit(RunFinished(result))
        if interrupted:
            raise Interrupted(f"workflow [{self.settings.name}] stopped {where}")
        return result

    def _interrupt(self, running: list[Job]) -> str:
        """Record the nodes in flight as interrupted (their calls are abandoned); where the
        run stopped (``during node 2 (detectredis)``)."""
        for job in running:
            duration = time.perf_counter() - job.clock
            run = replace(job.run, status="interrupted", error="interrupted", duration=duration)
            self.runs[run.id] = run
        nodes = [f"node {job.run.id} ({job.run.script_id or job.run.type})" for job in running]
        return f"during {', '.join(nodes)}" if nodes else "between nodes"

    def _settle(self, node: Node, pending: dict[str, Node], submit: Callable[[Node], None]) -> None:
        """Decide ``node``'s edges, then start or skip every node that became decidable."""
        queue = [node]
        while queue:
            current = queue.pop()
            self._decide(current)
            for edge in self.workflow.outgoing(current.id):
                target = pending.get(edge.target)
                if target is None:
                    continue
                ready = self._ready(target)
                if ready is None:
                    continue
                if ready:
                    submit(target)
                else:
                    del pending[target.id]
                    reason = self._skip_reason(target)
                    self.runs[target.id] = replace(
                        self.runs[target.id], status="skipped", reason=reason
                    )
                    self._emit(NodeSkipped(target, self._script_type(target), reason))
                    queue.append(target)
