"""edgeship's transport interface over an Ansible connection (used by ``ansible/action_plugins``).

``runtimes.ship``, ``runtimes.provision`` and ``profiler.health`` talk to a board through a
small surface — ``run``, ``run_script``, ``put`` (resumable), ``put_bytes``, ``read_bytes``,
``listdir_attr``, ``get``, ``sftp().listdir_attr/posix_rename``, ``board``, ``where``,
``close``. :class:`AnsibleTransport` implements that surface on the connection Ansible opened
for the host (OpenSSH with its ControlPersist, ``ansible_ssh_common_args``, jump hosts…), so the
release logic — lock, resume, on-board sha256, atomic ``current``, keep N — is the project's
own code, not a second copy in YAML.

A dropped connection (``AnsibleConnectionFailure``) becomes :class:`core.errors.ConnectionLost`,
so ``ship_bundle`` reconnects and resumes exactly as over paramiko.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RemoteCommandError, ShipError
from devices import Board
from runtimes.transport import RunResult

__all__ = ["AnsibleTransport", "board_from_vars", "failure"]

_LIST = ('cd "$1" 2>/dev/null || exit 3; for f in * .[!.]*; do [ -e "$f" ] || [ -L "$f" ] '
         '|| continue; printf "%s\\t%s\\n" "$(stat -c %s -- "$f")" "$f"; done')
_APPEND = 'head -c "$2" -- "$1" > "$1.tmp" && cat -- "$3" >> "$1.tmp" && mv -f -- "$1.tmp" "$1"' \
          ' && rm -f -- "$3"'


@dataclass(frozen=True)
class Entry:
    """The two ``SFTPAttributes`` fields the runtimes use."""

    filename: str
    st_size: int


class _SftpShim:
    """``transport.sftp().listdir_attr / posix_rename`` for ``runtimes.provision``."""

    def __init__(self, transport: AnsibleTransport) -> None:
        self._t = transport

    def listdir_attr(self, remote: str) -> list[Entry]:
        return self._t.listdir_attr(remote)

    def posix_rename(self, old: str, new: str) -> None:
        self._t.run(["mv", "-f", "--", old, new])


class AnsibleTransport:
    """A :class:`runtimes.transport.Transport` over an Ansible connection plugin instance."""

    def __init__(self, connection: Any, board: Board, *,
                 command_timeout: float | None = 600.0) -> None:
        self._conn = connection
        self.board = board
        self.command_timeout = command_timeout

    @property
    def where(self) -> str:
        return f"board {self.board.name!r} ({self.board.host}:{self.board.port})"

    def __enter__(self) -> AnsibleTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection (Ansible reopens it on the next command); safe twice."""
        self._conn.close()

    def sftp(self) -> _SftpShim:
        return _SftpShim(self)

    # -- commands -----------------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: float | None = None, check: bool = True,
            input: bytes | None = None) -> RunResult:
        """Run *argv* on the board; a time limit is enforced there by coreutils ``timeout``."""
        if isinstance(argv, (str, bytes)):
            raise TypeError("run() takes a list of arguments, not a shell string")
        status, out, err = self._exec(argv, timeout=timeout, input=input)
        result = RunResult(status, out.decode(errors="replace"), err.decode(errors="replace"))
        command = " ".join(shlex.quote(str(a)) for a in argv)
        if check and status != 0:
            raise RemoteCommandError(self.board.name, command[:120], status, result.stdout,
                                     result.stderr)
        return result

    def run_script(self, script: str, *args: str, timeout: float | None = None,
                   check: bool = True) -> RunResult:
        return self.run(["sh", "-c", script, "sh", *args], timeout=timeout, check=check)

    def _exec(self, argv: Sequence[str], *, timeout: float | None,
              input: bytes | None) -> tuple[int, bytes, bytes]:
        from ansible.errors import AnsibleConnectionFailure

        from core.errors import CommandTimeout, ConnectionLost

        limit = self.command_timeout if timeout is None else timeout
        full = [*(["timeout", "-k", "5", f"{limit:g}"] if limit else []), *map(str, argv)]
        command = "/bin/sh -c " + shlex.quote(" ".join(shlex.quote(a) for a in full))
        try:
            status, out, err = self._conn.exec_command(command, in_data=input, sudoable=False)
        except AnsibleConnectionFailure as exc:
            text = " ".join(str(exc).split())[:300]
            if "failed to connect" in text.lower():  # never got in: say so, retry still applies
                raise ConnectionLost(f"{self.where} unreachable: {text}; is it up, and is its "
                                     "host key pinned (edgeship boards trust NAME)?") from exc
            raise ConnectionLost(f"{self.where}: connection lost while running "
                                 f"`{' '.join(map(str, argv))[:60]}`: {text}") from exc
        if limit and status in (124, 137):
            raise CommandTimeout(f"{self.where}: `{' '.join(map(str, argv))[:80]}` did not "
                                 f"finish within {limit:g} s; the board may be overloaded")
        return status, out, err

    # -- files --------------------------------------------------------------------------------
    def put(self, local: Path | str, remote: str, *,
            progress: Callable[[int, int], None] | None = None, offset: int = 0) -> int:
        """Upload *local*; with *offset* only the tail is sent and appended on the board."""
        size = Path(local).stat().st_size
        if not 0 <= offset <= size:
            raise ValueError(f"offset {offset} outside 0..{size}")
        if offset == 0:
            self._put_file(Path(local), remote)
        else:
            with tempfile.NamedTemporaryFile(prefix="edgeship-tail-") as tail:
                with open(local, "rb") as src:
                    src.seek(offset)
                    tail.write(src.read())
                tail.flush()
                self._put_file(Path(tail.name), f"{remote}.tail")
            self.run_script(_APPEND, remote, str(offset), f"{remote}.tail")
        if progress is not None:
            progress(size, size)
        return size - offset

    def _put_file(self, local: Path, remote: str) -> None:
        from ansible.errors import AnsibleError

        from core.errors import ConnectionLost

        try:
            self._conn.put_file(str(local), remote)
        except AnsibleError as exc:
            text = " ".join(str(exc).split())[:200]
            if "unreachable" in text.lower() or "connection" in text.lower():
                raise ConnectionLost(f"{self.where}: connection lost uploading {local.name}: "
                                     f"{text}") from exc
            raise ShipError(f"{self.where}: upload of {local.name} to {remote} failed: {text}; "
                            "the board's disk may be full or the directory read-only") from exc

    def put_bytes(self, data: bytes, remote: str) -> None:
        self.run(["sh", "-c", 'cat > "$1"', "sh", remote], input=data)

    def read_bytes(self, remote: str) -> bytes | None:
        status, out, err = self._exec(["sh", "-c", '[ -f "$1" ] || exit 3; cat -- "$1"', "sh",
                                       remote], timeout=None, input=None)
        if status == 3:
            return None
        if status != 0:
            raise ShipError(f"{self.where}: cannot read {remote}: {err.decode(errors='replace')}")
        return out

    def listdir_attr(self, remote: str) -> list[Entry]:
        res = self.run_script(_LIST, remote, check=False)
        if res.status != 0:
            raise ShipError(f"{self.where}: cannot list {remote}; check the board root and its "
                            "permissions")
        rows = (line.split("\t", 1) for line in res.stdout.splitlines() if "\t" in line)
        return [Entry(name, int(size)) for size, name in rows if size.isdigit()]

    def get(self, remote: str, local: Path | str) -> None:
        self._conn.fetch_file(remote, str(local))


def board_from_vars(task_vars: dict[str, Any]) -> Board:
    """The :class:`Board` an Ansible host stands for (its connection and ``edgeship_*`` vars)."""
    def get(name: str, default: Any = None) -> Any:
        value = task_vars.get(name)
        return default if value in (None, "") else value

    return Board(name=str(task_vars["inventory_hostname"]),
                 host=str(get("ansible_host", task_vars["inventory_hostname"])),
                 port=int(get("ansible_port", 22)), user=get("ansible_user"),
                 key_file=get("ansible_ssh_private_key_file"),
                 profile=str(get("edgeship_profile", "")) or "?",
                 root=str(get("edgeship_root", ".edgeship")),
                 python=str(get("edgeship_python", "python3")))


def failure(exc: BaseException) -> dict[str, Any]:
    """An action result saying *exc* failed the task, in one line (what to do next included)."""
    return {"failed": True, "msg": " ".join(str(exc).split()) or type(exc).__name__,
            "edgeship_error": type(exc).__name__}
