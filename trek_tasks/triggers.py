"""A workflow's trigger as ``trek serve`` honours it: cron sources in their zone, event
sources with the fields they declare, manual runs.

Cron times are wall-clock times of the source's zone (``'*/5 * * * *::Asia/Taipei'``; UTC
when it names none). Across a DST change each matching wall time fires once: a time the
clocks skip fires at the first minute after the gap, a time they repeat fires at its
first occurrence only (docs/serve.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from trek_tasks.errors import BadInput
from trek_tasks.files import Document, load_marked
from trek_tasks.project import Project

DEFAULT_ZONE = "UTC"
MAX_GAP_MINUTES = 24 * 60  # no zone skips more than a day of wall time


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the naive wall time ``wall`` happens in ``zone`` (not inside a DST gap)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == wall


def instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a cron wall time fires: its first occurrence, or the end of the gap
    it falls in."""
    later = wall
    for _ in range(MAX_GAP_MINUTES):
        if _exists(later, zone):
            return later.replace(tzinfo=zone, fold=0)
        later += timedelta(minutes=1)
    raise ValueError(f"{wall} never happens in {zone.key}")


@dataclass(frozen=True)
class Cron:
    """One cron source: five fields, the zone they are read in, where the graph says so."""

    expression: str
    zone: str
    where: str = ""

    @property
    def text(self) -> str:
        return f"{self.expression}::{self.zone}"

    def fires_after(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire instants after the aware ``after``, in the zone."""
        from croniter import croniter

        zone = ZoneInfo(self.zone)
        walls = croniter(self.expression, after.astimezone(zone).replace(tzinfo=None))
        found: list[datetime] = []
        while len(found) < count:
            fire = instant(walls.get_next(datetime), zone)
            if fire > after and (not found or fire > found[-1]):
                found.append(fire)
        return found


@dataclass(frozen=True)
class Trigger:
    """What the trigger node of a workflow says about when it runs."""

    workflow: str  # the template id
    node_id: str
    crons: tuple[Cron, ...] = ()
    events: bool = False  # an event source: Marvin takes events for it
    outputs: dict[str, Any] = field(default_factory=dict)  # the event fields declared

    def next_fires(self, after: datetime, count: int) -> list[tuple[datetime, Cron]]:
        """The next ``count`` fires of all cron sources together, in time order."""
        fires = [(when, cron) for cron in self.crons for when in cron.fires_after(after, count)]
        return sorted(fires, key=lambda pair: pair[0])[:count]

    def next_fire(self, after: datetime) -> tuple[datetime, Cron] | None:
        found = self.next_fires(after, 1)
        return found[0] if found else None


def parse_cron(text: str, where: str) -> Cron:
    """A cron source's ``data``; ``BadInput`` at ``where`` when the expression or zone is
    wrong (``validate``'s own check, then croniter's)."""
    from croniter import croniter

    from trek_tasks.validate.workflow import cron_problem

    problem = cron_problem(text)
    expression, _, zone = text.partition("::")
    expression = " ".join(expression.split())
    if not problem and not croniter.is_valid(expression):
        problem = f"cron {expression!r} is not a cron expression croniter reads"
    if problem:
        raise BadInput(problem, where)
    return Cron(expression, zone.strip() or DEFAULT_ZONE, where)


def read_trigger(project: Project) -> Trigger:
    """The trigger of ``project``'s workflow, each source checked (``BadInput`` with the
    graph's ``file:line:col``)."""
    doc: Document = load_marked(project.entry, project.root)
    node = next(n for n in project.workflow.nodes if n.type == "trigger")
    path = ("graph", "nodes", node.index, "metadata", "sources")
    sources = doc.data["graph"]["nodes"][node.index]["metadata"].get("sources") or []
    crons: list[Cron] = []
    events, outputs = False, dict[str, Any]()
    for i, source in enumerate(sources):
        if not isinstance(source, dict):
            continue  # `validate` says what is wrong with it
        if source.get("type") == "cron":
            crons.append(parse_cron(str(source.get("data", "")), doc.where((*path, i, "data"))))
        elif source.get("type") == "event":
            events = True
            outputs.update(source.get("outputs") or {})
    workflow = str(doc.data["graph"].get("metadata", {}).get("templateId") or project.name)
    return Trigger(workflow, node.id, tuple(crons), events, outputs)


def shown_time(when: datetime, zone: str) -> str:
    """``2026-12-02 11:25:00+08:00 Asia/Taipei``: an instant in a zone, as ``--next`` says it."""
    return f"{when.astimezone(ZoneInfo(zone)).isoformat(sep=' ')} {zone}"
