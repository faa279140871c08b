"""The transport protocol: how shipping, provisioning and measuring talk to a board.

Two implementations: :class:`runtimes.ssh.SSHTransport` (paramiko, the default) and
``edgeship._ansible_transport.AnsibleTransport`` (the connection Ansible opened for the host,
used by the ``--engine ansible`` action plugins). Code below the top layer is written against
:class:`Transport` only, so the release logic — lock, resume, on-board sha256, atomic
``current``, keep N, rollback, the health probe — exists once for both engines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from devices import Board

__all__ = ["RunResult", "Transport"]


@dataclass(frozen=True)
class RunResult:
    """What a finished remote command returned."""

    status: int
    stdout: str
    stderr: str


@runtime_checkable
class Transport(Protocol):
    """A connection to one board. Errors: ``core.errors.RemoteCommandError`` (non-zero exit
    with *check*), ``CommandTimeout``, ``ConnectionLost`` (reconnecting and retrying may work)."""

    board: Board

    @property
    def where(self) -> str:
        """``board 'name' (host:port)`` for messages."""

    def run(self, argv: Sequence[str], *, timeout: float | None = None, check: bool = True,
            input: bytes | None = None) -> RunResult:
        """Run *argv* (each argument quoted) and wait for it."""

    def run_script(self, script: str, *args: str, timeout: float | None = None,
                   check: bool = True) -> RunResult:
        """Run a fixed internal ``sh`` script with *args* as ``$1``, ``$2``…"""

    def put(self, local: Path | str, remote: str, *,
            progress: Callable[[int, int], None] | None = None, offset: int = 0) -> int:
        """Upload *local* (with *offset*: only the tail); return the bytes sent."""

    def put_bytes(self, data: bytes, remote: str) -> None:
        """Write *data* to *remote*."""

    def read_bytes(self, remote: str) -> bytes | None:
        """*remote*'s bytes, or ``None`` when it does not exist."""

    def listdir_attr(self, remote: str) -> list[Any]:
        """Entries of *remote* (``filename``, ``st_size``); empty when it does not exist."""

    def get(self, remote: str, local: Path | str) -> None:
        """Download *remote* to *local*."""

    def sftp(self) -> Any:
        """An object with ``listdir_attr`` and ``posix_rename`` (provisioning's atomic swap)."""

    def close(self) -> None:
        """Drop the connection (safe twice)."""
