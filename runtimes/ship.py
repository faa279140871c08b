"""Ship a bundle to a board as an immutable, verified release and switch ``current`` atomically.

Board layout (docs/architecture.md): ``<root>/releases/<bundle_id>/`` (verified),
``releases/.<bundle_id>.partial/`` (upload in progress, resumable), ``current`` and ``previous``
symlinks, ``.lock``. Guarantees:

* nothing is switched unless every file's sha256, *measured on the board*, matches the manifest;
* an interrupted upload resumes: files already in the partial directory with the right sha256
  are not sent again; an already-verified release is re-used and nothing is sent;
* ``current`` changes in one ``rename`` (``ln -sfn`` to a temp name, then ``mv -T``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devices import Board
from edgeship.errors import ShipError

from ._remote import BoardLock, parse_sha256sum, remote_sha256
from .ssh import SSHTransport

__all__ = ["ShipProgress", "ShipResult", "read_bundle", "rollback", "ship_bundle"]

log = logging.getLogger(__name__)

ShipProgress = Callable[[str, int, int], None]
"""``progress(file_name, bytes_done, bytes_total)`` while a file uploads."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_BAD_NAME = re.compile(r"[/\\\n\r\x00]")

# $1 root, $2 release id, $3 "1" to finalize the partial upload first, $4 releases to keep.
# Ends by releasing the lock (the caller holds it).
_SWITCH = """
set -e
cd "$1"
if [ "$3" = 1 ]; then mv -T "releases/.$2.partial" "releases/$2"; fi
old=$(readlink current 2>/dev/null || true)
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
# $1 root, $2 release id, then file names: re-use a broken release's good files as the partial
# upload, and print the sha256 of the files already in it.
_PREPARE = """
set -e
cd "$1/releases"
if [ -d "$2" ] && [ ! -e ".$2.partial" ]; then mv -T "$2" ".$2.partial"; fi
mkdir -p ".$2.partial"
cd ".$2.partial"
shift 2
sha256sum -- "$@" 2>/dev/null || true
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
    """What one ship did."""

    release_id: str
    bytes_sent: int
    files_sent: int
    files_skipped: int
    reused: bool
    seconds: float


def read_bundle(bundle_dir: Path) -> tuple[str, dict[str, str]]:
    """``(bundle_id, {file name: sha256})`` of a bundle, checked against its own manifest.

    ``manifest.json`` is included (by the sha256 of its bytes).
    """
    bundle_dir = Path(bundle_dir)
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text())
        bundle_id, files = manifest["bundle_id"], manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShipError(f"{bundle_dir} is not a bundle (manifest.json unreadable or without "
                        f"bundle_id/files: {exc}); rebuild it with `edgeship convert`") from exc
    if not isinstance(bundle_id, str) or not _ID.match(bundle_id):
        raise ShipError(f"{bundle_dir}/manifest.json: bundle_id {bundle_id!r} is not a plain name")
    unsafe = [n for n in files if _BAD_NAME.search(n) or n.startswith(".") or n == "manifest.json"]
    if unsafe:
        raise ShipError(f"{bundle_dir}/manifest.json lists an unsafe file name {unsafe[0]!r}")
    hashes = {"manifest.json": _sha256(bundle_dir / "manifest.json")}
    for name, meta in files.items():
        path = bundle_dir / name
        if not path.is_file() or _sha256(path) != meta["sha256"]:
            raise ShipError(f"bundle {bundle_id}: {name} is missing or differs from its manifest "
                            f"sha256; the bundle is corrupt, rebuild it (`edgeship convert`)")
        hashes[name] = meta["sha256"]
    return bundle_id, hashes


