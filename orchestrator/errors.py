"""One error hierarchy: every expected failure is a LabError with an exit status.

The command layer turns a LabError into one line and its exit status; anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The documented exit statuses of `python -m orchestrator`."""

    OK = 0
    EXPECTATION_FAILED = 1
    BAD_INPUT = 2
    ENVIRONMENT = 3
    INTERRUPTED = 130
    CLOSED_PIPE = 141          # 128 + SIGPIPE: the reader of the output closed it (`… | head`), as a shell reports it


class LabError(Exception):
    """Root of every expected failure. `hint` says what to do about it."""

    status: ExitStatus = ExitStatus.BAD_INPUT

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one line the user sees."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInput(LabError):
    """Bad usage or input: exit 2."""

    status = ExitStatus.BAD_INPUT


class UnknownScenario(BadInput):
    pass


class ScenarioFileError(BadInput):
    """A scenario file that cannot be read, parsed or validated."""


class CaptureError(BadInput):
    """A file that is not a readable capture."""


class OutputError(BadInput):
    """The output folder cannot be written."""


class EnvironmentUnusable(LabError):
    """The environment cannot run the lab: exit 3."""

    status = ExitStatus.ENVIRONMENT


class EngineUnavailable(EnvironmentUnusable):
    pass


class ImageBuildError(EnvironmentUnusable):
    pass


class LabRuntimeError(EnvironmentUnusable):
    """The engine refused or failed an operation mid-run (container, network, timeout)."""
