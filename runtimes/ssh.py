"""The SSH transport: run commands on a board and move files to and from it.

Host keys are always verified: the project's ``known_hosts`` (plus, optionally, the user's own) is
loaded and an unknown or changed key is *refused* (``RejectPolicy``), never added silently.
Commands are argument lists; every argument is ``shlex.quote``-d, so a file name such as
``x; rm -rf ~`` reaches the board as one harmless word. Real boards honour ``~/.ssh/config``
(aliases, User, Port, IdentityFile, ProxyJump through ``direct-tcpip`` channels). A connection
that drops or stalls raises :class:`ConnectionLost`, after which the transport reconnects lazily.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import paramiko

from core.errors import CommandTimeout, ConnectionLost, RemoteCommandError, ShipError
from devices import Board

from ._sftpfiles import Progress, SFTPFiles
from ._sshtext import TRANSIENT, drain, reason, short
from .sshconfig import DEFAULT_SSH_CONFIG, Hop, resolve_hops
from .transport import RunResult

__all__ = ["Progress", "RunResult", "SSHTransport", "fingerprint"]

log = logging.getLogger(__name__)



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


class SSHTransport(SFTPFiles):
    """A lazily opened SSH + SFTP connection to one board.

    Args:
        board: where to connect (host or ``~/.ssh/config`` alias, port, user, key_file).
        known_hosts: the project's known_hosts file; unknown or changed host keys are refused.
        connect_timeout: seconds for TCP connect, SSH banner and authentication.
        command_timeout: default seconds a remote command may run (``None``: no limit).
        allow_agent / look_for_keys: also try ssh-agent / ``~/.ssh/id_*`` keys (tests say no).
        system_host_keys: also trust the user's ``~/.ssh/known_hosts``.
        compress: zlib compression on the wire (helps on slow links, costs CPU on fast ones).
        io_timeout: seconds an SFTP transfer may stall before the connection counts as lost.
        ssh_config: the OpenSSH client config to honour for real boards (``None``: none).
    """

    def __init__(self, board: Board, known_hosts: Path, *, connect_timeout: float = 10.0,
                 command_timeout: float | None = 600.0, allow_agent: bool = True,
                 look_for_keys: bool = True, system_host_keys: bool = True,
                 compress: bool = False, io_timeout: float = 60.0,
                 ssh_config: Path | str | None = DEFAULT_SSH_CONFIG) -> None:
        self.board = board
        self.known_hosts = Path(known_hosts)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.allow_agent = allow_agent
        self.look_for_keys = look_for_keys
        self.system_host_keys = system_host_keys
        self.compress = compress
        self.io_timeout = io_timeout
        self.ssh_config = ssh_config
        self._client: paramiko.SSHClient | None = None
        self._jumps: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection -------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """``board 'sim' (127.0.0.1:2222)`` — the prefix of every message about this board."""
        return f"board {self.board.name!r} ({self.board.host}:{self.board.port})"

    @property
    def user(self) -> str:
        """The login user (inventory, else ``~/.ssh/config``, else the local user)."""
        return resolve_hops(self.board, self.ssh_config)[-1].user

    def connect(self) -> paramiko.SSHClient:
        """Open the connection now (otherwise the first ``run``/``put``/``get`` does)."""
        if self._client is not None:
            live = self._client.get_transport()
            if live is not None and live.is_active():
                return self._client
            self.close()
        hops = resolve_hops(self.board, self.ssh_config)
        started = time.perf_counter()
        sock: paramiko.Channel | None = None
        try:
            for i, hop in enumerate(hops):
                client = self._open(hop, sock, jump=i < len(hops) - 1)
                if i == len(hops) - 1:
                    self._client = client
                    log.debug("%s: connected in %.3f s", self.where,
                              time.perf_counter() - started)
                    return client
                self._jumps.append(client)
                sock = self._tunnel(client, hops[i + 1])
        except BaseException:
            self.close()
            raise
        raise ShipError(f"{self.where}: no host to connect to")  # pragma: no cover - hops >= 1

    def _open(self, hop: Hop, sock: paramiko.Channel | None, *, jump: bool) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.system_host_keys:
            client.load_system_host_keys()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        policy = _RememberingReject()
        client.set_missing_host_key_policy(policy)
        try:
            client.connect(
                hop.host, port=hop.port, username=hop.user, sock=sock,
                key_filename=list(hop.key_files) or None, timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                allow_agent=self.allow_agent, look_for_keys=self.look_for_keys,
                compress=self.compress,
            )
        except Exception as exc:
            client.close()
            raise self._connect_error(exc, policy.refused, hop, jump) from exc
        return client

    def _tunnel(self, jump: paramiko.SSHClient, hop: Hop) -> paramiko.Channel:
        """A ``direct-tcpip`` channel through *jump* to the next hop (its ``sock``)."""
        transport = jump.get_transport()
        if transport is None:
            raise ConnectionLost(f"{self.where}: the jump host connection closed; retry")
        try:
            return transport.open_channel("direct-tcpip", (hop.host, hop.port), ("127.0.0.1", 0),
                                          timeout=self.connect_timeout)
        except TRANSIENT as exc:
            raise ShipError(f"{self.where}: the jump host could not reach {hop.host}:{hop.port} "
                            f"({reason(exc)}); check ProxyJump/HostName in ~/.ssh/config and that "
                            "the board is up") from exc

    def _connect_error(self, exc: Exception, refused: paramiko.PKey | None, hop: Hop,
                       jump: bool) -> ShipError:
        """Turn a paramiko/socket failure into one actionable line."""
        where = f"{self.where} via jump host {hop}" if jump else self.where
        pattern = hop.host if hop.port == 22 else f"[{hop.host}]:{hop.port}"
        if isinstance(exc, paramiko.BadHostKeyException):
            return ShipError(
                f"{where} presented host key {fingerprint(exc.key)} but {self.known_hosts} "
                f"pins {fingerprint(exc.expected_key)}: the board was reinstalled or this is not "
                f"the board; nothing was sent. If you trust the new key, remove the old line "
                f"(ssh-keygen -R '{pattern}' -f {self.known_hosts}) and run "
                f"`edgeship boards trust {self.board.name}`")
        if refused is not None:
            return ShipError(
                f"{where} host key {refused.get_name()} {fingerprint(refused)} is not in "
                f"{self.known_hosts}; nothing was sent. Check the fingerprint on the board "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and, if it matches, trust it: "
                f"`edgeship boards trust {self.board.name}` (or ssh-keyscan -p {hop.port} "
                f"{hop.host} >> {self.known_hosts})")
        if "saw EOF" in str(exc):  # paramiko: "Authentication failed: transport shut down or saw EOF"
            return ConnectionLost(f"{where}: connection lost during authentication; retry")
        if isinstance(exc, paramiko.AuthenticationException) or "authentication" in str(exc).lower():
            key = ", ".join(hop.key_files) or "ssh-agent / ~/.ssh keys"
            return ShipError(
                f"{where}: authentication failed for user {hop.user!r} "
                f"with {key}; install the public key in the board's ~/.ssh/authorized_keys "
                f"(ssh-copy-id) or set ansible_ssh_private_key_file in the inventory")
        text = f"{where} unreachable: {reason(exc)}; {self._is_it_up()}"
        hard = (ConnectionRefusedError, socket.gaierror, paramiko.ssh_exception.NoValidConnectionsError)
        return ShipError(text) if isinstance(exc, hard) else ConnectionLost(text)

    def _is_it_up(self) -> str:
        if self.board.simulated:
            return f"is it up? try `edgeship board up {self.board.name}` / check the inventory"
        return ("is it up? check that it is powered and on the network, and its host/port in "
                "the inventory")

    def _lost(self, step: str, exc: BaseException) -> ConnectionLost:
        """Close everything (the next call reconnects) and describe the drop."""
        self.close()
        return ConnectionLost(f"{self.where}: connection lost while {step} ({reason(exc)}); "
                              "check the link to the board and retry")

    def _dropped(self, exc: BaseException) -> bool:
        """Whether *exc* means the connection is gone (not an SFTP status from the board)."""
        if isinstance(exc, (EOFError, paramiko.SSHException, socket.timeout, ConnectionError)):
            return True
        if type(exc) is OSError and exc.errno is None and str(exc) == "Failure":
            return not self._alive()  # the board's own "Failure" status, unless the link died
        time.sleep(0.05)  # let paramiko's reader thread notice a closed socket
        return not self._alive()

    def _alive(self) -> bool:
        transport = None if self._client is None else self._client.get_transport()
        return transport is not None and transport.is_active()

    def sftp(self) -> paramiko.SFTPClient:
        """The SFTP session (opened on first use; a stalled transfer times out)."""
        if self._sftp is None or not self._alive():
            client = self.connect()
            try:
                self._sftp = client.open_sftp()
            except TRANSIENT as exc:
                raise self._lost("opening SFTP", exc) from exc
            self._sftp.get_channel().settimeout(self.io_timeout)
        return self._sftp

    def close(self) -> None:
        """Close SFTP, SSH and any jump hosts; safe to call twice."""
        sftp, client, jumps = self._sftp, self._client, self._jumps
        self._sftp = self._client = None
        self._jumps = []
        for closable in (sftp, client, *reversed(jumps)):
            if closable is not None:
                try:
                    closable.close()
                except TRANSIENT:  # already dead: nothing left to close
                    log.debug("%s: close after a drop", self.where)

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
            ConnectionLost: the connection dropped before the command's exit status arrived.
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
        step = f"running `{short(command, 60)}`"
        if transport is None or not transport.is_active():
            raise self._lost(step, EOFError())
        try:
            chan = transport.open_session(timeout=self.connect_timeout)
        except TRANSIENT as exc:
            raise self._lost(step, exc) from exc
        try:
            chan.exec_command(command)
            if input:
                chan.sendall(input)
            chan.shutdown_write()
            out, err = drain(chan, None if limit is None else time.monotonic() + limit)
            status = chan.recv_exit_status() if out is not None else -1
        except TRANSIENT as exc:
            raise self._lost(step, exc) from exc
        finally:
            chan.close()
        if out is None:
            raise CommandTimeout(f"{self.where}: `{short(command)}` did not finish within "
                                 f"{limit:g} s; the board may be overloaded or the command hung")
        if status == -1 and not transport.is_active():
            raise self._lost(step, EOFError())
        result = RunResult(status, out.decode(errors="replace"), err.decode(errors="replace"))
        log.debug("%s: `%s` → %d", self.where, short(command), status)
        if check and status != 0:
            raise RemoteCommandError(self.board.name, short(command), status,
                                     result.stdout, result.stderr)
        return result
