"""The built-in simulated board: a private OpenSSH ``sshd`` on a loopback port.

State lives in ``paths.sim / <name>/``: its host key, a client key pair, ``authorized_keys``,
``sshd_config``, pid and log files, and ``board/`` — the board's own root directory (releases,
venv, wheelhouse), separate from the host's ``.edgeship``. ``up()`` pins the host key into the
project's ``known_hosts``, so the transport verifies it like any real board's.
"""

from __future__ import annotations

import getpass
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ShipError
from core.paths import Paths
from devices import Board

from .._remote import pid_alive

__all__ = ["SSHD", "SYSTEM_PYTHON", "SimBoard", "SimStatus", "resolve_board"]

log = logging.getLogger(__name__)

SSHD = Path("/usr/sbin/sshd")
SYSTEM_PYTHON = "/usr/bin/python3"  # the simulated board's "system" Python (Debian's)
_HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SimStatus:
    """Whether a simulated board is running, and where."""

    name: str
    running: bool
    port: int | None
    pid: int | None
    state_dir: Path


class SimBoard:
    """One simulated board called *name*, kept under ``paths.sim / name``.

    By default its sshd listens on a free loopback port. *address*, *port* and *launcher* put it
    elsewhere, e.g. port 22 of its own network namespace (``runtimes.sim.netns``):
    ``launcher=["ip", "netns", "exec", ns]``. The address it last started on is kept in its state,
    so ``SimBoard(paths, name)`` finds a running board wherever it runs.
    """

    def __init__(self, paths: Paths, name: str = "sim", *, profile: str = "sim",
                 address: str | None = None, port: int | None = None,
                 launcher: Sequence[str] = ()) -> None:
        self.paths = paths
        self.name = name
        self.profile = profile
        self.dir = paths.sim / name
        self._address, self._fixed_port, self._launcher = address, port, tuple(launcher)

    @property
    def address(self) -> str:
        """Where the sshd listens: as given, else where it last started, else the loopback."""
        if self._address:
            return self._address
        try:
            return (self.dir / "address").read_text().strip() or _HOST
        except OSError:
            return _HOST

    # -- file layout ----------------------------------------------------------------------------
    @property
    def host_key(self) -> Path:
        """The board's ed25519 host key (private; ``.pub`` beside it)."""
        return self.dir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        """The key the host logs in with."""
        return self.dir / "id_ed25519"

    @property
    def root(self) -> Path:
        """The board's own edgeship root (absolute)."""
        return self.dir / "board"

    @property
    def log_file(self) -> Path:
        """sshd's log (read it when a connection is refused for no visible reason)."""
        return self.dir / "sshd.log"

    # -- lifecycle ------------------------------------------------------------------------------
    def up(self) -> Board:
        """Start the board if it is not running (idempotent) and return it as a :class:`Board`."""
        state = self.status()
        if not state.running:
            started = time.perf_counter()
            self._prepare()
            port = self._start()
            log.info("simulated board %r up on %s:%d in %.2f s", self.name, self.address, port,
                     time.perf_counter() - started)
        self._pin_host_key(self._port())
        return self.board()

    def down(self) -> bool:
        """Stop the board's sshd; returns whether it was running. Keeps its state on disk."""
        state = self.status()
        if not state.running or state.pid is None:
            return False
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        (self.dir / "sshd.pid").unlink(missing_ok=True)
        return True

    def status(self) -> SimStatus:
        """Running means: the pid file names a live sshd *and* it listens on its port.

        Observed locally through ``/proc`` (never by connecting): a board whose link is shaped
        to drop packets is still running, and its status must not depend on the link.
        """
        pid = _read_int(self.dir / "sshd.pid")
        port = _read_int(self.dir / "port")
        running = (pid is not None and port is not None and _alive(pid)
                   and _listening(pid, port, self.address))
        return SimStatus(self.name, running, port, pid if running else None, self.dir)

    def board(self) -> Board:
        """The running board as a :class:`Board` (python = its venv once provisioned)."""
        venv_python = self.root / "venv" / "bin" / "python"
        return Board(
            name=self.name, host=self.address, port=self._port(), user=getpass.getuser(),
            key_file=str(self.client_key), profile=self.profile, root=str(self.root),
            python=str(venv_python) if venv_python.exists() else SYSTEM_PYTHON, simulated=True,
        )

    # -- internals --------------------------------------------------------------------------
    def _port(self) -> int:
        port = _read_int(self.dir / "port")
        if port is None:
            raise ShipError(f"simulated board {self.name!r} is not running; start it with "
                            f"`edgeship board up {self.name}`")
        return port

    def _prepare(self) -> None:
        """Keys, authorized_keys and the board root; kept across restarts."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"edgeship-{self.name}",
                      "-f", str(key)])
        authorized = self.dir / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)

    def _config(self, port: int) -> Path:
        config = self.dir / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {self.address}", f"Port {port}", f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "StrictModes no",
            "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "MaxStartups 30:50:100",
            "MaxSessions 30",
            # Like a fresh board: no developer dotfiles. With SHLVL set, bash does not source
            # ~/.bashrc for ssh commands (which here would add pyenv and ~0.1 s per command).
            "SetEnv SHLVL=1", "",
        ]))
        return config

    def _start(self) -> int:
        """Start sshd on a free port (the previous one when free) and wait for it to answer.

        A port found free can be taken by another process before sshd binds it (parallel test
        runs start boards at once): then sshd starts again on another free port.
        """
        if not SSHD.exists():
            raise ShipError(f"{SSHD} is missing, so the simulated board cannot start; "
                            "install it with `apt-get install openssh-server` (or `make setup`)")
        previous = _read_int(self.dir / "port")
        port = self._fixed_port or (previous if previous is not None and _port_free(previous)
                                    else _free_port())
        for attempt in range(1, 4):
            error = self._launch(port)
            if error is None:
                return port
            if self._fixed_port or attempt == 3 or "already in use" not in error:
                raise ShipError(f"simulated board {self.name!r}: sshd refused to start "
                                f"({error[-300:]})")
            log.debug("port %d was taken before sshd bound it; trying another", port)
            port = _free_port()
        raise AssertionError("unreachable")

    def _launch(self, port: int) -> str | None:
        """Start sshd (it daemonizes) on *port* and wait until it listens; its error, else None."""
        (self.dir / "port").write_text(f"{port}\n")
        (self.dir / "address").write_text(f"{self._address or _HOST}\n")
        self.log_file.unlink(missing_ok=True)
        (self.dir / "sshd.pid").unlink(missing_ok=True)
        argv = [*self._launcher, str(SSHD), "-f", str(self._config(port)), "-E", str(self.log_file)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return (proc.stderr or self._log_tail()).strip()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not ((pid := _read_int(self.dir / "sshd.pid"))
                   and _listening(pid, port, self.address)):
            if "Cannot bind any address" in (tail := self._log_tail()):
                return tail
            if time.monotonic() > deadline:
                raise ShipError(f"simulated board {self.name!r}: sshd did not answer on "
                                f"{self.address}:{port} within {_START_TIMEOUT_S:g} s; sshd log: "
                                f"{tail}")
            time.sleep(0.01)
        return None

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    def _pin_host_key(self, port: int) -> None:
        """Write ``[127.0.0.1]:PORT ssh-ed25519 …`` into known_hosts, replacing stale entries."""
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        pattern = self.address if port == 22 else f"[{self.address}]:{port}"
        known = self.paths.known_hosts
        lines = known.read_text().splitlines() if known.exists() else []
        kept = [ln for ln in lines if ln.split(" ", 1)[0] != pattern]
        kept.append(f"{pattern} {kind} {blob}")
        known.parent.mkdir(parents=True, exist_ok=True)
        known.write_text("\n".join(kept) + "\n")


def resolve_board(board: Board, paths: Paths) -> Board:
    """Fill a simulated board's host/port/user/key/root/python from its running sshd.

    Real boards are returned unchanged.
    """
    if not board.simulated:
        return board
    sim = SimBoard(paths, board.name, profile=board.profile)
    if not sim.status().running:
        raise ShipError(f"simulated board {board.name!r} is not running; start it with "
                        f"`edgeship board up {board.name}`")
    live = sim.board()
    return board.model_copy(update={f: getattr(live, f) for f in
                                    ("host", "port", "user", "key_file", "root", "python")})


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ShipError(f"`{' '.join(argv[:2])}` failed: {proc.stderr.strip()[-300:]}")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if not pid_alive(pid):
        return False
    try:  # a zombie is not alive, and a recycled pid is not our sshd
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.split(") ")[-1][:1] != "Z" and b"sshd" in cmdline


def _listening(pid: int, port: int, host: str) -> bool:
    """Whether process *pid* holds a listening TCP socket on *port*, read from ``/proc``.

    ``/proc/<pid>/net/tcp`` is the table of the process's own network namespace, so this works
    for an sshd inside a namespace without touching its (possibly lossy) link. Falls back to a
    connect probe only when ``/proc`` may not be read (another user's process).
    """
    try:
        inodes = _socket_inodes(pid)
        tables = [Path(f"/proc/{pid}/net/{t}").read_text() for t in ("tcp", "tcp6")]
    except PermissionError:
        return _port_open(port, host, timeout=3.0)
    except OSError:  # the process is gone
        return False
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if (len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes
                    and int(fields[1].rsplit(":", 1)[1], 16) == port):
                return True
    return False


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of *pid*'s open sockets (``socket:[123]`` links under ``/proc/<pid>/fd``)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _port_open(port: int, host: str = _HOST, timeout: float = 0.2) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as sshd binds
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])
