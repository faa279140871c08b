"""``edgeship check``: can DEVICE be deployed to? One ✔/✗ line per step, with the fix."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from ._common import DeviceOpt, InventoryOpt, JsonOpt, app, open_inventory, out

__all__ = ["check"]

TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", min=0.1, help="Seconds for name resolution, TCP connect and SSH handshake.")]


@app.command()
def check(device: DeviceOpt = "sim", inventory: InventoryOpt = None, json_out: JsonOpt = False,
          timeout: TimeoutOpt = 3.0) -> None:
    """Check that DEVICE can be deployed to, step by step, without converting or shipping.

    Name resolution, TCP reachability, pinned host key, SSH login, board Python, CPU
    architecture, glibc, runtime and its versions, accelerator (onnxruntime providers vs the
    profile), free space: one line each; a failed line says what to do. A step that depends
    on a failed one is skipped. A simulated board is started first, as deploy would.
    For a group, every board. Exit status 5 when any line failed.
    """
    from core.paths import default_paths
    from edgeship.deploy import start_board
    from profiles import load_profile
    from runtimes.check import as_json, check_board, failed

    paths = default_paths()
    docs, bad = [], []
    for board in open_inventory(inventory).resolve(device):
        started = time.perf_counter()
        profile = load_profile(board.profile)
        target = start_board(board, paths)
        checks = check_board(target, paths.known_hosts, profile, timeout=timeout)
        docs.append(as_json(target, checks, time.perf_counter() - started))
        bad += [board.name] if failed(checks) else []
        if not json_out:
            _print(docs[-1])
    if json_out:
        print(json.dumps(docs[0] if len(docs) == 1 else {"device": device, "boards": docs},
                         indent=2))
    if bad:
        raise typer.Exit(5)


def _print(doc: dict) -> None:
    """The board's header and its lines (✗ in red, skipped dimmed)."""
    from rich.markup import escape

    out.print(f"[bold]board {doc['board']!r}[/] ({doc['host']}:{doc['port']}, profile "
              f"{doc['profile']}) · {doc['seconds']:.2f} s", highlight=False)
    for c in doc["checks"]:
        mark, style = {True: ("✔", "green"), False: ("✗", "red"), None: ("·", "dim")}[c["ok"]]
        text = escape(f"{c['name']}: {c['detail']}") + (
            f" [bold]→ {escape(c['fix'])}[/]" if c["fix"] else "")
        out.print(f"  [{style}]{mark}[/] {text}", highlight=False, soft_wrap=True)
    n = sum(c["ok"] is False for c in doc["checks"])
    out.print(f"  {'[red]' + str(n) + ' failed[/]' if n else '[green]ready to deploy[/]'}",
              highlight=False)
