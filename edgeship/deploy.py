"""The deploy pipeline: convert for the board's profile, ship, provision, profile, report.

``deploy`` is the library form of ``edgeship deploy``; the CLI only parses arguments, shows
progress and prints. Each stage is its own package; this module only wires them in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.paths import Paths, default_paths
from devices import Board, Inventory, load_inventory
from profiler.report import build_report
from profiles import Profile, load_profile

__all__ = ["DeployOutcome", "ShipOptions", "check_reachable", "convert", "deploy", "deploy_bundle",
           "start_board"]

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class DeployOutcome:
    """What one deploy to one board produced: the report document and where it was saved."""

    report: dict[str, Any]
    report_path: Path
    html_path: Path | None = None


@dataclasses.dataclass(frozen=True)
class ShipOptions:
    """How a release is shipped (``edgeship deploy --keep --compress --retries --lock-wait``).

    Args:
        keep: releases kept on the board (current and previous are never pruned).
        compress: zlib on the wire: helps on slow links, costs CPU on fast ones.
        retries: reconnect-and-resume attempts after a dropped connection.
        lock_wait_s: how long to wait for another deploy's lock on the board.
    """

    keep: int = 3
    compress: bool = False
    retries: int = 3
    lock_wait_s: float = 0.0

    def __post_init__(self) -> None:
        if self.keep < 1 or self.retries < 0 or self.lock_wait_s < 0:
            raise ConfigError(f"ship options out of range ({self}); keep ≥ 1, retries ≥ 0, "
                              "lock wait ≥ 0")


def _quiet(_: str) -> None:
    return None


def _one_board(inventory: Inventory, device: str) -> Board:
    boards = inventory.resolve(device)
    if len(boards) != 1:
        names = ", ".join(b.name for b in boards)
        raise ConfigError(f"{device!r} is a group of {len(boards)} boards ({names}); "
                          "deploy to it with edgeship.fleet.deploy_fleet, or name one board")
    return boards[0]


def convert(device: str, model: str, data: str | None, *, paths: Paths | None = None,
            inventory: Inventory | None = None, profile: str | None = None,
            progress: Progress = _quiet, force: bool = False,
            input_shapes: dict[str, tuple[int, ...]] | None = None):
    """Build (or reuse) the bundle of *model* for *device*'s profile; return ``(Profile, Bundle)``.

    *input_shapes* fixes dynamic input dimensions (``--input-shape name=1x3x224x224``).
    """
    paths = paths or default_paths()
    if profile is None:
        profile = _one_board(inventory or load_inventory(), device).profile
    prof = load_profile(profile)
    from converters import build_bundle  # heavy: only once the arguments are known good
    from profiler.agent import board_files

    bundle = build_bundle(model, prof, data, paths, progress=progress, force=force,
                          input_shapes=input_shapes, board_files=board_files())
    return prof, bundle


def start_board(board: Board, paths: Paths, progress: Progress = _quiet) -> Board:
    """A simulated board is started (idempotent; in its own network namespace when its host is
    a 10.213.x address and we are root); a real one is returned as it is."""
    from runtimes import sim

    if not board.simulated:
        return board
    progress(f"starting simulated board {board.name!r}")
    return sim.start(board, paths)


def check_reachable(board: Board, paths: Paths, profile: Profile,
                    progress: Progress = _quiet) -> None:
    """Before converting: start a simulated *board*, then check it can be reached, its host
    key, the login, its Python, CPU and glibc (``runtimes.check``); a ✗ is a one-line
    :class:`ShipError` in about a second instead of after the conversion."""
    from runtimes.check import preflight

    target = start_board(board, paths)  # deploy_bundle announces the start, later
    progress(f"checking {board.name!r} ({target.host}:{target.port})")
    preflight(target, paths.known_hosts, profile)


def deploy(device: str, model: str, data: str | None, *, paths: Paths | None = None,
           inventory: Inventory | None = None, progress: Progress = _quiet,
           force: bool = False,
           input_shapes: dict[str, tuple[int, ...]] | None = None,
           ship: ShipOptions = ShipOptions()) -> DeployOutcome:
    """Convert, ship, profile and report on one board; save the report; return it."""
    paths = paths or default_paths()
    board = _one_board(inventory or load_inventory(), device)
    check_reachable(board, paths, load_profile(board.profile), progress)
    profile, bundle = convert(device, model, data, paths=paths, profile=board.profile,
                              progress=progress, force=force, input_shapes=input_shapes)
    return deploy_bundle(board, profile, bundle, paths=paths, device=device, progress=progress,
                         ship=ship)


def deploy_bundle(board: Board, profile: Profile, bundle: Any, *, paths: Paths, device: str,
                  progress: Progress = _quiet, ship: ShipOptions = ShipOptions()) -> DeployOutcome:
    """Start (if simulated), provision, ship *bundle*, profile and report on one *board*."""
    from profiler import measure_release
    from profiler.health import check_health
    from runtimes import SSHTransport, ensure_runtime, ship_bundle

    target = start_board(board, paths, progress)
    with SSHTransport(target, paths.known_hosts, compress=ship.compress) as ssh:
        progress(f"checking the runtime on {board.name!r}")
        target = target.model_copy(update={"python": ensure_runtime(ssh, target)})
        progress(f"shipping bundle {bundle.id} to {board.name!r}")
        shipped = ship_bundle(ssh, target, bundle.path, keep=ship.keep, retries=ship.retries,
                              lock_wait_s=ship.lock_wait_s,
                              progress=getattr(progress, "transfer", None))
        progress(f"health probe of release {shipped.release_id} on {board.name!r}")
        shipped, smoke = check_health(ssh, target, profile, shipped)
        if shipped.health and not shipped.health["ok"]:  # reported; the full profile is skipped
            progress(f"health probe failed on {board.name!r}: {shipped.health['error']}; "
                     + (f"rolled back to {shipped.health['rolled_back_to']}"
                        if shipped.rolled_back else "not rolled back"))
            agent = smoke or {"results": []}
        else:
            keys = [a["key"] for a in bundle.manifest["artifacts"]]  # what it holds, not the ask
            progress(f"profiling {len(keys)} artifact{'s' if len(keys) != 1 else ''} on "
                     f"{board.name!r} ({', '.join(keys)})")
            agent = measure_release(ssh, target, profile, shipped.release_id)
    return finish_report(device, target, profile, bundle, dataclasses.asdict(shipped), agent, paths)


def finish_report(device: str, board: Board, profile: Profile, bundle: Any, ship: dict[str, Any],
                  agent: dict[str, Any], paths: Paths) -> DeployOutcome:
    """Build, judge and record one board's report (both engines end here)."""
    from profiler.history import record  # regression vs the last run; JSON + Markdown + HTML

    report = build_report(
        device=device, board=_board_summary(board, profile), manifest=bundle.manifest,
        bundle_reused=bundle.reused, ship=ship, agent=agent, budgets=profile.budgets)
    path, html_path = record(report, paths.reports, profile.budgets.p50_regression_pct)
    return DeployOutcome(report=report, report_path=path, html_path=html_path)


def _board_summary(board: Board, profile: Profile) -> dict[str, Any]:
    return {"name": board.name, "host": board.host, "port": board.port, "user": board.user,
            "profile": profile.name, "arch": profile.arch, "simulated": board.simulated}
