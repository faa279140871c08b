"""The command-output reader: all of the output, even when the exit status comes first."""

from __future__ import annotations

import socket

from runtimes._sshtext import drain


class _LateOutputChannel:
    """A channel whose exit status arrives before its last output line and its EOF — as sshd
    sends them when it reaps the command before forwarding all it wrote."""

    def __init__(self) -> None:
        self._sock, self._peer = socket.socketpair()
        self._first, self._last = b"aaa  manifest.json\n", b"bbb  samples.npz\n"
        self._polls = 0  # the last line arrives after the exit status was seen 3 times
        self.eof_received = False
        self.closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_ready(self) -> bool:
        return bool(self._first) or (bool(self._last) and self._polls >= 3)

    def recv(self, _n: int) -> bytes:
        if self._first:
            data, self._first = self._first, b""
        else:
            data, self._last, self.eof_received = self._last, b"", True
        return data

    def recv_stderr_ready(self) -> bool:
        return False

    def exit_status_ready(self) -> bool:
        self._polls += 1
        return True


def test_output_after_the_exit_status_is_not_lost() -> None:
    out, err = drain(_LateOutputChannel(), deadline=None)  # type: ignore[arg-type]
    assert out == b"aaa  manifest.json\nbbb  samples.npz\n" and err == b""
