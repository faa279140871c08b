"""Pin a board's host key explicitly: fetch it, show its fingerprint, write it to known_hosts.

Nothing is authenticated or sent while fetching: only the SSH key exchange runs, which is what
reveals the server's host key. The caller shows :func:`fingerprint` and asks before pinning.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from core.errors import ShipError
from devices import Board

from ._sshtext import TRANSIENT, reason
from .ssh import fingerprint
from .sshconfig import DEFAULT_SSH_CONFIG, resolve_hops

__all__ = ["HostKeyOffer", "fetch_host_key", "pin_host_key"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostKeyOffer:
    """The key a board presented, and what the known_hosts file pins for it now."""

    pattern: str  # the known_hosts host field: ``host`` or ``[host]:port``
    key: paramiko.PKey
    pinned: paramiko.PKey | None

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` of the presented key."""
        return fingerprint(self.key)

    @property
    def changed(self) -> bool:
        """A different key is pinned for this host: reinstalled, or not the board."""
        return self.pinned is not None and self.pinned.asbytes() != self.key.asbytes()

    @property
    def known(self) -> bool:
        """This exact key is already pinned."""
        return self.pinned is not None and not self.changed


def fetch_host_key(board: Board, known_hosts: Path, *, timeout: float = 10.0,
                   ssh_config: Path | str | None = DEFAULT_SSH_CONFIG) -> HostKeyOffer:
    """Run the key exchange with *board* (direct; jump hosts are not supported here) and return
    the host key it presents with what *known_hosts* pins for it."""
    hop = resolve_hops(board, ssh_config)[-1]
    pattern = hop.host if hop.port == 22 else f"[{hop.host}]:{hop.port}"
    try:
        sock = socket.create_connection((hop.host, hop.port), timeout=timeout)
    except OSError as exc:
        raise ShipError(f"board {board.name!r} ({hop.host}:{hop.port}) unreachable: "
                        f"{reason(exc)}; check that it is up and its host/port") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except TRANSIENT as exc:
        raise ShipError(f"board {board.name!r} ({hop.host}:{hop.port}): SSH key exchange failed "
                        f"({reason(exc)}); is an SSH server listening there?") from exc
    finally:
        transport.close()
    pinned = _pinned(known_hosts, pattern, key.get_name())
    return HostKeyOffer(pattern, key, pinned)


def _pinned(known_hosts: Path, pattern: str, kind: str) -> paramiko.PKey | None:
    if not known_hosts.exists():
        return None
    keys = paramiko.HostKeys(str(known_hosts)).lookup(pattern)
    return None if keys is None else keys.get(kind)


def pin_host_key(known_hosts: Path, offer: HostKeyOffer) -> None:
    """Write ``pattern kind base64`` into *known_hosts*, replacing that host's old lines."""
    lines = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    kept = [ln for ln in lines if offer.pattern not in ln.split(" ", 1)[0].split(",")]
    kept.append(f"{offer.pattern} {offer.key.get_name()} {offer.key.get_base64()}")
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    tmp = known_hosts.with_name(known_hosts.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n")
    tmp.replace(known_hosts)
    log.info("pinned %s %s in %s", offer.pattern, offer.fingerprint, known_hosts)
