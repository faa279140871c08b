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
from typing import Any

from core.errors import ShipError
from devices import Board

from .jetpack import RuntimePlan, jetson_facts, ort_source, plan_runtime
from .transport import Transport

__all__ = ["BoardFacts", "DEFAULT_PACKAGES", "FALLBACK_PACKAGES", "build_wheelhouse",
           "ensure_runtime", "facts_dict", "probe_board", "provision", "provision_board",
           "runtime_plan", "wheelhouse_cache"]

log = logging.getLogger(__name__)

DEFAULT_PACKAGES = ("onnxruntime==1.31.1", "ai-edge-litert==2.3.0", "numpy")
FALLBACK_PACKAGES = ("onnxruntime==1.31.1", "tflite-runtime==2.14.0", "numpy<2")
_FLOORS = {"onnxruntime": "glibc >= 2.28 (manylinux_2_28)", "ai-edge-litert": "glibc >= 2.27",
           "tflite-runtime": "glibc >= 2.34 on aarch64 and numpy<2",
           "cuda-python": "a cuda-python build for its Python and CUDA (or install pycuda in the "
                          "board's system Python and provision again)"}
_PIP_TIMEOUT_S = 900

_PROBE = r"""
import json, os, platform, shutil, subprocess, sys
root, sysroot = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
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
def text(path):
    try:
        return open(os.path.join(sysroot or "/", path)).read()
    except (OSError, UnicodeDecodeError):
        return ""
def run(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None
jetson = {"tegra_release": text("etc/nv_tegra_release"), "sysroot": sysroot}
if shutil.which("dpkg-query"):
    admin = ["--admindir=" + os.path.join(sysroot, "var/lib/dpkg")] if sysroot else []
    res = run(["dpkg-query"] + admin + ["-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\n",
               "nvidia-l4t-core", "tensorrt", "libnvinfer[0-9]*", "python3-libnvinfer",
               "libcudnn[0-9]*", "cuda-cudart-[0-9]*"])
    jetson["packages"] = res.stdout if res else ""
if jetson["tegra_release"] or "nvidia-l4t-core" in jetson.get("packages", ""):
    code = ("import json\nout = {}\nfor mod in ('tensorrt', 'cuda', 'pycuda'):\n"
            "    try:\n        m = __import__(mod)\n"
            "        out[mod] = getattr(m, '__version__', None) or 'unknown'\n"
            "    except Exception as exc:\n        out[mod + '_error'] = str(exc)[:200]\n"
            "print(json.dumps(out))")
    res = run([os.path.realpath(sys.executable), "-c", code])
    jetson["python_modules"] = json.loads(res.stdout) if res and res.returncode == 0 else {}
    trtexec = shutil.which("trtexec") or "/usr/src/tensorrt/bin/trtexec"
    jetson["trtexec"] = trtexec if os.access(trtexec, os.X_OK) else None
    jetson["tools"] = dict((t, bool(shutil.which(t))) for t in ("nvpmodel", "tegrastats",
                                                                 "jetson_clocks"))
print(json.dumps({"python": platform.python_version(),
                  "executable": os.path.realpath(sys.executable),
                  "libc": platform.libc_ver(), "os": info.get("PRETTY_NAME", platform.platform()),
                  "free_mb": st.f_bavail * st.f_frsize // 2**20, "jetson": jetson}))
"""

