"""edgeship's int8 against the plain tools, side by side → bench/results/peers.{json,md}.

    python bench/peers.py [--only WORKLOAD ...] [--runs 100] [--render]

For each workload of :mod:`bench.peer_data` (pretrained models from wheels, real data) this
builds edgeship's artifacts and the peers' (:mod:`bench.peer_tools`), runs every one on the same
evaluation samples (:mod:`bench.peer_eval`) and times them all in ONE interleaved loop
(:func:`converters.sweep.measure_side_by_side`): same host, same thread count (1), batch 1,
median of ``--runs`` calls in 5 rounds. Ratios are against the fp32 artifact of the same
runtime (onnxruntime: the fp32 ONNX; TFLite/XNNPACK: edgeship's fp32 TFLite) in the same run.
A peer that cannot be built or run gets its one-line reason in the table. Built files are
cached under ``build/bench/peers/<workload>/<data digest>/`` (delete it to rebuild).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from bench import peer_tools as tools  # noqa: E402
from bench.peer_data import WORKLOADS, Workload, build  # noqa: E402
from bench.peer_eval import Runner, quality  # noqa: E402
from bench.peer_probes import hardswish_probe, ort_activation_probe  # noqa: E402
from bench.peer_table import finish_rows, render  # noqa: E402

__all__ = ["main", "measure_workload"]

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "build" / "bench" / "peers"
THREADS, ROUNDS = 1, 5


def _say(text: str) -> None:
    print(f"bench/peers: {text}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:240]


def _peers(work: Workload, fp32: Path, folder: Path) -> list[tuple[str, str, Callable[[], Path]]]:
    """(row name, tool, build) of every peer of *work*."""
    calib = work.calibration
    peers = [
        ("ort quantize_static (defaults)", "onnxruntime",
         lambda: tools.ort_static(fp32, calib, folder / "ort_static.onnx")),
        ("ort quantize_static (CPU advice: U8 act., per-channel)", "onnxruntime",
         lambda: tools.ort_static(fp32, calib, folder / "ort_static_u8.onnx", cpu_advice=True)),
        ("ort quantize_dynamic (defaults)", "onnxruntime",
         lambda: tools.ort_dynamic(fp32, folder / "ort_dynamic.onnx")),
        ("onnx2tf -oiqt (full-integer)", "onnx2tf",
         lambda: tools.onnx2tf_int8(fp32, calib, folder / "onnx2tf")),
    ]
    if work.is_torch:
        peers.append(("litert-torch PT2E int8", "litert-torch",
                      lambda: tools.litert_pt2e(_torch_model(work), calib, folder / "litert")))
    return peers


def _torch_model(work: Workload) -> Any:
    from converters import load_model

    return load_model(work.source).model


_EDGESHIP = {"fp32": ("fp32 (baseline)", "torch.onnx / source"),
             "tflite fp32": ("fp32 TFLite (baseline)", "edgeship (onnx2tf)")}


def _artifacts(work: Workload, folder: Path) -> list[dict[str, Any]]:
    """Every row of *work*: edgeship's (via run_sweep) then the peers', built or failed."""
    start = time.perf_counter()
    try:
        made = tools.build_edgeship(work, folder / "edgeship", _say)
    except Exception as exc:  # the whole edgeship build failed: nothing to compare against
        raise RuntimeError(f"{work.name}: edgeship's sweep failed: {_one_line(exc)}") from exc
    rows = []
    for name, got in made.items():
        label, tool = _EDGESHIP.get(name, (name, "edgeship"))
        rows.append({"name": label, "tool": tool, "edgeship": tool == "edgeship",
                     **_file_or_error(got)})
    _say(f"{work.name}: edgeship artifacts ready in {time.perf_counter() - start:.0f} s")
    fp32 = made["fp32"]
    (folder / "peers").mkdir(parents=True, exist_ok=True)
    for name, tool, make in _peers(work, fp32, folder / "peers"):
        start = time.perf_counter()
        failed = folder / "peers" / (re.sub(r"\W+", "_", name).strip("_") + ".error")
        _say(f"{work.name}: building {name}")
        try:  # a failure is cached too: delete the .error file to try again
            got: Path | str = failed.read_text() if failed.exists() else \
                (_onnx2tf_over(made) if tool == "onnx2tf" else None) or make()
        except Exception as exc:  # a peer failing is a row, not a crash
            got = _one_line(exc)
            failed.write_text(got)
        rows.append({"name": name, "tool": tool, "edgeship": False, **_file_or_error(got),
                     "build_seconds": round(time.perf_counter() - start, 1)})
    return rows


def _onnx2tf_over(made: dict[str, Any]) -> str | None:
    """Why onnx2tf is not run again: edgeship's own onnx2tf call ran over its limit on it."""
    over = [v for v in made.values() if isinstance(v, str) and "ran over" in v]
    return ("not run: edgeship's own onnx2tf call on this graph ran over its time limit in "
            "this workload's sweep (see its TFLite rows)") if over else None


