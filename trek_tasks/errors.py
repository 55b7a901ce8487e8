"""One error family. The CLI edge turns each into one line and an exit code."""

from __future__ import annotations

from pathlib import Path

INTERRUPTED = 130  # the exit code after Ctrl-C (the shell's 128 + SIGINT)


class TrekError(Exception):
    """An error whose message is written for the user.

    ``where`` is a location such as ``src/graph.yml:57:7`` (or just a path) and is
    printed before the message. The message is one line; ``detail`` holds the evidence a
    failed step shows below it as it is (the last lines of a script's log, test output).
    """

    exit_code = 1

    def __init__(self, message: str, where: str | Path | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = str(where) if where is not None else None
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class BadInput(TrekError):
    """The user's input (a file, an argument, a download) is wrong: exit code 2."""

    exit_code = 2


class StepFailed(TrekError):
    """A step that ran failed (a script crashed, a server did not answer): exit code 1."""

    exit_code = 1


class ManyErrors(BadInput):
    """Several input errors found at once (validation reports all of them)."""

    def __init__(self, errors: list[BadInput]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors

    def __str__(self) -> str:
        return self.message


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a step; the message says where (the CLI prints it, exit INTERRUPTED)."""
