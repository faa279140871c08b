"""Per-artifact isolation: a failing route is left out with its reason; the others still ship.

Failures are forced at each stage with real runtimes: a TFLite conversion raising onnx2tf's own
message (the converter is replaced for one precision only; the other precision is converted for
real), an ONNX file onnxruntime refuses to load, a ``required`` artifact, a TFLite source made into the
other formats (tf2onnx) and left with tf2onnx's cause when that fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from converters import build_bundle
from core.errors import ConversionError
from core.paths import Paths
from profiles import Artifact, load_profile

ONNX2TF_CAUSE = ("Dimensions must be equal, but are 4800 and 120 for '{{node p2o.Mul.178}} = "
                 "Mul[T=DT_FLOAT]' with input shapes: [1,4800,1], [1,120]")


def _profile(*keys: str, required: tuple[str, ...] = ()) -> object:
    arts = tuple(Artifact(format=k.split("-")[0], precision=k.split("-")[1],
                          **({"required": True} if k in required else {})) for k in keys)
    return load_profile("sim").model_copy(update={"artifacts": arts})


@pytest.fixture
def tflite_int8_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnx2tf fails on int8 (with its real kind of message); fp32 is converted for real."""
    import converters.pipeline as build

    real = build.make_tflite

    def make(onnx_path, out_dir, precisions, *args, **kwargs):
        rest = [p for p in precisions if p != "int8"]
        made = real(onnx_path, out_dir, rest, *args, **kwargs) if rest else {}
        if "int8" in precisions:
            made["int8"] = ConversionError(f"TFLite export failed: {ONNX2TF_CAUSE}")
        return made

    monkeypatch.setattr(build, "make_tflite", make)
    import converters.fallback as fallback

    real_remedy = fallback._tflite

    def remedy(job, out, tmp, precision, **options):  # the int16-activation int8 call too
        if precision == "int8":
            raise ConversionError(f"TFLite export failed: {ONNX2TF_CAUSE}")
        return real_remedy(job, out, tmp, precision, **options)

    monkeypatch.setattr(fallback, "_tflite", remedy)


def test_failed_tflite_leaves_the_onnx_and_tflite_fp32_artifacts_in(
        tiny, tmp_path: Path, tflite_int8_fails: None) -> None:
    from profiler.html_report import render_html
    from profiler.report import build_report, render_markdown, render_table
    from profiles import Budgets

    steps: list[str] = []
    bundle = build_bundle(str(tiny.pt2), load_profile("sim"), tiny.data, Paths(home=tmp_path),
                          progress=steps.append)
    m = bundle.manifest
    # the int8 that could not be made gets its remedies: fp16, under its own name
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32", "onnx-int8", "tflite-fp32",
                                                  "tflite-fp16"]
    assert all(a["verification"]["passed"] for a in m["artifacts"])
    assert m["artifacts"][3]["requested"] == "tflite-int8"
    assert set(m["files"]) == {"model.fp32.onnx", "model.int8.onnx", "model.fp32.tflite",
                               "model.fp16.tflite", "samples.npz"}
    assert m["left_out"] == [{"key": "tflite-int8", "stage": "convert", "tool": "onnx2tf",
                              "cause": f"TFLite export failed: {ONNX2TF_CAUSE}",
                              "tried": ["onnx2tf", "int16-activations", "dynamic", "fp16"],
                              "required": False,
                              "delivered_instead": "tflite-fp16"}]
    assert any(s.startswith("left out tflite-int8 (convert, onnx2tf): TFLite export failed")
               for s in steps)

    agent = {"results": [{"key": a["key"], "ok": True, "runtime": "r", "runtime_version": "1",
                          "load_ms": 1.0, "first_inference_ms": 1.0, "warmup": 1, "runs": 3,
                          "latency_ms": {"p50": 0.1, "p99": 0.2}, "rss_mb": {"peak": 50.0}}
                         for a in m["artifacts"]]}
    report = build_report(device="sim", board={"name": "sim"}, manifest=m, bundle_reused=False,
                          ship={}, agent=agent, budgets=Budgets())
    assert report["verdict"] == "partial" and report["left_out"] == m["left_out"]
    assert [r["verdict"] for r in report["artifacts"]] == ["pass"] * 4
    assert render_table(report).row_count == 5
    assert ("| tflite-int8 | — | — | — | — | — | — | left out: convert (onnx2tf): TFLite export "
            "failed: Dimensions must be equal") in render_markdown(report)
    report.update(created="2026-12-01T00:00:00+00:00", schema=3)
    assert 'data-left-out="tflite-int8"' in render_html(report)


def test_required_artifact_failing_fails_the_bundle_in_one_line(
        tiny, tmp_path: Path, tflite_int8_fails: None) -> None:
    paths = Paths(home=tmp_path)
    profile = _profile("onnx-fp32", "tflite-int8", required=("tflite-int8",))
    with pytest.raises(ConversionError) as err:
        build_bundle(str(tiny.pt2), profile, tiny.data, paths)
    assert str(err.value).startswith(
        "required artifact left out: tflite-int8 (convert, onnx2tf): TFLite export failed: "
        "Dimensions must be equal")
    assert "\n" not in str(err.value) and type(err.value) is ConversionError
    assert list(paths.bundles.iterdir()) == []


