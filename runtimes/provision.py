"""Offline provisioning of the board runtime: probe the board, fill a wheelhouse, install a venv.

The board never touches the internet: the *host* downloads wheels that fit the board's CPU,
Python and glibc (``pip download --platform … --python-version …``) into a per-platform cache,
uploads them to ``<root>/wheelhouse/`` and installs them into ``<root>/venv`` with ``--no-index``.

Known wheel floors (checked by the board's glibc, not assumed): ai-edge-litert 2.3 needs
manylinux_2_27, onnxruntime 1.31 manylinux_2_28, tflite-runtime 2.14 on aarch64 manylinux_2_34 and
numpy<2 — so tflite-runtime is only chosen where ai-edge-litert has no wheel.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from devices import Board
from edgeship.errors import ShipError

from .ssh import SSHTransport

__all__ = ["BoardFacts", "DEFAULT_PACKAGES", "FALLBACK_PACKAGES", "build_wheelhouse",
           "ensure_runtime", "facts_dict", "probe_board", "provision", "provision_board",
           "wheelhouse_cache"]

log = logging.getLogger(__name__)

DEFAULT_PACKAGES = ("onnxruntime==1.31.1", "ai-edge-litert==2.3.0", "numpy")
FALLBACK_PACKAGES = ("onnxruntime==1.31.1", "tflite-runtime==2.14.0", "numpy<2")
_FLOORS = {"onnxruntime": "glibc >= 2.28 (manylinux_2_28)", "ai-edge-litert": "glibc >= 2.27",
           "tflite-runtime": "glibc >= 2.34 on aarch64 and numpy<2"}
_PIP_TIMEOUT_S = 900

_PROBE = r"""
import json, os, platform, sys
root = sys.argv[1]
while not os.path.isdir(root) and root not in ("", "/"):
    root = os.path.dirname(root)
st = os.statvfs(root or ".")
info = {}
try:
    for line in open("/etc/os-release"):
        k, _, v = line.strip().partition("=")
        info[k] = v.strip('"')
except OSError:
    pass
