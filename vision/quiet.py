"""Keep MediaPipe's native (C++) log lines away from the user's terminal.

MediaPipe writes several lines to file descriptor 2 for every landmarker it creates, and
GLOG_minloglevel does not stop them. `native_stderr_to_devnull()` points fd 2 at /dev/null for the
duration while Python's own `sys.stderr` keeps writing to the real terminal through a duplicate.
Nothing is changed at import; the CLI opts in.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys


@contextlib.contextmanager
def native_stderr_to_devnull():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    old_stderr = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0), write_through=True,
                                      encoding=getattr(old_stderr, "encoding", None) or "utf-8",
                                      errors="backslashreplace")
        yield
    finally:
        try:
            sys.stderr.flush()
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.close()
            sys.stderr = old_stderr
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