def test_artifact_its_runtime_cannot_load_is_left_out_before_verification(
        tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import converters.pipeline as build

    def broken_fp16(fp32: Path, out: Path, *_samples: object) -> dict:
        out.write_bytes(fp32.read_bytes()[: len(fp32.read_bytes()) // 2])  # truncated protobuf
        return {"tool": "onnxruntime.transformers.float16"}

    monkeypatch.setattr(build, "convert_fp16", broken_fp16)
    steps: list[str] = []
    bundle = build_bundle(str(tiny.pt2), _profile("onnx-fp32", "onnx-fp16"), tiny.data,
                          Paths(home=tmp_path), progress=steps.append)
    [out] = bundle.manifest["left_out"]
    assert out["key"] == "onnx-fp16" and out["stage"] == "load" and out["tool"] == "onnxruntime"
    assert "model.fp16.onnx cannot be loaded by its runtime" in out["cause"]
    assert "verifying onnx-fp16" not in steps  # the cheap check ran first and stopped it
    assert [a["key"] for a in bundle.manifest["artifacts"]] == ["onnx-fp32"]
    assert "model.fp16.onnx" not in bundle.manifest["files"]

    with pytest.raises(ConversionError, match=r"^no artifact survived: onnx-fp16 \(load, "
                                              r"onnxruntime\): model\.fp16\.onnx cannot be loaded"):
        build_bundle(str(tiny.pt2), _profile("onnx-fp16"), tiny.data, Paths(home=tmp_path))


def test_tflite_source_becomes_the_other_formats_through_tf2onnx(sim_bundle, tiny,
                                                                 tmp_path: Path) -> None:
    """A .tflite source ships as itself and, converted to ONNX by tf2onnx, as the profile's
    other artifacts, each held to the TFLite source's outputs, in its channels-last layout."""
    import numpy as np

    source = str(sim_bundle[0].path / "model.fp32.tflite")
    with np.load(tiny.data) as d:  # onnx2tf's file takes NHWC
        np.savez(tmp_path / "nhwc.npz", image=d["image"][:50].transpose(0, 2, 3, 1),
                 labels=d["labels"][:50])
    data = tmp_path / "nhwc.npz"
    bundle = build_bundle(source, _profile("onnx-fp32", "tflite-fp32", "tflite-int8"), data,
                          Paths(home=tmp_path))
    arts = {a["key"]: a for a in bundle.manifest["artifacts"]}
    assert list(arts) == ["tflite-fp32", "onnx-fp32", "tflite-int8"], bundle.manifest["left_out"]
    assert arts["tflite-fp32"]["converter"]["method"] == "source TFLite shipped as is"
    assert arts["onnx-fp32"]["converter"]["tool"] == "tf2onnx"
    assert arts["onnx-fp32"]["verification"]["max_abs_drift"] < 1e-4  # against the TFLite source
    for key in ("onnx-fp32", "tflite-int8"):  # the source's layout, not transposed again
        (spec,) = arts[key]["inputs"]
        assert spec["shape"] == [1, 28, 28, 1] and spec["transpose"] is None, spec
        assert spec["layout"] == "NHWC"
    assert arts["tflite-int8"]["verification"]["accuracy"] >= 0.9
    assert bundle.manifest["left_out"] == []
    assert "model.source.onnx" not in bundle.manifest["files"]


def test_tflite_source_left_out_formats_carry_tf2onnx_cause(sim_bundle, tiny, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """tf2onnx over its time limit: the other formats are left out with that cause, the source
    still ships, and a required one fails the bundle."""
    import numpy as np

    import converters.tflite_to_onnx as t2o

    monkeypatch.setattr(t2o, "TIMEOUT_S", 0.05)
    source = str(sim_bundle[0].path / "model.fp32.tflite")
    with np.load(tiny.data) as d:
        np.savez(tmp_path / "nhwc.npz", image=d["image"][:20].transpose(0, 2, 3, 1))
    data = tmp_path / "nhwc.npz"
    bundle = build_bundle(source, load_profile("sim"), data, Paths(home=tmp_path))
    assert [a["key"] for a in bundle.manifest["artifacts"]] == ["tflite-fp32"]
    left = bundle.manifest["left_out"]
    assert [lo["key"] for lo in left] == ["onnx-fp32", "onnx-int8", "tflite-int8"]
    assert all(lo["stage"] == "convert" and lo["tool"] == "tf2onnx"
               and "tf2onnx ran over 0 s" in lo["cause"] for lo in left), left
    with pytest.raises(ConversionError, match=r"^required artifact left out: onnx-fp32 "):
        build_bundle(source, _profile("onnx-fp32", "tflite-fp32", required=("onnx-fp32",)),
                     data, Paths(home=tmp_path))

def test_an_int8_file_that_fails_on_a_sample_gets_its_remedies(
        tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """all-MiniLM's full-int8 TFLite loaded, then TFLite's int8 DIV kernel refused a sample
    ("div.cc:262 data[i] != zero_point was not true") and the whole convert ended in an internal
    error. A file that fails on the evaluation data is left out at stage load with the runtime's
    line, and an int8 one gets the remedies, as one that does not load at all."""
    import converters.checks as checks

    real = checks.open_runner
    refused: list[str] = []

    def opened(fmt, path, *args, **kwargs):
        runner = real(fmt, path, *args, **kwargs)
        if path.name == "model.int8.onnx" and not refused:  # the file as configured
            refused.append(path.name)

            def run(feed):
                raise RuntimeError("tflite/kernels/div.cc:262 data[i] != zero_point was not "
                                   "true.Node number 82 (DIV) failed to invoke.")

            runner.run = run
        return runner

    monkeypatch.setattr(checks, "open_runner", opened)
    bundle = build_bundle(str(tiny.pt2), _profile("onnx-fp32", "onnx-int8"), tiny.data,
                          Paths(home=tmp_path))
    assert refused == ["model.int8.onnx"]
    int8 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-int8")
    assert int8["fallback"]["taken"] and int8["verification"]["passed"]
    assert "loads but fails on the evaluation data (RuntimeError: tflite/kernels/div.cc:262" in (
        int8["fallback"]["cause"])
