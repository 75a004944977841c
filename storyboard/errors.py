"""The exception tree. Every error a user can see is a :class:`StoryboardError`.

::

    StoryboardError
    ├── SpecError            file, line, column, what is allowed   (exit 1)
    │   ├── GraphError       cycle / unknown reference (names the shots)
    │   └── TemplateError    Jinja syntax / undefined name (file, line)
    ├── AppError             unknown app, malformed @version, bad price file
    ├── PromptError          a template failed to render (template, file, line); the
    │                        board reports it, located, as a TemplateError
    ├── UsageError           a bad command-line value               (exit 2)
    ├── BudgetError          plan cost over --budget                (exit 3)
    ├── BackendError         a shot could not be generated          (exit 1)
    │   ├── AuthError        401/403: says to check INFERENCE_API_KEY
    │   ├── RateLimited      429/503 after retries
    │   ├── TaskFailed       the remote task failed/was rejected (its message)
    │   ├── NoOutputError    the task finished without an output file
    │   └── MaybeSubmitted   a submission failed after it went out: a (billed) task
    │                        may exist, so it is never resubmitted blindly
    ├── MediaError           ffmpeg failed (the command and the tail of its stderr)
    ├── CacheError           the cache cannot be read or written
    │   └── LockedError      another render of the same storyboard is running
    └── RenderFailed         some shots failed; the others are cached (exit 1)

The CLI catches :class:`StoryboardError` once, prints ``str(error)`` and exits with
``error.exit_code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class StoryboardError(Exception):
    """Base of every error storyboard raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One validation problem, located in a file."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        where = self.file or "<storyboard>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class SpecError(StoryboardError):
    """The storyboard is invalid. Carries one or more located problems."""

    def __init__(
        self,
        message: str | Sequence[Problem],
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        if isinstance(message, str):
            self.problems: list[Problem] = [Problem(message, file, line, column)]
        else:
            self.problems = list(message)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str | None:
        """The file of the first problem, if known."""
        return self.problems[0].file if self.problems else None

    @property
    def line(self) -> int | None:
        """The line of the first problem, if known."""
        return self.problems[0].line if self.problems else None

    @property
    def column(self) -> int | None:
        """The column of the first problem, if known."""
        return self.problems[0].column if self.problems else None


class GraphError(SpecError):
    """A cycle or an unknown shot reference."""


class TemplateError(SpecError):
    """A prompt template could not be rendered."""


class AppError(StoryboardError):
    """An app reference, profile or price file is unusable (unknown app, malformed @version)."""


class PromptError(StoryboardError):
    """A template could not be rendered. ``file``/``line`` point into the template file
    (``file`` is None for an inline prompt, ``line`` then counts from the prompt's start).
    ``depends_on`` names the shot whose failed prompt this one reads, if that is why."""

    def __init__(
        self,
        message: str,
        *,
        template: str | None = None,
        file: str | None = None,
        line: int | None = None,
        depends_on: str | None = None,
    ) -> None:
        self.message = message
        self.template = template
        self.file = file
        self.line = line
        self.depends_on = depends_on
        super().__init__(message)


class UsageError(StoryboardError):
    """A bad command-line value."""

    exit_code = 2


class BudgetError(StoryboardError):
    """The plan would cost more than the budget allows. Nothing was paid."""

    exit_code = 3


class BackendError(StoryboardError):
    """A shot could not be generated (or a backend request failed).

    ``status`` is the HTTP status that decided it (None when there was no answer),
    ``retryable`` says whether the same call may succeed later, ``shot`` names the shot.
    Code branches on these fields, never on the message text.
    """

    retryable_default = False

    def __init__(
        self,
        message: str,
        *,
        shot: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.shot = shot
        self.status = status
        self.retryable = self.retryable_default if retryable is None else retryable
        super().__init__(f"shot '{shot}': {message}" if shot else message)


class NoOutputError(BackendError):
    """The task finished but gave no output file (a journalled one is submitted anew)."""


class AuthError(BackendError):
    """The API key is missing or was refused."""


class RateLimited(BackendError):
    """The server kept answering 429/503."""

    retryable_default = True


class TaskFailed(BackendError):
    """The remote task failed, was cancelled or was rejected."""


class MaybeSubmitted(BackendError):
    """The submission failed in a way that may have left a (billed) task behind."""


class MediaError(StoryboardError):
    """ffmpeg (or a media file) failed."""

    def __init__(self, message: str, *, command: Sequence[str] | None = None, stderr: str = "") -> None:
        self.command = list(command) if command else None
        self.stderr = stderr
        text = message
        if stderr:
            tail = "\n".join(stderr.strip().splitlines()[-8:])
            text += f"\n{tail}"
        super().__init__(text)


class CacheError(StoryboardError):
    """The cache cannot be read or written."""


class LockedError(CacheError):
    """Another render of the same storyboard output is running."""


class RenderFailed(StoryboardError):
    """One or more shots failed; every other shot is cached."""
