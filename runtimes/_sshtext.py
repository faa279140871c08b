"""Private helpers of the SSH transport: draining a channel, short human reasons for failures."""

from __future__ import annotations

import select
import socket
import time

import paramiko

__all__ = ["TRANSIENT", "drain", "reason", "short"]

TRANSIENT = (EOFError, OSError, paramiko.SSHException)
"""What a dropped or stalled connection raises inside paramiko (socket, EOF, protocol)."""


def drain(chan: paramiko.Channel, deadline: float | None) -> tuple[bytes | None, bytes]:
    """Read stdout/stderr until the command has exited AND its output has ended (EOF);
    ``(None, err)`` when *deadline* passes.

    sshd may send the exit status before the last of the output (it reaps the child before it
    has forwarded everything the child wrote): stopping at the exit status cut the last line of
    a `sha256sum` once in 7 suite runs, and a release failed its verification. A channel closed
    by a dropped connection also ends the loop (its exit status is then -1).
    """
    out, err = bytearray(), bytearray()
    while True:
        busy = False
        while chan.recv_ready():
            out += chan.recv(65536)
            busy = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            busy = True
        ended = chan.exit_status_ready() and (chan.eof_received or chan.closed)
        if ended and not chan.recv_ready() and not chan.recv_stderr_ready():
            return bytes(out), bytes(err)
        if deadline is not None and time.monotonic() > deadline:
            return None, bytes(err)
        if not busy:
            select.select([chan], [], [], 0.02)


def reason(exc: BaseException) -> str:
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
    if isinstance(exc, EOFError):
        return "the connection was closed by the other end"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return " ".join(str(exc).split()) or type(exc).__name__


def short(command: str, limit: int = 160) -> str:
    """*command* cut to *limit* characters for messages."""
    return command if len(command) <= limit else command[: limit - 1] + "…"
