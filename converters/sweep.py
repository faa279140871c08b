"""Sweep: build several recipes of one model for one device profile, measure them side by side.

Each :class:`SweepRecipe` is compression passes (from :func:`converters.passes.available_passes`)
followed by one artifact (format × precision, int8 static or dynamic, per-channel or not). All
artifacts are verified against the same reference outputs (accuracy with labels, cosine,
top-1 agreement) — made by the same makers as ``edgeship convert`` (:mod:`converters.pipeline`:
the load-checked int8 with its variant ladder, fp16, TFLite one precision per call) but without
the int8 gate's remedies, since each row *is* one setting — and their host latency is measured interleaved — ``rounds`` rounds, each
running every artifact ``runs / rounds`` times, same runtime and threads — so machine noise hits
them alike; the median of all ``runs`` calls is reported. The result is a table, a JSON file
and a Pareto chart (:mod:`converters._sweep_chart`).

    rows = run_sweep(loaded, data, profile, default_recipes(profile), out_dir).rows
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, EdgeshipError
from profiles import Profile, RecipeStep

from ._sweep_chart import quality
from ._sweep_recipes import SweepRecipe, default_recipes, load_recipes
from ._util import one_line
from .data import Dataset
from .feeds import sample_feed
from .load import LoadedModel
from .pipeline import align_data, prepare_reference, synthetic_for
from .verify import Reference, collect_outputs, compare, host_threads, measure_side_by_side

__all__ = ["MIN_RUNS", "SweepRecipe", "SweepResult", "default_recipes", "load_recipes",
           "measure_side_by_side", "prepare", "quality", "run_sweep"]

log = logging.getLogger(__name__)

MIN_RUNS = 100
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SweepResult:
    """The measured rows (one per recipe, best first by nothing: in recipe order) and files."""

    rows: list[dict[str, Any]]
    json_path: Path
    charts: list[Path]
    document: dict[str, Any]


def prepare(source: str, data: str | Path | None,
            input_shapes: dict[str, tuple[int, ...]] | None = None) -> tuple[LoadedModel, Dataset]:
    """Load *source* and its data (aligned to its inputs), or synthetic inputs with a warning."""
    from .data import load_dataset
    from .load import load_model

    dataset = load_dataset(data) if data is not None else None
    if dataset is None and not input_shapes and not source.endswith(".onnx"):
        raise ConfigError(f"{source}: a torch model without --data needs --input-shape "
                          "NAME=1x3x224x224; or pass --data")
    loaded = load_model(source, input_shapes)
    return loaded, align_data(loaded, dataset) if dataset else synthetic_for(loaded)


def run_sweep(loaded: LoadedModel, data: Dataset, profile: Profile, recipes: Sequence[SweepRecipe],
              out_dir: Path, *, runs: int = MIN_RUNS, rounds: int = 5,
              progress: Progress | None = None, chart: bool = True) -> SweepResult:
    """Build, verify and time every recipe; write ``sweep.json`` (+ charts) into *out_dir*."""
    say = progress or (lambda _s: None)
    if loaded.kind == "tflite":
        raise ConfigError(f"{loaded.ref}: a .tflite source has one artifact, nothing to sweep; "
                          "give the torch or ONNX model")
    runs = max(runs, MIN_RUNS)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs, shapes, ref = prepare_reference(loaded, data, profile, say)
    out_names = ref.names
    calib = {k: v for k, v in data.calibration_set()[0].items() if k in inputs}
    built = _build_all(loaded, data, profile, recipes, out_dir, inputs, calib, out_names, say)
    rows = [_verify_row(r, b, inputs, shapes, ref, data, profile) for r, b in built]
    live = [row for row in rows if row.get("_runner") is not None]
    say(f"timing {len(live)} artifacts side by side ({runs} runs each, {rounds} rounds)")
    native = {row["name"]: row["_runner"].prepare(sample_feed(inputs, 0, shapes))
              for row in live}
    times = measure_side_by_side({row["name"]: (lambda r=row: r["_runner"].invoke(
        native[r["name"]])) for row in live}, runs, rounds)
    for row in rows:
        row.pop("_runner", None)
        row["latency_ms"] = times.get(row["name"])
        row["latency_runs"] = runs if row["name"] in times else 0
    _ratios_and_front(rows)
    doc = _document(loaded, data, profile, rows, runs, rounds)
    json_path = out_dir / "sweep.json"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    charts = []
    if chart:
        from ._sweep_chart import write_chart

        charts = write_chart(rows, out_dir, title=f"{Path(loaded.ref).name} on {profile.name}")
    return SweepResult(rows, json_path, charts, doc)


def _build_all(loaded: LoadedModel, data: Dataset, profile: Profile,
               recipes: Sequence[SweepRecipe], out_dir: Path, inputs: dict[str, np.ndarray],
               calib: dict[str, np.ndarray], out_names: list[str],
               say: Progress) -> list[tuple[SweepRecipe, Path | str]]:
    """Each recipe → its artifact file, or the one-line error that stopped it."""
    groups: dict[str, list[SweepRecipe]] = {}
    for r in recipes:
        groups.setdefault(json.dumps([s.model_dump(mode="json") for s in r.passes]), []).append(r)
    built: dict[str, Path | str] = {}
    for i, members in enumerate(groups.values()):
        work = out_dir / f"artifacts-{i}"
        work.mkdir(exist_ok=True)
        try:
            fp32 = _export_group(loaded, data, profile, members[0].passes, work, inputs, out_names, say)
        except Exception as exc:  # a pass or export failing fails its rows, not the sweep
            log.warning("recipe group %s failed: %s", [r.name for r in members], one_line(exc))
            built.update({r.name: one_line(exc) for r in members})
            continue
        torch_model = _group_model(loaded, members[0].passes)
        _tflite_group(fp32, work, [r for r in members if r.format == "tflite"], calib, built, say,
                      torch_model)
        threads = host_threads(profile.runtime.threads)
        for r in members:
            if r.format == "onnx":
                built[r.name] = _onnx_artifact(fp32, work, r, calib, inputs, threads, say,
                                               profile.arch)
    return [(r, built[r.name]) for r in recipes]


def _export_group(loaded: LoadedModel, data: Dataset, profile: Profile,
                  passes: tuple[RecipeStep, ...], work: Path, inputs: dict[str, np.ndarray],
                  out_names: list[str], say: Progress) -> Path:
    from .export_onnx import export_onnx
    from .passes import apply_recipe

    model = loaded.model
    if passes:
        if not loaded.is_torch:
            raise ConfigError("compression passes need a torch source (this is ONNX)")
        say(f"applying {', '.join(s.name for s in passes)}")
        model = apply_recipe(copy.deepcopy(model), passes, data)
    fp32 = work / "model.fp32.onnx"
    say(f"exporting ONNX fp32{' after ' + '+'.join(s.name for s in passes) if passes else ''}")
    export_onnx(replace(loaded, model=model), sample_feed(inputs, 0, data.sample_shapes()), fp32,
                profile.opset, out_names)
    if loaded.fixed_shapes:
        from ._shapes import fix_onnx_input_shapes

        fix_onnx_input_shapes(fp32, loaded.fixed_shapes)
    return fp32


def _onnx_artifact(fp32: Path, work: Path, r: SweepRecipe, calib: dict[str, np.ndarray],
                   inputs: dict[str, np.ndarray], threads: int, say: Progress,
                   arch: str | None = None) -> Path | str:
    """The recipe's ONNX artifact, by the makers ``convert`` uses (the int8 one load-checked,
    with its variant ladder), with the recipe's quantization options."""
    from profiles.schema import Quantization

    from .fallback import make_onnx_int8
    from .int8_options import with_arch_default
    from .quantize_fp16 import convert_fp16

    if r.precision == "fp32":
        return fp32
    out = work / f"{r.name}.onnx"
    say(f"building {r.name}")
    try:
        if r.precision == "fp16":
            convert_fp16(fp32, out)
        else:
            quantization = Quantization(mode=r.mode, per_channel=r.per_channel)
            make_onnx_int8(fp32, out, calib, with_arch_default(quantization, "onnx", arch),
                           inputs, threads, say)
    except EdgeshipError as exc:
        return str(exc)
    return out