_CHECK = r"""
import json, os, sys
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
if len(sys.argv) > 2:
    cfg = open(os.path.join(sys.prefix, "pyvenv.cfg")).read()
    on = "include-system-site-packages = true" in cfg
    if on != json.loads(sys.argv[2]):
        bad["include-system-site-packages"] = str(on).lower()
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
    jetson: dict[str, Any] | None = None  # L4T, JetPack, CUDA, cuDNN, TensorRT (runtimes.jetpack)

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
        base = f"{self.machine}-{self.abi}-glibc{self.glibc or 'none'}"
        return f"{base}-jetson" if self.jetson else base

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
        if self.jetson:  # NVIDIA's Jetson wheels are tagged linux_aarch64
            tags.append(f"linux_{self.machine}")
        return tags


def probe_board(transport: Transport) -> BoardFacts:
    """Ask the board (``uname -m`` and its python, ``board.python``) what it is.

    ``executable`` is the real interpreter behind ``board.python`` (a venv's base python), the
    one that creates the runtime venv. On a Jetson, ``jetson`` holds its JetPack software and
    whether that interpreter imports ``tensorrt`` (read under ``board.sysroot`` in simulation).
    """
    machine = transport.run(["uname", "-m"]).stdout.strip()
    argv = [transport.board.python, "-c", _PROBE, transport.board.root]
    if getattr(transport.board, "sysroot", None):
        argv.append(transport.board.sysroot)
    res = transport.run(argv, check=False)
    if res.status != 0:
        raise ShipError(f"board {transport.board.name!r} has no working {transport.board.python} "
                        f"({res.stderr.strip()[-200:]}); install Python 3.8+ on the board "
                        "(apt-get install python3 python3-venv)")
    data = json.loads(res.stdout)
    libc, version = data["libc"]
    facts = BoardFacts(machine=machine, python=data["python"], executable=data["executable"],
                       glibc=version if libc == "glibc" else None, os=data["os"],
                       free_mb=int(data["free_mb"]), jetson=jetson_facts(data.get("jetson") or {}))
    log.info("board %r: %s", transport.board.name, facts)
    return facts


def wheelhouse_cache() -> Path:
    """Host-side wheel cache shared by tests and deploys: ``$EDGESHIP_WHEELHOUSE`` or
    ``~/.cache/edgeship/wheelhouse``."""
    env = os.environ.get("EDGESHIP_WHEELHOUSE")
    return Path(env) if env else Path.home() / ".cache" / "edgeship" / "wheelhouse"


def build_wheelhouse(facts: BoardFacts, packages: tuple[str, ...] | None = None,
                     cache_dir: Path | None = None, plan: RuntimePlan | None = None) -> Path:
    """Download wheels fitting *facts* into ``<cache>/<platform_key>/`` (once per machine).

    Without *packages*, asks for the *plan*'s requirements (a Jetson's), else
    :data:`DEFAULT_PACKAGES`, falling back to :data:`FALLBACK_PACKAGES` only when ai-edge-litert
    has no wheel for the board.
    """
    dest = Path(cache_dir or wheelhouse_cache()) / facts.platform_key
    if not packages and plan is not None and plan.requirements:
        packages = plan.requirements
    candidates = [tuple(packages)] if packages else [DEFAULT_PACKAGES, FALLBACK_PACKAGES]
    for i, reqs in enumerate(candidates):
        if _cached(dest, reqs):
            return dest
        fetch = plan.downloads if plan is not None and plan.downloads and i == 0 else None
        missing = _pip_download(facts, reqs, dest, fetch=fetch,
                                extra_index=plan.extra_index if plan is not None else None)
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


def _pip_download(facts: BoardFacts, reqs: tuple[str, ...], dest: Path, *,
                  fetch: tuple[str, ...] | None = None, extra_index: str | None = None) -> str | None:
    """Run ``pip download`` of *fetch* (default *reqs*; a wheel path stands for its requirement);
    returns the package that has no fitting wheel, or ``None``."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--only-binary=:all:", "--python-version", facts.python_xy, "--implementation", "cp",
            "--abi", facts.abi, "--abi", "abi3", "--abi", "none", "-d", str(dest)]
    for tag in facts.manylinux_tags():
        argv += ["--platform", tag]
    if extra_index:
        argv += ["--extra-index-url", extra_index]
    started = time.perf_counter()
    proc = subprocess.run([*argv, *(fetch or reqs)], capture_output=True, text=True,
                          timeout=_PIP_TIMEOUT_S)
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


