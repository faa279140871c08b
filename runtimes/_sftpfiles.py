"""Private: the file half of the SSH transport (SFTP upload with resume, small reads/writes).

Mixed into :class:`runtimes.ssh.SSHTransport`, which provides ``sftp()``, ``where`` and the
connection-loss classification (``_dropped`` / ``_lost``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from core.errors import ShipError

from ._sshtext import TRANSIENT, reason

__all__ = ["Progress", "SFTPFiles"]

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` — paramiko's SFTP callback signature."""
_CHUNK = 32768


class SFTPFiles:
    """``put`` (resumable), ``put_bytes``, ``read_bytes``, ``listdir_attr``, ``get``."""

    if TYPE_CHECKING:
        where: str

        def sftp(self) -> paramiko.SFTPClient: ...
        def _dropped(self, exc: BaseException) -> bool: ...
        def _lost(self, step: str, exc: BaseException) -> ShipError: ...

    # -- files --------------------------------------------------------------------------------
    def put(self, local: Path | str, remote: str, *, progress: Progress | None = None,
            offset: int = 0) -> int:
        """Upload *local* to *remote* over SFTP; returns the bytes sent.

        With *offset* > 0 the remote file already holds the first *offset* bytes (an
        interrupted upload): only the rest is sent, written from that position. The caller
        verifies the whole file's sha256 on the board before using it.
        """
        size = Path(local).stat().st_size
        if not 0 <= offset <= size:
            raise ValueError(f"offset {offset} outside 0..{size}")
        try:
            self._put(Path(local), remote, size, offset, progress)
            there = self.sftp().stat(remote).st_size
        except TRANSIENT as exc:
            if self._dropped(exc):
                raise self._lost(f"uploading {Path(local).name}", exc) from exc
            raise ShipError(f"{self.where}: upload of {Path(local).name} to {remote} failed: "
                            f"{reason(exc)}; the board's disk may be full or the directory "
                            f"read-only: check `df -h {remote.rsplit('/', 1)[0]}` on the board "
                            "and ship again") from exc
        if there != size:
            raise ShipError(f"{self.where}: upload of {Path(local).name} to {remote} failed "
                            f"at {there} of {size} bytes; the board's disk may be full: check "
                            f"`df -h {remote.rsplit('/', 1)[0]}` on the board and ship again")
        return size - offset

    def _put(self, local: Path, remote: str, size: int, offset: int,
             progress: Progress | None) -> None:
        with open(local, "rb") as src, self.sftp().open(remote, "r+b" if offset else "wb") as dst:
            dst.set_pipelined(True)
            src.seek(offset)
            dst.seek(offset)
            done = offset
            for block in iter(lambda: src.read(_CHUNK), b""):
                dst.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, size)
        if progress is not None and size == offset:
            progress(size, size)

    def put_bytes(self, data: bytes, remote: str) -> None:
        """Write *data* to the file *remote* (small files: lock notes, markers)."""
        try:
            with self.sftp().open(remote, "wb") as fh:
                fh.write(data)
        except TRANSIENT as exc:
            if self._dropped(exc):
                raise self._lost(f"writing {remote}", exc) from exc
            raise ShipError(f"{self.where}: cannot write {remote}: {reason(exc)}") from exc

    def read_bytes(self, remote: str) -> bytes | None:
        """The content of the small file *remote*, or ``None`` when it does not exist."""
        try:
            with self.sftp().open(remote, "rb") as fh:
                return bytes(fh.read())
        except FileNotFoundError:
            return None
        except TRANSIENT as exc:
            if self._dropped(exc):
                raise self._lost(f"reading {remote}", exc) from exc
            raise ShipError(f"{self.where}: cannot read {remote}: {reason(exc)}") from exc

    def listdir_attr(self, remote: str) -> list[paramiko.SFTPAttributes]:
        """The entries of the board directory *remote* (name, size, mode…)."""
        try:
            return list(self.sftp().listdir_attr(remote))
        except TRANSIENT as exc:
            if self._dropped(exc):
                raise self._lost(f"listing {remote}", exc) from exc
            raise ShipError(f"{self.where}: cannot list {remote}: {reason(exc)}; check the "
                            "board root and its permissions") from exc

    def get(self, remote: str, local: Path | str) -> None:
        """Download *remote* to *local* over SFTP."""
        try:
            self.sftp().get(remote, str(local))
        except TRANSIENT as exc:
            if self._dropped(exc):
                raise self._lost(f"downloading {remote}", exc) from exc
            raise ShipError(f"{self.where}: download of {remote} failed: {reason(exc)}") from exc
