"""The engine against real script processes (blcks.serve over HTTP)."""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

from trek_tasks.engine import (
    Engine,
    NodeFailed,
    NodeFinished,
    NodeReused,
    NodeRun,
    NodeSkipped,
    NodeStarted,
    RunFinished,
    RunResult,
    RunSettings,
)
from trek_tasks.errors import Interrupted
from trek_tasks.graph import Workflow
from trek_tasks.invoker import HttpInvoker
from trek_tasks.project import Script
from trek_tasks.reporter import Terminal
from trek_tasks.runtimes.local import LocalRuntime

HANDLERS = {
    "echo": """
        def process(**inputs):
            return {"got": inputs, "count": len(inputs)}
    """,
    "nap": """
        import time
        def process(seconds=0.0, tag=""):
            started = time.time()
            time.sleep(float(seconds))
            return {"tag": tag, "started": started, "ended": time.time()}
    """,
    "boom": """
        def process(**inputs):
            raise RuntimeError("the disk is on fire")
    """,
}


def write_script(folder: Path, name: str, body: str) -> Script:
    path = folder / name
    (path / "handler").mkdir(parents=True)
    (path / f"{name}.para").write_text(
        f"id: {name}\nversion: '0.1.0'\ninputs: {{}}\noutputs: {{}}\n"
    )
    (path / "handler" / "__init__.py").write_text("")
    (path / "handler" / "handler.py").write_text(
        "from blcks import blcks\n"
        f"FAAS_METHOD_NAME = {name!r}\n"
        "@blcks\ndef main(event, context):\n    pass\n"
        + textwrap.dedent(body).replace("def process", f"@blcks.script({name!r})\ndef process", 1)
    )
    script = Script.load(path, installed=False)
    assert script is not None
    return script


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("scripts")
    runtime = LocalRuntime()
    handles = []
    try:
        for name, body in HANDLERS.items():
            script = write_script(folder, name, body)
            handles.append(runtime.start(script, free_port(), {}, folder / f"{name}.log"))
        yield {h.script_id: h.url for h in handles}
    finally:
        for handle in handles:
            runtime.stop(handle)


def node(node_id: str, kind: str, script: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"type": kind, "title": kind}
    if script:
        meta["script"] = {"id": script}
    return {"id": node_id, "metadata": meta}


def edge(
    source: str, target: str, binding: list | None = None, filters: dict | None = None
) -> dict:
    meta: dict[str, Any] = {}
    if binding:
        meta["binding"] = binding
    if filters:
        meta["filters"] = filters
    return {"source": source, "target": target, "metadata": meta}


def run(
    urls: dict[str, str],
    nodes: list[dict],
    edges: list[dict],
    paras: dict | None = None,
    overrides: dict | None = None,
    event: dict | None = None,
    timeout: float = 10.0,
) -> tuple[RunResult, list[str]]:
    workflow = Workflow.from_data(
        {"graph": {"metadata": {"templateId": "t", "version": "1"}, "nodes": nodes, "edges": edges}}
    )
    settings = RunSettings(
        name="t",
        run_id="r1",
        event=event or {},
        paras=paras or {},
        overrides=overrides or {},
        timeout=timeout,
    )
    lines: list[str] = []
    invoker = HttpInvoker(urls)
    try:
        result = Engine(workflow, settings, invoker, [Terminal(lines.append)]).run()
    finally:
        invoker.close()
    return result, lines


def test_chain_with_typed_and_interpolated_bindings(urls: dict[str, str]) -> None:
    result, lines = run(
        urls,
        [
            node("0", "trigger"),
            node("2", "action", "echo"),
            node("3", "action", "echo"),
            node("1", "terminator"),
        ],
        [
            edge(
                "0",
                "2",
                [
                    {"property": "hosts", "value": "{{ 0.hosts }}", "type": "array"},
                    {"property": "n", "value": "7", "type": "integer"},
                ],
            ),
            edge(
                "2",
                "3",
                [
                    {"property": "ids", "value": "{{ 2.got.hosts[].id }}"},
                    {"property": "text", "value": "count: {{ 2.count }}"},
                    {"property": "bot.0", "value": "C-ops"},
                ],
            ),
            edge("3", "1"),
        ],
        event={"hosts": [{"id": "a"}, {"id": "b"}]},
    )
    assert result.status == "done", result.error
    assert result.nodes["2"].inputs == {"hosts": [{"id": "a"}, {"id": "b"}], "n": 7}
    assert result.nodes["3"].outputs["got"] == {
        "ids": ["a", "b"],
        "text": "count: 2",
        "bot": ["C-ops"],
    }
    assert lines[0] == "Workflow [t] start..."
    assert "[EXEC] id: 2, type: action, scriptId: echo, scriptType: blcks" in lines
    assert "[FINISH] id: 1, type: terminator, scriptId: , scriptType: not_script" in lines
    assert lines[-1] == "Done. [t]"


