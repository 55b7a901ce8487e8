"""trek-tasks: the Trek CLI rebuilt on doit tasks."""

from __future__ import annotations

__version__ = "0.1.0"

from trek_tasks.errors import BadInput, StepFailed, TrekError

__all__ = ["BadInput", "StepFailed", "TrekError", "__version__"]
