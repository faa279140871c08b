"""Fleet deploys: one model to every board of an inventory group, in parallel, one result each.

The model is converted once per profile of the group; then at most *parallel* boards are
provisioned, shipped to and profiled at the same time (a thread each: the work is SSH I/O).
A board that fails — unreachable, locked, disk full, a runtime crash — gets its one-line reason
in its result and does not stop the others; the fleet verdict says whether all succeeded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from core.errors import ConfigError, EdgeshipError, ShipError
from core.paths import Paths, default_paths
from devices import Board, Inventory, load_inventory

__all__ = ["DEFAULT_PARALLEL", "BoardResult", "FleetOutcome", "deploy_fleet", "preflight_fleet",
           "run_fleet"]

log = logging.getLogger(__name__)

DEFAULT_PARALLEL = 4
T = TypeVar("T")
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class BoardResult(Generic[T]):
    """What one board of a fleet operation gave: its value, or the one-line reason it failed."""

    board: str
    ok: bool
    value: T | None
    reason: str | None
    seconds: float


@dataclasses.dataclass(frozen=True)
class FleetOutcome:
    """A fleet deploy: the fleet document, where it was saved, and each board's result."""

    report: dict[str, Any]
    report_path: Path
    results: list[BoardResult[Any]]

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.results)


def _quiet(_: str) -> None:
    return None


