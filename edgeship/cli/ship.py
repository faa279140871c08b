"""``edgeship rollback``, ``edgeship provision`` and ``edgeship boards trust``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from core.errors import ConfigError

from ._common import DeviceOpt, InventoryOpt, JsonOpt, app, boards_app, err, open_inventory, out

__all__ = ["provision", "rollback", "trust"]

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Pin without asking (for scripts; check the fingerprint first).")]


def _target(device: str, inventory: Any) -> tuple[Any, Any]:
    """``(board, paths)``: the one board *device* names, started when simulated."""
    from core.paths import default_paths
    from edgeship.deploy import start_board

    boards = open_inventory(inventory).resolve(device)
    if len(boards) != 1:
        raise ConfigError(f"{device!r} is a group of {len(boards)} boards; name one board")
    paths = default_paths()
    return start_board(boards[0], paths), paths


@app.command()
def rollback(device: DeviceOpt = "sim", inventory: InventoryOpt = None,
             json_out: JsonOpt = False) -> None:
    """Switch DEVICE's `current` back to the previous release (atomically, under the lock)."""
    from runtimes import SSHTransport
    from runtimes import rollback as run_rollback

    board, paths = _target(device, inventory)
    with SSHTransport(board, paths.known_hosts) as ssh:
        now = run_rollback(ssh, board)
    if json_out:
        print(json.dumps({"board": board.name, "current": now}))
    else:
        out.print(f"board {board.name!r}: current is now release {now} (the one before is kept "
                  "as previous; `edgeship rollback` again switches back)")


@app.command()
def provision(device: DeviceOpt = "sim", inventory: InventoryOpt = None,
              json_out: JsonOpt = False) -> None:
    """Probe DEVICE, build a host-side wheelhouse that fits it, install its runtime offline."""
    from runtimes import SSHTransport
    from runtimes.provision import provision_board

    board, paths = _target(device, inventory)
    err.print(f"edgeship: provisioning {board.name!r} (probe → wheelhouse → install)")
    with SSHTransport(board, paths.known_hosts) as ssh:
        done = provision_board(ssh, board)
    if json_out:
        print(json.dumps(done, indent=2))
        return
    facts = done["facts"]
    out.print(f"board {board.name!r}: {facts['machine']}, Python {facts['python']}, glibc "
              f"{facts['glibc']}, {facts['os']}, {facts['free_mb']} MB free")
    plan = done.get("plan") or {}
    for note in plan.get("notes") or []:
        out.print(note)
    if plan.get("jetson"):
        out.print(f"onnxruntime: {plan['onnxruntime']}")
    for warning in plan.get("warnings") or []:
        out.print(f"[yellow]warning: {warning}[/]")
    out.print(f"wheelhouse {done['wheelhouse']}")
    verb = "installed" if done["installed"] else "already up to date"
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(done["packages"].items()))
    out.print(f"{verb}: {pkgs} → {done['python']} ({done['seconds']} s)")


@boards_app.command("trust")
def trust(name: Annotated[str, typer.Argument(help="Board name from the inventory.")],
          yes: YesOpt = False, inventory: InventoryOpt = None) -> None:
    """Fetch NAME's SSH host key, show its fingerprint, and pin it after you confirm."""
    from runtimes.trust import fetch_host_key, pin_host_key

    board, paths = _target(name, inventory)
    offer = fetch_host_key(board, paths.known_hosts)
    out.print(f"board {board.name!r} ({offer.pattern}) presents {offer.key.get_name()} key "
              f"{offer.fingerprint}")
    if offer.known:
        out.print(f"already trusted in {paths.known_hosts}; nothing to do")
        return
    if offer.changed:
        from runtimes import fingerprint

        err.print(f"[red]WARNING:[/] {paths.known_hosts} pins a DIFFERENT key "
                  f"({fingerprint(offer.pinned)}): the board was reinstalled, or this is not "
                  "the board. Compare with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on it.")
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError("not a terminal: check the fingerprint above on the board, then "
                              f"run `edgeship boards trust {name} --yes`")
        typer.confirm("Does this fingerprint match the board's own? Trust it", abort=True)
    pin_host_key(paths.known_hosts, offer)
    out.print(f"pinned {offer.pattern} in {paths.known_hosts}")
