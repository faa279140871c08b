"""Small board-side helpers shared by shipping and profiling: remote sha256 and the board lock."""

from __future__ import annotations

import datetime as _dt
import getpass
import logging
import os
import re
import socket
import threading
import time
import uuid
from types import TracebackType

from core.errors import ShipError

from .transport import Transport

__all__ = ["BoardLock", "parse_sha256sum", "pid_alive", "remote_sha256"]

log = logging.getLogger(__name__)

_LOCKED = 17
# $1 root, $2 holder note, $3 this lock's token: re-entrant for the same token (a retry after
# a dropped connection), otherwise print the holder and exit 17.
_ACQUIRE = """
mkdir -p "$1/releases" || exit 3
if ! mkdir "$1/.lock" 2>/dev/null; then
  [ -d "$1/.lock" ] || { mkdir "$1/.lock"; exit 3; }
  if grep -qF -- "$3" "$1/.lock/holder" 2>/dev/null; then exit 0; fi
  cat "$1/.lock/holder" 2>/dev/null; exit 17
fi
printf '%s\\n' "$2" > "$1/.lock/holder" || { rmdir "$1/.lock"; exit 3; }
"""
_NOTE = re.compile(r"^(?P<who>\S+)@(?P<host>\S+) pid (?P<pid>\d+) since (?P<since>\S+)"
                   r"(?: token (?P<token>\S+))?")
_ACTIVE: set[str] = set()  # tokens of the locks this process holds right now
_ACTIVE_GUARD = threading.Lock()
STALE_AFTER_S = 6 * 3600.0


def remote_sha256(transport: Transport, directory: str, names: list[str]) -> dict[str, str]:
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


def stale_reason(note: str, *, now: float | None = None) -> str | None:
    """Why the lock holder *note* is certainly or probably gone, or ``None`` if it may be alive."""
    match = _NOTE.match(note)
    if match is None:
        return None
    pid, token = int(match["pid"]), match["token"]
    if match["host"] == socket.gethostname():
        if pid == os.getpid() and token and token not in _ACTIVE:
            return "it was left by an earlier deploy of this process, which has ended"
        if pid != os.getpid() and not pid_alive(pid):
            return f"its process {pid} on this host is gone"
    try:
        since = _dt.datetime.fromisoformat(match["since"]).timestamp()
    except ValueError:
        return None
    age = (now or time.time()) - since
    return f"it is {age / 3600:.1f} h old" if age > STALE_AFTER_S else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BoardLock:
    """``mkdir <root>/.lock`` with a note of who holds it; two deploys never interleave.

    The second deploy waits up to *wait_s* seconds for the lock, then fails naming the holder.
    A stale lock (its holder's process is gone, or it is older than :data:`STALE_AFTER_S`) is
    never broken silently: the error says why it looks stale and how to remove it. The same
    :class:`BoardLock` may acquire again after a dropped connection (re-entrant by token).
    """

    def __init__(self, transport: Transport, root: str, *, wait_s: float = 0.0,
                 poll_s: float = 0.5) -> None:
        self.transport = transport
        self.root = root
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.token = uuid.uuid4().hex[:16]
        self.held = False

    def holder_note(self) -> str:
        """``user@host pid N since ISO-time token T`` — written into ``.lock/holder``."""
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return (f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} since {now} "
                f"token {self.token}")

    def acquire(self) -> None:
        """Take the lock (waiting up to ``wait_s``); :class:`ShipError` naming the holder."""
        deadline = time.monotonic() + self.wait_s
        with _ACTIVE_GUARD:
            _ACTIVE.add(self.token)
        while True:
            res = self.transport.run_script(_ACQUIRE, self.root, self.holder_note(), self.token,
                                            check=False)
            if res.status == 0:
                self.held = True
                log.debug("locked %s/.lock", self.root)
                return
            if res.status != _LOCKED:
                self.forget()
                raise ShipError(f"board {self.transport.board.name!r}: cannot create "
                                f"{self.root}/releases or its lock ({res.stderr.strip()[-200:]}); "
                                "the board root is missing, read-only or full: check its "
                                "permissions and free space")
            holder = res.stdout.strip()
            stale = stale_reason(holder)
            if stale or time.monotonic() >= deadline:
                self.forget()
                raise self._locked(holder, stale)
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    def _locked(self, holder: str, stale: str | None) -> ShipError:
        name = self.transport.board.name
        shown = holder or "an unknown holder (no holder note)"
        fix = f"remove the lock on the board: rm -r {self.root}/.lock"
        if stale:
            return ShipError(f"board {name!r} is locked by {shown}, and the lock looks stale "
                             f"({stale}); if no deploy is running, {fix}")
        waited = f" (waited {self.wait_s:g} s)" if self.wait_s else ""
        return ShipError(f"board {name!r} is locked by {shown}{waited}: another deploy is "
                         f"running; wait for it (raise the lock wait) or, if it crashed, {fix}")

    def forget(self) -> None:
        """This process no longer holds the lock (its token is no longer live)."""
        with _ACTIVE_GUARD:
            _ACTIVE.discard(self.token)

    def release(self) -> None:
        """Remove the lock if this object holds it (the switch script may already have)."""
        if self.held:
            self.held = False
            self.transport.run(["rm", "-rf", "--", f"{self.root}/.lock"])
        self.forget()

    def __enter__(self) -> BoardLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.release()
        except ShipError:
            if exc is None:
                raise
            log.warning("could not remove %s/.lock after a failure", self.root)
