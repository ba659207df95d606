"""Exceptions a user can act on, each with its command-line exit code.

Hierarchy::

    AudienceError                 (exit 1)
    ├── InputNotFound             (exit 3) a path that does not exist
    ├── UnsupportedInput          (exit 4) not a video or an image, or nothing in it decodes
    ├── NoInputs                  (exit 5) a folder with no images or videos in it
    ├── ModelError                (exit 7) a model file missing or not the pinned sha256
    ├── DatabaseUnusable          (exit 8) the database cannot be opened or is not one of ours
    └── ModelExtraError           (exit 9) the audience model's extra is missing, or too little data to fit

A video that stops decoding early is not an exception: its frames up to that point are analysed and the
run ends with exit code 6 (``EXIT_PARTIAL``) and a one-line warning naming where it stopped.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PARTIAL = 6


class AudienceError(Exception):
    """Base class: its message is one line a user can act on."""

    exit_code = 1


class InputNotFound(AudienceError):
    exit_code = 3


class UnsupportedInput(AudienceError):
    exit_code = 4


class NoInputs(AudienceError):
    exit_code = 5


class ModelError(AudienceError):
    exit_code = 7


class DatabaseUnusable(AudienceError):
    exit_code = 8


class ModelExtraError(AudienceError):
    exit_code = 9
