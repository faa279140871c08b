"""``edgeship compare``: build several recipes for one device profile, table + Pareto chart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    DEMO_MODEL,
    DataOpt,
    DeviceOpt,
    InventoryOpt,
    JsonOpt,
    ModelOpt,
    app,
    default_data,
    open_inventory,
    out,
    progress,
)
from .deploy import InputShapeOpt, input_shapes

__all__ = ["compare"]

RecipesOpt = Annotated[Optional[list[str]], typer.Option(
    "--recipes", help="Recipe YAML/JSON file or directory (repeatable); default: fp32, int8 "
                      "static/dynamic, fp16 and every registered compression pass.")]


@app.command()
def compare(device: DeviceOpt = "sim", model: ModelOpt = DEMO_MODEL, data: DataOpt = None,
            recipes: RecipesOpt = None, json_out: JsonOpt = False, inventory: InventoryOpt = None,
            profile: Annotated[Optional[str], typer.Option(help="Profile name or YAML file, instead of DEVICE's.")] = None,
            input_shape: InputShapeOpt = None,
            runs: Annotated[int, typer.Option(min=100, help="Timed runs per artifact (median).")] = 100,
            out_dir: Annotated[Optional[Path], typer.Option("--out", help="Directory for sweep.json and the charts (default reports/<device>/sweep-<time>).")] = None) -> None:
    """Build several recipes of MODEL for DEVICE's profile; measure size, host latency, accuracy.

    Prints a table (Pareto-optimal recipes marked *) and writes sweep.json, sweep.png and
    sweep.svg. Latency: median of RUNS batch-1 calls per artifact, interleaved, same threads.
    """
    from converters.sweep import default_recipes, load_recipes, prepare, run_sweep
    from core.paths import default_paths
    from profiles import load_profile

    shapes = input_shapes(input_shape)
    chosen = load_recipes(recipes) if recipes else None
    prof = load_profile(profile or open_inventory(inventory).resolve(device)[0].profile)
    data = default_data(model, data)
    target = out_dir or default_paths().reports / device / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    with progress() as say:
        say("loading model and data")
        loaded, dataset = prepare(model, data, shapes)
        result = run_sweep(loaded, dataset, prof, chosen or default_recipes(prof), target,
                           runs=runs, progress=say)
    if json_out:
        print(json.dumps(result.document, indent=2))
        return
    out.print(_table(result.rows, result.document))
    out.print(f"sweep: {result.json_path}; chart: {', '.join(str(p) for p in result.charts)}")


def _table(rows: list[dict[str, Any]], doc: dict[str, Any]) -> Any:
    from rich.table import Table

    title = (f"{doc['source']['ref']} · profile {doc['profile']} · {doc['threads']} thread(s) · "
             f"median of {doc['latency']['runs']} runs · quality: {doc['quality']}")
    table = Table(title=title, title_justify="left")
    for col in ("recipe", "size KiB", "size ×", "p50 ms", "latency ×", "accuracy", "drop",
                "cosine", "passed", "pareto"):
        table.add_column(col)
    for r in rows:
        if r.get("error"):
            table.add_row(r["name"], "—", "—", "—", "—", "—", "—", "—", "error", r["error"][:80])
            continue
        table.add_row(r["name"], f"{r['size_bytes'] / 1024:.1f}", _n(r["size_ratio"], 2),
                      _n(r["latency_ms"], 3), _n(r["latency_ratio"], 2), _n(r["accuracy"], 4),
                      _n(r["accuracy_drop"], 4), _n(r["cosine"], 4), str(r["passed"]),
                      "*" if r.get("pareto") else "")
    return table


def _n(value: Any, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