def test_selector_takes_one_branch_and_skips_the_other(urls: dict[str, str]) -> None:
    result, lines = run(
        urls,
        [
            node("0", "trigger"),
            node("2", "action", "echo"),
            node("4", "selector"),
            node("5", "action", "echo"),
            node("6", "action", "echo"),
            node("1", "terminator"),
        ],
        [
            edge("0", "2", [{"property": "x", "value": 1}]),
            edge("2", "4"),
            edge("4", "5", filters={"property": "nodes.2.count", "operator": ">", "value": 0}),
            edge("4", "6", filters={"property": "nodes.4.count", "operator": "<=", "value": 0}),
            edge("5", "1"),
            edge("6", "1"),
        ],
    )
    assert result.status == "done", result.error
    assert result.nodes["5"].status == "done"
    assert result.nodes["6"].status == "skipped"
    assert result.nodes["1"].status == "done"
    assert (
        "[SKIP] id: 6, type: action, scriptId: echo (edge 4-6: nodes.4.count (1) <= 0 is false)"
    ) in lines
    assert result.nodes["6"].reason == "edge 4-6: nodes.4.count (1) <= 0 is false"


def test_all_edges_not_taken_skips_down_to_the_end(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [
            node("0", "trigger"),
            node("4", "selector"),
            node("5", "action", "echo"),
            node("1", "terminator"),
        ],
        [
            edge("0", "4"),
            edge(
                "4",
                "5",
                filters={"and": [{"property": "nodes.0.go", "operator": "==", "value": True}]},
            ),
            edge("5", "1"),
        ],
        event={"go": False},
    )
    assert result.status == "done"
    assert [result.nodes[i].status for i in ("5", "1")] == ["skipped", "skipped"]
    assert [result.nodes[i].reason for i in ("5", "1")] == [
        "edge 4-5: nodes.0.go (false) == true is false",
        "no incoming edge taken: node 5 was skipped",
    ]


def test_independent_branches_run_concurrently_and_join(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [
            node("0", "trigger"),
            node("2", "action", "nap"),
            node("3", "action", "nap"),
            node("5", "action", "echo"),
            node("1", "terminator"),
        ],
        [
            edge(
                "0", "2", [{"property": "seconds", "value": 0.4}, {"property": "tag", "value": "a"}]
            ),
            edge(
                "0", "3", [{"property": "seconds", "value": 0.4}, {"property": "tag", "value": "b"}]
            ),
            edge("2", "5", [{"property": "a", "value": "{{ 2.tag }}"}]),
            edge("3", "5", [{"property": "b", "value": "{{ 3.tag }}"}]),
            edge("5", "1"),
        ],
    )
    assert result.status == "done", result.error
    a, b = result.nodes["2"].outputs, result.nodes["3"].outputs
    assert a["started"] < b["ended"] and b["started"] < a["ended"]  # the naps overlapped
    assert result.nodes["5"].outputs["got"] == {"a": "a", "b": "b"}


def test_data_overrides_fill_inputs_on_taken_edges(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [node("0", "trigger"), node("2", "action", "echo"), node("1", "terminator")],
        [edge("0", "2", [{"property": "bot_infos.0", "value": "x"}]), edge("2", "1")],
        overrides={
            "0-2": {
                "bot_infos.0": {"type": "string", "value": "C-ops"},
                "retries": {"type": "integer", "value": "3"},
            }
        },
    )
    assert result.nodes["2"].inputs == {"bot_infos": ["C-ops"], "retries": 3}