def _tflite_group(fp32: Path, work: Path, members: list[SweepRecipe], calib: dict[str, np.ndarray],
                  built: dict[str, Path | str], say: Progress, torch_model: Any) -> None:
    """Each precision converted on its own by ``convert``'s TFLite maker (onnx2tf, then
    litert-torch for a torch source)."""
    from .tflite_routes import make_tflite

    if not members:
        return
    precisions = sorted({r.precision for r in members})
    say(f"converting to TFLite ({', '.join(precisions)})")
    made = make_tflite(fp32, work, precisions, calib, torch_model=torch_model, progress=say)
    for r in members:
        result = made[r.precision]
        built[r.name] = (str(result) if isinstance(result, EdgeshipError)
                         else work / f"model.{r.precision}.tflite")


def _group_model(loaded: LoadedModel, passes: tuple[RecipeStep, ...]) -> Any:
    """The torch model a TFLite fallback route converts (``None`` for ONNX sources or passes)."""
    return loaded.model if loaded.is_torch and not passes else None


def _verify_row(r: SweepRecipe, built: Path | str, inputs: dict[str, np.ndarray],
                shapes: dict[str, tuple[int, ...]], ref: Reference, data: Dataset,
                profile: Profile) -> dict[str, Any]:
    from ._runners import open_runner

    row: dict[str, Any] = {"name": r.name, "format": r.format, "precision": r.precision,
                           "mode": r.mode if r.precision == "int8" else None,
                           "per_channel": r.per_channel if r.precision == "int8" else None,
                           "passes": [s.model_dump(mode="json") for s in r.passes]}
    if isinstance(built, str):
        return {**row, "error": built, "passed": False}
    try:
        runner = open_runner(r.format, built, shapes, host_threads(profile.runtime.threads),
                             ref.source())
        result = compare(collect_outputs(runner.run, inputs, shapes=shapes,
                                         carries=ref.carries), ref, data.labels,
                         profile.budgets.max_accuracy_drop, fidelity=profile.fidelity)
    except EdgeshipError as exc:
        return {**row, "error": str(exc), "passed": False}
    return {**row, "file": str(built), "size_bytes": built.stat().st_size, "_runner": runner,
            **result.to_dict(), "error": None}


