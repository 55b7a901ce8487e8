"""`blcks.logger`: one logger whose output style the BLCKS_DEBUG_LOG_* variables choose.

Modes: `json` (default, one object per line), `normal` (a str.format template) and
`table` (fixed-width ASCII rows). Records carry the current call's script and task id.
"""

from __future__ import annotations

import json
import logging
import string
import sys
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from blcks.context import current

FIELDS_ATTR = "blcks_fields"
SCRIPT_ATTR = "blcks_script"
TASK_ATTR = "blcks_task_id"
DEFAULT_FORMAT = "{time} {level} {message} {data}"
DEFAULT_TABLE_WIDTH = 100
DEFAULT_TABLE_FIELDS = "time,level,message"
MODES = ("json", "normal", "table")

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    FIELDS_ATTR,
    SCRIPT_ATTR,
    TASK_ATTR,
}
_FIXED_WIDTHS = {"time": 23, "level": 8}


class BlcksLogger(logging.Logger):
    """A Logger that also takes fields as keywords: `logger.info("checked", hosts=3)`."""

    def _log(  # type: ignore[override]
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Mapping[str, object] | None = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        **fields: Any,
    ) -> None:
        ctx = current()
        stamped = {**(extra or {}), FIELDS_ATTR: fields, SCRIPT_ATTR: ctx.script}
        stamped[TASK_ATTR] = ctx.task_id
        # One more frame (this override) lies between the caller and logging's findCaller.
        super()._log(level, msg, args, exc_info, stamped, stack_info, stacklevel + 1)


class StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at emit time (so redirections and capture work)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def make_logger(environ: Mapping[str, str], name: str = "blcks") -> BlcksLogger:
    """A logger writing to stderr in the style `environ` asks for; DEBUG with SHOW_DEBUG_LOGS."""
    logger = BlcksLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG if is_truthy(environ.get("SHOW_DEBUG_LOGS")) else logging.INFO)
    handler = StderrHandler()
    handler.setFormatter(make_formatter(environ))
    logger.addHandler(handler)
    return logger


def make_formatter(environ: Mapping[str, str]) -> logging.Formatter:
    """The formatter for BLCKS_DEBUG_LOG_MODE and its companion variables."""
    mode = (environ.get("BLCKS_DEBUG_LOG_MODE") or "json").strip().lower()
    if mode == "normal":
        return TemplateFormatter(environ.get("BLCKS_DEBUG_LOG_FORMAT") or DEFAULT_FORMAT)
    if mode == "table":
        fields = environ.get("BLCKS_DEBUG_LOG_FIELDS") or DEFAULT_TABLE_FIELDS
        columns = [name.strip() for name in fields.split(",") if name.strip()]
        width = _int(environ.get("BLCKS_DEBUG_LOG_TABLE_WIDTH"), DEFAULT_TABLE_WIDTH)
        return TableFormatter(width, columns or DEFAULT_TABLE_FIELDS.split(","))
    if mode != "json":
        choices = ", ".join(MODES)
        sys.stderr.write(f"blcks: unknown BLCKS_DEBUG_LOG_MODE {mode!r}, using json ({choices})\n")
    return JsonFormatter()