def ship_bundle(transport: SSHTransport, board: Board, bundle_dir: Path, *, keep: int = 3,
                progress: ShipProgress | None = None) -> ShipResult:
    """Upload *bundle_dir* as release ``<bundle_id>``, verify it on the board, switch ``current``.

    Raises:
        ShipError: the bundle is corrupt, the board is locked, or a file does not verify on the
            board (``current`` is then left untouched and the partial upload kept for a retry).
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (got {keep})")
    started = time.perf_counter()
    bundle_id, files = read_bundle(bundle_dir)
    root = board.root.rstrip("/") or "/"
    release = f"{root}/releases/{bundle_id}"
    with BoardLock(transport, root) as lock:
        if not _mismatched(transport, release, files):
            _switch(transport, lock, bundle_id, keep, finalize=False)
            log.info("board %r: release %s already there; switched", board.name, bundle_id)
            return ShipResult(bundle_id, 0, 0, len(files), True, time.perf_counter() - started)
        sent, count = _upload(transport, root, bundle_id, Path(bundle_dir), files, progress)
        bad = _mismatched(transport, f"{root}/releases/.{bundle_id}.partial", files)
        if bad:
            raise ShipError(
                f"board {board.name!r}: {', '.join(sorted(bad))} failed sha256 verification after "
                f"upload (disk full or failing storage?); `current` was not switched — ship again "
                f"to re-send only the bad files")
        _switch(transport, lock, bundle_id, keep, finalize=True)
    seconds = time.perf_counter() - started
    log.info("board %r: shipped %s (%d files, %d bytes) in %.2f s", board.name, bundle_id,
             count, sent, seconds)
    return ShipResult(bundle_id, sent, count, len(files) - count, False, seconds)


def rollback(transport: SSHTransport, board: Board) -> str:
    """Point ``current`` back at ``previous`` (and ``previous`` at the former current).

    Returns the release id now current. Raises :class:`ShipError` when there is no previous
    release to go back to.
    """
    root = board.root.rstrip("/") or "/"
    with BoardLock(transport, root) as lock:
        res = transport.run_script(_ROLLBACK, root, check=False)
        lock.held = res.status not in (0, 9)  # the script released it unless it failed early
        if res.status == 9:
            raise ShipError(f"board {board.name!r} has no previous release to roll back to; "
                            "ship the release you want instead")
        if res.status != 0:
            raise ShipError(f"board {board.name!r}: rollback failed: {res.stderr.strip()[-200:]}")
    log.info("board %r: rolled back to %s", board.name, res.stdout.strip())
    return res.stdout.strip()


def _mismatched(transport: SSHTransport, directory: str, files: dict[str, str]) -> set[str]:
    """Names whose sha256 in the board *directory* differs from *files* (or that are missing)."""
    found = remote_sha256(transport, directory, sorted(files))
    return {name for name, digest in files.items() if found.get(name) != digest}


def _upload(transport: SSHTransport, root: str, bundle_id: str, bundle_dir: Path,
            files: dict[str, str], progress: ShipProgress | None) -> tuple[int, int]:
    """Send the files the partial directory lacks; returns ``(bytes_sent, files_sent)``."""
    names = sorted(files)
    there = parse_sha256sum(transport.run_script(_PREPARE, root, bundle_id, *names).stdout, names)
    partial = f"{root}/releases/.{bundle_id}.partial"
    todo = [name for name in names if there.get(name) != files[name]]
    sent = 0
    for name in todo:
        callback = None if progress is None else _file_progress(progress, name)
        sent += transport.put(bundle_dir / name, f"{partial}/{name}", progress=callback)
    log.debug("uploaded %d of %d files to %s", len(todo), len(files), partial)
    return sent, len(todo)


def _file_progress(progress: ShipProgress, name: str) -> Callable[[int, int], None]:
    def callback(done: int, total: int) -> None:
        progress(name, done, total)
    return callback


def _switch(transport: SSHTransport, lock: BoardLock, bundle_id: str, keep: int, *,
            finalize: bool) -> None:
    """Finalize (optionally), point ``current`` at the release, keep ``previous``, prune, unlock."""
    res = transport.run_script(_SWITCH, lock.root, bundle_id, "1" if finalize else "0", str(keep))
    lock.held = False
    for line in res.stdout.splitlines():
        log.info("board %r: %s", transport.board.name, line)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
