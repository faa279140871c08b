"""Private: plan and send the files a release lacks — skip, link from another release, resume.

For each file of the bundle, cheapest first:

1. already in the partial directory with the right sha256: nothing to do;
2. an identical file (same sha256 in its manifest) in another verified release on the board:
   hard-linked (or copied) on the board, nothing sent;
3. a shorter partial file: the rest is sent from its byte offset (the whole file is verified);
4. otherwise: sent whole.

Before sending, the board's free space under ``releases/`` must hold what is left to send plus
a margin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ShipError

from ._remote import parse_sha256sum
from .transport import Transport

__all__ = ["Plan", "check_space", "link_from_releases", "plan_upload", "send"]

log = logging.getLogger(__name__)

MARGIN_BYTES = 1 << 20
MARGIN_FRACTION = 0.05

# $1 root, $2 release id, then file names: re-use a broken release's good files as the partial
# upload; print the free KiB under releases/, then the sha256 of the files already there.
_PREPARE = """
set -e
cd "$1/releases"
if [ -d "$2" ] && [ ! -e ".$2.partial" ]; then mv -T "$2" ".$2.partial"; fi
mkdir -p ".$2.partial"
df -Pk . | awk 'NR==2 {print "free-kib", $4}'
cd ".$2.partial"
shift 2
sha256sum -- "$@" 2>/dev/null || true
"""
# $1 partial dir, then pairs (byte count, name): sha256 of each file's first bytes.
_PREFIX = """
dir=$1; shift
while [ $# -ge 2 ]; do
  d=$(head -c "$1" -- "$dir/$2" | sha256sum | cut -d' ' -f1)
  printf '%s  %s\\n' "$d" "$2"
  shift 2
done
"""
# $1 partial dir, then pairs (source, name): hard-link an identical verified file, else copy.
_LINK = """
set -e
dir=$1; shift
while [ $# -ge 2 ]; do
  rm -f -- "$dir/$2"
  ln -- "$1" "$dir/$2" 2>/dev/null || cp -p -- "$1" "$dir/$2"
  shift 2
done
"""


@dataclass
class Plan:
    """What the partial directory holds and what is left to do."""

    partial: str
    free_bytes: int | None
    good: set[str] = field(default_factory=set)
    offsets: dict[str, int] = field(default_factory=dict)  # name → bytes already there

    def todo(self, files: dict[str, str]) -> list[str]:
        """Names still to send (sorted)."""
        return sorted(set(files) - self.good)


def plan_upload(transport: Transport, root: str, bundle_id: str, files: dict[str, str],
                bundle_dir: Path) -> Plan:
    """Prepare ``releases/.<id>.partial`` and find which files are good or resumable.

    A shorter file is resumable only when its bytes match the start of the local file.
    """
    sizes = {name: (bundle_dir / name).stat().st_size for name in files}
    names = sorted(files)
    out = transport.run_script(_PREPARE, root, bundle_id, *names).stdout
    free = next((int(line.split()[1]) * 1024 for line in out.splitlines()
                 if line.startswith("free-kib ") and line.split()[1].isdigit()), None)
    there = parse_sha256sum(out, names)
    plan = Plan(f"{root}/releases/.{bundle_id}.partial", free,
                good={n for n in names if there.get(n) == files[n]})
    for attr in transport.listdir_attr(plan.partial):
        name, size = attr.filename, int(attr.st_size or 0)
        if name in files and name not in plan.good and 0 < size < sizes[name]:
            plan.offsets[name] = size
    if plan.offsets:
        _keep_matching_prefixes(transport, plan, bundle_dir)
    return plan


def _keep_matching_prefixes(transport: Transport, plan: Plan, bundle_dir: Path) -> None:
    args = [str(a) for name, size in sorted(plan.offsets.items()) for a in (size, name)]
    out = transport.run_script(_PREFIX, plan.partial, *args).stdout
    there = parse_sha256sum(out, list(plan.offsets))
    for name, size in list(plan.offsets.items()):
        if there.get(name) != _prefix_sha256(bundle_dir / name, size):
            log.info("board %r: partial %s does not match; sending it whole",
                     transport.board.name, name)
            del plan.offsets[name]


def _prefix_sha256(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while size > 0:
            block = fh.read(min(size, 1 << 20))
            if not block:
                break
            digest.update(block)
            size -= len(block)
    return digest.hexdigest()


def link_from_releases(transport: Transport, root: str, bundle_id: str, plan: Plan,
                       files: dict[str, str]) -> list[str]:
    """Hard-link files the plan lacks from other verified releases; returns the linked names."""
    wanted = {files[n]: n for n in plan.todo(files) if n not in plan.offsets}
    if not wanted:
        return []
    pairs: list[str] = []
    linked: list[str] = []
    for release in _other_releases(transport, root, bundle_id):
        manifest = transport.read_bytes(f"{root}/releases/{release}/manifest.json")
        for name, meta in _manifest_files(manifest).items():
            target = wanted.pop(str(meta.get("sha256")), None)
            if target is not None:
                pairs += [f"{root}/releases/{release}/{name}", target]
                linked.append(target)
    if pairs:
        transport.run_script(_LINK, plan.partial, *pairs)
        log.info("board %r: reused %d identical files from other releases", transport.board.name,
                 len(linked))
    return linked


def _other_releases(transport: Transport, root: str, bundle_id: str) -> list[str]:
    names = [a.filename for a in transport.listdir_attr(f"{root}/releases")]
    return sorted(n for n in names if not n.startswith(".") and n != bundle_id)


def _manifest_files(raw: bytes | None) -> dict[str, dict[str, object]]:
    try:
        files = json.loads(raw or b"{}").get("files", {})
    except (ValueError, AttributeError):
        return {}
    return {n: m for n, m in files.items() if isinstance(m, dict) and "/" not in n} \
        if isinstance(files, dict) else {}


def check_space(transport: Transport, root: str, plan: Plan, need: int) -> None:
    """Fail before sending anything when the board cannot hold *need* more bytes."""
    if plan.free_bytes is None:
        log.warning("board %r: free space under %s unknown; uploading anyway",
                    transport.board.name, root)
        return
    want = need + max(MARGIN_BYTES, int(need * MARGIN_FRACTION))
    if plan.free_bytes < want:
        raise ShipError(
            f"board {transport.board.name!r}: not enough space under {root} for the upload "
            f"(needs {want / 2**20:.1f} MiB with margin, {plan.free_bytes / 2**20:.1f} MiB "
            f"free); nothing was sent and `current` is unchanged — free space on the board "
            f"(e.g. rm -r {shlex.quote(root)}/releases/.*.partial, or lower `keep`) and ship again")


def send(transport: Transport, bundle_dir: Path, plan: Plan, name: str,
         progress: Callable[[str, int, int], None] | None, *, resume: bool) -> int:
    """Send one file into the partial directory (from its offset when *resume*)."""
    offset = plan.offsets.get(name, 0) if resume else 0
    callback = None if progress is None else _file_progress(progress, name)
    remote = f"{plan.partial}/{name}"
    try:
        sent = transport.put(bundle_dir / name, remote, progress=callback, offset=offset)
    except ShipError as exc:
        if type(exc) is ShipError:  # disk full / read-only: give the space back, keep the rest
            transport.run(["rm", "-f", "--", remote], check=False)
        raise
    plan.offsets.pop(name, None)
    return sent


def _file_progress(progress: Callable[[str, int, int], None], name: str
                   ) -> Callable[[int, int], None]:
    def callback(done: int, total: int) -> None:
        progress(name, done, total)
    return callback