def run_fleet(boards: Sequence[Board], task: Callable[[Board], T], *,
              parallel: int = DEFAULT_PARALLEL) -> list[BoardResult[T]]:
    """Run ``task(board)`` on every board, at most *parallel* at a time; results in board order.

    An exception in one board's task becomes that board's failed result (its message as the
    reason); the other boards go on.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1 (got {parallel})")
    if not boards:
        return []
    with ThreadPoolExecutor(max_workers=min(parallel, len(boards)),
                            thread_name_prefix="fleet") as pool:
        return list(pool.map(lambda b: _attempt(b, task), boards))


def _attempt(board: Board, task: Callable[[Board], T]) -> BoardResult[T]:
    started = time.perf_counter()
    try:
        value = task(board)
    except EdgeshipError as exc:
        return BoardResult(board.name, False, None, _one_line(exc), time.perf_counter() - started)
    except Exception as exc:  # a bug or a library error on one board must not hide the others
        log.debug("board %r: unexpected failure", board.name, exc_info=True)
        reason = f"internal error: {type(exc).__name__}: {_one_line(exc)}"
        return BoardResult(board.name, False, None, reason, time.perf_counter() - started)
    return BoardResult(board.name, True, value, None, time.perf_counter() - started)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def deploy_fleet(device: str, model: str, data: str | None, *, paths: Paths | None = None,
                 inventory: Inventory | None = None, parallel: int = DEFAULT_PARALLEL,
                 progress: Progress = _quiet, force: bool = False,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 ship: Any = None) -> FleetOutcome:
    """Pre-flight every board, convert once per profile that has a reachable board, then deploy
    to every board of group *device* in parallel.

    A board that fails its pre-flight (``runtimes.check``: reachable, host key, login, Python,
    CPU, glibc) fails with that one-line reason at once, before any conversion; when none passes,
    nothing is converted. Saves each board's report as a single deploy would, and the fleet
    document under ``reports/<group>/<timestamp>/report.json``.
    """
    from edgeship.deploy import ShipOptions, convert, deploy_bundle
    from profiler.report import build_fleet_report

    paths = paths or default_paths()
    boards = (inventory or load_inventory()).resolve(device)
    if parallel < 1:
        raise ConfigError(f"--parallel must be at least 1 (got {parallel})")
    progress(f"checking {len(boards)} boards of {device!r}")
    unreachable = preflight_fleet(boards, paths, parallel=parallel, progress=progress)
    built: dict[str, tuple[Any, Any] | str] = {}
    for name in dict.fromkeys(b.profile for b in boards if b.name not in unreachable):
        progress(f"converting for profile {name} ({sum(b.profile == name for b in boards)} boards)")
        try:
            built[name] = convert(device, model, data, paths=paths, profile=name,
                                  progress=progress, force=force, input_shapes=input_shapes)
        except EdgeshipError as exc:  # every board of this profile fails with this reason
            built[name] = f"conversion failed: {_one_line(exc)}"

    def one(board: Board) -> Any:
        if board.name in unreachable:
            raise ShipError(unreachable[board.name])
        got = built[board.profile]
        if isinstance(got, str):
            raise ConfigError(got)
        say = _prefixed(progress, board.name)
        outcome = deploy_bundle(board, got[0], got[1], paths=paths, device=board.name,
                                progress=say, ship=ship or ShipOptions())
        say(f"done: verdict {outcome.report['verdict']}")
        return outcome

    progress(f"deploying to {len(boards)} boards of {device!r}, {min(parallel, len(boards))} "
             "at a time")
    started = time.perf_counter()
    results = run_fleet(boards, one, parallel=parallel)
    report = build_fleet_report(device=device, boards=boards, results=results,
                                parallel=parallel, seconds=time.perf_counter() - started)
    return FleetOutcome(report, save_fleet_report(report, results, paths.reports), results)


def preflight_fleet(boards: Sequence[Board], paths: Paths, *, parallel: int = DEFAULT_PARALLEL,
                    progress: Progress = _quiet) -> dict[str, str]:
    """Start the simulated boards and run the pre-flight on every board, *parallel* at a time;
    ``{board name: "pre-flight: <one-line reason>"}`` for those that fail it."""
    from edgeship.deploy import check_reachable
    from profiles import load_profile

    def check(board: Board) -> None:
        check_reachable(board, paths, load_profile(board.profile), _prefixed(progress, board.name))

    results = run_fleet(boards, check, parallel=parallel)
    failed = {r.board: f"pre-flight: {r.reason}" for r in results if not r.ok}
    for name, reason in failed.items():
        progress(f"[{name}] {reason}")
    return failed


def save_fleet_report(report: dict[str, Any], results: list[BoardResult[Any]],
                      reports_dir: Path) -> Path:
    """Save the fleet document (``report.json``) and its page (``fleet.html``: boards side by
    side with the unit-to-unit spread) under ``reports_dir/<group>/<timestamp>/``."""
    from profiler.html_report import write_fleet_html
    from profiler.report import save_report

    path = save_report(report, reports_dir)
    write_fleet_html(report, [r.value.report for r in results if r.ok], path.with_name("fleet.html"))
    return path


def _prefixed(progress: Progress, name: str) -> Progress:
    def say(text: str) -> None:
        progress(f"[{name}] {text}")
    return say


def boards_up(device: str, *, paths: Paths | None = None,
              inventory: Inventory | None = None) -> list[Board]:
    """Start every simulated board of *device* (a board or a group); returns them running."""
    from edgeship.deploy import start_board

    paths = paths or default_paths()
    boards = (inventory or load_inventory()).resolve(device)
    real = [b.name for b in boards if not b.simulated]
    if real:
        raise ConfigError(f"{', '.join(real)} {'is a real board' if len(real) == 1 else 'are real boards'}; "
                          "only simulated boards are started by edgeship")
    return [start_board(b, paths) for b in boards]


def boards_down(device: str, *, paths: Paths | None = None,
                inventory: Inventory | None = None) -> list[str]:
    """Stop every simulated board of *device* (namespaces removed); returns those that ran."""
    from runtimes import sim

    paths = paths or default_paths()
    boards = (inventory or load_inventory()).resolve(device)
    return [b.name for b in boards if b.simulated and sim.stop(b, paths)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edgeship.fleet up|down DEVICE`` (``make board-up/board-down`` with groups)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("up", "down"):
        print("usage: python -m edgeship.fleet up|down DEVICE", file=sys.stderr)
        return 2
    try:
        if args[0] == "up":
            for b in boards_up(args[1]):
                print(f"board {b.name!r} up at {b.user}@{b.host}:{b.port}, root {b.root}")
        else:
            stopped = boards_down(args[1])
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    except EdgeshipError as exc:
        print(f"edgeship: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
