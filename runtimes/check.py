"""Pre-flight check of one board: can a deploy reach it, log in, and run the profile there?

``check_board`` walks the same path a deploy takes, cheapest step first, and stops trying what
depends on a failed step (those lines are *skipped*, not failed)::

    dns          the host name resolves (bounded: a missing .local name fails in seconds)
    tcp          the SSH port accepts a connection (short timeout)
    host key     the key the board presents is pinned (project or user known_hosts)
    ssh auth     login with the inventory's user and key (the deploy's own SSHTransport)
    python       the board Python runs, 3.8+ (runtimes.provision.probe_board)
    arch         the board CPU is the profile's
    glibc        new enough for the runtime wheels the profile needs
    runtime      onnxruntime / a TFLite runtime in <root>/venv, at the provisioned versions
    accelerator  onnxruntime's providers vs the profile's ``runtime.onnx_providers``
    free space   under the board root

Each line carries what was found and, when it failed, what to do. ``deploy`` runs the steps up
to ``glibc`` before converting, so an unreachable board is reported in about a second.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import paramiko

from core.errors import ShipError
from devices import Board
from profiles import Profile

from ._sshtext import reason
from .provision import DEFAULT_PACKAGES, FALLBACK_PACKAGES, BoardFacts, probe_board
from .ssh import SSHTransport
from .sshconfig import DEFAULT_SSH_CONFIG, resolve_hops
from .transport import Transport
from .trust import fetch_host_key

__all__ = ["CONNECTION_STEPS", "Check", "as_json", "check_board", "failed", "preflight"]

CONNECTION_STEPS = ("dns", "tcp", "host key", "ssh auth", "python", "arch", "glibc")
"""What ``deploy`` checks before converting (the runtime is installed by the deploy itself)."""

_GLIBC_FLOOR = {"onnx": (2, 28), "tflite": (2, 27)}  # onnxruntime 1.31 / ai-edge-litert 2.3
_MIN_FREE_MB, _MIN_FREE_MB_INSTALL = 50, 400
_PINS = {spec.split("==")[0]: spec.split("==")[1]
         for spec in DEFAULT_PACKAGES + FALLBACK_PACKAGES if "==" in spec}
_RUNTIME_PROBE = r"""
import json, sys
from importlib import metadata
found = {}
for dist in ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime", "tensorflow",
             "numpy"):
    try:
        found[dist] = metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
doc = {"executable": sys.executable, "versions": found, "providers": None}
if "onnxruntime" in found or "onnxruntime-gpu" in found:
    try:
        import onnxruntime
        doc["providers"] = onnxruntime.get_available_providers()
    except Exception as exc:
        doc["providers_error"] = ("%s: %s" % (type(exc).__name__, exc))[-200:]
