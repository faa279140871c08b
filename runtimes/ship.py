"""Ship a bundle to a board as an immutable, verified release and switch ``current`` atomically.

Board layout (docs/architecture.md): ``<root>/releases/<bundle_id>/`` (verified),
``releases/.<bundle_id>.partial/`` (upload in progress, resumable), ``current`` and ``previous``
symlinks, ``.lock``. Guarantees:

* nothing is switched unless every file's sha256, *measured on the board*, matches the manifest;
* incremental: files already in the partial directory with the right sha256 are not sent again,
  identical files of other releases on the board are hard-linked instead of sent, a partially
  sent file resumes from its byte offset, and an already-verified release sends nothing;
* a dropped connection is retried with exponential backoff (reconnect, re-take the same lock,
  resume); when retries run out the error says which step failed, and ``current`` is untouched;
* the free space on the board is checked before anything is sent;
* ``current`` changes in one ``rename`` (``ln -sfn`` to a temp name, then ``mv -T``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConnectionLost, ShipError
from devices import Board

from ._bundle import read_bundle
from ._remote import BoardLock, remote_sha256
from ._upload import Plan, check_space, link_from_releases, plan_upload, send
from .transport import Transport

__all__ = ["ShipProgress", "ShipResult", "read_bundle", "rollback", "ship_bundle"]

log = logging.getLogger(__name__)

ShipProgress = Callable[[str, int, int], None]
"""``progress(file_name, bytes_done, bytes_total)`` while a file uploads."""


# $1 root, $2 release id, $3 "1" to finalize the partial upload first, $4 releases to keep.
# Prints "was <old current>" first. Ends by releasing the lock (the caller holds it).
_SWITCH = """
set -e
cd "$1"
if [ "$3" = 1 ]; then mv -T "releases/.$2.partial" "releases/$2"; fi
old=$(readlink current 2>/dev/null || true)
echo "was $old"
new="releases/$2"
if [ "$old" != "$new" ]; then
  ln -sfn "$new" .current.tmp && mv -T .current.tmp current
  if [ -n "$old" ]; then ln -sfn "$old" .previous.tmp && mv -T .previous.tmp previous; fi
fi
touch "$new"
rm -rf .lock
prev=$(readlink previous 2>/dev/null || true)
cd releases
n=0
for d in $(ls -1t); do
  n=$((n + 1))
  case "releases/$d" in "$new"|"$prev") continue ;; esac
  if [ "$n" -gt "$4" ]; then rm -rf -- "$d" && echo "pruned $d"; fi