def test_missing_required_input_names_node_script_and_input(urls: dict[str, str]) -> None:
    result, lines = run(
        urls,
        [node("0", "trigger"), node("2", "action", "echo"), node("1", "terminator")],
        [edge("0", "2"), edge("2", "1")],
        paras={"echo": {"inputs": {"name": {"type": "string"}}, "required": ["name"]}},
    )
    assert result.status == "failed"
    assert result.error == (
        "node 2 (echo): required input 'name' has no value; "
        "bind it on an incoming edge or in inputs/data.yml"
    )
    assert result.nodes["1"].status == "not run"
    assert "Done. [t]" not in lines


def test_wrong_input_type_is_refused_before_the_call(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [node("0", "trigger"), node("2", "action", "echo"), node("1", "terminator")],
        [edge("0", "2", [{"property": "ids", "value": "abc"}]), edge("2", "1")],
        paras={"echo": {"inputs": {"ids": {"type": "array"}}}},
    )
    assert result.status == "failed"
    assert "input 'ids' must be array, got str 'abc'" in result.error


def test_failing_script_stops_the_run(urls: dict[str, str]) -> None:
    result, lines = run(
        urls,
        [
            node("0", "trigger"),
            node("2", "action", "boom"),
            node("3", "action", "echo"),
            node("1", "terminator"),
        ],
        [edge("0", "2"), edge("2", "3"), edge("3", "1")],
    )
    assert result.status == "failed"
    assert result.error == (
        "node 2 (boom): failed with HTTP 500: RuntimeError: the disk is on fire"
    )
    assert result.nodes["3"].status == "not run"
    assert "[FAIL] id: 2, type: action, scriptId: boom, scriptType: blcks" in lines


def test_hanging_script_times_out(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [node("0", "trigger"), node("2", "action", "nap"), node("1", "terminator")],
        [edge("0", "2", [{"property": "seconds", "value": 3}]), edge("2", "1")],
        timeout=0.5,
    )
    assert result.status == "failed"
    assert result.error == "node 2 (nap): timed out after 0.5 s (action_timeout)"


def test_ctrl_c_stops_waiting_for_the_node_and_records_the_run_interrupted(
    urls: dict[str, str],
) -> None:
    workflow = Workflow.from_data(
        {
            "graph": {
                "metadata": {"templateId": "t", "version": "1"},
                "nodes": [
                    node("0", "trigger"),
                    node("2", "action", "nap"),
                    node("1", "terminator"),
                ],
                "edges": [edge("0", "2", [{"property": "seconds", "value": 20}]), edge("2", "1")],
            }
        }
    )
    settings = RunSettings("t", "r1", {}, {}, {}, timeout=30)
    finished: list[RunResult] = []
    sent: list[float] = []

    def ctrl_c() -> None:
        sent.append(time.monotonic())
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def subscriber(event: Any) -> None:
        if isinstance(event, NodeStarted) and event.node.id == "2":
            threading.Timer(0.2, ctrl_c).start()
        if isinstance(event, RunFinished):
            finished.append(event.result)

    invoker = HttpInvoker(urls)
    try:
        with pytest.raises(Interrupted) as raised:
            Engine(workflow, settings, invoker, [subscriber]).run()
    finally:
        invoker.close()
    took = time.monotonic() - sent[0]
    print(f"the engine gave up the node {took:.3f} s after Ctrl-C")
    assert str(raised.value) == "workflow [t] stopped during node 2 (nap)"
    [result] = finished
    assert (result.status, result.error) == ("interrupted", "interrupted during node 2 (nap)")
    assert [(n.id, n.status) for n in result.nodes.values()] == [
        ("0", "done"),
        ("2", "interrupted"),
        ("1", "not run"),
    ]
    assert took < 5.0  # a guard: the node would take 20 s


def test_unknown_node_in_a_binding_is_a_clear_error(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [node("0", "trigger"), node("2", "action", "echo"), node("1", "terminator")],
        [edge("0", "2", [{"property": "x", "value": "{{ 9.y }}"}]), edge("2", "1")],
    )
    assert result.status == "failed"
    assert result.error.startswith("node 2 (echo): edge 0-2 binding 'x': ")
    assert "9" in result.error


def same_state() -> str:
    return "state-1"


