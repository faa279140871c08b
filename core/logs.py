"""The one logging path: every message meant for the user is a ``logging`` record of our own
packages, printed once, on stderr, by one handler.

What reaches stderr (after :func:`setup`, which the CLI calls)::

    our packages, WARNING and above   ``edgeship: warning: <message>`` — each distinct message
                                      once per process, however many code paths log it
    our packages, INFO / DEBUG        only with ``-v`` (INFO) or ``EDGESHIP_DEBUG=1`` (DEBUG)
    everything else                   third-party loggers (absl, tensorflow, paramiko), the root
                                      logger some libraries write to (onnxruntime's quantizer:
                                      ``Axis 1 is out-of-range…``), Python ``warnings`` and C/C++
                                      output caught by :func:`native_stderr` (TFLite's ``INFO:
                                      Created TensorFlow Lite XNNPACK delegate``): debug lines,
                                      shown only with ``-v`` / ``EDGESHIP_DEBUG=1``

Nothing is switched off: chatter is routed to the debug level, where ``-v`` shows it.
Library users (no :func:`setup`) get Python's defaults.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["OURS", "debug_requested", "native_stderr", "setup"]

OURS = ("edgeship", "core", "converters", "runtimes", "profiler", "profiles", "devices")
"""Top-level packages whose records are ours (the rest is third-party chatter)."""

_NATIVE = threading.Lock()  # fd 2 is process-wide: one redirection at a time


def debug_requested() -> bool:
    """Whether ``EDGESHIP_DEBUG`` asks for everything (tracebacks, debug records)."""
    return os.environ.get("EDGESHIP_DEBUG", "") not in ("", "0")


def _ours(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] in OURS


class _Handler(logging.Handler):
    """Writes to the *current* ``sys.stderr`` (so rich's live progress can redirect it), says
    each warning of ours once, and keeps third-party records to the verbose level."""

    def __init__(self, verbose: int) -> None:
        super().__init__(logging.DEBUG)
        self.verbose = verbose
        self._said: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not _ours(record) or record.levelno < logging.WARNING:
            return self.verbose >= (2 if record.levelno < logging.INFO else 1)
        key = (record.levelno, record.getMessage())
        if key in self._said:
            return False
        self._said.add(key)
        return True

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and self.verbose:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if _ours(record) and record.levelno >= logging.WARNING:
            return f"edgeship: {record.levelname.lower()}: {text}"
        level = "debug" if not _ours(record) else record.levelname.lower()
        return f"edgeship: {level} [{record.name}]: {text.rstrip()}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - a log line never breaks the run (logging's convention)
            self.handleError(record)


def setup(verbose: int = 0) -> None:
    """Route all logging through one stderr handler (idempotent; the last call's level wins).

    *verbose*: 0 warnings of ours only, 1 (``-v``) also INFO and third-party chatter,
    2 (``EDGESHIP_DEBUG=1``) everything down to DEBUG.
    """
    verbose = max(verbose, 2 if debug_requested() else 0)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(_Handler(verbose))
    root.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))
    logging.captureWarnings(True)  # Python warnings → the `py.warnings` logger → debug


@contextmanager
def native_stderr(source: str) -> Iterator[None]:
    """Capture what C/C++ code writes to file descriptor 2 inside the block; replay it as
    records of the ``native.<source>`` logger afterwards (``-v`` shows them). For short calls
    only: what other threads write to stderr in the same window is captured too."""
    with _NATIVE, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            for line in text.splitlines():
                if line.strip():
                    logging.getLogger(f"native.{source}").info("%s", line.rstrip())
