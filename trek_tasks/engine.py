"""The workflow engine (Trek's router): runs a graph over script invocations.

Start at the trigger (outputs = the event payload). When a node finishes, each
outgoing edge is decided: false filters mean "not taken". A node runs once all its
incoming edges are decided and at least one is taken; a node whose incoming edges
are all not taken is skipped and its own edges are not taken (dead-path
elimination). A node's inputs are the bindings of its taken incoming edges, then
``inputs/data.yml`` overrides, checked against the script's para. Independent
branches run concurrently. A failing action stops the run: nodes already running
finish, no new node starts.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from trek_tasks.errors import BadInput, StepFailed, TrekError
from trek_tasks.expr import coerce, evaluate_filter, render, set_path
from trek_tasks.graph import Edge, Node, Workflow

MAX_PARALLEL = 8
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class Invoker(Protocol):
    def __call__(
        self, script_id: str, event: dict[str, Any], timeout: float
    ) -> dict[str, Any]: ...  # POST the event to the script; its outputs, or StepFailed


class HttpInvoker:
    """POSTs events to script URLs over keep-alive connections (one per thread and port)."""

    def __init__(self, ports: Mapping[str, int]) -> None:
        self.ports = dict(ports)
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def _connection(self, port: int, timeout: float) -> http.client.HTTPConnection:
        pool: dict[int, http.client.HTTPConnection] = self.local.__dict__.setdefault("pool", {})
        conn = pool.get(port)
        if conn is None:
            conn = pool[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            with self.lock:
                self.opened.append(conn)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def __call__(self, script_id: str, event: dict[str, Any], timeout: float) -> dict[str, Any]:
        port = self.ports.get(script_id)
        if port is None:
            raise StepFailed(f"script {script_id} is not running; run `trek initenv`")
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):
            conn = self._connection(port, timeout)
            try:
                conn.request("POST", "/", body, headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except TimeoutError:
                conn.close()
                raise StepFailed(f"timed out after {timeout:g} s (action_timeout)") from None
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                conn.close()
                if attempt == 2:
                    raise StepFailed(f"cannot reach {script_id} on port {port}: {err}") from None
        try:
            data = json.loads(payload)
        except ValueError:
            raise StepFailed(f"answered {response.status} with non-JSON output") from None
        if response.status != 200:
            msg = (
                data.get("msg", payload.decode(errors="replace"))
                if isinstance(data, dict)
                else data
            )
            raise StepFailed(f"failed with HTTP {response.status}: {msg}")
        if not isinstance(data, dict):
            raise StepFailed("returned outputs that are not an object")
        return data

    def close(self) -> None:
        """Close the connections of every thread that used this invoker."""
        with self.lock:
            for conn in self.opened:
                conn.close()
            self.opened.clear()


@dataclass
class NodeRun:
    """What happened at one node (saved in the run record)."""

    id: str
    type: str
    script_id: str = ""
    status: str = "pending"  # done | skipped | failed | reused
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    duration: float = 0.0
    error: str = ""
    code: str = ""  # digest of the script's files and config envs when it ran


@dataclass
class RunResult:
    workflow: str
    run_id: str
    status: str
    nodes: dict[str, NodeRun]
    started: float
    duration: float
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes.values()]
        return data


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
        "context": {"marvin_url": settings.marvin_url, "workflow": settings.name},
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
    """Required inputs present and declared types respected, else one clear error."""
    fields = para.get("inputs") or {}
    for name in para.get("required") or []:
        if inputs.get(name) is None:
            raise BadInput(
                f"required input '{name}' has no value; "
                "bind it on an incoming edge or in inputs/data.yml"
            )
    for name, value in inputs.items():
        spec = fields.get(name) if isinstance(fields, dict) else None
        if not isinstance(spec, dict) or value is None:
            continue
        expected = JSON_TYPES.get(str(spec.get("type", "")))
        if expected is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in expected
        if wrong_bool or not isinstance(value, expected):
            got = type(value).__name__
            raise BadInput(f"input '{name}' must be {spec['type']}, got {got} {value!r}")


class Engine:
    """Executes one run of a workflow."""

    def __init__(
        self,
        workflow: Workflow,
        settings: RunSettings,
        invoke: Invoker,
        say: Callable[[str], None] = print,
        on_node: Callable[[NodeRun], None] | None = None,
    ) -> None:
        self.workflow = workflow
        self.settings = settings
        self.invoke = invoke
        self.say = say
        self.on_node = on_node
        self.lock = threading.Lock()
        self.runs = {
            n.id: NodeRun(
                n.id, n.type, n.script_id, code=settings.code_digests.get(n.script_id, "")
            )
            for n in workflow.nodes
        }
        self.taken: dict[int, bool] = {}
        self.fresh: set[str] = set()  # nodes whose outputs may differ from the reused run

    def _print(self, text: str) -> None:
        with self.lock:
            self.say(text)

    def _node_line(self, tag: str, node: Node) -> str:
        kind = "blcks" if node.type == "action" else "not_script"
        return (
            f"[{tag}] id: {node.id}, type: {node.type}, "
            f"scriptId: {node.script_id}, scriptType: {kind}"
        )

    def _context(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        context = {
            nid: run.outputs
            for nid, run in self.runs.items()
            if run.status in ("done", "reused", "skipped")
        }
        context.update(extra or {})
        return context

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

    def _execute(self, node: Node) -> NodeRun:
        run = self.runs[node.id]
        run.started = time.time()
        clock = time.perf_counter()
        try:
            if node.type == "trigger":
                run.outputs = dict(self.settings.event)
                last = self.settings.reuse.get(node.id)
                if last is None or last.outputs != run.outputs:
                    self.fresh.add(node.id)
            elif node.type == "selector":
                run.inputs = self._inputs(node)
                flowed: dict[str, Any] = {}
                for edge in self.workflow.incoming(node.id):
                    if self.taken.get(edge.index):
                        flowed.update(self.runs[edge.source].outputs)
                run.outputs = {**flowed, **run.inputs}
                if self._upstream_fresh(node):
                    self.fresh.add(node.id)
            elif node.type == "action":
                run.inputs = self._inputs(node)
                para = self.settings.paras.get(node.script_id, {})
                apply_defaults(run.inputs, para)
                if self._reusable(node, run):
                    run.outputs = self.settings.reuse[node.id].outputs
                    run.status = "reused"
                else:
                    self.fresh.add(node.id)
                    check_inputs(run.inputs, para)
                    event = script_event(node.script_id, run.inputs, self.settings)
                    run.outputs = self.invoke(node.script_id, event, self.settings.timeout)
            if run.status != "reused":
                run.status = "done"
        except TrekError as err:
            run.status = "failed"
            run.error = str(err)
        run.duration = time.perf_counter() - clock
        return run

    def _upstream_fresh(self, node: Node) -> bool:
        return any(
            self.taken.get(e.index) and e.source in self.fresh
            for e in self.workflow.incoming(node.id)
        )

    def _reusable(self, node: Node, run: NodeRun) -> bool:
        """Exact reuse: same code and envs, same inputs, and nothing upstream re-executed."""
        last = self.settings.reuse.get(node.id)
        return (
            last is not None
            and last.status in ("done", "reused")
            and bool(run.code)
            and last.code == run.code
            and last.inputs == run.inputs
            and not self._upstream_fresh(node)
        )

    def _decide(self, node: Node) -> None:
        """Decide the outgoing edges of a finished or skipped node."""
        run = self.runs[node.id]
        for edge in self.workflow.outgoing(node.id):
            if run.status == "skipped":
                self.taken[edge.index] = False
            elif edge.filters:
                context = self._context({node.id: run.outputs})
                try:
                    self.taken[edge.index] = evaluate_filter(edge.filters, context)
                except TrekError as err:
                    raise BadInput(f"edge {edge.key} filters: {err.message}") from None
            else:
                self.taken[edge.index] = True

    def _ready(self, node: Node) -> bool | None:
        """True to run, False to skip, None while an incoming edge is undecided."""
        incoming: list[Edge] = self.workflow.incoming(node.id)
        if any(e.index not in self.taken for e in incoming):
            return None
        return any(self.taken[e.index] for e in incoming)

    def run(self) -> RunResult:
        started = time.time()
        clock = time.perf_counter()
        self._print(f"Workflow [{self.settings.name}] start...")
        pending = {n.id: n for n in self.workflow.nodes}
        trigger = next(n for n in self.workflow.nodes if n.type == "trigger")
        error = ""
        futures: dict[Future[NodeRun], Node] = {}
        with ThreadPoolExecutor(MAX_PARALLEL, thread_name_prefix="trek-node") as pool:

            def submit(node: Node) -> None:
                del pending[node.id]
                if self.settings.interval:
                    time.sleep(self.settings.interval)
                self._print(
                    f"[TRIGGER] id: {node.id}, type: {node.type}, "
                    f"interval: {self.settings.interval:g}"
                )
                if node.type != "trigger":
                    self._print(self._node_line("EXEC", node))
                futures[pool.submit(self._execute, node)] = node

            submit(trigger)
            while futures:
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for future in done:
                    node = futures.pop(future)
                    run = future.result()
                    if self.on_node:
                        self.on_node(run)
                    if run.status == "failed":
                        error = (
                            error or f"node {node.id} ({node.script_id or node.type}): {run.error}"
                        )
                        self._print(self._node_line("FAIL", node))
                        continue
                    if node.type != "trigger":
                        tag = "REUSE" if run.status == "reused" else "FINISH"
                        self._print(self._node_line(tag, node))
                    if error:
                        continue
                    try:
                        self._settle(node, pending, submit)
                    except TrekError as err:
                        error = str(err)
        for node_id in pending:
            if self.runs[node_id].status == "pending":
                self.runs[node_id].status = "not run"
        status = "failed" if error else "done"
        if not error:
            self._print(f"Done. [{self.settings.name}]")
        return RunResult(
            self.settings.name,
            self.settings.run_id,
            status,
            self.runs,
            started,
            time.perf_counter() - clock,
            error,
        )

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
                    self.runs[target.id].status = "skipped"
                    self._print(
                        f"[SKIP] id: {target.id}, type: {target.type}, "
                        f"scriptId: {target.script_id} (no incoming edge taken)"
                    )
                    queue.append(target)
