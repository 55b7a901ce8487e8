"""blcks.logger output in each BLCKS_DEBUG_LOG_MODE, read from a real handler run's stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-SECRET-42"

HANDLER = f"""
import json
import sys

from blcks import blcks
from blcks.testing import call

logger = blcks.logger


@blcks
def main(event, context):
    pass


@blcks.script("greet")
def greet(name):
    logger.info("checked %s hosts", 2, extra={{"host": "h1"}})
    logger.info(msg="output result", inputParamsStr='{{"ok": 1}}')
    return {{"greeting": "hello " + name}}


@blcks.script("say")
def say(text):
    logger.info(text)
    return {{}}


@blcks.script("boom")
def boom():
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("boom failed")
    return {{}}


print(json.dumps(call(main, json.loads(sys.argv[2]), action=sys.argv[1], token={TOKEN!r},
                      task_id="t-7")))
"""


def run(
    tmp_path: Path, action: str = "greet", inputs: dict[str, Any] | None = None, **env: str
) -> list[str]:
    """Run the handler in a fresh interpreter with `env`; its stderr lines."""
    script = tmp_path / "run_handler.py"
    script.write_text(HANDLER)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BLCKS_", "SHOW_DEBUG"))}
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            action,
            json.dumps({"name": "Ada"} if inputs is None else inputs),
        ],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stderr
    return done.stderr.splitlines()


TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def test_json_is_the_default(tmp_path: Path) -> None:
    records = [json.loads(line) for line in run(tmp_path)]
    assert len(records) == 3
    first = records[0]
    assert list(first) == ["time", "level", "message", "script", "task_id", "inputParamsStr"]
    assert datetime.fromisoformat(first.pop("time")).tzinfo is not None
    assert first == {
        "level": "INFO",
        "message": "run greet",
        "script": "greet",
        "task_id": "t-7",
        "inputParamsStr": '{"name": "Ada"}',
    }
    assert {k: v for k, v in records[1].items() if k != "time"} == {
        "level": "INFO",
        "message": "checked 2 hosts",
        "script": "greet",
        "task_id": "t-7",
        "host": "h1",
    }
    assert (records[2]["message"], records[2]["inputParamsStr"]) == ("output result", '{"ok": 1}')


def test_json_carries_the_traceback(tmp_path: Path) -> None:
    record = json.loads(run(tmp_path, "boom", {})[1])
    assert (record["level"], record["message"]) == ("ERROR", "boom failed")
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert record["traceback"].endswith("ZeroDivisionError: division by zero")


def test_show_debug_logs_adds_request_details_with_the_token_masked(tmp_path: Path) -> None:
    records = [json.loads(line) for line in run(tmp_path, SHOW_DEBUG_LOGS="1")]
    request = records[0]
    del request["time"]
    assert request == {
        "level": "DEBUG",
        "message": "request",
        "script": "greet",
        "task_id": "t-7",
        "action": "greet",
        "taskId": "t-7",
        "headers": {"Authorization": "Bearer ****"},
    }
    assert [r["message"] for r in records[1:]] == ["run greet", "checked 2 hosts", "output result"]


def test_normal_mode_with_the_reference_format(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        BLCKS_DEBUG_LOG_MODE="normal",
        BLCKS_DEBUG_LOG_FORMAT="{message} => inputParams: {data[inputParamsStr]}",
    )
    assert lines == [
        'run greet => inputParams: {"name": "Ada"}',
        "checked 2 hosts => inputParams:",
        'output result => inputParams: {"ok": 1}',
    ]


def test_normal_mode_default_format(tmp_path: Path) -> None:
    lines = run(tmp_path, BLCKS_DEBUG_LOG_MODE="normal")
    data = json.dumps({"inputParamsStr": '{"name": "Ada"}'})
    assert re.fullmatch(f"{TIME} INFO run greet {re.escape(data)}", lines[0])
    assert re.fullmatch(f'{TIME} INFO checked 2 hosts {{"host": "h1"}}', lines[1])


def test_normal_mode_renders_missing_fields_empty(tmp_path: Path) -> None:
    template = "{message}|{data[nope]}|{nope}|{data[a][b]}|{0}|{level:>6}|{script}/{task_id}"
    lines = run(tmp_path, BLCKS_DEBUG_LOG_MODE="normal", BLCKS_DEBUG_LOG_FORMAT=template)
    assert lines[0] == "run greet|||||  INFO|greet/t-7"


@pytest.mark.parametrize("template", ["{message", "{message!z}", "{data.x}", "{message:d}"])
def test_normal_mode_falls_back_when_the_template_cannot_apply(
    tmp_path: Path, template: str
) -> None:
    lines = run(tmp_path, BLCKS_DEBUG_LOG_MODE="normal", BLCKS_DEBUG_LOG_FORMAT=template)
    assert re.fullmatch(f"{TIME} INFO run greet .*", lines[0])


def test_normal_mode_appends_the_traceback(tmp_path: Path) -> None:
    lines = run(tmp_path, "boom", {}, BLCKS_DEBUG_LOG_MODE="normal")
    assert re.fullmatch(f"{TIME} ERROR boom failed", lines[1])
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ZeroDivisionError: division by zero"


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_table_mode_default_columns(tmp_path: Path) -> None:
    lines = run(tmp_path, BLCKS_DEBUG_LOG_MODE="table")
    border = "+" + "-" * 25 + "+" + "-" * 10 + "+" + "-" * 61 + "+"
    header = "| " + "TIME".ljust(23) + " | " + "LEVEL".ljust(8) + " | " + "MESSAGE".ljust(59) + " |"
    assert lines[:3] == [border, header, border]
    assert len(lines) == 3 + 3 * 2
    assert lines[4::2] == [border] * 3
    messages = ["run greet", "checked 2 hosts", "output result"]
    for line, message in zip(lines[3::2], messages, strict=True):
        assert re.fullmatch(rf"\| {TIME} \| INFO     \| {message.ljust(59)} \|", line)
    assert {len(line) for line in lines} == {100}


def test_table_mode_with_the_reference_config(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        BLCKS_DEBUG_LOG_MODE="table",
        BLCKS_DEBUG_LOG_TABLE_WIDTH="100",
        BLCKS_DEBUG_LOG_FIELDS="data",
    )
    assert lines[1] == "| " + "DATA".ljust(96) + " |"
    data = json.dumps({"inputParamsStr": '{"name": "Ada"}'})
    assert lines[3] == "| " + data.ljust(96) + " |"
    assert lines[5] == "| " + '{"host": "h1"}'.ljust(96) + " |"


def test_table_mode_wraps_long_text_within_the_width(tmp_path: Path) -> None:
    text = "檢查主機連線失敗:" + "x" * 70
    lines = run(
        tmp_path,
        "say",
        {"text": text},
        BLCKS_DEBUG_LOG_MODE="table",
        BLCKS_DEBUG_LOG_TABLE_WIDTH="40",
        BLCKS_DEBUG_LOG_FIELDS="level, message",
    )
    assert {display_width(line) for line in lines} == {40}
    rows = [line for line in lines[3:] if line.startswith("|")]
    said = [row.split("|")[2].strip() for row in rows if "run say" not in row]
    assert "".join(said) == text
    assert len(said) > 2


def test_table_mode_ignores_a_width_that_is_not_a_number(tmp_path: Path) -> None:
    lines = run(tmp_path, BLCKS_DEBUG_LOG_MODE="table", BLCKS_DEBUG_LOG_TABLE_WIDTH="wide")
    assert {len(line) for line in lines} == {100}


def test_unknown_mode_says_so_and_logs_json(tmp_path: Path) -> None:
    lines = run(tmp_path, BLCKS_DEBUG_LOG_MODE="tabel")
    assert (
        lines[0] == "blcks: unknown BLCKS_DEBUG_LOG_MODE 'tabel', using json (json, normal, table)"
    )
    assert json.loads(lines[1])["message"] == "run greet"
