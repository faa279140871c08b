"""Honour the user's ``~/.ssh/config`` for real boards: Host aliases, HostName, User, Port,
IdentityFile and ProxyJump (a chain of jump hosts, each itself looked up in the config).

Precedence, as with ``ssh -p/-l/-i``: what the inventory sets explicitly (a non-default port, a
user, a key file) wins over the config; the config fills the rest. Simulated boards never read
the user's config (like Fabric's tests, the developer's dotfiles stay out).
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from pathlib import Path

import paramiko

from core.errors import ConfigError
from devices import Board

__all__ = ["DEFAULT_SSH_CONFIG", "Hop", "parse_jump", "resolve_hops"]

log = logging.getLogger(__name__)

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")
_MAX_JUMPS = 4


@dataclass(frozen=True)
class Hop:
    """One SSH connection to open: where, as whom, with which keys."""

    host: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _load(path: Path | str | None) -> paramiko.SSHConfig | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, ValueError, paramiko.ssh_exception.ConfigParseError) as exc:
        raise ConfigError(f"{path}: cannot parse the SSH config ({exc}); fix it or move it "
                          "aside") from exc


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` → ``(user, host, port)``; refuses anything else."""
    if not spec or any(c.isspace() for c in spec) or "://" in spec:
        raise ConfigError(f"ProxyJump entry {spec!r} is not [user@]host[:port]; fix ~/.ssh/config")
    user, _, rest = spec.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    elif rest.count(":") == 1:
        host, _, text = rest.partition(":")
        if not text.isdigit():
            raise ConfigError(f"ProxyJump entry {spec!r}: port {text!r} is not a number")
        port = int(text)
    if not host:
        raise ConfigError(f"ProxyJump entry {spec!r} is not [user@]host[:port]; fix ~/.ssh/config")
    return (user or None), host, port


def _hop(config: paramiko.SSHConfig | None, alias: str, *, user: str | None = None,
         port: int | None = None, keys: tuple[str, ...] = ()) -> tuple[Hop, str | None]:
    """The hop for *alias* and its ProxyJump value (``None`` when there is none)."""
    found = config.lookup(alias) if config is not None else {}
    host = found.get("hostname", alias)
    cfg_port = int(found["port"]) if "port" in found else None
    idents = tuple(str(Path(p).expanduser()) for p in found.get("identityfile", []))
    jump = found.get("proxyjump")
    hop = Hop(host=host, port=port or cfg_port or 22,
              user=user or found.get("user") or getpass.getuser(), key_files=keys + idents)
    return hop, (None if jump in (None, "none") else jump)


def resolve_hops(board: Board, config_path: Path | str | None) -> list[Hop]:
    """The hops to the board, outermost jump host first and the board itself last."""
    config = None if board.simulated else _load(config_path)
    explicit_port = board.port if board.port != 22 else None
    keys = (str(Path(board.key_file).expanduser()),) if board.key_file else ()
    target, jump = _hop(config, board.host, user=board.user, port=explicit_port, keys=keys)
    hops = [target]
    specs = jump.split(",") if jump else []
    if len(specs) > _MAX_JUMPS:
        raise ConfigError(f"board {board.name!r}: ProxyJump chain of {len(specs)} hosts; at most "
                          f"{_MAX_JUMPS} are supported")
    jumps = []
    for spec in specs:
        user, host, port = parse_jump(spec.strip())
        hop, _ = _hop(config, host, user=user, port=port)  # a jump's own ProxyJump: ignored
        jumps.append(hop)
    if jumps:
        log.debug("board %r via %s", board.name, " -> ".join(map(str, jumps)))
    return jumps + hops
