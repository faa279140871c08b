"""A TCP relay on loopback that cuts connections after a seeded random number of bytes.

For fault injection: put it between paramiko and a board's sshd, and the connection drops at a
reproducible point of the handshake, a command or an upload — as a flaky Wi-Fi link would.
The first ``cuts`` connections are cut (each after ``rng.randint(*cut_range)`` bytes, counted
in both directions); later connections pass through untouched.

    with CuttingRelay(("127.0.0.1", sshd_port), seed=7, cuts=2, cut_range=(0, 2_000_000)) as relay:
        ... connect to 127.0.0.1:relay.port ...
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import threading
from types import TracebackType

__all__ = ["CuttingRelay"]

log = logging.getLogger(__name__)

_BUF = 65536


class CuttingRelay:
    """Relay ``127.0.0.1:<port>`` → *target*, cutting the first *cuts* connections.

    Attributes:
        cut_points: the byte counts chosen for the cut connections, in order.
        cut_done: how many connections were actually cut (a connection may end first).
    """

    def __init__(self, target: tuple[str, int], *, seed: int, cuts: int = 1,
                 cut_range: tuple[int, int] = (0, 1 << 20)) -> None:
        self.target = target
        self.cuts = cuts
        self.cut_range = cut_range
        self.cut_points: list[int] = []
        self.cut_done = 0
        self._rng = random.Random(seed)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The loopback port to connect to."""
        return int(self._listener.getsockname()[1])

    def start(self) -> CuttingRelay:
        """Accept connections in a background thread."""
        thread = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop accepting and end every relayed connection; safe twice."""
        self._closing.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> CuttingRelay:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            limit = None
            with self._lock:
                if len(self.cut_points) < self.cuts:
                    limit = self._rng.randint(*self.cut_range)
                    self.cut_points.append(limit)
            thread = threading.Thread(target=self._pump, args=(client, limit), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, client: socket.socket, limit: int | None) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with selectors.DefaultSelector() as sel, client, upstream:
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            try:
                self._loop(sel, limit, client, upstream)
            except OSError:
                log.debug("relay: a side closed the connection")

    def _loop(self, sel: selectors.BaseSelector, limit: int | None, client: socket.socket,
              upstream: socket.socket) -> None:
        moved = 0
        while not self._closing.is_set():
            for key, _ in sel.select(timeout=0.1):
                data = key.fileobj.recv(_BUF)  # type: ignore[union-attr]
                if not data:
                    return
                if limit is not None and moved + len(data) >= limit:
                    key.data.sendall(data[: max(0, limit - moved)])
                    self._cut(client, upstream)
                    return
                moved += len(data)
                key.data.sendall(data)

    def _cut(self, *socks: socket.socket) -> None:
        with self._lock:
            self.cut_done += 1
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the other end