print(json.dumps({"python": platform.python_version(),
                  "executable": os.path.realpath(sys.executable),
                  "libc": platform.libc_ver(), "os": info.get("PRETTY_NAME", platform.platform()),
                  "free_mb": st.f_bavail * st.f_frsize // 2**20}))
"""

_CHECK = r"""
import json, sys
from importlib import metadata
want = json.loads(sys.argv[1])
bad = {}
for dist, version in want.items():
    try:
        have = metadata.version(dist)
    except metadata.PackageNotFoundError:
        have = None
    if have != version:
        bad[dist] = have
print(json.dumps(bad))
"""


@dataclass(frozen=True)
class BoardFacts:
    """What the board is: CPU architecture, Python, C library, OS, free disk under its root."""

    machine: str
    python: str
    executable: str
    glibc: str | None
    os: str
    free_mb: int

    @property
    def python_xy(self) -> str:
        """``3.11``."""
        return ".".join(self.python.split(".")[:2])

    @property
    def abi(self) -> str:
        """``cp311``."""
        return "cp" + self.python_xy.replace(".", "")

    @property
    def platform_key(self) -> str:
        """The wheelhouse folder name: ``x86_64-cp311-glibc2.36``."""
        return f"{self.machine}-{self.abi}-glibc{self.glibc or 'none'}"

    def manylinux_tags(self) -> list[str]:
        """Every manylinux platform tag the board's glibc can load, newest first."""
        if not self.glibc:
            raise ShipError(f"the board runs {self.os} without glibc (musl?); no manylinux wheel "
                            "of onnxruntime/ai-edge-litert fits it; use a glibc-based OS image")
        major, minor = (int(x) for x in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        tags.append(f"manylinux2014_{self.machine}")
        if self.machine in ("x86_64", "i686"):
            tags += [f"manylinux2010_{self.machine}", f"manylinux1_{self.machine}"]
        return tags


def probe_board(transport: SSHTransport) -> BoardFacts:
    """Ask the board (``uname -m`` and its python, ``board.python``) what it is.

    ``executable`` is the real interpreter behind ``board.python`` (a venv's base python), the
    one that creates the runtime venv.
    """
    machine = transport.run(["uname", "-m"]).stdout.strip()
    res = transport.run([transport.board.python, "-c", _PROBE, transport.board.root], check=False)
    if res.status != 0:
        raise ShipError(f"board {transport.board.name!r} has no working {transport.board.python} "
                        f"({res.stderr.strip()[-200:]}); install Python 3.8+ on the board "
                        "(apt-get install python3 python3-venv)")
    data = json.loads(res.stdout)
    libc, version = data["libc"]
    facts = BoardFacts(machine=machine, python=data["python"], executable=data["executable"],
                       glibc=version if libc == "glibc" else None, os=data["os"],
                       free_mb=int(data["free_mb"]))
    log.info("board %r: %s", transport.board.name, facts)
    return facts


def wheelhouse_cache() -> Path:
    """Host-side wheel cache shared by tests and deploys: ``$EDGESHIP_WHEELHOUSE`` or
    ``~/.cache/edgeship/wheelhouse``."""
    env = os.environ.get("EDGESHIP_WHEELHOUSE")
    return Path(env) if env else Path.home() / ".cache" / "edgeship" / "wheelhouse"


def build_wheelhouse(facts: BoardFacts, packages: tuple[str, ...] | None = None,
                     cache_dir: Path | None = None) -> Path:
    """Download wheels fitting *facts* into ``<cache>/<platform_key>/`` (once per machine).

    Without *packages*, asks for :data:`DEFAULT_PACKAGES` and falls back to
    :data:`FALLBACK_PACKAGES` only when ai-edge-litert has no wheel for the board.
    """
    dest = Path(cache_dir or wheelhouse_cache()) / facts.platform_key
    candidates = [tuple(packages)] if packages else [DEFAULT_PACKAGES, FALLBACK_PACKAGES]
    for i, reqs in enumerate(candidates):
        if _cached(dest, reqs):
            return dest
        missing = _pip_download(facts, reqs, dest)
        if missing is None:
            return dest
        if i + 1 < len(candidates) and missing == "ai-edge-litert":
            log.info("no ai-edge-litert wheel for %s; trying tflite-runtime", facts.platform_key)
            continue
        floor = _FLOORS.get(missing, "a newer Python/glibc, or pin another version")
        raise ShipError(
            f"no wheel of {missing} fits the board ({facts.machine}, Python {facts.python_xy}, "
            f"glibc {facts.glibc}); it would need {floor}: upgrade the board's OS or choose other "
            f"runtime versions")
    raise AssertionError("unreachable")  # pragma: no cover


def _cached(dest: Path, reqs: tuple[str, ...]) -> bool:
    marker, listing = dest / "requirements.txt", dest / "wheels.txt"
    if not (marker.exists() and listing.exists()) or marker.read_text().split() != list(reqs):
        return False
    return all((dest / name).exists() for name in listing.read_text().split())


def _pip_download(facts: BoardFacts, reqs: tuple[str, ...], dest: Path) -> str | None:
    """Run ``pip download``; returns the package that has no fitting wheel, or ``None``."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--only-binary=:all:", "--python-version", facts.python_xy, "--implementation", "cp",
            "--abi", facts.abi, "--abi", "abi3", "--abi", "none", "-d", str(dest)]
    for tag in facts.manylinux_tags():
        argv += ["--platform", tag]
    started = time.perf_counter()
    proc = subprocess.run([*argv, *reqs], capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    if proc.returncode != 0:
        match = re.search(r"(?:No matching distribution found for|satisfies the requirement) "
                          r"([A-Za-z0-9_.\-]+)", proc.stderr)
        if match:
            return _normalize(match.group(1))
        raise ShipError(f"pip download for the board failed: {proc.stderr.strip()[-300:]}; "
                        "check that PyPI (or your index) is reachable from the host")
    saved = re.findall(r"^\s*(?:Saved|File was already downloaded) (\S+\.whl)\s*$",
                       proc.stdout, re.M)
    wheels = sorted({Path(p).name for p in saved})
    (dest / "wheels.txt").write_text("\n".join(wheels) + "\n")
    (dest / "requirements.txt").write_text("\n".join(reqs) + "\n")
    log.info("wheelhouse %s: %d wheels in %.1f s", dest, len(wheels), time.perf_counter() - started)
    return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_versions(wheelhouse: Path) -> dict[str, str]:
    """``{distribution: version}`` of the wheels this wheelhouse resolved to."""
    names = (wheelhouse / "wheels.txt").read_text().split()
    return {n.split("-")[0]: n.split("-")[1] for n in names}


def provision(transport: SSHTransport, board: Board, facts: BoardFacts, wheelhouse: Path) -> str:
    """Install the wheelhouse into ``<root>/venv`` on the board; returns the venv's python.

    Idempotent: when the venv already has exactly these versions, nothing is sent or installed.
    """
    root = board.root.rstrip("/")
    python = f"{root}/venv/bin/python"
    want = _wheel_versions(wheelhouse)
    if not _venv_mismatch(transport, python, want):
        log.info("board %r: runtime venv up to date", board.name)
        return python
    needed_mb = 5 * sum((wheelhouse / n).stat().st_size for n in _wheel_files(wheelhouse)) // 2**20
    if facts.free_mb < needed_mb:
        raise ShipError(f"board {board.name!r} has {facts.free_mb} MB free under {root}, the "
                        f"runtime needs about {needed_mb} MB; free some space on the board")
    started = time.perf_counter()
    _upload_wheels(transport, wheelhouse, f"{root}/wheelhouse")
    transport.run([facts.executable, "-m", "venv", f"{root}/venv"], timeout=_PIP_TIMEOUT_S)
    transport.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   "--no-index", "--find-links", f"{root}/wheelhouse",
                   "-r", f"{root}/wheelhouse/requirements.txt"], timeout=_PIP_TIMEOUT_S)
    bad = _venv_mismatch(transport, python, want)
    if bad:
        raise ShipError(f"board {board.name!r}: after installing, the venv still has {bad}; "
                        f"remove {root}/venv on the board and provision again")
    log.info("board %r: provisioned in %.1f s", board.name, time.perf_counter() - started)
    return python


def _wheel_files(wheelhouse: Path) -> list[str]:
    return (wheelhouse / "wheels.txt").read_text().split()


def _venv_mismatch(transport: SSHTransport, python: str,
                   want: dict[str, str]) -> dict[str, str | None]:
    """Distributions whose installed version differs from *want* (all of them without a venv)."""
    res = transport.run([python, "-c", _CHECK, json.dumps(want)], check=False)
    if res.status != 0:
        return dict.fromkeys(want)
    return json.loads(res.stdout)


def _upload_wheels(transport: SSHTransport, wheelhouse: Path, remote: str) -> None:
    """Send the wheels the board does not have yet (by name and size), then requirements.txt."""
    transport.run(["mkdir", "-p", remote])
    have = {a.filename: a.st_size for a in transport.sftp().listdir_attr(remote)}
    for name in _wheel_files(wheelhouse):
        local = wheelhouse / name
        if have.get(name) == local.stat().st_size:
            continue
        transport.put(local, f"{remote}/{name}.part")
        transport.sftp().posix_rename(f"{remote}/{name}.part", f"{remote}/{name}")
    transport.put(wheelhouse / "requirements.txt", f"{remote}/requirements.txt")


def ensure_runtime(transport: SSHTransport, board: Board, cache_dir: Path | None = None) -> str:
    """Probe, fill the wheelhouse and provision in one call; returns the board python."""
    facts = probe_board(transport)
    wheelhouse = build_wheelhouse(facts, cache_dir=cache_dir)
    return provision(transport, board, facts, wheelhouse)


def provision_board(transport: SSHTransport, board: Board,
                    cache_dir: Path | None = None) -> dict[str, object]:
    """Probe, fill the wheelhouse, install; returns what was found and done (for reports)::

        {"board", "facts", "wheelhouse", "packages": {dist: version}, "installed": bool,
         "python", "seconds"}
    """
    started = time.perf_counter()
    facts = probe_board(transport)
    wheelhouse = build_wheelhouse(facts, cache_dir=cache_dir)
    want = _wheel_versions(wheelhouse)
    missing = _venv_mismatch(transport, f"{board.root.rstrip('/')}/venv/bin/python", want)
    python = provision(transport, board, facts, wheelhouse)
    return {"board": board.name, "facts": facts_dict(facts), "wheelhouse": str(wheelhouse),
            "packages": want, "installed": bool(missing), "python": python,
            "seconds": round(time.perf_counter() - started, 2)}


def facts_dict(facts: BoardFacts) -> dict[str, object]:
    """*facts* as a JSON-able dict (for reports)."""
    return {**asdict(facts), "platform_key": facts.platform_key}