def provision(transport: Transport, board: Board, facts: BoardFacts, wheelhouse: Path,
              plan: RuntimePlan | None = None) -> str:
    """Install the wheelhouse into ``<root>/venv`` on the board; returns the venv's python.

    A Jetson *plan* makes the venv with ``--system-site-packages`` (JetPack's TensorRT).
    Idempotent: when the venv already has exactly these versions, nothing is sent or installed.
    """
    root = board.root.rstrip("/")
    python = f"{root}/venv/bin/python"
    want = _wheel_versions(wheelhouse)
    system_site = bool(plan and plan.system_site_packages)
    if not _venv_mismatch(transport, python, want, system_site):
        log.info("board %r: runtime venv up to date", board.name)
        return python
    needed_mb = 5 * sum((wheelhouse / n).stat().st_size for n in _wheel_files(wheelhouse)) // 2**20
    if facts.free_mb < needed_mb:
        raise ShipError(f"board {board.name!r} has {facts.free_mb} MB free under {root}, the "
                        f"runtime needs about {needed_mb} MB; free some space on the board")
    started = time.perf_counter()
    _upload_wheels(transport, wheelhouse, f"{root}/wheelhouse")
    venv_flags = ["--system-site-packages"] if system_site else []
    transport.run([facts.executable, "-m", "venv", *venv_flags, f"{root}/venv"],
                  timeout=_PIP_TIMEOUT_S)
    own = ["--ignore-installed"] if system_site else []  # the venv's own copies, not the OS's
    # --no-compile: pip byte-compiled every file of numpy/onnxruntime (10.5 s of 15 here); the
    # agent's imports compile the few modules they use once, on first import (+0.3 s)
    transport.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   "--no-compile", "--no-index", "--find-links", f"{root}/wheelhouse", *own,
                   "-r", f"{root}/wheelhouse/requirements.txt"], timeout=_PIP_TIMEOUT_S)
    bad = _venv_mismatch(transport, python, want, system_site)
    if bad:
        raise ShipError(f"board {board.name!r}: after installing, the venv still has {bad}; "
                        f"remove {root}/venv on the board and provision again")
    log.info("board %r: provisioned in %.1f s", board.name, time.perf_counter() - started)
    return python


def _wheel_files(wheelhouse: Path) -> list[str]:
    return (wheelhouse / "wheels.txt").read_text().split()


def _venv_mismatch(transport: Transport, python: str, want: dict[str, str],
                   system_site: bool = False) -> dict[str, str | None]:
    """Distributions whose installed version differs from *want* (all of them without a venv);
    ``include-system-site-packages`` too when the venv's setting is not *system_site*."""
    res = transport.run([python, "-c", _CHECK, json.dumps(want), json.dumps(system_site)],
                        check=False)
    if res.status != 0:
        return dict.fromkeys(want)
    return json.loads(res.stdout)


def _upload_wheels(transport: Transport, wheelhouse: Path, remote: str) -> None:
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


def runtime_plan(board: Board, facts: BoardFacts) -> RuntimePlan:
    """The plan for *board*: its profile's accelerator wish and the GPU onnxruntime source."""
    from profiles import load_profile

    profile = load_profile(board.profile)
    return plan_runtime(facts, ort_source(board, profile), profile.runtime.accelerator,
                        board.name)


def ensure_runtime(transport: Transport, board: Board, cache_dir: Path | None = None) -> str:
    """Probe, plan, fill the wheelhouse and provision in one call; returns the board python."""
    facts = probe_board(transport)
    plan = runtime_plan(board, facts)
    wheelhouse = build_wheelhouse(facts, cache_dir=cache_dir, plan=plan)
    return provision(transport, board, facts, wheelhouse, plan)


def provision_board(transport: Transport, board: Board,
                    cache_dir: Path | None = None) -> dict[str, object]:
    """Probe, plan, fill the wheelhouse, install; returns what was found and done::

        {"board", "facts", "plan", "wheelhouse", "packages": {dist: version}, "installed": bool,
         "python", "seconds"}
    """
    started = time.perf_counter()
    facts = probe_board(transport)
    plan = runtime_plan(board, facts)
    wheelhouse = build_wheelhouse(facts, cache_dir=cache_dir, plan=plan)
    want = _wheel_versions(wheelhouse)
    missing = _venv_mismatch(transport, f"{board.root.rstrip('/')}/venv/bin/python", want,
                             plan.system_site_packages)
    python = provision(transport, board, facts, wheelhouse, plan)
    return {"board": board.name, "facts": facts_dict(facts), "plan": plan.as_dict(),
            "wheelhouse": str(wheelhouse), "packages": want, "installed": bool(missing),
            "python": python, "seconds": round(time.perf_counter() - started, 2)}


def facts_dict(facts: BoardFacts) -> dict[str, object]:
    """*facts* as a JSON-able dict (for reports)."""
    return {**asdict(facts), "platform_key": facts.platform_key}
