"""The zoo table: one line per artifact or failed cell; the BENCHMARKS.md section is replaced."""

from __future__ import annotations

from pathlib import Path

from bench.zoo import summarize_manifest
from bench.zoo_table import BEGIN, END, as_asked, as_asked_line, render, write_sections

ENTRIES = [{"name": "m1", "kind": "detector", "wheel": "w==1", "licence": "MIT",
            "input_shapes": ["x=1x3x8x8"]}]


def _results() -> list[dict]:
    manifest = {"artifacts": [
        {"key": "tflite-fp32", "precision": "fp32", "size_bytes": 4096,
         "converter": {"tool": "onnx2tf", "variant": "float32"},
         "verification": {"max_abs_drift": 3e-7, "cosine": 1.0, "passed": True},
         "host_latency_ms": {"p50": 1.5}}],
        "left_out": [{"key": "onnx-int8", "reason": "DequantizeLinear axis needs opset 13"}]}
    rows = summarize_manifest(manifest)
    rows.append({"key": "onnx-int8", "built": False, "reason": manifest["left_out"][0]["reason"]})
    return [{"model": "m1", "target": "rpi4", "ok": True, "artifacts": rows},
            {"model": "m1", "target": "sim", "ok": False,
             "error": {"class": "KeyError", "internal": True, "message": "'state'"}}]


def test_render_has_a_line_per_artifact_and_per_failed_cell() -> None:
    text = render(ENTRIES, _results())
    lines = [ln for ln in text.splitlines() if ln.startswith("| m1 |")]
    assert any("tflite-fp32" in ln and "onnx2tf/float32" in ln and "3e-07" in ln for ln in lines)
    assert any("onnx-int8" in ln and "**no**" in ln and "opset 13" in ln for ln in lines)
    assert any("internal error: KeyError" in ln for ln in lines)
    assert "1/2 succeeded, 1 internal errors" in text


def test_section_replaced_in_place_and_other_sections_kept(tmp_path: Path) -> None:
    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text("# edgeship benchmarks\n\n## Shipping\nkept\n")
    first = render(ENTRIES, _results())
    write_sections(first, tmp_path / "zoo.md", bench)
    write_sections(first.replace("detector", "segmenter"), tmp_path / "zoo.md", bench)
    text = bench.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "## Shipping\nkept" in text and "segmenter" in text and "| detector |" not in text


def test_substitutes_and_unasked_sources_do_not_count() -> None:
    results = [
        {"model": "m", "target": "rpi4", "ok": True, "artifacts": [
            {"key": "tflite-fp32", "built": True},
            {"key": "tflite-fp16", "built": True, "requested": "tflite-int8"},  # a substitute
            {"key": "tflite-int8", "built": False},
            {"key": "onnx-int8", "built": True}]},
        {"model": "s", "target": "rpi4", "ok": True, "artifacts": [
            {"key": "tflite-fp16", "built": True}]},  # a TFLite source as itself: not asked
        {"model": "f", "target": "jetson-orin-nano", "ok": False, "error": {}}]
    assert as_asked(results) == {"rpi4": (2, 6), "jetson-orin-nano": (0, 3)}
    assert as_asked_line(results).startswith(
        "Artifacts the profiles ask for, built and verified as asked: 2/9 (22 %) — "
        "jetson-orin-nano 0/3, rpi4 2/6.")
