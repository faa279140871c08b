"""Host → board: the SSH transport, the simulated boards, provisioning, shipping, rollback.

Public API::

    Transport                     the protocol below: SSHTransport here, AnsibleTransport in edgeship
    SSHTransport(board, known_hosts, *, connect_timeout=10.0, command_timeout=600.0, ...)
        .run(argv, *, timeout=None, check=True, input=None) -> RunResult
        .put(local, remote, *, progress=None) -> int        .get(remote, local)
    SimBoard(paths, name="sim").up() -> Board / .down() / .status() -> SimStatus
    resolve_board(board, paths) -> Board
    probe_board(transport) -> BoardFacts
    build_wheelhouse(facts, packages=None, cache_dir=None, plan=None) -> Path
    provision(transport, board, facts, wheelhouse, plan=None) -> str   (the board venv's python)
    ensure_runtime(transport, board, cache_dir=None) -> str    (probe, plan, wheelhouse, install)
    runtimes.jetpack.plan_runtime(facts, source, accelerator)   (a Jetson's runtime plan)
    ship_bundle(transport, board, bundle_dir, *, keep=3, progress=None, retries=3,
                backoff_s=1.0, lock_wait_s=0.0) -> ShipResult   (resumable, incremental)
    rollback(transport, board, *, lock_wait_s=0.0) -> str      (current ↔ previous)

Measuring a release on the board (the agent, its parsers, the health probe, reports) is the
``profiler`` package's, one layer above this one.

Importing this package stays light: numpy and the inference runtimes are only imported on the
board (by the agent), never here.
"""

from core.errors import CommandTimeout, ConnectionLost

from .provision import BoardFacts, build_wheelhouse, ensure_runtime, probe_board, provision
from .ship import ShipProgress, ShipResult, read_bundle, rollback, ship_bundle
from .sim.simboard import SimBoard, SimStatus, resolve_board
from .ssh import Progress, SSHTransport, fingerprint
from .transport import RunResult, Transport

__all__ = [
    "BoardFacts",
    "CommandTimeout",
    "ConnectionLost",
    "Progress",
    "RunResult",
    "SSHTransport",
    "ShipProgress",
    "ShipResult",
    "SimBoard",
    "SimStatus",
    "Transport",
    "build_wheelhouse",
    "ensure_runtime",
    "fingerprint",
    "probe_board",
    "provision",
    "read_bundle",
    "resolve_board",
    "rollback",
    "ship_bundle",
]
