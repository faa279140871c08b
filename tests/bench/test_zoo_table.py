"""The zoo table's done-criterion figure: artifacts the profiles ask for, built as asked."""

from __future__ import annotations

from bench.zoo_table import as_asked, as_asked_line


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
