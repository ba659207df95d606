"""Every exception a user can act on, each with its command-line exit code: the only table of exit codes.

Hierarchy::

    AudienceError                 (exit 1)  its message is one line a user can act on
    ├── UsageError                (exit 2)  bad usage
    │   └── ManifestError                   `audience batch`: the manifest cannot be read or a row is malformed
    ├── InputNotFound             (exit 3)  a path that does not exist
    ├── UnsupportedInput          (exit 4)  not a video or an image, or nothing in it decodes
    ├── NoInputs                  (exit 5)  a folder with no images or videos in it
    ├── ModelError                (exit 7)  a model file missing or not the pinned sha256
    ├── StorageError              (exit 8)  the database or the API refused or could not be reached
    │   ├── DatabaseUnusable                the database cannot be opened or is not one of ours
    │   ├── Conflict                        a statistics batch disagrees with what is stored (the API's 409)
    │   ├── Invalid                         a statistics batch is malformed (the API's 422)
    │   └── PublishError                    statistics or a screening refused, or the service unreachable
    │       ├── Refused                     the service refused a spooled item for good (never retried)
    │       └── Unreachable                 the API or database could not be reached (retried later)
    ├── ModelExtraError           (exit 9)  the audience model's extra is missing, or too little data to fit
    │   └── NoData                          the content has nothing (or too little) to fit a model on
    ├── DeviceUnavailable         (exit 10) --device cuda without a usable CUDA provider
    └── RayUnavailable            (exit 11) --engine ray without ray or its cluster

Three outcomes are not exceptions: 0 (done), 6 (``EXIT_PARTIAL``: a video stopped decoding early; its frames
up to there are analysed and a one-line warning names where it stopped) and 130 (interrupted).

`exit_codes()` is the table (code -> meaning) built from these classes and outcomes: the command line's
epilog (`epilog()`) and the README's table (`markdown_table()`, checked by a test) are made from it.
"""
from __future__ import annotations

import textwrap

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PARTIAL = 6
EXIT_INTERRUPTED = 130

# the outcomes that are not exceptions
OUTCOMES = {
    EXIT_OK: "done (also when no face was found: a message says so and the outputs have zero rows)",
    EXIT_PARTIAL: "partial: a video stopped decoding early; what decoded was analysed and written, and a warning "
                  "says at which frame it stopped",
    EXIT_INTERRUPTED: "interrupted",
}


class AudienceError(Exception):
    """Base class: its message is one line a user can act on."""

    exit_code = 1
    meaning = ("internal error, or an error its one line explains (AUDIENCE_DEBUG=1 shows an internal error's "
               "traceback)")


class UsageError(AudienceError):
    exit_code = EXIT_USAGE
    meaning = "bad usage (an option, a combination of options, a batch manifest)"


class ManifestError(UsageError):
    """The manifest cannot be read or a row is malformed (exit 2, like any bad usage)."""


class InputNotFound(AudienceError):
    exit_code = 3
    meaning = "input not found"


class UnsupportedInput(AudienceError):
    exit_code = 4
    meaning = "input is not a readable video or image (empty, corrupt, unknown format, not a regular file)"


class NoInputs(AudienceError):
    exit_code = 5
    meaning = "folder has no images or videos"


class ModelError(AudienceError):
    exit_code = 7
    meaning = "a model file is missing or does not match its pinned sha256"


class StorageError(AudienceError):
    exit_code = 8
    meaning = ("the database or API refused or could not be reached (unknown screening, conflicting data, a "
               "database file that is not a database or is damaged)")


class DatabaseUnusable(StorageError):
    """The database cannot be opened, or is not one of ours."""


class PublishError(StorageError):
    """The database or the API refused statistics or a screening, or the API could not be reached."""


class Unreachable(PublishError):
    """The API or the database could not be reached (no answer, or a server error): worth retrying later,
    unlike a refusal."""


class Refused(PublishError):
    """The service refused an item for good (404, 409, 422): the live sender never retries it."""


class Conflict(StorageError):
    """A statistics batch disagrees with what is already stored for the same keys (the API answers 409)."""


class Invalid(StorageError):
    """A statistics batch is malformed (the API answers 422)."""


class ModelExtraError(AudienceError):
    exit_code = 9
    meaning = ("the audience model needs its optional extra (pip install 'audience-reactions[model]'), or the "
               "content has too little per-track data to fit it")


class NoData(ModelExtraError):
    """The content has nothing, or too little per-track data, to fit the audience model on."""


class DeviceUnavailable(AudienceError):
    """--device cuda without a CUDA execution provider."""

    exit_code = 10
    meaning = "--device cuda: ONNX Runtime has no usable CUDA provider"


class RayUnavailable(AudienceError):
    """--engine ray without the ray package, or its cluster cannot be reached."""

    exit_code = 11
    meaning = "--engine ray: ray is not installed or the cluster cannot be reached"


def _classes(cls=AudienceError):
    yield cls
    for sub in cls.__subclasses__():
        yield from _classes(sub)


def exit_codes() -> dict[int, str]:
    """Exit code -> meaning, in code order: one row per class that sets its own `exit_code`, and the outcomes."""
    table = dict(OUTCOMES)
    for cls in _classes():
        if "exit_code" in vars(cls):
            if cls.exit_code in table:
                raise RuntimeError(f"exit code {cls.exit_code} given twice ({cls.__name__})")
            table[cls.exit_code] = cls.meaning
    return dict(sorted(table.items()))


def epilog() -> str:
    """The exit-code table of every subcommand's --help."""
    lines = ["exit codes:"]
    for code, meaning in exit_codes().items():
        lines += textwrap.wrap(meaning, 100, initial_indent=f"  {code:<3} ", subsequent_indent=" " * 6)
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's exit-code table."""
    return "\n".join(["| code | meaning |", "|---|---|"] + [f"| {c} | {m} |" for c, m in exit_codes().items()])