def chain_run(
    urls: dict[str, str],
    digests: dict[str, str],
    reuse: dict | None = None,
    probe: Callable[[], str] | None = same_state,
    x: int = 1,
    paras: dict | None = None,
    event: dict | None = None,
) -> RunResult:
    """trigger -> 2 echo(x) -> 3 nap(tag: 2's x) -> 4 echo(t: 3's tag) -> end."""
    workflow = Workflow.from_data(
        {
            "graph": {
                "metadata": {"templateId": "t", "version": "1"},
                "nodes": [
                    node("0", "trigger"),
                    node("2", "action", "echo"),
                    node("3", "action", "nap"),
                    node("4", "action", "echo"),
                    node("1", "terminator"),
                ],
                "edges": [
                    edge("0", "2", [{"property": "x", "value": x}]),
                    edge("2", "3", [{"property": "tag", "value": "{{ 2.got.x }}"}]),
                    edge("3", "4", [{"property": "t", "value": "{{ 3.tag }}"}]),
                    edge("4", "1"),
                ],
            }
        }
    )
    settings = RunSettings(
        name="t",
        run_id="r",
        event=event or {},
        paras=paras or {},
        overrides={},
        timeout=10,
        reuse=reuse or {},
        code_digests=digests,
        state_probe=probe,
    )
    invoker = HttpInvoker(urls)
    try:
        return Engine(workflow, settings, invoker).run()
    finally:
        invoker.close()


def statuses(result: RunResult) -> list[tuple[str, str, str]]:
    """Each action node's status and, when reused by early cutoff, why."""
    return [(i, result.nodes[i].status, result.nodes[i].reason) for i in ("2", "3", "4")]


def test_reuse_is_exact(urls: dict[str, str]) -> None:
    digests = {"echo": "e1", "nap": "n1"}
    first = chain_run(urls, digests)
    assert first.status == "done"
    same = chain_run(urls, digests, reuse=first.nodes)
    assert statuses(same) == [("2", "reused", ""), ("3", "reused", ""), ("4", "reused", "")]
    assert same.nodes["3"].outputs == first.nodes["3"].outputs
    assert [same.nodes[i].cutoff for i in ("2", "3", "4")] == [[], [], []]

    changed_inputs = chain_run(urls, digests, reuse=first.nodes, x=2)  # 2's outputs change
    assert [n.status for n in changed_inputs.nodes.values() if n.type == "action"] == ["done"] * 3


def test_early_cutoff_reuses_what_a_rerun_left_unchanged(urls: dict[str, str]) -> None:
    digests = {"echo": "e1", "nap": "n1"}
    first = chain_run(urls, digests)
    # nap's code changed: it runs again, gives the same tag, so node 4's inputs are as
    # they were and it is reused (early cutoff), saying after what
    changed = chain_run(urls, {"echo": "e1", "nap": "n2"}, reuse=first.nodes)
    assert statuses(changed) == [
        ("2", "reused", ""),
        ("3", "done", ""),
        ("4", "reused", "same inputs after node 3 (nap) re-ran"),
    ]
    assert changed.nodes["3"].outputs["started"] != first.nodes["3"].outputs["started"]
    assert changed.nodes["4"].cutoff == ["3"]
    assert changed.nodes["4"].outputs == first.nodes["4"].outputs
    assert changed.to_json()["nodes"][3]["cutoff"] == ["3"]  # the run record says so

    failed_before = {**first.nodes, "2": replace(first.nodes["2"], status="failed")}
    after_failure = chain_run(urls, digests, reuse=failed_before)
    assert statuses(after_failure) == [
        ("2", "done", ""),
        ("3", "reused", "same inputs after node 2 (echo) re-ran"),
        ("4", "reused", "same inputs after node 2 (echo) re-ran"),  # the nearest re-run
    ]

    new_event = chain_run(urls, digests, reuse=first.nodes, event={"hello": 1})
    assert statuses(new_event)[0] == ("2", "reused", "same inputs after the event changed")
    assert new_event.nodes["2"].cutoff == ["0"]


def test_side_effecting_nodes_always_run_when_reached(urls: dict[str, str]) -> None:
    digests = {"echo": "e1", "nap": "n1"}
    paras = {"nap": {"sideEffects": True}}
    first = chain_run(urls, digests, paras=paras)
    again = chain_run(urls, digests, reuse=first.nodes, paras=paras)
    assert statuses(again) == [
        ("2", "reused", ""),
        ("3", "done", ""),
        ("4", "reused", "same inputs after node 3 (nap) re-ran"),
    ]
    not_declared = chain_run(urls, digests, reuse=first.nodes, paras={"nap": {"sideEffects": 0}})
    assert not_declared.nodes["3"].status == "reused"  # only `true` declares it


