"""doit entry of the repository: `doit -f dodo.py [project=PATH] TASK` (default: the example)."""

from pathlib import Path

from trek_tasks.tasks import namespace

globals().update(namespace(Path(__file__).parent / "example" / "host.detect.redis"))
