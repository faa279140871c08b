"""Wall time of the converter's steps, for the manifest's ``timings`` section.

A build opens a :class:`Timings` and makes it current (:func:`recording`); anywhere below, a step
is timed with ``with timed("quantize", key="onnx-int8"):`` or, for a duration measured elsewhere
(a child process), added with :func:`record`. Outside a recording both are no-ops, so library
functions time themselves without a parameter threaded through every call. Steps nest: each
record names the step it ran inside (``within``: ``"verify onnx-int8"``), so the top-level steps
add up to the build and the nested ones say where a long step went.

Manifest form (``Timings.to_dict``)::

    {"total_s": 61.3, "steps": [{"step": "export", "key": "onnx-fp32", "seconds": 7.2,
                                 "within": null}, …]}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Step", "Timings", "record", "recording", "timed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One timed step: its name, the artifact key it worked on (if one), seconds, parent label."""

    step: str
    key: str | None
    seconds: float
    within: str | None = None

    def label(self) -> str:
        """``"verify onnx-int8"`` (name and key) — how nested steps refer to this one."""
        return f"{self.step} {self.key}" if self.key else self.step

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (seconds rounded to milliseconds)."""
        return {"step": self.step, "key": self.key, "seconds": round(self.seconds, 3),
                "within": self.within}


@dataclass
class Timings:
    """The steps of one build in the order they started; :meth:`step` times one."""

    steps: list[Step] = field(default_factory=list)
    _open: list[tuple[int, str]] = field(default_factory=list)  # (slot, label) of running steps
    _started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def step(self, name: str, key: str | None = None) -> Iterator[None]:
        """Time the block as step *name* (of artifact *key*); recorded even when it raises."""
        slot = len(self.steps)
        within = self._open[-1][1] if self._open else None
        self.steps.append(Step(name, key, 0.0, within))  # holds its place in start order
        self._open.append((slot, Step(name, key, 0.0).label()))
        start = time.perf_counter()
        try:
            yield
        finally:
            self._open.pop()
            self.steps[slot] = Step(name, key, time.perf_counter() - start, within)

    def add(self, name: str, seconds: float, key: str | None = None) -> None:
        """Record a duration measured elsewhere (e.g. by a child process) as a nested step."""
        within = self._open[-1][1] if self._open else None
        self.steps.append(Step(name, key, float(seconds), within))

    def total(self) -> float:
        """Seconds since this recording was created."""
        return time.perf_counter() - self._started

    def to_dict(self) -> dict[str, Any]:
        """``{"total_s", "steps"}`` for the manifest."""
        return {"total_s": round(self.total(), 3), "steps": [s.to_dict() for s in self.steps]}

    def summary(self, top: int = 8) -> str:
        """One line: the slowest top-level steps, e.g. ``verify tflite-int8 31.2 s, …``."""
        outer = sorted((s for s in self.steps if s.within is None), key=lambda s: -s.seconds)
        return ", ".join(f"{s.label()} {s.seconds:.1f} s" for s in outer[:top])


_CURRENT: ContextVar[Timings | None] = ContextVar("edgeship_timings", default=None)


@contextmanager
def recording(timings: Timings | None = None) -> Iterator[Timings]:
    """Make *timings* (a new one by default) current for the block; yield it."""
    timings = timings if timings is not None else Timings()
    token = _CURRENT.set(timings)
    try:
        yield timings
    finally:
        _CURRENT.reset(token)


@contextmanager
def timed(name: str, key: str | None = None) -> Iterator[None]:
    """Time the block in the current recording (nothing happens outside one)."""
    current = _CURRENT.get()
    if current is None:
        yield
        return
    with current.step(name, key):
        yield


def record(name: str, seconds: float, key: str | None = None) -> None:
    """Add a duration measured elsewhere to the current recording (no-op outside one)."""
    current = _CURRENT.get()
    if current is not None:
        current.add(name, seconds, key)