def test_must_run_says_why_a_node_executes_under_reuse() -> None:
    from trek_tasks.engine import must_run

    last = NodeRun("3", "action", "nap", "done", {"tag": 1, "seconds": 0}, code="c", state="s")
    now = replace(last, status="pending")
    assert must_run(last, now, {}) is None
    assert must_run(None, now, {}) == "not in the last run"
    assert must_run(replace(last, status="skipped"), now, {}) == "skipped in the last run"
    assert must_run(last, replace(now, code="d"), {}) == (
        "its code changed (files, envs, environment or SDK)"
    )
    assert must_run(last, replace(now, inputs={"tag": 2, "x": 0}), {}) == (
        "inputs changed: seconds, tag, x"
    )
    assert must_run(last, replace(now, state=""), {}) == "the Marvin state is unknown"
    assert must_run(last, replace(now, state="t"), {}) == "the Marvin state it reads changed"
    assert must_run(last, now, {"sideEffects": True}) == (
        "side-effecting (sideEffects: true in its para)"
    )


def test_reuse_needs_the_same_marvin_state_at_each_node_start(urls: dict[str, str]) -> None:
    digests = {"echo": "e1", "nap": "n1"}
    first = chain_run(urls, digests)
    assert [first.nodes[i].state for i in ("2", "3", "4")] == ["state-1"] * 3
    asked: list[str] = []

    def changes_before_node_3() -> str:  # as if node 2 had tagged a host
        asked.append("?")
        return "state-1" if len(asked) == 1 else "state-2"

    moved = chain_run(urls, digests, reuse=first.nodes, probe=changes_before_node_3)
    assert [moved.nodes[i].status for i in ("2", "3", "4")] == ["reused", "done", "done"]
    assert [moved.nodes[i].state for i in ("2", "3", "4")] == ["state-1", "state-2", "state-2"]
    assert len(asked) == 3  # once per action node, at its start
    unknown = chain_run(urls, digests, reuse=first.nodes, probe=lambda: "")
    assert [unknown.nodes[i].status for i in ("2", "3", "4")] == ["done"] * 3
    no_probe = chain_run(urls, digests, reuse=first.nodes, probe=None)  # a remote Marvin
    assert [no_probe.nodes[i].status for i in ("2", "3", "4")] == ["done"] * 3
    assert [no_probe.nodes[i].state for i in ("2", "3", "4")] == [""] * 3


def test_para_defaults_fill_unbound_inputs(urls: dict[str, str]) -> None:
    result, _ = run(
        urls,
        [node("0", "trigger"), node("2", "action", "echo"), node("1", "terminator")],
        [edge("0", "2", [{"property": "a", "value": 1}]), edge("2", "1")],
        paras={
            "echo": {
                "inputs": {
                    "a": {"type": "integer", "default": 5},
                    "b": {"type": "string", "default": "x"},
                },
                "required": ["b"],
            }
        },
    )
    assert result.status == "done", result.error
    assert result.nodes["2"].inputs == {"a": 1, "b": "x"}


