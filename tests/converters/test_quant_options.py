"""The profile's ``quantization`` options: validation, bundle id, and the slower-than-fp32 flag."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from converters.bundle import bundle_id
from converters.verify import flag_slower_than_fp32
from profiles.schema import Artifact, Profile

TOOLS = {"onnxruntime": "1"}


def _profile(*artifacts: dict) -> Profile:
    return Profile.model_validate({"name": "t", "arch": "x86_64", "artifacts": list(artifacts)})


def test_options_change_the_bundle_id() -> None:
    def bid(quantization: dict | None) -> str:
        int8 = {"format": "onnx", "precision": "int8"}
        if quantization is not None:
            int8["quantization"] = quantization
        return bundle_id("src", "data", _profile(int8), {"edgeship_agent.py": "agent"}, TOOLS)

    ids = {bid(None), bid({"mode": "dynamic"}), bid({"per_channel": False}),
           bid({"calibration": "entropy"}), bid({"exclude": "auto", "keep_float": 2})}
    assert len(ids) == 5
    assert bid({"calibration": "entropy"}) == bid({"calibration": "entropy"})


@pytest.mark.parametrize("artifact, words", [
    ({"format": "tflite", "precision": "int8", "quantization": {"calibration": "entropy"}},
     "not an option for tflite"),
    ({"format": "onnx", "precision": "int8", "quantization": {"io": "uint8"}}, "io"),
    ({"format": "onnx", "precision": "fp16", "quantization": {}}, "precision int8"),
    ({"format": "onnx", "precision": "int8", "quantization": {"mode": "dynamic",
                                                              "calibration": "minmax"}},
     "only for mode: static"),
    ({"format": "onnx", "precision": "int8", "quantization": {"exclude": "auto"}}, "keep_float"),
    ({"format": "onnx", "precision": "int8", "quantization": {"calibraton": "minmax"}},
     "calibraton"),
])
def test_bad_options_are_refused(artifact: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Artifact.model_validate(artifact)


def test_existing_artifacts_keep_their_defaults() -> None:
    art = Artifact.model_validate({"format": "tflite", "precision": "int8",
                                   "quantization": {"io": "float32"}})
    assert art.key == "tflite-int8" and art.quantization.per_channel
    assert Artifact(format="onnx", precision="int8").quantization is None


def _entry(key: str, p50: float) -> dict:
    fmt, precision = key.split("-")
    return {"key": key, "format": fmt, "precision": precision, "host_latency_ms": {"p50": p50}}


def test_slower_than_fp32_is_flagged_from_the_figures() -> None:
    entries = [_entry("onnx-fp32", 0.028), _entry("onnx-int8", 0.039),
               _entry("tflite-fp32", 0.05), _entry("tflite-int8", 0.02), _entry("onnx-fp16", 0.9)]
    assert flag_slower_than_fp32(entries) == ["onnx-int8"]
    assert entries[1]["slower_than_fp32"] is True and entries[3]["slower_than_fp32"] is False
    assert "slower_than_fp32" not in entries[0] and "slower_than_fp32" not in entries[4]


def test_no_fp32_of_the_format_no_flag() -> None:
    entries = [_entry("tflite-int8", 9.0), _entry("onnx-fp32", 0.1)]
    assert flag_slower_than_fp32(entries) == []
    assert "slower_than_fp32" not in entries[0]


def test_a_fallen_back_int8_entry_is_still_compared() -> None:
    entries = [_entry("onnx-fp32", 0.01), dict(_entry("onnx-int8", 0.02), precision="fp16")]
    assert flag_slower_than_fp32(entries) == ["onnx-int8"]


def test_onnx_activations_default_to_the_boards_fast_kernel() -> None:
    """U8S8 on x86-64, S8S8 on ARM; an explicit choice, dynamic mode and TFLite are kept."""
    from converters.int8_options import int8_quantization, with_arch_default
    from profiles import load_profile
    from profiles.schema import Quantization

    assert int8_quantization(load_profile("sim"), "onnx").activations == "uint8"  # x86_64
    assert with_arch_default(None, "onnx", "aarch64").activations == "int8"
    assert with_arch_default(Quantization(activations="int8"), "onnx", "x86_64").activations \
        == "int8"
    dynamic = Quantization(mode="dynamic")
    assert with_arch_default(dynamic, "onnx", "x86_64") is dynamic
    assert with_arch_default(None, "tflite", "x86_64") is None
    assert with_arch_default(None, "onnx", None) is None
