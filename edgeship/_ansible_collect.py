"""One board's outcome of the Ansible playbook → the same :class:`BoardResult` as the built-in
engine: a saved per-board report (``DeployOutcome``), or the one-line reason it failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import EdgeshipError, MeasurementError
from core.paths import Paths
from devices import Board
from edgeship.fleet import BoardResult

__all__ = ["collect", "failure_reason"]


def collect(board: Board, records: dict[str, Any], built: Any, paths: Paths,
            options: Any) -> BoardResult[Any]:
    """Build *board*'s result from its callback record and its fetched agent JSON."""
    rec = records.get("hosts", {}).get(board.name)
    if rec is None:
        return BoardResult(board.name, False, None, _not_run(options), 0.0)
    seconds = max(0.0, (rec.get("ended") or rec["started"]) - rec["started"])
    if rec.get("failed"):
        return BoardResult(board.name, False, None, failure_reason(board, rec["failed"]), seconds)
    try:
        outcome = _outcome(board, rec, built, paths)
    except EdgeshipError as exc:
        return BoardResult(board.name, False, None, " ".join(str(exc).split()), seconds)
    return BoardResult(board.name, True, outcome, None, seconds)


def _not_run(options: Any) -> str:
    return (f"not run: Ansible stopped the play before this board (more than "
            f"{options.max_fail}% of a batch failed: max_fail_percentage); fix the failed boards "
            "and deploy again")


def failure_reason(board: Board, failed: dict[str, Any]) -> str:
    """One line saying which step failed on *board* and why (the agent's exit like edgeship's)."""
    msg = failed.get("msg") or "failed"
    if failed.get("action", "").endswith("shell"):
        rc = failed.get("rc")
        if rc in (124, 137):
            return (f"agent on board {board.name!r} did not finish within the profile's "
                    "profiling.timeout_s; a runtime hung or the board is overloaded: raise "
                    "profiling.timeout_s or lower profiling.runs in the profile")
        tail = (str(failed.get("stderr") or "").strip().splitlines() or ["no output"])[-1]
        return (f"agent on board {board.name!r} exited {rc}: {tail}; is the release shipped and "
                "the runtime provisioned?")
    if failed.get("unreachable"):
        return f"board {board.name!r} ({board.host}:{board.port}) unreachable: {msg}"
    return msg if board.name in msg else f"board {board.name!r}: {failed.get('task')}: {msg}"


def _outcome(board: Board, rec: dict[str, Any], built: Any, paths: Paths) -> Any:
    """Parse the fetched agent JSON, build and save the board's report (as ``deploy_bundle``)."""
    from edgeship.deploy import finish_report
    from profiler.measure import read_agent_result

    profile, bundle = built
    release = rec.get("release") or {}
    ship = release.get("ship")
    if not ship:
        raise MeasurementError(f"board {board.name!r}: the playbook gave no ship result; rerun the "
                               "deploy (see the ansible output above)")
    if release.get("healthy"):
        fetched = rec.get("fetched")
        if not fetched or not Path(fetched).is_file():
            raise MeasurementError(f"agent result of board {board.name!r} was not fetched; rerun "
                                   "the deploy")
        agent = read_agent_result(Path(fetched).read_text(), board.name, ship["release_id"])
    else:  # the health probe failed: reported, the full profile was skipped (as built-in)
        agent = release.get("smoke") or {"results": []}
    target = board.model_copy(update={"python": str(rec.get("python") or board.python)})
    return finish_report(board.name, target, profile, bundle, ship, agent, paths)

