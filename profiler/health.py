"""The health probe after a switch: a smoke run of the new release's agent, rollback on failure.

A release that verified byte for byte can still be broken on the board (a runtime that cannot
load the model, a crash). The probe runs the agent of the release with a handful of runs; if
it fails and the ship switched ``current``, ``current`` goes back to the previous release.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from core.errors import MeasurementError, ShipError
from devices import Board
from profiles import Profile
from runtimes.ship import ShipResult, rollback
from runtimes.transport import Transport

from .measure import measure_release

__all__ = ["SMOKE_RUNS", "SMOKE_WARMUP", "check_health", "smoke_profile"]

log = logging.getLogger(__name__)

SMOKE_WARMUP, SMOKE_RUNS, SMOKE_TIMEOUT_S = 1, 3, 120.0


def smoke_profile(profile: Profile) -> Profile:
    """*profile* with profiling cut down to a smoke run (1 warm-up, 3 runs)."""
    builds = any(getattr(a, "runner", "auto") == "tensorrt" for a in profile.artifacts)
    opts = profile.profiling.model_copy(update={  # a TensorRT engine build may take minutes
        "warmup": SMOKE_WARMUP, "runs": SMOKE_RUNS,
        "timeout_s": profile.profiling.timeout_s if builds else min(profile.profiling.timeout_s,
                                                                    SMOKE_TIMEOUT_S)})
    return profile.model_copy(update={"profiling": opts})


def check_health(transport: Transport, board: Board, profile: Profile,
                 shipped: ShipResult) -> tuple[ShipResult, dict[str, Any] | None]:
    """Probe the shipped release; roll back when it fails and the ship switched ``current``.

    Returns the ship result with ``health`` (``ok``, ``error``, ``seconds``) and ``rolled_back``
    filled in, and the agent's smoke document (``None`` when the agent gave none).
    """
    started = time.perf_counter()
    doc: dict[str, Any] | None = None
    try:
        doc = measure_release(transport, board, smoke_profile(profile), shipped.release_id)
        failed = [r for r in doc["results"] if not r.get("ok")]
        error = "; ".join(f"{r['key']}: {r['error']}" for r in failed) or None
    except MeasurementError as exc:
        error = str(exc)
    health: dict[str, Any] = {"ok": error is None, "error": error, "warmup": SMOKE_WARMUP,
                              "runs": SMOKE_RUNS,
                              "seconds": round(time.perf_counter() - started, 3)}
    rolled_back = False
    if error is not None and shipped.switched and shipped.previous:
        # info, not warning: the deploy's progress line says it once, with the outcome
        log.info("board %r: release %s failed its health probe (%s); rolling back to %s",
                    board.name, shipped.release_id, error, shipped.previous)
        try:
            health["rolled_back_to"] = rollback(transport, board)
            rolled_back = True
        except ShipError as exc:
            health["rollback_error"] = str(exc)
    elif error is not None:
        health["note"] = ("no previous release to roll back to" if not shipped.previous else
                          "the release was already current before this deploy; not rolled back")
    return dataclasses.replace(shipped, health=health, rolled_back=rolled_back), doc