def is_truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on", "y"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, script, task_id, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created).astimezone()
        out: dict[str, Any] = {
            "time": created.isoformat("T", "milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            "script": getattr(record, SCRIPT_ATTR, ""),
            "task_id": getattr(record, TASK_ATTR, ""),
        }
        for key, value in extras(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TemplateFormatter(logging.Formatter):
    """`normal` mode: str.format over message, level, time, script, task_id and data.

    A field the record lacks renders empty, and a template that cannot be applied falls
    back to DEFAULT_FORMAT: a log line must never raise.
    """

    def __init__(self, template: str) -> None:
        super().__init__()
        self.template = template

    def format(self, record: logging.LogRecord) -> str:
        values = _values(record)
        try:
            line = _LENIENT.vformat(self.template, (), values)
        except (ValueError, LookupError, AttributeError, TypeError):
            line = _LENIENT.vformat(DEFAULT_FORMAT, (), values)
        line = line.rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class TableFormatter(logging.Formatter):
    """`table` mode: a grid row per record, each line exactly `width` columns wide.

    Time and level have fixed widths; the other columns share the rest and wrap long
    text onto more lines. The width grows to what the columns need at the least.
    """

    MIN_CELL = 8

    def __init__(self, width: int, columns: list[str]) -> None:
        super().__init__()
        self.columns = columns
        self.widths = _column_widths(width, columns, self.MIN_CELL)
        self.border = "+" + "+".join("-" * (w + 2) for w in self.widths) + "+"
        self._header_written = False

    def format(self, record: logging.LogRecord) -> str:
        values = _values(record)
        lines: list[str] = []
        if not self._header_written:
            self._header_written = True
            lines += [self.border, *self._row([c.upper() for c in self.columns]), self.border]
        lines += [*self._row([_cell_text(c, values) for c in self.columns]), self.border]
        if record.exc_info:
            lines.append(self.formatException(record.exc_info))
        return "\n".join(lines)

    def _row(self, texts: list[str]) -> list[str]:
        cells = [_wrap(text, width) for text, width in zip(texts, self.widths, strict=True)]
        height = max(len(c) for c in cells)
        return [
            "| "
            + " | ".join(
                _pad(c[i] if i < len(c) else "", w) for c, w in zip(cells, self.widths, strict=True)
            )
            + " |"
            for i in range(height)
        ]


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's extra fields: `extra=` attributes and keyword fields."""
    data = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
    data.update(getattr(record, FIELDS_ATTR, None) or {})
    return data


class _Blank:
    """What a missing template field renders as: empty, however deep the lookup goes."""

    def __getitem__(self, key: object) -> _Blank:
        return self

    def __getattr__(self, name: str) -> _Blank:
        return self

    def __format__(self, spec: str) -> str:
        return format("", spec)

    def __str__(self) -> str:
        return ""


_BLANK = _Blank()


class _Data(dict):  # type: ignore[type-arg]
    """The extra fields as `{data}` (JSON) or `{data[key]}` (blank when absent)."""

    def __missing__(self, key: object) -> _Blank:
        return _BLANK

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False, default=str) if self else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _LenientFormatter(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        return kwargs.get(key, _BLANK) if isinstance(key, str) else _BLANK


_LENIENT = _LenientFormatter()


def _values(record: logging.LogRecord) -> dict[str, Any]:
    return {
        "time": datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.")
        + f"{int(record.msecs):03d}",
        "level": record.levelname,
        "message": record.getMessage(),
        "script": getattr(record, SCRIPT_ATTR, ""),
        "task_id": getattr(record, TASK_ATTR, ""),
        "data": _Data(extras(record)),
    }


def _cell_text(column: str, values: dict[str, Any]) -> str:
    value = values[column] if column in values else values["data"].get(column, "")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _column_widths(width: int, columns: list[str], min_cell: int) -> list[int]:
    inner = width - 3 * len(columns) - 1
    flexible = [c for c in columns if c not in _FIXED_WIDTHS] or columns[-1:]
    fixed = sum(_FIXED_WIDTHS.get(c, 0) for c in columns if c not in flexible)
    share, extra = divmod(max(inner - fixed, 0), len(flexible))
    widths = []
    for column in columns:
        if column in flexible:
            index = flexible.index(column)
            widths.append(max(share + (1 if index < extra else 0), min_cell))
        else:
            widths.append(_FIXED_WIDTHS[column])
    return widths


def _char_width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def _display_width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)


def _wrap(text: str, width: int) -> list[str]:
    """Cut text into lines of at most `width` display columns (CJK characters count two)."""
    lines: list[str] = []
    for raw in text.replace("\t", " ").splitlines() or [""]:
        line, used = "", 0
        for char in raw:
            w = _char_width(char)
            if used + w > width:
                lines.append(line)
                line, used = "", 0
            line += char
            used += w
        lines.append(line)
    return lines


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _display_width(text))


def _int(value: str | None, default: int) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return default