def _file_or_error(got: Path | str) -> dict[str, Any]:
    if isinstance(got, Path):
        return {"file": str(got), "error": None}
    return {"file": None, "error": " ".join(str(got).split())[:240]}


def _digest(work: Workload) -> str:
    """Cache key of *work*'s files: its source and the bytes of its data and calibration."""
    import hashlib

    h = hashlib.sha256(work.source.encode())
    for arrays in (work.inputs, work.calibration):
        for name in sorted(arrays):
            h.update(name.encode() + arrays[name].tobytes())
    return h.hexdigest()[:12]


def measure_workload(work: Workload, runs: int) -> dict[str, Any]:
    """Build, verify and time every artifact of *work* side by side."""
    from converters.sweep import measure_side_by_side

    rows = _artifacts(work, WORK / work.name / _digest(work))
    live: dict[str, Runner] = {}
    for row in rows:
        if row["error"] is None:
            try:
                live[row["name"]] = Runner(Path(row["file"]), work.inputs, THREADS)
            except Exception as exc:  # the runtime refuses the file
                row["error"] = f"does not load: {_one_line(exc)}"
    n = len(next(iter(work.inputs.values())))
    ref_runner = live["fp32 (baseline)"]
    ref = [ref_runner.run(i) for i in range(n)]
    shapes = [o.shape for o in ref[0]]
    for row in rows:
        runner = live.get(row["name"])
        if runner is None:
            continue
        try:
            outs = ref if runner is ref_runner else [runner.run(i, shapes) for i in range(n)]
            row.update(quality(work.metric, ref, outs, work.labels))
        except Exception as exc:  # it loads but fails on the data
            row["error"] = f"fails on the data: {_one_line(exc)}"
            live.pop(row["name"])
        row.update(size_bytes=Path(row["file"]).stat().st_size,
                   runtime="tflite" if row["file"].endswith(".tflite") else "onnxruntime")
    _say(f"{work.name}: timing {len(live)} artifacts side by side ({runs} runs, {ROUNDS} rounds)")
    feeds = {name: r.feed(0) for name, r in live.items()}
    times = measure_side_by_side({name: (lambda r=r, f=feeds[name]: r.invoke(f))
                                  for name, r in live.items()}, runs, ROUNDS)
    for row in rows:
        row["latency_ms"] = times.get(row["name"]) if row["error"] is None else None
    finish_rows(rows, work.metric)
    doc = {"name": work.name, "title": work.title, "metric": work.metric,
           "data": work.data_note, "samples": n, "source": work.source, "rows": rows}
    if work.metric != "cosine":  # CNNs: which int8 activations fuse on onnxruntime here
        _say(f"{work.name}: probing onnxruntime int8 activations (as exported / pre-processed)")
        try:
            doc["ort_probe"] = ort_activation_probe(Path(rows[0]["file"]), work.calibration)
        except Exception as exc:  # a probe is an explanation, not a result: say and go on
            doc["ort_probe"] = {"error": _one_line(exc)}
    return doc


def main(argv: list[str] | None = None) -> None:
    """Measure the workloads (or ``--render`` the markdown from the JSON) and write both."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--render", action="store_true", help="rewrite peers.md from peers.json")
    ap.add_argument("--no-probes", dest="probes", action="store_false",
                    help="keep the previous run's TFLite hard-swish probe")
    args = ap.parse_args(argv)
    out_json = RESULTS / "peers.json"
    if args.render:
        (RESULTS / "peers.md").write_text(render(json.loads(out_json.read_text())))
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from converters._util import tool_versions

    start = time.perf_counter()
    previous = json.loads(out_json.read_text()) if out_json.exists() else {"workloads": []}
    done = {w["name"]: w for w in previous.get("workloads", [])}
    for name in args.only:
        _say(f"{name}: preparing data")
        done[name] = measure_workload(build(name), max(args.runs, 100))
    probes = previous.get("probes", {})
    if args.probes:
        _say("probing int8 HARD_SWISH on TFLite/XNNPACK (a toy net, ReLU6 vs hard-swish)")
        probes = {"hardswish": hardswish_probe()}
    doc = {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": THREADS,
           "runs": max(args.runs, 100), "rounds": ROUNDS, "tools": tool_versions(),
           "workloads": [done[n] for n in WORKLOADS if n in done], "probes": probes,
           "seconds": round(time.perf_counter() - start, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "peers.md").write_text(render(doc))
    print(f"wrote {out_json} and peers.md in {doc['seconds']} s")


if __name__ == "__main__":
    main()
