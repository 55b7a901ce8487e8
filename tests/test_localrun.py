"""Run ids: the run history, the portal and ``trek record`` list runs newest first by id."""

from __future__ import annotations

import time

from trek_tasks.localrun import new_run_id


def test_run_ids_sort_by_start_time_within_one_second() -> None:
    ids = []
    for _ in range(5):
        ids.append(new_run_id())
        time.sleep(0.002)
    assert sorted(ids) == ids
