"""Small board-side helpers shared by shipping and profiling: remote sha256 and the board lock."""

from __future__ import annotations

import datetime as _dt
import getpass
import logging
import os
import socket
from types import TracebackType

from edgeship.errors import ShipError

from .ssh import SSHTransport

__all__ = ["BoardLock", "parse_sha256sum", "remote_sha256"]

log = logging.getLogger(__name__)

_LOCKED = 17
_ACQUIRE = """
mkdir -p "$1/releases" || exit 3
if ! mkdir "$1/.lock" 2>/dev/null; then cat "$1/.lock/holder" 2>/dev/null; exit 17; fi
printf '%s\\n' "$2" > "$1/.lock/holder"
"""


def remote_sha256(transport: SSHTransport, directory: str, names: list[str]) -> dict[str, str]:
    """``{name: sha256}`` of the files *names* in the board directory *directory*.

    Missing files are simply absent from the result (one ``sha256sum`` call for all of them).
    """
    if not names:
        return {}
    res = transport.run(["sha256sum", "--", *[f"{directory}/{n}" for n in names]], check=False)
    return parse_sha256sum(res.stdout, names, prefix=f"{directory}/")


def parse_sha256sum(stdout: str, names: list[str], prefix: str = "") -> dict[str, str]:
    """``{name: digest}`` from ``sha256sum`` output for files ``prefix + name``."""
    wanted = {prefix + name: name for name in names}
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        digest, sep, path = line.lstrip("\\").partition("  ")
        if sep and path in wanted:
            found[wanted[path]] = digest
    return found


class BoardLock:
    """``mkdir <root>/.lock`` with a note of who holds it; two deploys never interleave.

    A held (or stale) lock is never broken silently: the error names the holder and says how to
    remove it if that deploy is gone.
    """

    def __init__(self, transport: SSHTransport, root: str) -> None:
        self.transport = transport
        self.root = root
        self.held = False

    def holder_note(self) -> str:
        """``user@host pid N since ISO-time`` — written into ``.lock/holder``."""
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} since {now}"

    def __enter__(self) -> BoardLock:
        res = self.transport.run_script(_ACQUIRE, self.root, self.holder_note(), check=False)
        if res.status == _LOCKED:
            holder = res.stdout.strip() or "an unknown holder (no holder note)"
            raise ShipError(
                f"board {self.transport.board.name!r} is locked by {holder}: another deploy is "
                f"running; if it is not (it crashed), remove the lock on the board: "
                f"rm -r {self.root}/.lock")
        if res.status != 0:
            raise ShipError(f"board {self.transport.board.name!r}: cannot create "
                            f"{self.root}/releases ({res.stderr.strip()[-200:]}); "
                            "check the board root and its permissions")
        self.held = True
        log.debug("locked %s/.lock", self.root)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.held:
            self.held = False
            try:
                self.transport.run(["rm", "-rf", "--", f"{self.root}/.lock"])
            except ShipError:
                if exc is None:
                    raise
                log.warning("could not remove %s/.lock after a failure", self.root)
