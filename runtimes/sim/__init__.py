"""Simulated boards: a real OpenSSH ``sshd`` per board, started and stopped by one path.

    board_for(paths, board) -> SimBoard   the object behind an inventory entry
    start(board, paths) -> Board          start it (idempotent); inventory vars kept
    stop(board, paths) -> bool            stop it and remove its namespace; whether it ran

Which kind an inventory entry gets is decided here only, from its profile and address:

* an aarch64 profile (``sim-arm64``): :class:`~runtimes.sim.arm64board.Arm64Board`, Debian
  arm64's sshd under qemu-user in a chroot (root), in a namespace when its address is 10.213.x;
* a 10.213.x address (``simfleet-*``): :class:`~runtimes.sim.netns_board.NetnsBoard`, the
  board's sshd in its own network namespace (root; else the loopback, said once);
* anything else (``sim``): :class:`~runtimes.sim.simboard.SimBoard` on the loopback.

``edgeship deploy``, ``edgeship board up|down``, fleets (``make fleet-up``) and the Ansible
engine all go through :func:`start` / :func:`stop`, so a board is the same board whichever
command started it. (:class:`~runtimes.sim.vmboard.VmBoard`, a full arm64 VM, is started by its
tests only: ``make test-arm64-vm``.)
"""

from __future__ import annotations

import logging

from core.paths import Paths
from devices import Board

from .arm64board import Arm64Board, is_arm64_profile
from .netns import PREFIX, leftovers, segment_down, unavailable_reason
from .netns_board import NetnsBoard, is_netns_address
from .simboard import SimBoard

__all__ = ["board_for", "start", "stop"]

log = logging.getLogger(__name__)

_KEPT = ("ort_wheel", "ort_index", "sysroot")
"""Inventory vars the started board keeps (its runtime source, a simulated Jetson's sysroot)."""


def board_for(paths: Paths, board: Board, *, say: bool = True) -> SimBoard:
    """The simulated board behind inventory entry *board* (see the module doc for the kinds)."""
    if is_arm64_profile(board.profile):
        return Arm64Board(paths, board.name, profile=board.profile, address=board.host)
    if is_netns_address(board.host):
        reason = unavailable_reason()
        if reason is None:
            return NetnsBoard(paths, board.name, board.host, profile=board.profile)
        if say:
            log.warning("board %r runs on the loopback instead of %s: %s", board.name,
                        board.host, reason)
    return SimBoard(paths, board.name, profile=board.profile, address="127.0.0.1")


def start(board: Board, paths: Paths) -> Board:
    """Start the simulated *board* (idempotent); the running board, with its inventory vars."""
    started = board_for(paths, board).up()
    return started.model_copy(update={k: getattr(board, k) for k in _KEPT})


def stop(board: Board, paths: Paths) -> bool:
    """Stop the simulated *board*; remove its namespace (and its segment's bridge when it was
    the last board there). Returns whether it was running. The board's files stay."""
    sim = board_for(paths, board, say=False)
    running = sim.status().running
    if isinstance(sim, (NetnsBoard, Arm64Board)):
        sim.destroy()
    else:
        sim.down()
    netns = getattr(sim, "netns", None)
    if netns is not None and not any(
            n.startswith(f"{PREFIX}{netns.subnet.network_address}"[:-1])
            for n in leftovers(netns.subnet)):  # the last board of its segment
        segment_down(netns.subnet)
    return running