def _ratios_and_front(rows: list[dict[str, Any]]) -> None:
    ok = [r for r in rows if r.get("error") is None]
    base = next((r for r in ok if r["precision"] == "fp32" and not r["passes"]), ok[0] if ok else None)
    for r in rows:
        good = base is not None and r.get("error") is None
        r["size_ratio"] = round(r["size_bytes"] / base["size_bytes"], 4) if good else None
        r["latency_ratio"] = round(r["latency_ms"] / base["latency_ms"], 4) if good else None
        r["baseline"] = r is base
    for r in ok:
        r["pareto"] = not any(_dominates(o, r) for o in ok if o is not r)


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = (("size_bytes", -1), ("latency_ms", -1))
    ge = all(a[k] * s >= b[k] * s for k, s in keys) and quality(a) >= quality(b)
    gt = any(a[k] * s > b[k] * s for k, s in keys) or quality(a) > quality(b)
    return ge and gt


def _document(loaded: LoadedModel, data: Dataset, profile: Profile, rows: list[dict[str, Any]],
              runs: int, rounds: int) -> dict[str, Any]:
    from ._util import tool_versions

    return {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": {"kind": loaded.kind, "ref": loaded.ref, "sha256": loaded.sha256},
            "profile": profile.name, "threads": host_threads(profile.runtime.threads),
            "board_threads": profile.runtime.threads,
            "data": {"ref": data.ref, "samples": data.samples, "labels": data.labels is not None,
                     "synthetic": data.synthetic},
            "quality": "accuracy" if data.labels is not None else "cosine vs original",
            "latency": {"statistic": "median", "runs": runs, "rounds": rounds,
                        "interleaved": True, "batch": 1},
            "tools": tool_versions(), "rows": rows}