def events_of(nodes: list[dict], edges: list[dict], event: dict | None = None) -> list[Any]:
    """Run with an in-process invoker; the events in the order subscribers got them,
    each with the name of the thread it was delivered on."""
    workflow = Workflow.from_data(
        {"graph": {"metadata": {"templateId": "t", "version": "1"}, "nodes": nodes, "edges": edges}}
    )
    settings = RunSettings("t", "r", event or {}, {}, {}, timeout=5)
    seen: list[Any] = []

    def invoke(script_id: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        return {"thread": threading.current_thread().name}

    def subscriber(item: Any) -> None:
        seen.append((item, threading.current_thread().name))

    Engine(workflow, settings, invoke, [subscriber]).run()
    return seen


def test_events_tell_the_run_in_order_on_the_scheduler_thread() -> None:
    seen = events_of(
        [node("0", "trigger"), node("2", "action", "echo"), node("3", "action", "echo")]
        + [node("1", "terminator")],
        [
            edge("0", "2"),
            edge("0", "3", filters={"property": "nodes.0.go", "operator": "==", "value": True}),
            edge("2", "1"),
            edge("3", "1"),
        ],
        event={"go": False},
    )
    told = [(type(e).__name__, getattr(getattr(e, "node", None), "id", "")) for e, _ in seen]
    assert told == [
        ("RunStarted", ""),
        ("NodeStarted", "0"),
        ("NodeFinished", "0"),
        ("NodeStarted", "2"),
        ("NodeSkipped", "3"),
        ("NodeFinished", "2"),
        ("NodeStarted", "1"),
        ("NodeFinished", "1"),
        ("RunFinished", ""),
    ]
    assert {thread for _, thread in seen} == {threading.current_thread().name}
    finished = next(e for e, _ in seen if isinstance(e, NodeFinished) and e.node.id == "2")
    assert finished.run.outputs["thread"].startswith("trek-node")  # the call ran on a worker
    skipped = next(e for e, _ in seen if isinstance(e, NodeSkipped))
    assert (skipped.reason, skipped.script_type) == (
        "edge 0-3: nodes.0.go (false) == true is false",
        "blcks",
    )
    with pytest.raises(FrozenInstanceError):
        finished.run.status = "failed"  # type: ignore[misc]
    result = seen[-1][0].result
    assert [(n.id, n.status) for n in result.nodes.values()] == [  # in execution order
        ("0", "done"),
        ("2", "done"),
        ("1", "done"),
        ("3", "skipped"),
    ]


def test_the_terminal_prints_a_failed_and_a_reused_node() -> None:
    workflow = Workflow.from_data(
        {
            "graph": {
                "metadata": {"templateId": "t", "version": "1"},
                "nodes": [node("0", "trigger"), node("2", "action", "echo")],
                "edges": [edge("0", "2")],
            }
        }
    )
    lines: list[str] = []
    terminal = Terminal(lines.append)
    run_2 = NodeRun("2", "action", "echo", status="failed", error="boom")
    terminal(NodeFailed(workflow.nodes[1], "blcks", run_2))
    terminal(NodeReused(workflow.nodes[1], "blcks", replace(run_2, status="reused")))
    assert lines == [
        "[FAIL] id: 2, type: action, scriptId: echo, scriptType: blcks",
        "[REUSE] id: 2, type: action, scriptId: echo, scriptType: blcks",
    ]


def test_the_summary_lists_nodes_as_they_ran_with_warnings_and_skip_reasons() -> None:
    from trek_tasks.progress import RunReported
    from trek_tasks.reporter import summary_lines

    answers = {
        "notify": {"status": "failure", "message": "channel C-nope is unknown"},
        "tag": {"status": "failure"},
        "echo": {"status": "success"},
    }
    workflow = Workflow.from_data(
        {
            "graph": {
                "metadata": {"templateId": "t", "version": "1"},
                "nodes": [
                    node("1", "terminator"),
                    node("6", "action", "echo"),
                    node("5", "action", "notify"),
                    node("3", "action", "tag"),
                    node("0", "trigger"),
                ],
                "edges": [
                    edge("0", "3"),
                    edge("3", "5"),
                    edge("5", "1"),
                    edge(
                        "0", "6", filters={"property": "nodes.0.go", "operator": "==", "value": 1}
                    ),
                    edge("6", "1"),
                ],
            }
        }
    )
    settings = RunSettings("t", "r", {"go": 0}, {}, {}, timeout=5)
    result = Engine(workflow, settings, lambda script_id, event, timeout: answers[script_id]).run()
    assert list(result.nodes) == ["0", "3", "5", "1", "6"]
    lines = summary_lines(RunReported(result))
    assert [line.split()[:3] for line in lines[1:]] == [
        ["0", "trigger", "done"],
        ["3", "tag", "warning"],
        ["5", "notify", "warning"],
        ["1", "terminator", "done"],
        ["6", "echo", "skipped"],
    ]
    assert lines[2].endswith(" ms  status: failure")
    assert lines[3].endswith(" ms  channel C-nope is unknown")
    assert lines[5].endswith(" ms  edge 0-6: nodes.0.go (0) == 1 is false")
    assert result.nodes["5"].status == "done"  # a warning, not a failed node: edges follow