print(json.dumps(doc))
"""


@dataclass(frozen=True)
class Check:
    """One line of the check: ``ok`` is True (✔), False (✗) or None (skipped)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``✔ tcp: …`` / ``✗ dns: … → fix`` / ``· runtime: not checked (…)``."""
        mark = {True: "✔", False: "✗", None: "·"}[self.ok]
        return f"{mark} {self.name}: {self.detail}" + (f" → {self.fix}" if self.fix else "")


def failed(checks: list[Check]) -> list[Check]:
    """The ✗ lines."""
    return [c for c in checks if c.ok is False]


def check_board(board: Board, known_hosts: Path, profile: Profile, *, timeout: float = 3.0,
                steps: tuple[str, ...] | None = None,
                ssh_config: Path | str | None = DEFAULT_SSH_CONFIG,
                **transport: Any) -> list[Check]:
    """Check *board* for *profile*, step by step (all steps, or only *steps*).

    *timeout* bounds name resolution, the TCP connect and the SSH handshake; *transport*
    options go to :class:`SSHTransport` (tests keep the developer's keys out).
    """
    wanted = steps or ("dns", "tcp", "host key", "ssh auth", "python", "arch", "glibc",
                       "runtime", "accelerator", "free space")
    hops = resolve_hops(board, ssh_config)
    hop, jumped = hops[0], len(hops) > 1
    where = f"{hop.host}:{hop.port}" + (" (first jump host)" if jumped else "")
    dns, address = _dns(hop.host, hop.port, timeout)
    out = [dns]
    if address is not None:
        out.append(_tcp(board, address, hop.port, where, timeout))
    if out[-1].ok:
        out.append(_skip("host key", "checked at login (ProxyJump)") if jumped
                   else _host_key(board, known_hosts, timeout, ssh_config))
    if len(out) == 3 and not failed(out) and "ssh auth" in wanted:  # key ok (or via a jump)
        with SSHTransport(board, known_hosts, connect_timeout=timeout, ssh_config=ssh_config,
                          **transport) as ssh:
            out += _on_board(ssh, board, profile, wanted)
    names = {c.name for c in out}
    bad = failed(out)
    why = f"not checked ({bad[0].name} failed)" if bad else "not asked"
    out += [_skip(n, why) for n in wanted if n not in names]
    order = {n: i for i, n in enumerate(wanted)}
    return sorted((c for c in out if c.name in order), key=lambda c: order[c.name])


def preflight(board: Board, known_hosts: Path, profile: Profile, *, timeout: float = 3.0,
              **transport: Any) -> list[Check]:
    """The connection steps (``CONNECTION_STEPS``); raises :class:`ShipError` on the first ✗."""
    checks = check_board(board, known_hosts, profile, timeout=timeout, steps=CONNECTION_STEPS,
                         **transport)
    bad = failed(checks)
    if bad:
        first = bad[0]
        what = "unreachable:" if first.name in ("dns", "tcp") else f"{first.name}:"
        raise ShipError(f"board {board.name!r} {what} {first.detail}"
                        + (f"; {first.fix}" if first.fix else "")
                        + f" (`edgeship check --device {board.name}` checks every step)")
    return checks


# -- connection steps -------------------------------------------------------------------------
def _skip(name: str, why: str) -> Check:
    return Check(name, None, why)


def _dns(host: str, port: int, timeout: float) -> tuple[Check, str | None]:
    """Resolve *host* in a daemon thread: getaddrinfo has no timeout of its own (an absent
    ``.local`` name can take many seconds), and a stuck lookup must not hold up the exit."""
    box: list[Any] = []
    worker = threading.Thread(target=_resolve, args=(host, port, box), daemon=True)
    worker.start()
    worker.join(timeout)
    fix = ("set ansible_host to the board's IP address (or a name this host resolves) in the "
           "inventory, or check that the board is on this network")
    if not box:
        return Check("dns", False, f"{host} did not resolve within {timeout:g} s", fix), None
    if isinstance(box[0], OSError):
        why = reason(box[0]).replace("cannot resolve the host name", f"cannot resolve {host}")
        return Check("dns", False, why, fix), None
    address = str(box[0])
    return Check("dns", True, address if address == host else f"{host} → {address}"), address


def _resolve(host: str, port: int, box: list[Any]) -> None:
    try:
        box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])
    except OSError as exc:
        box.append(exc)


def _tcp(board: Board, address: str, port: int, where: str, timeout: float) -> Check:
    started = time.perf_counter()
    try:
        socket.create_connection((address, port), timeout=timeout).close()
    except OSError as exc:
        fix = (f"start it: `edgeship board up {board.name}`" if board.simulated else
               "check that the board is powered, on the network and runs sshd, and its "
               "ansible_host/ansible_port in the inventory")
        return Check("tcp", False, f"{where}: {reason(exc)}", fix)
    return Check("tcp", True, f"{where} answered in {(time.perf_counter() - started) * 1e3:.0f} ms")


def _host_key(board: Board, known_hosts: Path, timeout: float,
              ssh_config: Path | str | None) -> Check:
    try:
        offer = fetch_host_key(board, known_hosts, timeout=timeout, ssh_config=ssh_config)
    except ShipError as exc:
        return Check("host key", False, str(exc).split("; ")[0].split(": ", 1)[-1],
                     "is an SSH server listening there?")
    user_file = Path("~/.ssh/known_hosts").expanduser()
    if not offer.known and not offer.changed and not board.simulated and user_file.is_file():
        mine = paramiko.HostKeys(str(user_file)).lookup(offer.pattern) or {}
        if offer.key.get_name() in mine and mine[offer.key.get_name()] == offer.key:
            return Check("host key", True, f"{offer.fingerprint} pinned in {user_file}")
    if offer.changed:
        return Check("host key", False,
                     f"{offer.pattern} presents {offer.fingerprint} but {known_hosts} pins "
                     "another key (reinstalled, or not the board)",
                     f"if you trust the new key: ssh-keygen -R '{offer.pattern}' -f "
                     f"{known_hosts}; edgeship boards trust {board.name}")
    if not offer.known:
        return Check("host key", False,
                     f"{offer.pattern} presents {offer.key.get_name()} {offer.fingerprint}, "
                     f"not pinned in {known_hosts}",
                     f"compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on "
                     f"the board, then `edgeship boards trust {board.name}`")
    return Check("host key", True, f"{offer.fingerprint} pinned in {known_hosts}")


# -- on the board -----------------------------------------------------------------------------
def _on_board(ssh: Transport, board: Board, profile: Profile,
              wanted: tuple[str, ...]) -> list[Check]:
    started = time.perf_counter()
    try:
        ssh.connect()
    except ShipError as exc:
        return [Check("ssh auth", False, *_split_fix(str(exc)))]
    out = [Check("ssh auth", True, f"logged in as {ssh.user} in "
                                   f"{(time.perf_counter() - started) * 1e3:.0f} ms")]
    if "python" not in wanted:
        return out
    try:
        facts = probe_board(ssh)
    except ShipError as exc:
        return out + [Check("python", False, *_split_fix(str(exc)))]
    out += _facts(facts, profile)
    if "runtime" in wanted:
        try:
            runtime = _runtime_doc(ssh, board)
        except ShipError as exc:  # the link dropped or the probe hung
            return out + [Check("runtime", False, *_split_fix(str(exc)))]
        out += [_runtime(runtime, profile, board), _accelerator(runtime, profile),
                _free_space(facts, runtime, board)]
    return out


def _split_fix(message: str) -> tuple[str, str]:
    """``"what; what to do"`` → ``(what, what to do)`` (the board prefix dropped)."""
    what, _, fix = message.partition("; ")
    return what.split(": ", 1)[-1] if what.startswith("board ") else what, fix


def _facts(facts: BoardFacts, profile: Profile) -> list[Check]:
    major, minor = (int(x) for x in facts.python_xy.split("."))
    note = f" (the profile names {profile.python})" if profile.python != facts.python_xy else ""
    python = Check("python", (major, minor) >= (3, 8), f"{facts.python} at {facts.executable}"
                   + note, "" if (major, minor) >= (3, 8) else
                   "the agent needs Python 3.8+; install a newer python3 or set edgeship_python")
    machine = "aarch64" if facts.machine == "arm64" else facts.machine
    arch = Check("arch", machine == profile.arch, f"{facts.machine} ({facts.os})"
                 + ("" if machine == profile.arch else f", the profile is for {profile.arch}"),
                 "" if machine == profile.arch else
                 "give the board a profile for its CPU (edgeship_profile in the inventory)")
    floors = [(f, _GLIBC_FLOOR[f]) for f in {a.format for a in profile.artifacts}
              if f in _GLIBC_FLOOR]
    need = max((v for _, v in floors), default=(0, 0))
    have = tuple(int(x) for x in facts.glibc.split(".")[:2]) if facts.glibc else None
    ok = have is not None and have >= need
    glibc = Check("glibc", ok, f"{facts.glibc or 'none (musl?)'}"
                  + (f", runtime wheels need ≥ {need[0]}.{need[1]}" if floors else ""),
                  "" if ok else "use a glibc-based OS image new enough for the runtime wheels "
                  "(Debian 10+/Ubuntu 20.04+)")
    return [python, arch, glibc]


def _runtime_doc(ssh: Transport, board: Board) -> dict[str, Any]:
    venv = f"{board.root.rstrip('/')}/venv/bin/python"
    for python in (venv, board.python):
        res = ssh.run([python, "-c", _RUNTIME_PROBE], check=False, timeout=120)
        if res.status == 0:
            return {**json.loads(res.stdout), "venv": python == venv}
    return {"executable": None, "versions": {}, "providers": None, "venv": False}


def _runtime(doc: dict[str, Any], profile: Profile, board: Board) -> Check:
    have = doc["versions"]
    fix = f"`edgeship provision --device {board.name}` installs it offline (a deploy does too)"
    formats = {a.format for a in profile.artifacts}
    found, bad = [], []
    if "onnx" in formats:
        ort = have.get("onnxruntime") or have.get("onnxruntime-gpu")
        (found if ort else bad).append(f"onnxruntime {ort}" if ort else "no onnxruntime")
        if have.get("onnxruntime") and have["onnxruntime"] != _PINS["onnxruntime"] and doc["venv"]:
            bad.append(f"onnxruntime {have['onnxruntime']} ≠ {_PINS['onnxruntime']}")
    if "tflite" in formats:
        lite = [f"{d} {have[d]}" for d in ("ai-edge-litert", "tflite-runtime", "tensorflow")
                if d in have]
        (found if lite else bad).append(lite[0] if lite else "no TFLite runtime")
    where = (doc["executable"] if doc["venv"] else
             f"{doc['executable'] or 'the board python'} (no runtime venv yet)")
    if bad:
        return Check("runtime", False, f"{', '.join(bad)} in {where}", fix)
    return Check("runtime", True, f"{', '.join(found)} in {where}")


def _accelerator(doc: dict[str, Any], profile: Profile) -> Check:
    wanted = list(profile.runtime.onnx_providers)
    if not any(a.format == "onnx" for a in profile.artifacts):
        return _skip("accelerator", "the profile has no ONNX artifact")
    have = doc.get("providers")
    if have is None and "providers_error" not in doc:
        return _skip("accelerator", "not checked (no onnxruntime)")
    if have is None:
        return Check("accelerator", False, f"onnxruntime does not import "
                     f"({doc['providers_error']})", "reinstall the runtime: remove <root>/venv "
                     "on the board and run `edgeship provision`")
    missing = [p for p in wanted if p not in have]
    detail = f"wants {', '.join(wanted)}; available {', '.join(have)}"
    if not missing:
        return Check("accelerator", True, detail)
    fix = ("install the board's GPU build of onnxruntime (JetPack: NVIDIA's onnxruntime-gpu "
           "wheel) so TensorRT/CUDA are available" if any(p != "CPUExecutionProvider"
                                                          for p in missing)
           else "install onnxruntime on the board")
    return Check("accelerator", False, detail + f"; missing {', '.join(missing)}", fix)


def _free_space(facts: BoardFacts, doc: dict[str, Any], board: Board) -> Check:
    need = _MIN_FREE_MB if doc.get("venv") else _MIN_FREE_MB_INSTALL
    detail = f"{facts.free_mb} MB free under {board.root}"
    if facts.free_mb >= need:
        return Check("free space", True, detail)
    return Check("free space", False, detail + f", need about {need} MB",
                 "free space on the board or point edgeship_root at a bigger disk")


def as_json(board: Board, checks: list[Check], seconds: float) -> dict[str, Any]:
    """The ``--json`` document of one board's check."""
    return {"board": board.name, "host": board.host, "port": board.port,
            "profile": board.profile, "ok": not failed(checks), "seconds": round(seconds, 3),
            "checks": [asdict(c) for c in checks]}
