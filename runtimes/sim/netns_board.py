"""A simulated board in its own network namespace: :class:`SimBoard`'s sshd on port 22 of
``es-<address>`` (see :mod:`runtimes.sim.netns`), reached over a private 10.213.x.0/24 bridge.

The keys, sshd config, board root and pinned host key are SimBoard's; only where the sshd runs
differs. Without root (or without ``ip netns``), :func:`runtimes.sim.start` falls back to the
loopback board and says why.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from core.paths import Paths
from devices import Board

from .netns import Netns
from .simboard import SimBoard

__all__ = ["NetnsBoard", "is_netns_address", "write_group_inventory"]

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