done
"""
# $1 root: swap current and previous (both renames atomic); prints the new current.
_ROLLBACK = """
set -e
cd "$1"
old=$(readlink current 2>/dev/null || true)
prev=$(readlink previous 2>/dev/null || true)
if [ -z "$prev" ] || [ ! -d "$prev" ]; then rm -rf .lock; exit 9; fi
ln -sfn "$prev" .current.tmp && mv -T .current.tmp current
if [ -n "$old" ]; then ln -sfn "$old" .previous.tmp && mv -T .previous.tmp previous; fi
rm -rf .lock
echo "${prev#releases/}"
"""


@dataclass(frozen=True)
class ShipResult:
    """What one ship did.

    ``bytes_sent`` counts payload bytes over the wire across all attempts; ``bytes_resumed``
    the bytes an interrupted upload did not have to send again; ``files_linked`` the files
    hard-linked from other releases on the board; ``previous`` what ``current`` pointed at
    before (``None``: nothing); ``health`` / ``rolled_back`` are filled by the health probe.
    """

    release_id: str
    bytes_sent: int
    files_sent: int
    files_skipped: int
    reused: bool
    seconds: float
    files_linked: int = 0
    bytes_resumed: int = 0
    attempts: int = 1
    previous: str | None = None
    switched: bool = False
    health: dict[str, Any] | None = None
    rolled_back: bool = False


@dataclass
class _Tally:
    bytes_sent: int = 0
    bytes_resumed: int = 0
    inflight: int = 0
    sent: set[str] = field(default_factory=set)
    linked: set[str] = field(default_factory=set)
    resumed: set[str] = field(default_factory=set)
    step: str = "connecting"
    previous: str | None = None
    switched: bool = False


def ship_bundle(transport: Transport, board: Board, bundle_dir: Path, *, keep: int = 3,
                progress: ShipProgress | None = None, retries: int = 3, backoff_s: float = 1.0,
                lock_wait_s: float = 0.0) -> ShipResult:
    """Upload *bundle_dir* as release ``<bundle_id>``, verify it on the board, switch ``current``.

    Args:
        keep: releases kept on the board (``current`` and ``previous`` always are).
        retries: reconnect-and-resume attempts after a dropped connection (0: none).
        backoff_s: first wait before a retry; doubles each time (with a little jitter).
        lock_wait_s: how long to wait for another deploy's lock before failing.

    Raises:
        ShipError: the bundle is corrupt, the board is locked or full, the connection kept
            dropping, or a file does not verify on the board (``current`` is then left
            untouched and the partial upload kept for the next ship to resume).
    """
    if keep < 1 or retries < 0:
        raise ValueError(f"keep must be >= 1 and retries >= 0 (got {keep}, {retries})")
    started = time.perf_counter()
    bundle_id, files = read_bundle(bundle_dir)
    root = board.root.rstrip("/") or "/"
    lock = BoardLock(transport, root, wait_s=lock_wait_s)
    tally = _Tally()
    attempt = 1
    try:
        while True:
            try:
                reused = _ship_once(transport, lock, Path(bundle_dir), bundle_id, files, keep,
                                    progress, tally)
                break
            except ConnectionLost as exc:
                tally.bytes_sent += tally.inflight
                tally.inflight = 0
                if attempt > retries:
                    raise _gave_up(board, tally, attempt, exc) from exc
                delay = backoff_s * 2 ** (attempt - 1) * (1 + random.random() / 4)  # noqa: S311
                log.warning("%s; retry %d of %d in %.2f s", exc, attempt, retries, delay)
                transport.close()
                time.sleep(delay)
                attempt += 1
    except BaseException:
        _unlock_after_failure(transport, lock)
        raise
    seconds = time.perf_counter() - started
    log.info("board %r: %s %s (%d files sent, %d bytes, %d linked) in %.2f s", board.name,
             "switched to" if reused else "shipped", bundle_id, len(tally.sent), tally.bytes_sent,
             len(tally.linked), seconds)
    return ShipResult(bundle_id, tally.bytes_sent, len(tally.sent), len(files) - len(tally.sent),
                      reused, seconds, files_linked=len(tally.linked),
                      bytes_resumed=tally.bytes_resumed, attempts=attempt,
                      previous=tally.previous, switched=tally.switched)


def _ship_once(transport: Transport, lock: BoardLock, bundle_dir: Path, bundle_id: str,
               files: dict[str, str], keep: int, progress: ShipProgress | None,
               tally: _Tally) -> bool:
    """One attempt; returns whether the release was already complete on the board."""
    root = lock.root
    tally.step = "locking the board"
    lock.acquire()
    tally.step = "checking the release on the board"
    if not _mismatched(transport, f"{root}/releases/{bundle_id}", files):
        tally.step = "switching current"
        _switch(transport, lock, bundle_id, keep, tally, finalize=False)
        return True
    sizes = {name: (bundle_dir / name).stat().st_size for name in files}
    tally.step = "preparing the upload"
    plan = plan_upload(transport, root, bundle_id, files, bundle_dir)
    tally.step = "linking identical files from other releases"
    linked = link_from_releases(transport, root, bundle_id, plan, files)
    tally.linked.update(linked)
    plan.good.update(linked)
    todo = plan.todo(files)
    check_space(transport, root, plan, sum(sizes[n] - plan.offsets.get(n, 0) for n in todo))
    for name in todo:
        _send_one(transport, bundle_dir, plan, name, progress, tally, resume=True)
    tally.step = "verifying the upload on the board"
    bad = _mismatched(transport, plan.partial, files)
    again = sorted(bad & (tally.resumed | tally.linked))  # a bad prefix or link: send whole
    for name in again:
        _send_one(transport, bundle_dir, plan, name, progress, tally, resume=False)
        tally.resumed.discard(name)
        tally.linked.discard(name)
    if again:
        tally.step = "verifying the upload on the board"
        bad = _mismatched(transport, plan.partial, files)
    if bad:
        raise ShipError(
            f"board {transport.board.name!r}: {', '.join(sorted(bad))} failed sha256 verification "
            f"after upload (disk full or failing storage?); `current` was not switched — ship "
            f"again to re-send only the bad files")
    tally.step = "switching current"
    _switch(transport, lock, bundle_id, keep, tally, finalize=True)
    return False


def _send_one(transport: Transport, bundle_dir: Path, plan: Plan, name: str,
              progress: ShipProgress | None, tally: _Tally, *, resume: bool) -> None:
    offset = plan.offsets.get(name, 0) if resume else 0
    tally.step = f"uploading {name}" + (f" (resuming at byte {offset})" if offset else "")

    def track(file: str, done: int, total: int) -> None:
        tally.inflight = done - offset
        if progress is not None:
            progress(file, done, total)

    sent = send(transport, bundle_dir, plan, name, track, resume=resume)
    tally.inflight = 0
    tally.bytes_sent += sent
    tally.sent.add(name)
    if offset:
        tally.bytes_resumed += offset
        tally.resumed.add(name)


def _gave_up(board: Board, tally: _Tally, attempts: int, exc: ConnectionLost) -> ShipError:
    if tally.step == "switching current":
        state = ("the switch may or may not have happened; ship again to finish it (it is "
                 "idempotent)")
    else:
        state = ("`current` was not switched and the partial upload is kept on the board; check "
                 "the link and ship again — it resumes where it stopped")
    return ShipError(f"board {board.name!r}: connection lost while {tally.step} "
                     f"({attempts} attempts, last: {' '.join(str(exc).split(': ')[-1:])}); "
                     f"{state}")


def _unlock_after_failure(transport: Transport, lock: BoardLock) -> None:
    try:
        lock.release()
    except ShipError as exc:
        log.warning("board %r: could not remove %s/.lock after the failure (%s); the next "
                    "deploy will report it", transport.board.name, lock.root, exc)
    finally:
        lock.held = False
        lock.forget()


def rollback(transport: Transport, board: Board, *, lock_wait_s: float = 0.0) -> str:
    """Point ``current`` back at ``previous`` (and ``previous`` at the former current).

    Returns the release id now current. Raises :class:`ShipError` when there is no previous
    release to go back to.
    """
    root = board.root.rstrip("/") or "/"
    with BoardLock(transport, root, wait_s=lock_wait_s) as lock:
        res = transport.run_script(_ROLLBACK, root, check=False)
        lock.held = res.status not in (0, 9)  # the script released it unless it failed early
        if res.status == 9:
            raise ShipError(f"board {board.name!r} has no previous release to roll back to; "
                            "ship the release you want instead")
        if res.status != 0:
            raise ShipError(f"board {board.name!r}: rollback failed: {res.stderr.strip()[-200:]}; "
                            "check the board root's permissions and free space")
    log.info("board %r: rolled back to %s", board.name, res.stdout.strip())
    return res.stdout.strip()


def _mismatched(transport: Transport, directory: str, files: dict[str, str]) -> set[str]:
    """Names whose sha256 in the board *directory* differs from *files* (or that are missing)."""
    found = remote_sha256(transport, directory, sorted(files))
    return {name for name, digest in files.items() if found.get(name) != digest}


def _switch(transport: Transport, lock: BoardLock, bundle_id: str, keep: int, tally: _Tally,
            *, finalize: bool) -> None:
    """Finalize (optionally), point ``current`` at the release, keep ``previous``, prune, unlock."""
    res = transport.run_script(_SWITCH, lock.root, bundle_id, "1" if finalize else "0", str(keep))
    lock.held = False
    for line in res.stdout.splitlines():
        if line.startswith("was "):
            old = line[4:].strip()
            tally.previous = old.removeprefix("releases/") or None
            tally.switched = old != f"releases/{bundle_id}"
        else:
            log.info("board %r: %s", transport.board.name, line)
