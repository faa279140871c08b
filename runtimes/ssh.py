"""The SSH transport: run commands on a board and move files to and from it.

Host keys are always verified: the project's ``known_hosts`` (plus, optionally, the user's own) is
loaded and an unknown or changed key is *refused* (``RejectPolicy``), never added silently.
Commands are argument lists; every argument is ``shlex.quote``-d, so a file name such as
``x; rm -rf ~`` reaches the board as one harmless word.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import select
import shlex
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import paramiko

from devices import Board
from edgeship.errors import RemoteCommandError, ShipError

__all__ = ["CommandTimeout", "Progress", "RunResult", "SSHTransport", "fingerprint"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` — paramiko's SFTP callback signature."""


class CommandTimeout(ShipError, TimeoutError):
    """A command on the board did not finish in time (also a built-in ``TimeoutError``)."""


@dataclass(frozen=True)
class RunResult:
    """What a finished remote command returned."""

    status: int
    stdout: str
    stderr: str


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:…`` fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _RememberingReject(paramiko.RejectPolicy):
    """``RejectPolicy`` that remembers the refused key so the error can name its fingerprint."""

    def __init__(self) -> None:
        self.refused: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> NoReturn:
        self.refused = key
        super().missing_host_key(client, hostname, key)


class SSHTransport:
    """A lazily opened SSH + SFTP connection to one board.

    Args:
        board: where to connect (host, port, user, key_file).
        known_hosts: the project's known_hosts file; unknown or changed host keys are refused.
        connect_timeout: seconds for TCP connect, SSH banner and authentication.
        command_timeout: default seconds a remote command may run (``None``: no limit).
        allow_agent / look_for_keys: also try ssh-agent / ``~/.ssh/id_*`` keys (tests say no).
        system_host_keys: also trust the user's ``~/.ssh/known_hosts``.
    """

    def __init__(self, board: Board, known_hosts: Path, *, connect_timeout: float = 10.0,
                 command_timeout: float | None = 600.0, allow_agent: bool = True,
                 look_for_keys: bool = True, system_host_keys: bool = True) -> None:
        self.board = board
        self.known_hosts = Path(known_hosts)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.allow_agent = allow_agent
        self.look_for_keys = look_for_keys
        self.system_host_keys = system_host_keys
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection -------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """``board 'sim' (127.0.0.1:2222)`` — the prefix of every message about this board."""
        return f"board {self.board.name!r} ({self.board.host}:{self.board.port})"

    @property
    def user(self) -> str:
        """The login user: the board's, else the local user (as ``ssh`` does)."""
        return self.board.user or getpass.getuser()

    def connect(self) -> paramiko.SSHClient:
        """Open the connection now (otherwise the first ``run``/``put``/``get`` does)."""
        if self._client is not None:
            return self._client
        client = paramiko.SSHClient()
        if self.system_host_keys:
            client.load_system_host_keys()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        policy = _RememberingReject()
        client.set_missing_host_key_policy(policy)
        started = time.perf_counter()
        try:
            client.connect(
                self.board.host, port=self.board.port, username=self.user,
                key_filename=self.board.key_file, timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                allow_agent=self.allow_agent, look_for_keys=self.look_for_keys,
            )
        except Exception as exc:
            client.close()
            raise self._connect_error(exc, policy.refused) from exc
        log.debug("%s: connected in %.3f s", self.where, time.perf_counter() - started)
        self._client = client
        return client

    def _connect_error(self, exc: Exception, refused: paramiko.PKey | None) -> ShipError:
        """Turn a paramiko/socket failure into one actionable line."""
        if isinstance(exc, paramiko.BadHostKeyException):
            return ShipError(
                f"{self.where} presented host key {fingerprint(exc.key)} but {self.known_hosts} "
                f"pins {fingerprint(exc.expected_key)}: the board was reinstalled or this is not "
                f"the board; if you trust the new key, remove the old line "
                f"(ssh-keygen -R '[{self.board.host}]:{self.board.port}' -f {self.known_hosts}) "
                f"and pin the new one")
        if refused is not None:
            return ShipError(
                f"{self.where} host key {refused.get_name()} {fingerprint(refused)} is not in "
                f"{self.known_hosts}; nothing was sent. Check the fingerprint on the board "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and, if it matches, trust it: "
                f"ssh-keyscan -p {self.board.port} {self.board.host} >> {self.known_hosts}")
        auth = isinstance(exc, paramiko.AuthenticationException)
        if auth or "authentication" in str(exc).lower():
            key = self.board.key_file or "ssh-agent / ~/.ssh keys"
            return ShipError(
                f"{self.where}: authentication failed for user {self.user!r} "
                f"with {key}; install the public key in the board's ~/.ssh/authorized_keys "
                f"(ssh-copy-id) or set ansible_ssh_private_key_file in the inventory")
        return ShipError(f"{self.where} unreachable: {_reason(exc)}; {self._is_it_up()}")

    def _is_it_up(self) -> str:
        if self.board.simulated:
            return f"is it up? try `edgeship board up {self.board.name}` / check the inventory"
        return ("is it up? check that it is powered and on the network, and its host/port in "
                "the inventory")

    def sftp(self) -> paramiko.SFTPClient:
        """The SFTP session (opened on first use)."""
        if self._sftp is None:
            self._sftp = self.connect().open_sftp()
        return self._sftp

    def close(self) -> None:
        """Close SFTP and SSH; safe to call twice."""
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        if sftp is not None:
            sftp.close()
        if client is not None:
            client.close()

    def __enter__(self) -> SSHTransport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: float | None = None, check: bool = True,
            input: bytes | None = None) -> RunResult:
        """Run *argv* on the board (each argument quoted) and wait for it.

        Raises:
            RemoteCommandError: the command exited non-zero and *check* is true.
            CommandTimeout: it ran longer than *timeout* (default: ``command_timeout``).
        """
        if isinstance(argv, (str, bytes)):
            raise TypeError("run() takes a list of arguments, not a shell string; "
                            "use run_script() for a fixed internal script")
        command = " ".join(shlex.quote(str(a)) for a in argv)
        return self._exec(command, timeout=timeout, check=check, input=input)

    def run_script(self, script: str, *args: str, timeout: float | None = None,
                   check: bool = True) -> RunResult:
        """Run a *fixed* internal ``sh`` script; *args* reach it quoted, as ``$1``, ``$2``…"""
        return self.run(["sh", "-c", script, "sh", *args], timeout=timeout, check=check)

    def _exec(self, command: str, *, timeout: float | None, check: bool,
              input: bytes | None) -> RunResult:
        limit = self.command_timeout if timeout is None else timeout
        transport = self.connect().get_transport()
        if transport is None or not transport.is_active():
            raise ShipError(f"{self.where}: the SSH connection dropped; {self._is_it_up()}")
        chan = transport.open_session(timeout=self.connect_timeout)
        try:
            chan.exec_command(command)
            if input:
                chan.sendall(input)
            chan.shutdown_write()
            out, err = _drain(chan, None if limit is None else time.monotonic() + limit)
            if out is None:
                raise CommandTimeout(f"{self.where}: `{_short(command)}` did not finish within "
                                     f"{limit:g} s; the board may be overloaded or the command "
                                     "hung")
            status = chan.recv_exit_status()
        finally:
            chan.close()
        result = RunResult(status, out.decode(errors="replace"), err.decode(errors="replace"))
        log.debug("%s: `%s` → %d", self.where, _short(command), status)
        if check and status != 0:
            raise RemoteCommandError(self.board.name, _short(command), status,
                                     result.stdout, result.stderr)
        return result

    # -- files --------------------------------------------------------------------------------
    def put(self, local: Path | str, remote: str, *, progress: Progress | None = None) -> int:
        """Upload *local* to *remote* over SFTP; returns the bytes sent."""
        try:
            attrs = self.sftp().put(str(local), remote, callback=progress, confirm=True)
        except OSError as exc:
            raise ShipError(f"{self.where}: upload of {local} to {remote} failed: {_reason(exc)}; "
                            f"check free space and permissions under the board's root") from exc
        return int(attrs.st_size or 0)

    def put_bytes(self, data: bytes, remote: str) -> None:
        """Write *data* to the file *remote* (small files: lock notes, markers)."""
        try:
            with self.sftp().open(remote, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise ShipError(f"{self.where}: cannot write {remote}: {_reason(exc)}") from exc

    def get(self, remote: str, local: Path | str) -> None:
        """Download *remote* to *local* over SFTP."""
        try:
            self.sftp().get(remote, str(local))
        except OSError as exc:
            raise ShipError(f"{self.where}: download of {remote} failed: {_reason(exc)}") from exc


def _drain(chan: paramiko.Channel, deadline: float | None) -> tuple[bytes | None, bytes]:
    """Read stdout/stderr until the command exits; ``(None, err)`` when *deadline* passes."""
    out, err = bytearray(), bytearray()
    while True:
        busy = False
        while chan.recv_ready():
            out += chan.recv(65536)
            busy = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            busy = True
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            return bytes(out), bytes(err)
        if deadline is not None and time.monotonic() > deadline:
            return None, bytes(err)
        if not busy:
            select.select([chan], [], [], 0.02)


def _reason(exc: BaseException) -> str:
    """A short human reason for a socket-level failure."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        errors = list(exc.errors.values())
        exc = errors[0] if errors else exc
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "connection timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or type(exc).__name__


def _short(command: str, limit: int = 160) -> str:
    return command if len(command) <= limit else command[: limit - 1] + "…"
