"""``edgeship boards``, ``edgeship profiles`` and ``edgeship board up|down``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from core.errors import EdgeshipError

from ._common import InventoryOpt, JsonOpt, app, board_app, boards_app, open_inventory, out

__all__ = ["board_down", "board_up", "boards", "list_profiles"]


@boards_app.callback(invoke_without_command=True)
def boards(ctx: typer.Context, inventory: InventoryOpt = None, json_out: JsonOpt = False) -> None:
    """List the boards of the inventory, their groups and profiles."""
    if ctx.invoked_subcommand is not None:  # e.g. `edgeship boards trust NAME`
        return
    from rich.table import Table

    inv = open_inventory(inventory)
    rows = [{"name": b.name, "host": b.host, "port": b.port, "user": b.user, "profile": b.profile,
             "groups": list(b.groups), "simulated": b.simulated} for b in inv.boards.values()]
    if json_out:
        print(json.dumps({"inventory": str(inv.path), "boards": rows,
                          "groups": {g: list(m) for g, m in inv.groups.items()}}, indent=2))
        return
    table = Table(title=f"inventory {inv.path}", title_justify="left")
    for col in ("board", "host", "user", "profile", "groups"):
        table.add_column(col)
    for r in rows:
        host = "loopback (simulated)" if r["simulated"] else f"{r['host']}:{r['port']}"
        table.add_row(r["name"], host, r["user"] or "—", r["profile"], ", ".join(r["groups"]))
    out.print(table)


@app.command("profiles")
def list_profiles(json_out: JsonOpt = False) -> None:
    """List the device profiles: arch, artifacts, threads, budgets."""
    from profiles import available_profiles, load_profile

    found = [load_profile(n) for n in available_profiles()]
    if json_out:
        print(json.dumps([p.model_dump(mode="json") for p in found], indent=2))
        return
    for p in found:
        arts = ", ".join(a.key for a in p.artifacts)
        out.print(f"[bold]{p.name}[/] ({p.arch}, {p.runtime.threads} threads): {arts} — {p.description}")


def _simulated(name: str):
    board = open_inventory(None).board(name)
    if not board.simulated:
        raise EdgeshipError(f"{name!r} is a real board; only simulated boards are started by edgeship")
    return board


@board_app.command("up")
def board_up(name: Annotated[str, typer.Argument(help="Simulated board name.")] = "sim") -> None:
    """Start the simulated board NAME (a real sshd: on the loopback, in its own network
    namespace for a 10.213.x address, or arm64 under qemu for an aarch64 profile); idempotent."""
    from core.paths import default_paths
    from runtimes import sim

    b = sim.start(_simulated(name), default_paths())
    out.print(f"board {name!r} up at {b.user}@{b.host}:{b.port}, root {b.root}")


@board_app.command("down")
def board_down(name: Annotated[str, typer.Argument(help="Simulated board name.")] = "sim") -> None:
    """Stop the simulated board NAME (and remove its network namespace)."""
    from core.paths import default_paths
    from runtimes import sim

    sim.stop(_simulated(name), default_paths())
    out.print(f"board {name!r} down")
