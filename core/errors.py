"""The one error tree of edgeship.

    EdgeshipError                 base; the CLI prints ``str(err)`` on one line, exits ``exit_code``
    ├── ConfigError               a profile, inventory, recipe or CLI argument is wrong      (2)
    │   └── UnknownNameError      a name not in a registry, with "did you mean"               (2)
    ├── ModelError                the model source cannot be found, loaded or exported        (3)
    ├── ConversionError           a converter or compression pass failed                      (4)
    │   └── VerificationError     an artifact drifted from the original beyond its budget     (4)
    ├── ShipError                 the board cannot be reached, or an upload/switch failed     (5)
    │   ├── RemoteCommandError    a command on the board exited non-zero (carries its output) (5)
    │   ├── CommandTimeout        a command on the board did not finish in time              (5)
    │   └── ConnectionLost        the connection dropped or stalled mid-step (retry may work) (5)
    ├── MeasurementError          the on-board agent failed or returned bad figures           (6)
    └── BudgetExceeded            figures over a hard budget of the profile                    (7)

Every message says what went wrong *and* what to do next, in one line. A partial result (some
artifacts left out of the bundle, the rest passed) is not an error: the CLI exits 8
(``profiler.report.PARTIAL_EXIT``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "EdgeshipError",
    "ConfigError",
    "UnknownNameError",
    "ModelError",
    "ConversionError",
    "VerificationError",
    "ShipError",
    "RemoteCommandError",
    "CommandTimeout",
    "ConnectionLost",
    "MeasurementError",
    "BudgetExceeded",
    "did_you_mean",
]


class EdgeshipError(Exception):
    """Base of every error edgeship raises on purpose."""

    exit_code = 1


class ConfigError(EdgeshipError):
    """A profile, inventory, recipe or argument is invalid."""

    exit_code = 2


class UnknownNameError(ConfigError):
    """A name that is not in its registry; the message suggests the closest valid names."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        msg = f"unknown {kind} {name!r}"
        close = did_you_mean(name, known)
        if close:
            msg += f"; did you mean {close!r}?"
        elif known:
            msg += f"; known: {', '.join(known)}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class ModelError(EdgeshipError):
    """The model source cannot be found, loaded or exported."""

    exit_code = 3


class ConversionError(EdgeshipError):
    """A converter or compression pass failed.

    Optional keyword attributes say which part failed, for an artifact left out of a bundle:
    ``stage`` (``convert``, ``quantize``, ``load``, …), ``tool`` (``onnx2tf``,
    ``onnxruntime``, …), ``cause`` (the tool's own one-line message, without our advice) and
    ``tried`` (the variants tried before giving up). All default to ``None`` / ``[]``.
    """

    exit_code = 4

    def __init__(self, message: str = "", *, stage: str | None = None, tool: str | None = None,
                 cause: str | None = None, tried: list[str] | None = None) -> None:
        super().__init__(message)
        self.stage, self.tool, self.cause = stage, tool, cause
        self.tried = list(tried or [])


class VerificationError(ConversionError):
    """An artifact's outputs drifted from the original model beyond the profile's budget."""


class ShipError(EdgeshipError):
    """The board could not be reached, or shipping to it failed."""

    exit_code = 5


class RemoteCommandError(ShipError):
    """A command on the board exited non-zero."""

    def __init__(self, board: str, command: str, status: int, stdout: str, stderr: str) -> None:
        self.board, self.command, self.status = board, command, status
        self.stdout, self.stderr = stdout, stderr
        last = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
        super().__init__(f"board {board!r}: `{command}` exited {status}: {last}")


class CommandTimeout(ShipError, TimeoutError):
    """A command on the board did not finish in time (also a built-in ``TimeoutError``)."""


class ConnectionLost(ShipError, ConnectionError):
    """The connection dropped or stalled mid-step; reconnecting and retrying may succeed."""


class MeasurementError(EdgeshipError):
    """The on-board agent failed, hung, or returned figures that cannot be parsed."""

    exit_code = 6


class BudgetExceeded(EdgeshipError):
    """Measured figures exceed a budget the profile marks as a hard limit."""

    exit_code = 7


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """Return the closest known name to *name*, or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None
