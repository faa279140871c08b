"""Host side of profiling: run the release's agent on the board and validate its JSON.

The agent runs under the board's ``timeout`` (so a hung runtime is killed on the board too) and
under a host-side deadline; either way a hang becomes a :class:`MeasurementError`, never a hang of
the deploy.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from pydantic import ValidationError

from core.contracts import (
    AGENT_SCHEMA,
    BUNDLE_ID,
    AgentResult,
    DeviceFacts,
    Latency,
    MeasuredArtifact,
    first_problem,
)
from core.errors import CommandTimeout, MeasurementError
from devices import Board
from profiles import Profile
from runtimes.transport import Transport

from .agent import AGENT_NAME
from .parsers.board import enrich

__all__ = ["RESULT_FIELDS", "DEVICE_FIELDS", "SCHEMA", "agent_argv", "agent_command", "enrich",
           "parse_agent_output", "measure_release", "read_agent_result"]

log = logging.getLogger(__name__)

SCHEMA = AGENT_SCHEMA  # the agent result version the host accepts (core.contracts)
DEVICE_FIELDS = tuple(DeviceFacts.model_fields)
RESULT_FIELDS = tuple(MeasuredArtifact.model_fields)
LATENCY_FIELDS = tuple(Latency.model_fields)
_GRACE_S = 10.0  # host waits this much longer than the board-side `timeout`
_ID = re.compile(BUNDLE_ID)  # a release is named by its bundle id


def measure_release(transport: Transport, board: Board, profile: Profile,
                    release_id: str | None = None) -> dict[str, Any]:
    """Run ``edgeship_agent.py`` of ``current`` (or *release_id*) and return its parsed JSON.

    Uses ``board.python`` and the profile's threads, warm-up, runs, ONNX providers and timeout.

    Raises:
        MeasurementError: the agent did not finish within ``profile.profiling.timeout_s``, failed,
            or printed something that is not a valid result document.
    """
    argv, limit = agent_command(board, profile, release_id), profile.profiling.timeout_s
    started = time.perf_counter()
    try:
        res = transport.run(argv, timeout=limit + _GRACE_S, check=False)
    except CommandTimeout as exc:
        raise _hung(board, limit) from exc
    if res.status in (124, 137):  # coreutils timeout: TERM sent / KILL needed
        raise _hung(board, limit)
    if res.status != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasurementError(f"agent on board {board.name!r} exited {res.status}: {tail}; is the "
                           f"release shipped and the runtime provisioned?")
    doc = read_agent_result(res.stdout, board.name, release_id)
    log.info("board %r: profiled %s in %.1f s", board.name, doc["release"],
             time.perf_counter() - started)
    return doc


def agent_command(board: Board, profile: Profile, release_id: str | None = None) -> list[str]:
    """The one command line that runs the agent of ``current`` (or *release_id*) on *board*,
    under the board's ``timeout`` (both engines run exactly this)."""
    if release_id is not None and not _ID.match(release_id):
        raise MeasurementError(f"release id {release_id!r} is not a plain name")
    root = board.root.rstrip("/") or "/"
    release = f"{root}/releases/{release_id}" if release_id else f"{root}/current"
    argv = ["timeout", "-k", "5", f"{profile.profiling.timeout_s:g}", board.python,
            f"{release}/{AGENT_NAME}", "--release", release, *agent_argv(profile)]
    if getattr(board, "sysroot", None):  # a simulated Jetson: its JetPack files live there
        argv += ["--sysroot", board.sysroot]
    return argv


def agent_argv(profile: Profile) -> list[str]:
    """The agent's options for *profile* (runs, warm-up, stability, pinning, batch, tools)."""
    opts = profile.profiling
    argv = ["--warmup", str(opts.warmup), "--warmup-s", f"{opts.warmup_s:g}",
            "--runs", str(opts.runs), "--duration-s", f"{opts.duration_s:g}",
            "--max-runs", str(opts.max_runs), "--threads", str(profile.runtime.threads),
            "--batch", str(opts.batch), "--providers", ",".join(profile.runtime.onnx_providers),
            "--op-top", str(opts.op_top), "--samples", str(opts.latency_samples),
            "--sample-interval", f"{opts.sample_interval_s:g}",
            "--stable-tol", f"{opts.stable_tolerance:g}",
            "--stable-windows", str(opts.stable_windows), "--timeout", f"{opts.timeout_s:g}"]
    if opts.pin_cpus:
        argv += ["--pin", opts.pin_cpus]
    engines = [a.key for a in profile.artifacts if a.runner == "tensorrt"]
    if engines:
        argv += ["--tensorrt", ",".join(engines)]
    if profile.runtime.accelerator != "none":
        argv += ["--accelerator", profile.runtime.accelerator]
    return argv + (["--until-stable"] if opts.until_stable else []) + (
        ["--trtexec"] if opts.trtexec else [])


def _hung(board: Board, limit: float) -> MeasurementError:
    return MeasurementError(f"agent on board {board.name!r} did not finish within {limit:g} s; a "
                        f"runtime hung or the board is overloaded: raise profiling.timeout_s or "
                        f"lower profiling.runs in the profile")


def read_agent_result(stdout: str, board_name: str, release_id: str | None) -> dict[str, Any]:
    """The agent's document, validated, with the board tools' output parsed (``enrich``), and
    checked to be about *release_id* (when given); what both engines do with the agent's JSON."""
    doc = enrich(parse_agent_output(stdout, board_name))
    if release_id is not None and doc["release"] != release_id:
        raise MeasurementError(f"agent on board {board_name!r} measured release {doc['release']!r}, "
                               f"not {release_id!r}; the release directory is inconsistent, ship "
                               "again")
    return doc


def parse_agent_output(stdout: str, board_name: str = "?") -> dict[str, Any]:
    """Parse and validate the agent's JSON document; :class:`MeasurementError` on anything else."""
    try:
        doc = json.loads(stdout)
        problem = _problem(doc)
    except ValueError:
        problem = "not JSON"
    if problem:
        head = " ".join(stdout[:200].split()) or "(empty)"
        raise MeasurementError(f"agent on board {board_name!r} returned an invalid result ({problem}); "
                           f"its output began: {head!r}; check the agent and runtime versions")
    return doc  # type: ignore[no-any-return]


def _problem(doc: Any) -> str | None:
    """The first way *doc* breaks the result contract (:class:`core.contracts.AgentResult`)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    try:
        AgentResult.model_validate(doc)
    except ValidationError as exc:
        return first_problem(exc, doc)
    return None

