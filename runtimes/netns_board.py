"""A simulated board in its own network namespace: :class:`SimBoard`'s sshd on port 22 of
``es-<address>`` (see :mod:`runtimes.netns`), reached over a private 10.213.x.0/24 bridge.

The keys, sshd config, board root and pinned host key are SimBoard's; only where the sshd runs
differs. Without root (or without ``ip netns``), :func:`start_sim_board` falls back to the
loopback board and says why.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from core.paths import Paths
from devices import Board

from .netns import PREFIX, Netns, leftovers, segment_down, unavailable_reason
from .simboard import SimBoard

__all__ = ["NetnsBoard", "is_netns_address", "start_sim_board", "stop_sim_board",
           "write_group_inventory"]

log = logging.getLogger(__name__)

_POOL = IPv4Network("10.213.0.0/16")


def is_netns_address(host: str) -> bool:
    """Whether a simulated board at *host* belongs in a namespace (an address in 10.213/16)."""
    try:
        return IPv4Address(host) in _POOL
    except ValueError:
        return False


class NetnsBoard(SimBoard):
    """A :class:`SimBoard` whose sshd listens on ``<address>:22`` inside namespace ``es-<address>``."""

    def __init__(self, paths: Paths, name: str, address: IPv4Address | str, *,
                 profile: str = "sim") -> None:
        self.netns = Netns(address)
        super().__init__(paths, name, profile=profile, address=str(self.netns.address), port=22,
                         launcher=self.netns.prefix)

    def up(self) -> Board:
        """Create the namespace (idempotent), then start the board's sshd inside it."""
        self.netns.up()
        return super().up()

    def destroy(self) -> None:
        """Stop the sshd and remove the namespace and its veth (the board's files stay)."""
        self.down()
        self.netns.down()


def start_sim_board(board: Board, paths: Paths) -> Board:
    """Start the simulated *board*: in a namespace when its host is a 10.213.x address (and
    namespaces are available), else on the loopback. Idempotent."""
    if is_netns_address(board.host):
        reason = unavailable_reason()
        if reason is None:
            return NetnsBoard(paths, board.name, board.host, profile=board.profile).up()
        log.warning("board %r runs on the loopback instead of %s: %s", board.name, board.host,
                    reason)
    return SimBoard(paths, board.name, profile=board.profile, address="127.0.0.1").up()


def stop_sim_board(board: Board, paths: Paths) -> bool:
    """Stop the simulated *board* (and remove its namespace); returns whether it was running."""
    if is_netns_address(board.host) and unavailable_reason() is None:
        sim = NetnsBoard(paths, board.name, board.host, profile=board.profile)
        running = sim.status().running
        sim.destroy()
        if not any(n.startswith(f"{PREFIX}{sim.netns.subnet.network_address}"[:-1])
                   for n in leftovers(sim.netns.subnet)):  # the last board of its segment
            segment_down(sim.netns.subnet)
        return running
    return SimBoard(paths, board.name, profile=board.profile).down()


def write_group_inventory(boards: list[SimBoard], group: str, profile: Path, path: Path,
                          python: str | None = None) -> Path:
    """An inventory file with *boards* (running) as hosts of *group*, all on *profile*.

    Each host gets its real connection settings (address, user, key, board root), so both the
    built-in engine and Ansible reach it as a plain board; *python* pins ``edgeship_python``.
    """
    lines = ["all:", "  children:", f"    {group}:", "      hosts:"]
    for sim in boards:
        b = sim.board()
        lines += [f"        {b.name}:", f"          ansible_host: {b.host}",
                  f"          ansible_user: {b.user}",
                  f"          ansible_ssh_private_key_file: {b.key_file}",
                  f"          edgeship_root: {b.root}", f"          edgeship_profile: {profile}"]
        if python:
            lines.append(f"          edgeship_python: {python}")
    path.write_text("\n".join(lines) + "\n")
    return path
